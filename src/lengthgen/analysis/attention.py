"""Attention patterns on matched prompts of two tasks, and how much each head's pattern differs.

Matched prompts (`data.matched_eval_examples`): task A's fixed evaluation set at a length, and
the same inputs (operands for the arithmetic tasks, strings for the string tasks) re-labelled as
task B's examples. Their prompts are identical except for the task markers (and an operator,
e.g. `-` in reverse_sub); the answers are each task's own.

Compared positions: each pair is fed teacher-forced, `<bos> prompt answer`, and the patterns of
queries 0..T-1 over their keys are compared (keys after a query have weight 0 in both, so only
keys 0..T-1 count), where T is set by the span (SPANS):
  sequence  the shorter of the two inputs (default): the prompt and the answer read so far,
            where the task's computation happens;
  prompt    `<bos>` and the prompt (both prompts have this length).
The difference of a head is the sum over those (query, key) pairs of |A - B|, averaged over the
pairs of examples (so it is between 0 and 2T per pair), then over lengths.
"""

from __future__ import annotations

from typing import Callable

import pandas as pd
import torch

from ..data import TaskSpec, collate, matched_eval_examples
from ..errors import UserError
from ..evaluate import can_make
from ..model.hooks import Hooks
from ..registry import Registry
from ..runtime import autocast
from ..tasks.base import Example
from .ablation import EvalSetup, check_hooked

SPANS = Registry("attention span")
SPANS.register("sequence")(lambda ex: 1 + len(ex.prompt) + len(ex.answer))
SPANS.register("prompt")(lambda ex: 1 + len(ex.prompt))


@torch.no_grad()
def capture_patterns(model, examples: list[Example], setup: EvalSetup, layers: list[int]) -> dict[int, torch.Tensor]:
    """Attention patterns [batch, heads, query, key] (float32) of the teacher-forced inputs, for the
    asked layers only (only those layers leave the fused attention kernel)."""
    names = {layer: f"blocks.{layer}.attn.hook_pattern" for layer in layers}
    hooks = Hooks(capture=names.values())
    batch = collate(examples, setup.vocab).to(setup.device)
    last = torch.zeros_like(batch.loss_mask)
    last[:, 0] = True  # the logits are not needed: send one position per row through the LM head
    with autocast(setup.device, setup.precision):
        model(batch.tokens, batch.position_ids, hooks=hooks, select=last)
    return {layer: hooks.cache[name].float() for layer, name in names.items()}


def pattern_difference(model, first: list[Example], second: list[Example], setup: EvalSetup,
                       span: Callable[[Example], int]) -> torch.Tensor:
    """[layers, heads]: per head, the summed |pattern difference| over the compared positions (see
    the module docstring), averaged over the example pairs."""
    layers, _ = check_hooked(model)
    for a, b in zip(first, second):
        if len(a.prompt) != len(b.prompt):
            raise UserError(f"matched prompts of {a.task!r} and {b.task!r} differ in length ({len(a.prompt)} vs "
                            f"{len(b.prompt)}); their patterns cannot be compared position by position")
    total = None
    for start in range(0, len(first), setup.batch_size):
        a_part, b_part = first[start : start + setup.batch_size], second[start : start + setup.batch_size]
        pa = capture_patterns(model, a_part, setup, list(range(layers)))
        pb = capture_patterns(model, b_part, setup, list(range(layers)))
        t = torch.tensor([min(span(a), span(b)) for a, b in zip(a_part, b_part)], device=setup.device)
        width = int(t.max())
        queries = (torch.arange(width, device=setup.device)[None, :] < t[:, None]).float()  # [B, T]
        per_layer = []
        for layer in range(layers):
            diff = (pa[layer][:, :, :width, :width] - pb[layer][:, :, :width, :width]).abs().sum(-1)  # [B, H, T]
            per_layer.append((diff * queries[:, None, :]).sum(-1).sum(0))  # [H], summed over pairs
        part = torch.stack(per_layer)
        total = part if total is None else total + part
    return (total / len(first)).cpu()


def attention_difference(model, spec: TaskSpec, other: TaskSpec, lengths: list[int], setup: EvalSetup,
                         span: str = "sequence", step: int = 0) -> pd.DataFrame:
    """Per length both tasks can make, layer and head: the pattern difference of matched prompts
    (`spec`'s evaluation set and its inputs as `other`'s examples). Columns step, length, layer,
    head, diff."""
    span_fn = SPANS.lookup(span)
    was_training = model.training
    model.eval()
    rows = []
    for length in lengths:
        if not (can_make(spec.eval_task, length) and can_make(other.eval_task, length)):
            continue
        first, second = matched_eval_examples(spec, other, length, setup.n, setup.eval_seed, setup.policy,
                                              setup.settings)
        diff = pattern_difference(model, first, second, setup, span_fn)
        for (layer, head), value in zip(((lyr, h) for lyr in range(diff.shape[0]) for h in range(diff.shape[1])),
                                        diff.flatten().tolist()):
            rows.append({"step": step, "length": length, "layer": layer, "head": head, "diff": value})
    model.train(was_training)
    return pd.DataFrame(rows, columns=["step", "length", "layer", "head", "diff"])
