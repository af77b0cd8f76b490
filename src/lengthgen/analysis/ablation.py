"""Head ablation: replace chosen heads' outputs while scoring, and maps of the exact-match drop.

A head's output is its `hook_z` slice (attention-weighted values, before the output projection).
Kinds (ABLATIONS):
  zero  the output is set to 0.
  mean  the output is set to its mean over a reference batch: the first REF_N examples of the
        (task, length) evaluation set being scored, averaged over those examples and over all
        their real token positions (<bos>, prompt and answer; padding excluded), in one forward
        pass of the unablated model. One [d_head] vector per head, the same at every position,
        so it applies at any length and to every step of greedy decoding alike [ours: Paper B
        says "batch mean"; a per-position mean would not exist beyond the reference length].
Heads are written `layer.head`, both 0-based as in the hook names (`blocks.0.attn...`).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
import torch

from ..data import TaskSpec, collate, eval_examples
from ..errors import UserError
from ..evaluate import EvalRow, evaluate, evaluation_sets, scorer_for
from ..model.hooks import HookedModel, Hooks, replace_heads_output, replace_heads_output_by_row
from ..positions import PolicySettings
from ..registry import Registry
from ..runtime import autocast
from ..tasks.base import Example
from ..vocab import Vocab

Head = tuple[int, int]  # (layer, head), 0-based
REF_N = 64  # examples in a mean-ablation reference batch


@dataclass(frozen=True)
class EvalSetup:
    """How models are scored here: a run's evaluation sets, decoding mode, batching and device."""

    vocab: Vocab
    n: int
    eval_seed: int
    policy: str
    settings: PolicySettings
    mode: str = "teacher_forced"
    batch_size: int = 256
    device: torch.device = torch.device("cpu")
    precision: str = "float32"

    @classmethod
    def of(cls, exp, n: int | None = None) -> "EvalSetup":
        """The setup of a built experiment (its config's evaluation settings), with n examples per set."""
        cfg = exp.cfg
        return cls(exp.vocab, n or cfg.eval.n, cfg.seed.eval, cfg.positions.eval, cfg.positions.settings(),
                   cfg.eval.mode, cfg.eval.batch_size, exp.device, exp.precision)

    def evaluate(self, model, specs: list[TaskSpec], lengths: list[int], step: int = 0,
                 adapt: Callable | None = None, progress: Callable | None = None) -> list[EvalRow]:
        """`evaluate.evaluate` with this setup."""
        return evaluate(model, specs, lengths, n=self.n, eval_seed=self.eval_seed, policy=self.policy,
                        settings=self.settings, vocab=self.vocab, mode=self.mode, batch_size=self.batch_size,
                        device=self.device, precision=self.precision, step=step, adapt=adapt, progress=progress)


def check_hooked(model) -> tuple[int, int]:
    """(layers, heads) of a model with attention hook points; a UserError for any other model."""
    blocks = getattr(model, "blocks", None)
    if blocks is None or not hasattr(model, "cfg"):
        raise UserError(f"head analysis needs the transformer (model.arch: transformer), not "
                        f"{type(model).__name__}")
    return len(blocks), model.cfg.heads


def parse_heads(text: str, layers: int, heads: int) -> list[Head]:
    """'1.3,0.1' -> [(1, 3), (0, 1)]: comma-separated 0-based `layer.head`; a one-line UserError
    for anything malformed, out of range or repeated."""
    out: list[Head] = []
    for item in text.split(","):
        found = re.fullmatch(r"\s*(\d+)\.(\d+)\s*", item)
        if not found:
            raise UserError(f"--ablate {text!r}: {item!r} is not LAYER.HEAD (0-based, e.g. 1.3); "
                            "separate heads by commas")
        head = (int(found.group(1)), int(found.group(2)))
        if head[0] >= layers or head[1] >= heads:
            raise UserError(f"--ablate {text!r}: head {head[0]}.{head[1]} does not exist; this model has layers "
                            f"0..{layers - 1} and heads 0..{heads - 1}")
        if head in out:
            raise UserError(f"--ablate {text!r}: head {head[0]}.{head[1]} is listed twice")
        out.append(head)
    return out


@torch.no_grad()
def head_means(model, examples: list[Example], setup: EvalSetup, layers: list[int]) -> dict[int, torch.Tensor]:
    """Per asked layer: every head's output averaged over the examples' real positions, [heads, d_head]
    (float32). Only those layers' hook_z are captured."""
    names = {layer: f"blocks.{layer}.attn.hook_z" for layer in layers}
    hooks = Hooks(capture=names.values())
    batch = collate(examples, setup.vocab).to(setup.device)
    with autocast(setup.device, setup.precision):
        # Only the answer positions need the LM head; hook_z is computed at every position anyway.
        model(batch.tokens, batch.position_ids, hooks=hooks, select=batch.loss_mask)
    real = batch.attention_mask
    return {layer: hooks.cache[name][real].float().mean(0) for layer, name in names.items()}


ABLATIONS = Registry("ablation")


@ABLATIONS.register("zero")
def zero_values(model, examples: list[Example], setup: EvalSetup, layers: list[int]) -> dict[int, torch.Tensor]:
    """Per asked layer: zeros [heads, d_head]."""
    return {layer: torch.zeros(model.cfg.heads, model.cfg.head_dim, device=setup.device) for layer in layers}


