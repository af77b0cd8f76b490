"""From tasks to tensors: the training mixture, fixed evaluation sets, and collation."""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
import torch

from .positions import PolicySettings, apply_policy
from .tasks.base import Example, Positions, Task, consecutive_positions, example_rng, make_task, relabel
from .vocab import Vocab, task_marker


@dataclass(frozen=True)
class TaskSpec:
    """One task of a mixture: the task, its training length range (inclusive) and its weight.

    eval_params override the task's parameters for evaluation sets, on top of the task's own
    `eval_overrides` (the paper's test protocol). eval_grid evaluates one variant per combination
    of parameter values (e.g. sparse parity at each fixed k), each reported under its own label
    `task[k=3]`; `label` is that name for a variant (None: the task's name).
    """

    task: Task
    lengths: tuple[int, int]
    weight: float = 1.0
    eval_params: dict[str, Any] | None = None
    marker: str | None = None
    marker_repeat: int = 1
    eval_grid: dict[str, list[Any]] | None = None
    label: str | None = None
    length_bias: float = 0.0

    @property
    def name(self) -> str:
        """The name its evaluation rows carry: the variant label, else the task's name."""
        return self.label or self.task.name

    def eval_variants(self) -> list["TaskSpec"]:
        """The specs evaluated for this task: itself, or one per eval_grid combination."""
        if not self.eval_grid:
            return [self]
        keys = list(self.eval_grid)
        out = []
        for values in itertools.product(*(self.eval_grid[k] for k in keys)):
            combo = dict(zip(keys, values))
            label = f"{self.task.name}[{','.join(f'{k}={v}' for k, v in combo.items())}]"
            out.append(replace(self, eval_params={**(self.eval_params or {}), **combo}, eval_grid=None, label=label))
        return out

    def length_distribution(self) -> tuple[np.ndarray, np.ndarray]:
        """The training lengths and their probabilities: P(n) proportional to n ** -length_bias."""
        values = np.arange(self.lengths[0], self.lengths[1] + 1)
        weights = np.maximum(values, 1).astype(np.float64) ** -self.length_bias
        return values, weights / weights.sum()

    @property
    def eval_task(self) -> Task:
        """The task as used for evaluation sets."""
        return self.task.with_params(**{**self.task.eval_overrides, **(self.eval_params or {})})

    def sample(self, rng: np.random.Generator, n: int, length: int, for_eval: bool = False) -> list[Example]:
        """Examples of this task (eval parameters if for_eval), wrapped in the task marker if set."""
        return self.wrap((self.eval_task if for_eval else self.task).sample(rng, n, length))

    def wrap(self, examples: list[Example]) -> list[Example]:
        """The examples wrapped in this task's marker, if it has one."""
        if self.marker is None:
            return examples
        return [wrap_in_marker(ex, self.marker, self.marker_repeat) for ex in examples]


def wrap_in_marker(ex: Example, marker: str, repeat: int = 1) -> Example:
    """`<tK>prompt<tK>`: disambiguates byte-identical prompts of related tasks (Paper B's code
    wrote AAAA<prompt>AAAA). Positions are recomputed. In coupled IDs the leading markers take ID 0
    and the trailing ones the ID of the last prompt token, since the last trailing marker now
    predicts the first answer token."""
    pad = (marker,) * repeat
    prompt = pad + ex.prompt + pad
    coupled = None
    if ex.coupled is not None:
        lead, trail = (0,) * repeat, (ex.coupled.prompt[-1],) * repeat
        coupled = Positions(ex.coupled.bos, lead + ex.coupled.prompt + trail, ex.coupled.answer, ex.coupled.eos)
    return replace(ex, prompt=prompt, positions=consecutive_positions(len(prompt), len(ex.answer)), coupled=coupled,
                   meta={**ex.meta, "marker": marker})


