"""The task interface: a task turns (rng, n, length) into examples; a registry names tasks.

A task knows nothing of models or position policies. Its examples carry the canonical
consecutive position IDs; a task whose tokens belong together (copy, reverse, ...) may also
define *coupled* IDs, which the `coupled` position policies use.

Sequence layout used everywhere: `<bos> prompt answer <eos>`. Positions are given for every
token of that layout: `bos_position`, `prompt_positions`, `answer_positions`, `eos_position`.
"""

from __future__ import annotations

import dataclasses
import typing
import zlib
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ..errors import UserError
from ..registry import Registry

SPLITS = {"train": 0, "eval": 1, "data": 2}


@dataclass(frozen=True)
class Positions:
    """Position IDs of one example's `<bos> prompt answer <eos>` sequence."""

    bos: int
    prompt: tuple[int, ...]
    answer: tuple[int, ...]
    eos: int

    def as_array(self) -> np.ndarray:
        """All IDs in sequence order."""
        return np.array([self.bos, *self.prompt, *self.answer, self.eos], dtype=np.int64)

    @classmethod
    def from_array(cls, ids: np.ndarray, prompt_len: int) -> "Positions":
        """Split a full-sequence ID array back into its parts."""
        ids = [int(i) for i in ids]
        return cls(ids[0], tuple(ids[1 : 1 + prompt_len]), tuple(ids[1 + prompt_len : -1]), ids[-1])


@dataclass(frozen=True)
class Example:
    """One prompt/answer pair with its position IDs and metadata (task, length, specifics)."""

    task: str
    length: int
    prompt: tuple[str, ...]
    answer: tuple[str, ...]
    positions: Positions
    coupled: Positions | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    # Whether the `<eos>` after the answer is trained and judged: False leaves it out of the loss,
    # and greedy evaluation then judges the answer tokens alone (whatever follows is not read).
    scores_eos: bool = True

    @property
    def seq_len(self) -> int:
        """Tokens in `<bos> prompt answer <eos>`."""
        return len(self.prompt) + len(self.answer) + 2

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready record (the format of `lengthgen data`)."""
        return {
            "task": self.task,
            "length": self.length,
            "prompt": "".join(self.prompt),
            "answer": "".join(self.answer),
            "prompt_positions": list(self.positions.prompt),
            "answer_positions": list(self.positions.answer),
            "bos_position": self.positions.bos,
            "eos_position": self.positions.eos,
            "meta": self.meta,
        }


def consecutive_positions(prompt_len: int, answer_len: int) -> Positions:
    """IDs 0, 1, 2, ... over `<bos> prompt answer <eos>`."""
    n = prompt_len + answer_len
    return Positions(0, tuple(range(1, prompt_len + 1)), tuple(range(prompt_len + 1, n + 1)), n + 1)


def example_rng(seed: int, split: str, task: str, length: int) -> np.random.Generator:
    """The generator for (seed, split, task, length): fixed eval sets and `lengthgen data`."""
    return np.random.default_rng([seed, SPLITS[split], zlib.crc32(task.encode()), length])


class Task:
    """Base class. Subclasses are dataclasses whose fields are the task's parameters.

    Subclasses implement `generate(rng, n, length)` returning (prompt, answer, meta) triples and
    may implement `coupled_positions(prompt, answer)`. Class attributes:
      name            registry name
      description     one line for `lengthgen tasks`
      min_length      smallest length the task can make (max_length: largest, or None)
      eval_overrides  parameters applied when building evaluation sets (the paper's test
                      protocol, e.g. both operands exactly `length` digits)
      eos_in_loss     whether the `<eos>` target is trained and scored (False: windows of running
                      text); a task may make it a parameter instead (mqar), as the examples
                      carry it (Example.scores_eos)
      report_metric   the results column a report tabulates for this task
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    min_length: ClassVar[int] = 1
    max_length: ClassVar[int | None] = None
    eval_overrides: ClassVar[dict[str, Any]] = {}
    # Tasks whose examples are built from the same kind of inputs (two operands, one string) share
    # an input kind; such tasks can re-label each other's examples (`relabel`: matched prompts).
    input_kind: ClassVar[str | None] = None
    # Whether the `<eos>` target after the answer is in the loss (and in token accuracy). A text
    # window (tasks/text.py) has no natural end, so it leaves it out.
    eos_in_loss: ClassVar[bool] = True
    # A whole window of running text is never predicted exactly, so text reports token accuracy.
    report_metric: ClassVar[str] = "exact_match"

    def generate(self, rng: np.random.Generator, n: int, length: int):
        """Return n (prompt tokens, answer tokens, meta dict) triples of the given length."""
        raise NotImplementedError

    def inputs(self, example: "Example") -> Any:
        """The inputs one of this task's (unwrapped) examples was built from; see `input_kind`."""
        raise UserError(f"task {self.name!r} cannot re-label its examples for another task (it has no input kind)")

    def build(self, inputs: Any) -> tuple[tuple[str, ...], tuple[str, ...], dict[str, Any]]:
        """(prompt, answer, meta) of this task for inputs given by `inputs` of a task of the same kind."""
        raise UserError(f"task {self.name!r} cannot build examples from another task's inputs (it has no input kind)")

    def coupled_positions(self, prompt: tuple[str, ...], answer: tuple[str, ...]) -> Positions:
        """Task-defined (coupled) position IDs; only tasks that support coupling override this."""
        raise UserError(f"task {self.name!r} does not define coupled position IDs")

    @property
    def supports_coupling(self) -> bool:
        """Whether this task defines coupled IDs."""
        return type(self).coupled_positions is not Task.coupled_positions

    def length_limits_reason(self) -> str:
        """Why the valid lengths are what they are, when parameters set them (added to the error)."""
        return ""

    def check_length(self, length: int) -> None:
        """Raise a UserError naming the valid range (and why) if the task cannot make `length`."""
        hi = self.max_length
        if length < self.min_length or (hi is not None and length > hi):
            valid = f"{self.min_length}..{hi}" if hi is not None else f">= {self.min_length}"
            reason = self.length_limits_reason()
            raise UserError(f"task {self.name!r} cannot make length {length}; valid lengths: {valid}"
                            + (f" ({reason})" if reason else ""))

    def sample(self, rng: np.random.Generator, n: int, length: int) -> list[Example]:
        """n examples of `length`, with consecutive (and, if defined, coupled) position IDs."""
        if n < 0:
            raise UserError(f"cannot draw {n} examples of task {self.name!r}; n must be >= 0")
        self.check_length(length)
        return [self.example(prompt, answer, meta, length) for prompt, answer, meta in self.generate(rng, n, length)]

    def example(self, prompt, answer, meta: dict[str, Any], length: int) -> Example:
        """One Example of this task, with consecutive (and, if defined, coupled) position IDs."""
        prompt, answer = tuple(prompt), tuple(answer)
        coupled = self.coupled_positions(prompt, answer) if self.supports_coupling else None
        return Example(self.name, length, prompt, answer, consecutive_positions(len(prompt), len(answer)), coupled,
                       meta, scores_eos=self.eos_in_loss)

    def params(self) -> dict[str, Any]:
        """This task's parameter values."""
        return dataclasses.asdict(self)

    def with_params(self, **overrides) -> "Task":
        """A copy with some parameters replaced."""
        return dataclasses.replace(self, **overrides)