@ABLATIONS.register("mean")
def mean_values(model, examples: list[Example], setup: EvalSetup, layers: list[int]) -> dict[int, torch.Tensor]:
    """Per asked layer: every head's mean output over the reference batch `examples` (see the module
    docstring), [heads, d_head]."""
    return head_means(model, examples, setup, layers)


def ablation_hooks(values: dict[Head, torch.Tensor | float]) -> Hooks:
    """Hooks replacing each head's output by its value (one replacement per layer)."""
    by_layer: dict[int, dict[int, torch.Tensor | float]] = defaultdict(dict)
    for (layer, head), value in values.items():
        by_layer[layer][head] = value
    replace = {}
    for layer, layer_values in by_layer.items():
        replace.update(replace_heads_output(layer, layer_values))
    return Hooks(replace=replace)


def ablator(kind: str, heads: list[Head], setup: EvalSetup, ref_n: int = REF_N) -> Callable:
    """An `adapt` for `evaluate`: for each (task, length) set, the model with `heads` ablated, the
    values computed from the set's first `ref_n` examples."""
    values_fn = ABLATIONS.lookup(kind)

    def adapt(model, examples: list[Example]):
        values = values_fn(model, examples[:ref_n], setup, sorted({layer for layer, _ in heads}))
        return HookedModel(model, ablation_hooks({(layer, head): values[layer][head] for layer, head in heads}))

    return adapt


@torch.no_grad()
def ablation_map(model, specs: list[TaskSpec], lengths: list[int], setup: EvalSetup, kind: str = "mean",
                 step: int = 0, rows: int | None = None) -> tuple[list[EvalRow], pd.DataFrame]:
    """Exact match with each head ablated alone, for every task and length it can make.

    What scoring each head with `ablator` on its own gives, in far fewer forward passes: a set's
    examples are repeated once per head, each copy with its own head ablated
    (`replace_heads_output_by_row`), `rows` examples to a pass (default: the evaluation batch
    size, which so still bounds memory). Rows never mix, so the numbers are the same up to the
    floating-point differences a kernel may show between batch shapes (none on this project's CPU,
    float32 or bf16, over every checkpoint of b-heads). Ablation values come from the set's first
    REF_N examples of the unablated model, as in `ablator`. Not split over data-parallel ranks:
    every rank computes the whole map.

    Returns the unablated rows and a table with columns step, task, length, layer, head,
    exact_match (ablated), baseline (unablated) and drop = baseline - exact_match, ordered by
    head, then task and length.
    """
    layers, heads = check_hooked(model)
    values_fn = ABLATIONS.lookup(kind)  # a bad kind fails before any scoring
    rows = setup.batch_size if rows is None else rows
    if rows < 1:
        raise UserError(f"rows must be >= 1, got {rows}")
    baseline = setup.evaluate(model, specs, lengths, step)
    every = [(layer, head) for layer in range(layers) for head in range(heads)]
    scorer = scorer_for(model, setup.mode)
    was_training = model.training
    model.eval()
    try:
        hits = {}  # (task, length) -> exact examples per head of `every`
        for spec, length in evaluation_sets(specs, lengths):
            examples = eval_examples(spec, length, setup.n, setup.eval_seed, setup.policy, setup.settings)
            values = values_fn(model, examples[:REF_N], setup, list(range(layers)))
            hits[spec.name, length] = _exact_per_head(model, examples, every, values, setup, scorer, rows)
    finally:
        model.train(was_training)
    table = []
    for k, (layer, head) in enumerate(every):
        for r in baseline:
            em = hits[r.task, r.length][k] / setup.n
            table.append({"step": step, "task": r.task, "length": r.length, "layer": layer, "head": head,
                          "exact_match": em, "baseline": r.exact_match, "drop": r.exact_match - em})
    return baseline, pd.DataFrame(table, columns=["step", "task", "length", "layer", "head", "exact_match",
                                                  "baseline", "drop"])


def _exact_per_head(model, examples: list[Example], every: list[Head], values: dict[int, torch.Tensor],
                    setup: EvalSetup, scorer: Callable, rows: int) -> np.ndarray:
    """Per head of `every`: how many `examples` stay exact with that head alone set to its value."""
    n = len(examples)
    layer_of = torch.tensor([layer for layer, _ in every])
    head_of = torch.tensor([head for _, head in every])
    all_heads = torch.arange(model.cfg.heads)
    hits = np.zeros(len(every), dtype=np.int64)
    for start in range(0, len(every) * n, rows):
        # Copy c of the set is example c % n with head every[c // n] ablated.
        copies = torch.arange(start, min(start + rows, len(every) * n))
        which = copies // n
        own_head = head_of[which][:, None] == all_heads[None]
        replace = {}
        for layer in sorted(set(layer_of.tolist())):
            ablate = (own_head & (layer_of[which] == layer)[:, None]).to(setup.device)
            replace.update(replace_heads_output_by_row(layer, ablate, values[layer]))
        exact, *_ = scorer(HookedModel(model, Hooks(replace=replace)), [examples[i] for i in (copies % n).tolist()],
                           setup.vocab, setup.device, setup.precision)
        np.add.at(hits, which.numpy(), exact.astype(np.int64))
    return hits


def head_map(maps: pd.DataFrame, task: str) -> pd.DataFrame:
    """A task's layers x heads map: its drop averaged over the lengths in `maps` (one step's rows)."""
    sub = maps[maps["task"] == task]
    table = sub.groupby(["layer", "head"])["drop"].mean().unstack("head")
    table.index.name, table.columns.name = "layer", "head"
    return table