class TaskMixture:
    """Draws training examples: task by weight, then a length in that task's range (uniform unless the
    task has a `length_bias`)."""

    def __init__(self, specs: list[TaskSpec], policy: str, settings: PolicySettings):
        self.specs = specs
        self.policy = policy
        self.settings = settings
        weights = np.array([s.weight for s in specs], dtype=np.float64)
        self.probs = weights / weights.sum()

    def sample(self, rng: np.random.Generator, n: int) -> list[Example]:
        """n examples; examples of the same (task, length) are generated together."""
        which = rng.choice(len(self.specs), size=n, p=self.probs)
        lows = np.array([s.lengths[0] for s in self.specs])[which]
        highs = np.array([s.lengths[1] for s in self.specs])[which]
        lengths = rng.integers(lows, highs + 1)
        for index, spec in enumerate(self.specs):
            chosen = which == index
            if spec.length_bias and chosen.any():  # drawn after the uniform draw: uniform runs stay as they were
                values, probs = spec.length_distribution()
                lengths[chosen] = rng.choice(values, size=int(chosen.sum()), p=probs)
        out: list[Example] = []
        for (task_index, length), count in zip(*np.unique(np.stack([which, lengths], 1), axis=0, return_counts=True)):
            spec = self.specs[int(task_index)]
            out += spec.sample(rng, int(count), int(length))
        order = rng.permutation(len(out))
        return apply_policy([out[i] for i in order], self.policy, rng, self.settings)


def batch_rng(data_seed: int, step: int, shard: int = 0) -> np.random.Generator:
    """The generator of one shard of one training step's batch (see `data.shards`): resuming at a
    step reproduces its batch exactly, and any process count draws the same shards."""
    return np.random.default_rng([data_seed, step, shard])


def eval_examples(spec: TaskSpec, length: int, n: int, eval_seed: int, policy: str,
                  settings: PolicySettings) -> list[Example]:
    """The fixed evaluation set for (task or variant, length, eval seed)."""
    rng = example_rng(eval_seed, "eval", spec.name, length)
    return apply_policy(spec.sample(rng, n, length, for_eval=True), policy, rng, settings)


def matched_eval_examples(spec: TaskSpec, other: TaskSpec, length: int, n: int, eval_seed: int, policy: str,
                          settings: PolicySettings) -> tuple[list[Example], list[Example]]:
    """`spec`'s fixed evaluation set at `length` (exactly `eval_examples`'), and pair by pair the
    same inputs (operands, strings) as `other`'s examples: re-labelled by `other`'s evaluation
    task (`tasks.base.relabel`) and wrapped in its own marker. The position policy is applied to
    both from identically seeded generators, so a random policy gives a pair the same IDs."""
    rng = example_rng(eval_seed, "eval", spec.name, length)
    raw = spec.eval_task.sample(rng, n, length)
    relabelled = other.wrap(relabel(raw, spec.eval_task, other.eval_task))
    twin = copy.deepcopy(rng)
    return apply_policy(spec.wrap(raw), policy, rng, settings), apply_policy(relabelled, policy, twin, settings)


@dataclass
class Batch:
    """Right-padded teacher-forcing batch. Inputs are `<bos> prompt answer`, targets shift by one.

    loss_mask marks the targets that are answer tokens or <eos> (not <eos> for an example whose
    `scores_eos` is False). position_targets shift the position IDs the same way (the ID of the
    token at i+1), for the PPC position head; it is optional so that a Batch can still be built
    from the first five tensors alone.

    A packed batch (`collate_packed`) holds several examples per row; `segments` then numbers them
    within each row (1, 2, ...; 0 for padding) and the model attends only within a segment.
    """

    tokens: torch.Tensor
    targets: torch.Tensor
    loss_mask: torch.Tensor
    position_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_targets: torch.Tensor | None = None
    segments: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> "Batch":
        """Move every tensor; to a GPU through pinned memory, so the copy does not block the host."""
        pin = torch.device(device).type == "cuda"  # a copy from pageable memory is synchronous
        moved = (getattr(self, f.name) for f in fields(self))
        return Batch(*(t if t is None else (t.pin_memory() if pin else t).to(device, non_blocking=True)
                       for t in moved))

    @property
    def num_tokens(self) -> int:
        """Non-padding input tokens."""
        return int(self.attention_mask.sum())


