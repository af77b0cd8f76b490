"""Experiment configuration: typed, validated, loaded from YAML with dotted overrides.

Every knob of an experiment lives here, and the resolved config is written into the run
directory. Unknown keys are rejected with the list of valid ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import UserError, choices_error
from .model.config import ModelConfig
from .model.encodings import Encoding
from .model.plugins import ARCHITECTURES, ENCODINGS
from .positions import COUPLED_POLICIES, POLICIES, PolicySettings
from .schedules import SCHEDULES
from .store.trackers import TRACKERS
from .tasks.groups import GROUPS

# Upper bounds far beyond this bench's scale, so a typo (an extra digit or three) is a config
# error instead of an allocation of terabytes halfway through a run.
MAX_LENGTH = 100_000
MAX_COUNT = 1 << 20


class Strict(BaseModel):
    """Base: unknown keys are errors."""

    # NaN or infinity in a rate, weight or fraction would only surface mid-training: refuse it here.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class TaskEntry(Strict):
    """One task of the training mixture."""

    task: str
    lengths: tuple[int, int] = Field(description="inclusive training length range")
    weight: float = 1.0
    params: dict[str, Any] = Field(default_factory=dict)
    eval_params: dict[str, Any] = Field(default_factory=dict)
    eval_grid: dict[str, list[Any]] = Field(
        default_factory=dict,
        description="evaluate one variant per combination of these parameter values, labelled task[k=v]")
    length_bias: float = Field(
        0.0, ge=0.0, le=4.0,
        description="training lengths drawn with P(n) proportional to n ** -length_bias over the range: 0 is uniform, "
                    "1 favours short examples as 1/n (a mixture weighted to few pairs, as zoology trains MQAR)")

    @model_validator(mode="after")
    def _check(self) -> "TaskEntry":
        if self.lengths[0] > self.lengths[1]:
            raise ValueError(f"lengths {list(self.lengths)} must be [low, high] with low <= high")
        if self.lengths[1] > MAX_LENGTH:
            raise ValueError(f"lengths {list(self.lengths)}: at most {MAX_LENGTH}")
        if self.weight <= 0:
            raise ValueError("weight must be positive")
        return self


class PositionsConfig(Strict):
    """Position-ID policies for training and evaluation (see lengthgen.positions)."""

    train: str = "consecutive"
    eval: str = "consecutive"
    max_position: int = Field(256, ge=2, le=1 << 24)
    pose_chunks: int = Field(2, ge=1)

    @field_validator("train", "eval")
    @classmethod
    def _known(cls, name: str) -> str:
        if name not in POLICIES:
            raise ValueError(f"unknown position policy {name!r}; valid: {', '.join(sorted(POLICIES))}")
        return name

    def settings(self) -> PolicySettings:
        """The shared policy knobs."""
        return PolicySettings(self.max_position, self.pose_chunks)


class DataConfig(Strict):
    """The training mixture (a list of tasks, or a named group of PAPERS.md B2) and batch size."""

    tasks: list[TaskEntry] = Field(default_factory=list)
    group: str | None = Field(None, description="a named task group (lengthgen.tasks.groups); replaces tasks")
    group_max: list[int] | None = Field(None, description="max training length of each group task, in order")
    aux: bool = Field(True, description="false: train only the group's main task (the no-auxiliary baseline)")
    task_options: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="data.group only: per task name, fields of its entry other than task and lengths (weight, "
                    "params, eval_params, eval_grid, length_bias), e.g. {mqar: {length_bias: 1.0}}")
    markers: bool = Field(False, description="wrap task i's prompt in marker token <ti> on both sides")
    marker_repeat: int = Field(1, ge=1)
    batch_size: int = Field(64, ge=1, le=MAX_COUNT, description="the global batch, over all processes")
    shards: int = Field(
        1, ge=1, le=MAX_COUNT,
        description="the global batch of each step is this many equal sub-batches, shard k drawn from "
                    "(seed.data, step, k); data-parallel processes split the shards, so the same config trains "
                    "on the same batches with any process count that divides it")

    @model_validator(mode="after")
    def _nonempty(self) -> "DataConfig":
        if self.batch_size % self.shards:
            raise ValueError(f"data.batch_size ({self.batch_size}) must be divisible by data.shards ({self.shards})")
        if self.group is not None:
            if self.group not in GROUPS:
                raise choices_error("task group", self.group, GROUPS)
            if self.tasks:
                raise ValueError("set data.tasks or data.group, not both")
            count = len(GROUPS[self.group].tasks)
            if self.group_max is not None and len(self.group_max) != count:
                raise ValueError(f"data.group_max needs {count} lengths for group {self.group!r}")
            names = [t for t, _, _ in GROUPS[self.group].tasks]
            for name, options in self.task_options.items():
                if name not in names:
                    raise ValueError(f"data.task_options: {name!r} is not a task of group {self.group!r} "
                                     f"({', '.join(names)})")
                fixed = set(options) & {"task", "lengths"}
                if fixed:
                    raise ValueError(f"data.task_options.{name}: {', '.join(sorted(fixed))} come from the group "
                                     "(lengths: data.group_max)")
            try:  # each entry with its options validated now, not at the first batch
                self.resolved_tasks()
            except ValidationError as err:
                first = err.errors()[0]
                where = ".".join(map(str, first["loc"]))
                raise ValueError(f"data.task_options: {where}: {first['msg']}") from None
        elif self.group_max is not None or not self.aux or self.task_options:
            raise ValueError("data.group_max, data.aux and data.task_options apply to a data.group "
                             "(with data.tasks, set the options in each entry)")
        elif not self.tasks:
            raise ValueError("data.tasks must list at least one task (or set data.group)")
        names = [entry.task for entry in self.resolved_tasks()]
        if len(set(names)) != len(names):  # evaluation rows, plots and eval sets are keyed by the task's name
            twice = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"data.tasks names {', '.join(twice)} more than once; a task may appear once per run")
        return self

    def resolved_tasks(self) -> list[TaskEntry]:
        """The mixture's tasks: the group's when a group is named."""
        if self.group is None:
            return self.tasks
        tasks = GROUPS[self.group].tasks
        maxima = self.group_max or [hi for _, _, hi in tasks]
        entries = [TaskEntry(task=t, lengths=(lo, hi), **self.task_options.get(t, {}))
                   for (t, lo, _), hi in zip(tasks, maxima)]
        return entries if self.aux else entries[:1]


class TrainConfig(Strict):
    """Optimizer, schedule, precision and the rhythm of logging, evaluation and checkpoints."""

    steps: int = 1000
    lr: float = 1e-3
    min_lr_ratio: float = 0.0
    schedule: str = Field("cosine", description="a registered schedule: cosine, wsd, constant")
    warmup: float = Field(0.1, description="fraction of steps (<1) or a number of steps (>=1)")
    decay: float = Field(0.2, description="wsd: fraction of steps spent decaying")
    betas: tuple[float, float] = (0.9, 0.98)
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    precision: Literal["auto", "float32", "bf16"] = "auto"
    compile: bool = False
    threads: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    micro_batches: int = Field(
        1, ge=1, description="cut each process's batch, sorted by length, into this many micro-batches that "
                             "pad only to their own longest example and accumulate gradients: the same "
                             "gradient with less padding when lengths are mixed")
    pack: bool = Field(
        False, description="pack several examples into each row of a (micro-)batch, each example keeping its own "
                           "position IDs and attending only to itself: the same loss and gradient as padding each "
                           "example to the longest, with less padding")
    pack_length: int = Field(
        0, ge=0, le=MAX_LENGTH, description="with pack: the width of a row in tokens (0: the longest example of the "
                                            "batch; a longer example gets a row of its own width)")
    log_every: int = Field(20, ge=1)
    trackers: list[str] = Field(
        default_factory=lambda: ["tensorboard"],
        description="where metrics and evaluations go besides the run directory: tensorboard, wandb, mlflow "
                    "(store/trackers.py; wandb and mlflow need pip install 'lengthgen[trackers]')")
    eval_every: int = Field(0, ge=0, description="0: only at the end")
    checkpoint_every: int = Field(0, ge=0, description="0: only at the end")
    keep_checkpoints: int = 2
    snapshot_steps: list[int] = Field(
        default_factory=list,
        description="extra steps (each in 1..steps-1) at which to evaluate and save a checkpoint besides every "
                    "eval_every / checkpoint_every: denser checkpoints where training changes fast (b-heads: early); "
                    "pruned like the others, so raise keep_checkpoints to keep them all")
    collective_timeout: float = Field(
        600.0, gt=0, le=86400, description="data-parallel runs: seconds a process waits for the others at a "
                                           "collective (gradient sync, evaluation gather) before the job fails")
    position_loss_weight: float = Field(
        1.0, ge=0.0, description="PPC lambda: loss = CE(token) + lambda * CE(position ID); used only when "
                                 "model.position_head is true (ignored otherwise)")

    @field_validator("trackers")
    @classmethod
    def _known_trackers(cls, names: list[str]) -> list[str]:
        for name in names:
            if name not in TRACKERS:
                raise ValueError(f"unknown tracker {name!r}; valid: {', '.join(sorted(TRACKERS))}")
        if len(set(names)) != len(names):
            raise ValueError(f"train.trackers names a tracker twice: {names}")
        return names

    @field_validator("schedule")
    @classmethod
    def _known_schedule(cls, name: str) -> str:
        if name not in SCHEDULES:
            raise ValueError(f"unknown schedule {name!r}; valid: {', '.join(sorted(SCHEDULES))}")
        return name

    @model_validator(mode="after")
    def _check(self) -> "TrainConfig":
        if self.steps < 1 or self.lr <= 0:
            raise ValueError("train.steps must be >= 1 and train.lr > 0")
        if self.threads < 0 or self.keep_checkpoints < 1:
            raise ValueError("train.threads must be >= 0 and train.keep_checkpoints >= 1")
        bad = [s for s in self.snapshot_steps if not 0 < s < self.steps]
        if bad or len(set(self.snapshot_steps)) != len(self.snapshot_steps):
            raise ValueError(f"train.snapshot_steps must be distinct steps in 1..{self.steps - 1} "
                             f"(train.steps - 1), got {self.snapshot_steps}")
        # Ranges the optimizer or the schedules would otherwise reject (or silently misuse) mid-run.
        if not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"train.betas must both be in [0, 1), got {list(self.betas)}")
        if self.weight_decay < 0 or self.grad_clip < 0 or self.warmup < 0:
            raise ValueError("train.weight_decay, train.grad_clip (0 = no clipping) and train.warmup must be >= 0")
        if not (0 <= self.decay <= 1 and 0 <= self.min_lr_ratio <= 1):
            raise ValueError("train.decay and train.min_lr_ratio must be in [0, 1]")
        return self


class EvalConfig(Strict):
    """Fixed evaluation sets: lengths per task, examples per length, decoding mode."""

    lengths: str | list[int] | int = "1:20"
    n: int = Field(256, ge=1, le=MAX_COUNT)
    batch_size: int = Field(256, ge=1, le=MAX_COUNT)
    # With model.position_head (PPC) the default becomes "greedy" (decoding on predicted IDs);
    # an explicit "teacher_forced" then requires every token and every fed-back ID to be right.
    mode: Literal["teacher_forced", "greedy"] = "teacher_forced"

    @field_validator("lengths")
    @classmethod
    def _parse(cls, value):
        parse_lengths(value)
        return value

    def length_list(self) -> list[int]:
        """The evaluation lengths as a list."""
        return parse_lengths(self.lengths)


class SeedConfig(Strict):
    """Separate seeds: model initialisation, training data stream, evaluation sets."""

    # Non-negative and below 2**63: what both numpy's and torch's generators accept.
    model: int = Field(0, ge=0, lt=2**63)
    data: int = Field(0, ge=0, lt=2**63)
    eval: int = Field(0, ge=0, lt=2**63)


class ExperimentConfig(Strict):
    """A whole experiment: data, positions, model, training, evaluation, seeds."""

    name: str = "run"
    data: DataConfig
    positions: PositionsConfig = PositionsConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    seed: SeedConfig = SeedConfig()

    @model_validator(mode="after")
    def _check_micro_batches(self) -> "ExperimentConfig":
        """Every process holds at least one shard, so a shard must fill every micro-batch."""
        per_shard = self.data.batch_size // self.data.shards
        if self.train.micro_batches > per_shard:
            raise ValueError(f"train.micro_batches ({self.train.micro_batches}) must not exceed the examples of one "
                             f"data shard (data.batch_size / data.shards = {per_shard})")
        return self

    @model_validator(mode="after")
    def _check_packing(self) -> "ExperimentConfig":
        """Packed rows need a model that can keep the examples of a row apart."""
        if self.train.pack and not getattr(ARCHITECTURES.lookup(self.model.arch), "supports_packing", False):
            able = sorted(name for name, cls in ARCHITECTURES.items() if getattr(cls, "supports_packing", False))
            raise ValueError(f"train.pack needs a model.arch that takes packed rows ({', '.join(able)}), "
                             f"not {self.model.arch!r}")
        return self

    @model_validator(mode="after")
    def _check_ppc(self) -> "ExperimentConfig":
        """Predictive Position Coupling (model.position_head) needs coupled IDs, and is scored by
        greedy decoding with predicted IDs unless eval.mode is set explicitly."""
        if not self.model.position_head:
            return self
        arch = getattr(self.model, "arch", "transformer")
        if arch != "transformer":
            raise ValueError(f"model.position_head (PPC) is only supported by the transformer, not model.arch {arch!r}")
        # The head must read the ID of the attended input token from the hidden state. Relative
        # encodings (rope, alibi, fire) and nope put no ID there; under coupled_random_offset the
        # target IDs then cannot be predicted at all (the model is blind to the shift).
        absolute = sorted(name for name, cls in ENCODINGS.items() if cls.embed is not Encoding.embed)
        if self.model.encoding not in absolute:
            raise ValueError(f"model.position_head (PPC) needs an encoding that embeds position IDs in the hidden "
                             f"state ({', '.join(absolute)}), got model.encoding {self.model.encoding!r}")
        # An error, not a warning: the head would be trained on (or scored against) IDs that are
        # not coupled, which is not PPC and would silently give a different experiment.
        for stage in ("train", "eval"):
            policy = getattr(self.positions, stage)
            if policy not in COUPLED_POLICIES:
                raise ValueError(f"model.position_head (PPC) predicts coupled position IDs; positions.{stage} "
                                 f"must be one of {', '.join(COUPLED_POLICIES)}, got {policy!r}")
        # Teacher forcing with ground-truth IDs would hide ID errors, so a PPC model is scored by
        # greedy decoding on its own predicted IDs unless the user chose a mode. Writing the
        # choice into the config keeps the resolved config.yaml truthful (and --resume stable).
        if "mode" not in self.eval.model_fields_set:
            self.eval = self.eval.model_copy(update={"mode": "greedy"})
        return self

    def to_yaml(self) -> str:
        """The resolved config as YAML."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def parse_lengths(value: str | list[int] | int) -> list[int]:
    """'1:40' -> 1..40, '1:40:5' -> 1,6,...,36, '4,8,16' -> [4, 8, 16]; lists pass through."""
    if isinstance(value, int):
        out = [value]
    elif isinstance(value, list):
        out = value
    else:
        text = str(value).strip()
        try:
            if ":" in text:
                parts = [int(p) for p in text.split(":")]
                if len(parts) not in (2, 3):
                    raise ValueError
                step = parts[2] if len(parts) == 3 else 1
                if parts[1] > MAX_LENGTH:  # before the range is built
                    raise UserError(f"lengths {value!r}: at most {MAX_LENGTH}")
                out = list(range(parts[0], parts[1] + 1, step))
            else:
                out = [int(p) for p in text.split(",") if p.strip()]
        except ValueError:
            raise UserError(f"cannot read lengths {value!r}; use 'LO:HI', 'LO:HI:STEP' or 'A,B,C'") from None
    if not out or any((not isinstance(x, int)) or x < 1 for x in out):
        raise UserError(f"lengths {value!r} must be a non-empty set of positive integers")
    if max(out) > MAX_LENGTH:
        raise UserError(f"lengths {value!r}: at most {MAX_LENGTH}")
    return out


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node: Any = tree
    for key in keys[:-1]:
        if isinstance(node, list):
            node = node[int(key)]
        else:
            node = node.setdefault(key, {})
    last = keys[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


def yaml_problem(err: yaml.YAMLError) -> str:
    """The short reason of a YAML parse error ("found character '`' that cannot start any token")."""
    problem = getattr(err, "problem", None)
    return str(problem) if problem else (str(err).strip().splitlines() or ["unreadable"])[0]


def apply_overrides(tree: dict, overrides: list[str]) -> dict:
    """Apply `a.b.c=value` overrides (values parsed as YAML) to a raw config dict."""
    for item in overrides:
        if "=" not in item:
            raise UserError(f"override {item!r} must look like key.path=value")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as err:
            raise UserError(f"override {item!r}: the value is not valid YAML ({yaml_problem(err)})") from None
        if ":" in raw and isinstance(value, (int, float)):
            value = raw  # YAML 1.1 reads '1:40' as a base-60 number; a length range is meant
        try:
            _set_dotted(tree, key.strip(), value)
        except (ValueError, IndexError, TypeError, AttributeError):
            raise UserError(f"cannot apply override {item!r}: no such place in the config") from None
    return tree


def _describe(err: ValidationError) -> str:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        return f"unknown config key {where!r}"
    return f"config {where}: {msg}" if where else f"config: {msg}"


def _valid_keys_hint(err: ValidationError) -> str:
    first = err.errors()[0]
    if first["type"] != "extra_forbidden":
        return ""
    node: Any = ExperimentConfig
    for part in first["loc"][:-1]:
        fields = getattr(node, "model_fields", None)
        if fields is None or part not in fields:
            return ""
        node = fields[part].annotation
    fields = getattr(node, "model_fields", None)
    return f"; valid: {', '.join(fields)}" if fields else ""


def build_config(tree: dict) -> ExperimentConfig:
    """Validate a raw dict into an ExperimentConfig, with a one-line error on failure."""
    try:
        return ExperimentConfig.model_validate(tree)
    except ValidationError as err:
        raise UserError(_describe(err) + _valid_keys_hint(err)) from None
    except UserError:
        raise


def load_config(path: str | Path | None, overrides: list[str] = ()) -> ExperimentConfig:
    """Read a YAML config file (or start empty), apply overrides, validate."""
    return build_config(apply_overrides(read_config_tree(path), list(overrides)))


def read_config_tree(path: str | Path | None) -> dict:
    """A YAML config file as a raw mapping, not yet validated ({} for None); one-line errors."""
    tree: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"config file {str(path)!r} does not exist")
        try:
            tree = yaml.safe_load(path.read_text()) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as err:
            raise UserError(f"config file {str(path)!r} is not valid YAML: {str(err).splitlines()[0]}") from None
        if not isinstance(tree, dict):
            raise UserError(f"config file {str(path)!r} must hold a mapping at the top level")
    return tree