def relabel(examples: list[Example], source: Task, target: Task) -> list[Example]:
    """`target`'s examples of the inputs of `source`'s unwrapped examples, in order: the same
    operands (or strings) answered as `target` answers them, at the same length. Prompts then
    differ only where the tasks write their inputs differently (an operator), and in the task
    markers added later. Both tasks must have the same `input_kind`."""
    if source.input_kind is None or source.input_kind != target.input_kind:
        kinds = ", ".join(sorted({t.input_kind for t in TASKS.values() if t.input_kind}))
        raise UserError(f"tasks {source.name!r} ({source.input_kind or 'no input kind'}) and {target.name!r} "
                        f"({target.input_kind or 'no input kind'}) do not take the same inputs; matched prompts need "
                        f"two tasks of one input kind ({kinds})")
    return [target.example(*target.build(source.inputs(ex)), ex.length) for ex in examples]


TASKS = Registry("task")


def register_task(cls: type[Task]) -> type[Task]:
    """Class decorator: make a task available by its `name`."""
    if not cls.name:
        raise ValueError(f"task class {cls.__name__} has no name")
    return TASKS.register(cls.name)(cls)


def _coerce(name: str, key: str, value: Any, annotation: Any) -> Any:
    """Check one parameter value against its annotation (bool/int/float/str/Literal)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        allowed = typing.get_args(annotation)
        if value not in allowed:
            raise UserError(f"task {name!r} parameter {key!r} must be one of {list(allowed)}, got {value!r}")
        return value
    if annotation is bool:
        ok = isinstance(value, bool)
    elif annotation is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif annotation is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif annotation is str:
        ok = isinstance(value, str)
    else:
        ok = True
    if not ok:
        raise UserError(f"task {name!r} parameter {key!r} must be {annotation.__name__}, got {value!r}")
    return value


def make_task(name: str, params: dict[str, Any] | None = None) -> Task:
    """Instantiate a registered task with validated parameters."""
    cls = TASKS.lookup(name)
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    clean = {}
    for key, value in (params or {}).items():
        if key not in fields:
            valid = ", ".join(sorted(fields)) or "(none)"
            raise UserError(f"task {name!r} has no parameter {key!r}; valid: {valid}")
        clean[key] = _coerce(name, key, value, hints[key])
    task = cls(**clean)
    validate = getattr(task, "validate", None)
    if validate is not None:
        validate()
    return task