def sequence_ids(ex: Example, vocab: Vocab) -> list[int]:
    """Token ids of `<bos> prompt answer <eos>`."""
    return [vocab.bos_id, *vocab.encode(ex.prompt), *vocab.encode(ex.answer), vocab.eos_id]


def length_groups(examples: list[Example], parts: int) -> list[list[Example]]:
    """`examples` sorted by sequence length and cut into `parts` runs of near-equal size.

    Each run collated on its own pads only to its own longest example, so a batch of mixed lengths
    wastes less compute on padding, while the examples, and so the gradient of a loss summed over
    them, stay the same. Always exactly `parts` runs (data-parallel ranks must agree on the count),
    so `parts` may not exceed len(examples).
    """
    if not 1 <= parts <= len(examples):
        raise ValueError(f"cannot cut {len(examples)} examples into {parts} groups")
    order = sorted(range(len(examples)), key=lambda i: examples[i].seq_len)
    return [[examples[i] for i in chunk] for chunk in np.array_split(np.array(order), parts)]


def collate(examples: list[Example], vocab: Vocab) -> Batch:
    """Right-padded teacher-forcing batch of examples, one per row."""
    return _collate_rows([[ex] for ex in examples], vocab, max(ex.seq_len for ex in examples) - 1, packed=False)


def pack_rows(lengths: list[int], width: int) -> list[list[int]]:
    """Indices of items of `lengths` grouped into rows whose lengths sum to at most `width`.

    First fit, longest first: each item goes into the first row with room, else opens a row.
    Deterministic (ties keep the input order), and every item is in exactly one row.
    """
    if lengths and max(lengths) > width:
        raise ValueError(f"an item of length {max(lengths)} does not fit a row of width {width}")
    rows: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        slot = next((r for r, free in enumerate(room) if free >= lengths[i]), None)
        if slot is None:
            rows.append([i])
            room.append(width - lengths[i])
        else:
            rows[slot].append(i)
            room[slot] -= lengths[i]
    return rows


def collate_packed(examples: list[Example], vocab: Vocab, width: int = 0) -> Batch:
    """Teacher-forcing batch with several examples per row (`train.pack`).

    Rows are `width` tokens wide, or as wide as the longest example when that is longer (0: always
    the longest). Each example keeps its own position IDs and targets, and `segments` tells the
    model which tokens belong together, so the loss and its gradient are those of `collate`'s
    padded batch of the same examples, with less padding to compute.
    """
    lengths = [ex.seq_len - 1 for ex in examples]
    width = max(width, *lengths)
    rows = [[examples[i] for i in row] for row in pack_rows(lengths, width)]
    return _collate_rows(rows, vocab, width, packed=True)


def _collate_rows(rows: list[list[Example]], vocab: Vocab, width: int, packed: bool) -> Batch:
    """The Batch of `rows` (each a list of examples laid side by side), right-padded to `width`."""
    shape = (len(rows), width)
    tokens = np.full(shape, vocab.pad_id, dtype=np.int64)
    targets = np.full(shape, vocab.pad_id, dtype=np.int64)
    loss_mask = np.zeros(shape, dtype=bool)
    positions = np.zeros(shape, dtype=np.int64)
    attention = np.zeros(shape, dtype=bool)
    position_targets = np.zeros(shape, dtype=np.int64)
    segments = np.zeros(shape, dtype=np.int64)
    for i, row in enumerate(rows):
        start = 0
        for segment, ex in enumerate(row, start=1):
            seq = sequence_ids(ex, vocab)
            t = len(seq) - 1
            end = start + t
            tokens[i, start:end] = seq[:-1]
            targets[i, start:end] = seq[1:]
            # Targets from the last prompt token onwards are answer tokens or <eos> (unless the example
            # leaves <eos> out of its loss: text windows have no natural end; MQAR by default).
            loss_mask[i, start + len(ex.prompt) : end if ex.scores_eos else end - 1] = True
            ids = ex.positions.as_array()
            positions[i, start:end] = ids[:-1]
            position_targets[i, start:end] = ids[1:]
            attention[i, start:end] = True
            segments[i, start:end] = segment
            start = end
    arrays = (tokens, targets, loss_mask, positions, attention, position_targets)
    return Batch(*(torch.from_numpy(a) for a in arrays), segments=torch.from_numpy(segments) if packed else None)


