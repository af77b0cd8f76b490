"""Exact match and token accuracy per task per length, on fixed evaluation sets.

Answers come from the labels the tasks produced; the evaluator never recomputes them. Two
scorers give the same exact match for a deterministic argmax: `teacher_forced` (one forward
pass, the default) and `greedy` (batched decoding with the KV cache).

A model with a PPC position head is scored by the PPC scorers instead, which also report
`position_accuracy`: the fraction of answer tokens whose predicted position ID (the ID the
token is fed back at) equals the data's; the <eos> ID is never fed back, so it is not counted.
`greedy` decodes on the predicted IDs: the honest exact match, and the default mode for such
models (see ExperimentConfig). `teacher_forced` gives the true prefix at the true IDs and counts
an example exact only if every token and every fed-back ID is right; that never exceeds the
greedy exact match (a wrong ID that happens not to change any token still counts as wrong).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch

from . import distributed
from .data import TaskSpec, collate, collate_prompts, eval_examples
from .decoding import greedy_decode, ppc_greedy_decode
from .errors import UserError
from .model.transformer import Decoder
from .positions import PolicySettings
from .runtime import autocast
from .tasks.base import Example
from .vocab import Vocab


@dataclass
class EvalRow:
    """One line of eval.csv."""

    step: int
    task: str
    length: int
    n: int
    exact_match: float
    token_acc: float
    # PPC models only (NaN otherwise, and then left out of eval.csv).
    position_accuracy: float = float("nan")

    def as_dict(self) -> dict:
        """Field name -> value."""
        return asdict(self)


Scores = tuple[np.ndarray, int, int]  # per-example exact match, correct answer tokens, answer tokens


def score_teacher_forced(model: Decoder, examples: list[Example], vocab: Vocab, device, precision) -> Scores:
    """Argmax at every answer position given the true prefix."""
    batch = collate(examples, vocab).to(device)
    # Right padding under a causal mask: real tokens never see pads, so no mask is needed.
    # Only answer positions reach the LM head, as in training.
    with autocast(device, precision):
        logits = model(batch.tokens, batch.position_ids, select=batch.loss_mask)
    right = logits.argmax(-1) == batch.targets[batch.loss_mask]
    wrong = torch.zeros_like(batch.loss_mask)
    wrong[batch.loss_mask] = ~right
    exact = ~wrong.any(dim=1)
    return exact.cpu().numpy(), int(right.sum()), int(batch.loss_mask.sum())


def score_greedy(model: Decoder, examples: list[Example], vocab: Vocab, device, precision) -> Scores:
    """Free-running greedy decoding, compared with the answer and its <eos> (the answer alone for
    an example whose `scores_eos` is False: what is generated after it is not read)."""
    batch = collate_prompts(examples, vocab).to(device)
    with autocast(device, precision):
        generated = greedy_decode(model, batch, batch.answer_targets.shape[1], vocab.eos_id, vocab.pad_id)
    hit = (generated == batch.answer_targets) & batch.answer_mask
    exact = (hit | ~batch.answer_mask).all(dim=1)
    return exact.cpu().numpy(), int(hit.sum()), int(batch.answer_mask.sum())


SCORERS: dict[str, Callable[..., Scores]] = {"teacher_forced": score_teacher_forced, "greedy": score_greedy}

# PPC scorers add the correct and the counted position IDs of answer tokens.
PositionScores = tuple[np.ndarray, int, int, int, int]


def has_position_head(model) -> bool:
    """Whether the model has a PPC position head (and so is scored by the PPC scorers)."""
    return getattr(model, "position_head", None) is not None


def score_ppc_teacher_forced(model: Decoder, examples: list[Example], vocab: Vocab, device,
                             precision) -> PositionScores:
    """Argmax token and ID at every answer position given the true prefix at the true IDs; an
    example is exact only if all its tokens and all its fed-back IDs are right."""
    batch = collate(examples, vocab).to(device)
    with autocast(device, precision):
        logits, position_logits = model(batch.tokens, batch.position_ids, return_positions=True)
    hit = (logits.argmax(-1) == batch.targets) & batch.loss_mask
    # IDs of answer tokens only: the <eos> target's ID is never fed back.
    fed = batch.loss_mask & (batch.targets != vocab.eos_id)
    position_hit = (position_logits.argmax(-1) == batch.position_targets) & fed
    exact = ((hit | ~batch.loss_mask) & (position_hit | ~fed)).all(dim=1)
    return exact.cpu().numpy(), int(hit.sum()), int(batch.loss_mask.sum()), int(position_hit.sum()), int(fed.sum())


def score_ppc_greedy(model: Decoder, examples: list[Example], vocab: Vocab, device, precision) -> PositionScores:
    """Free-running PPC decoding on predicted IDs; tokens judged as in score_greedy, IDs of answer
    tokens compared with the data's."""
    batch = collate_prompts(examples, vocab).to(device)
    with autocast(device, precision):
        generated, positions = ppc_greedy_decode(model, batch, batch.answer_targets.shape[1], vocab.eos_id,
                                                 vocab.pad_id)
    hit = (generated == batch.answer_targets) & batch.answer_mask
    exact = (hit | ~batch.answer_mask).all(dim=1)
    fed = batch.answer_mask & (batch.answer_targets != vocab.eos_id)
    position_hit = (positions == batch.answer_positions) & fed
    return (exact.cpu().numpy(), int(hit.sum()), int(batch.answer_mask.sum()), int(position_hit.sum()),
            int(fed.sum()))


PPC_SCORERS: dict[str, Callable[..., PositionScores]] = {"teacher_forced": score_ppc_teacher_forced,
                                                         "greedy": score_ppc_greedy}