@dataclass
class PromptBatch:
    """Left-padded prompts for generation, with the answers' IDs and positions right-padded.

    answer_positions[:, j] is the position ID at which generated token j is fed back in (and
    so the PPC position head's target when it predicts token j);
    answer_targets holds answer + <eos> (pad beyond), answer_mask marks the targets that are judged
    (the answer, and its <eos> unless the example's `scores_eos` is False).
    """

    tokens: torch.Tensor
    position_ids: torch.Tensor
    attention_mask: torch.Tensor
    answer_targets: torch.Tensor
    answer_positions: torch.Tensor
    answer_mask: torch.Tensor

    def to(self, device) -> "PromptBatch":
        """Move every tensor."""
        return PromptBatch(*(getattr(self, f.name).to(device) for f in fields(self)))


def collate_prompts(examples: list[Example], vocab: Vocab) -> PromptBatch:
    """Left-padded `<bos> prompt` batch plus what greedy decoding needs to feed and score."""
    b = len(examples)
    width = max(len(ex.prompt) for ex in examples) + 1
    answer_width = max(len(ex.answer) for ex in examples) + 1
    tokens = np.full((b, width), vocab.pad_id, dtype=np.int64)
    positions = np.zeros((b, width), dtype=np.int64)
    attention = np.zeros((b, width), dtype=bool)
    targets = np.full((b, answer_width), vocab.pad_id, dtype=np.int64)
    answer_pos = np.zeros((b, answer_width), dtype=np.int64)
    answer_mask = np.zeros((b, answer_width), dtype=bool)
    for i, ex in enumerate(examples):
        p = len(ex.prompt) + 1
        tokens[i, width - p :] = [vocab.bos_id, *vocab.encode(ex.prompt)]
        positions[i, width - p :] = [ex.positions.bos, *ex.positions.prompt]
        attention[i, width - p :] = True
        a = len(ex.answer) + 1
        targets[i, :a] = [*vocab.encode(ex.answer), vocab.eos_id]
        # Generated token j is fed at the ID of answer token j; past the answer, keep counting.
        answer_pos[i, :a] = [*ex.positions.answer, ex.positions.eos]
        answer_pos[i, a:] = ex.positions.eos + np.arange(1, answer_width - a + 1)
        answer_mask[i, : a if ex.scores_eos else a - 1] = True
    arrays = (tokens, positions, attention, targets, answer_pos, answer_mask)
    return PromptBatch(*(torch.from_numpy(a) for a in arrays))


def variant_task(label: str) -> str:
    """The task name behind an evaluation label (`sparse_parity[k=3]` -> `sparse_parity`)."""
    return label.split("[", 1)[0]


def build_spec(entry: dict[str, Any], index: int = 0, markers: bool = False, marker_repeat: int = 1) -> TaskSpec:
    """A TaskSpec from a config entry {task, lengths, weight, params, eval_params, eval_grid, length_bias};
    with markers, task number `index` of the mixture is wrapped in marker token <t{index}>."""
    task = make_task(entry["task"], entry.get("params"))
    lo, hi = entry["lengths"]
    task.check_length(lo)
    task.check_length(hi)
    eval_params = entry.get("eval_params")
    if eval_params:
        make_task(entry["task"], {**task.params(), **eval_params})  # validates the overrides
    marker = task_marker(index) if markers else None
    spec = TaskSpec(task, (lo, hi), entry.get("weight", 1.0), eval_params, marker, marker_repeat,
                    entry.get("eval_grid") or None, length_bias=float(entry.get("length_bias", 0.0)))
    for variant in spec.eval_variants():  # validates every grid combination
        make_task(entry["task"], {**task.params(), **(variant.eval_params or {})})
    return spec