def check_positions_fit(model: Decoder, specs: list[TaskSpec], lengths: list[int], eval_seed: int, policy: str,
                        settings: PolicySettings, n: int = 256) -> None:
    """Fail early, with the fix named, if an evaluation length needs IDs the encoding lacks."""
    encoding = model.encoding
    # A PPC position head has max_position outputs whatever the encoding, so it bounds IDs too.
    head = has_position_head(model)
    if not encoding.bounded and not head:
        return
    for spec in (variant for s in specs for variant in s.eval_variants()):
        task = spec.eval_task
        usable = [n for n in lengths if can_make(task, n)]
        if not usable:
            continue
        longest = max(usable)
        # The whole evaluation set: answer lengths vary (maze traces), so a sample could miss the top.
        top = max(int(ex.positions.as_array().max())
                  for ex in eval_examples(spec, longest, n, eval_seed, policy, settings))
        if encoding.bounded and top >= encoding.max_position:
            raise UserError(
                f"evaluating {spec.name} at length {longest} needs position ID {top}, but the {encoding.name} "
                f"encoding has max_position {encoding.max_position}; raise positions.max_position or shorten "
                "the evaluation lengths")
        if head and top >= model.max_position:
            raise UserError(
                f"evaluating {spec.name} at length {longest} needs position ID {top}, but the PPC position head "
                f"predicts IDs 0..{model.max_position - 1}; raise positions.max_position or shorten the "
                "evaluation lengths")


def scorer_for(model, mode: str) -> Callable:
    """The scorer of `mode` for this model: the PPC scorer when it has a position head. Every
    scorer returns the per-example exact match first."""
    return (PPC_SCORERS if has_position_head(model) else SCORERS)[mode]


def evaluation_sets(specs: list[TaskSpec], lengths: list[int]) -> list[tuple[TaskSpec, int]]:
    """The (task variant, length) sets `evaluate` scores, in its order: every evaluation variant of
    every task at each length it can make."""
    return [(spec, length) for spec in (variant for s in specs for variant in s.eval_variants())
            for length in lengths if can_make(spec.eval_task, length)]


@torch.no_grad()
def evaluate(model: Decoder, specs: list[TaskSpec], lengths: list[int], *, n: int, eval_seed: int,
             policy: str, settings: PolicySettings, vocab: Vocab, mode: str = "teacher_forced",
             batch_size: int = 256, device=torch.device("cpu"), precision: str = "float32",
             step: int = 0, progress=None, adapt: Callable | None = None) -> list[EvalRow]:
    """Score every task at every length it can make; returns one EvalRow per (task, length).

    adapt: optional fn(model, examples) -> what scores that (task, length) set, given the set's
    examples; head ablation (`analysis.ablation.ablator`) wraps the model in hooks computed from them.
    progress: optional fn(done, total), called after each batch this rank scores (a progress bar).

    In a data-parallel job every rank must call this at once: the batches are dealt out over the
    ranks and their counts gathered, so each rank returns the rows a single process would. Each
    batch is the one a single process would score (the same examples, the same padding).
    """
    ppc = has_position_head(model)
    scorer = scorer_for(model, mode)
    was_training = model.training
    model.eval()
    sets = evaluation_sets(specs, lengths)
    units = [(i, start) for i in range(len(sets)) for start in range(0, n, batch_size)]
    counts, current, examples = {}, None, []
    mine = units[distributed.rank()::distributed.world_size()]
    for done, (i, start) in enumerate(mine, 1):
        if i != current:  # a rank generates only the sets it scores, one at a time
            current, examples = i, eval_examples(*sets[i], n, eval_seed, policy, settings)
            scoring = model if adapt is None else adapt(model, examples)
        exact, *rest = scorer(scoring, examples[start : start + batch_size], vocab, device, precision)
        counts[i, start] = (int(exact.sum()), *rest)
        if progress is not None:
            progress(done, len(mine))
    for part in distributed.gather_objects(counts):
        counts.update(part)
    rows = []
    for i, (spec, length) in enumerate(sets):
        # exact, correct tokens, answer tokens (+ correct and counted IDs under PPC), summed over batches
        total = [sum(column) for column in zip(*(counts[i, start] for start in range(0, n, batch_size)))]
        position_accuracy = total[3] / total[4] if ppc and total[4] else float("nan")
        rows.append(EvalRow(step, spec.name, length, n, total[0] / n, total[1] / max(total[2], 1), position_accuracy))
    model.train(was_training)
    return rows


def can_make(task, length: int) -> bool:
    """Whether the task can make examples of this length."""
    return task.min_length <= length and (task.max_length is None or length <= task.max_length)


def format_table(rows: list[EvalRow]) -> str:
    """Exact match as a length x task table (the latest step of each pair)."""
    latest: dict[tuple[str, int], EvalRow] = {}
    for row in rows:
        key = (row.task, row.length)
        if key not in latest or row.step >= latest[key].step:
            latest[key] = row
    tasks = list(dict.fromkeys(r.task for r in rows))
    lengths = sorted({r.length for r in rows})
    width = max([len(t) for t in tasks] + [8])
    lines = [f"exact match (step {max(r.step for r in rows)})" if rows else "no results",
             "length  " + "  ".join(t.rjust(width) for t in tasks)]
    for length in lengths:
        cells = []
        for task in tasks:
            row = latest.get((task, length))
            cells.append((f"{row.exact_match:.3f}" if row else "-").rjust(width))
        lines.append(f"{length:>6}  " + "  ".join(cells))
    return "\n".join(lines)
