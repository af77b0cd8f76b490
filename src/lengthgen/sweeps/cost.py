"""What a run will cost, estimated from its config alone (no model is built, nothing is loaded):
the order of a sweep's runs (costliest first within a seed) and the suite's queue and ETA use it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..config import ExperimentConfig
from ..data import TaskMixture, build_spec
from ..vocab import Vocab


def matmul_parameters(cfg: ExperimentConfig, vocab_size: int) -> float:
    """Weights a token passes through (the cost of a token is about 2 FLOPs per weight, forward).

    The transformer's from its config; the idealized model's from its MLP widths; a pretrained
    model's from its config.json when it is on disk. A model a preparation step has still to make
    (b-pretrained's CPU series) counts as a transformer of the config's sizes, a guess that the
    suite replaces once the model exists."""
    m = cfg.model
    if m.arch == "sparse_attention":
        return 4 * m.tuple_size * m.d_model * m.hidden + m.d_model * vocab_size
    config = Path(str(m.path or "")) / "config.json"
    if m.arch == "pretrained" and config.is_file():
        hf = json.loads(config.read_text())
        d, layers = hf.get("hidden_size", 576), hf.get("num_hidden_layers", 30)
        return layers * (4 * d * d + 3 * d * hf.get("intermediate_size", 4 * d)) + d * hf.get("vocab_size", 49152)
    mlp = (3 if m.mlp == "swiglu" else 2) * m.d_model * m.d_ff
    return m.layers * (4 * m.d_model**2 + mlp) + m.d_model * vocab_size


def run_cost(cfg: ExperimentConfig, sample: int = 64) -> float:
    """Estimated FLOPs of one run: training (6 x weights x tokens per step x steps) plus its evaluations
    (2 x weights x evaluation tokens each). Token counts come from a drawn batch and one drawn
    evaluation example per task and length, so no model is built and nothing is loaded."""
    vocab = Vocab.default()
    specs = [build_spec(entry.model_dump(), i, cfg.data.markers, cfg.data.marker_repeat)
             for i, entry in enumerate(cfg.data.resolved_tasks())]
    rng = np.random.default_rng(0)
    mixture = TaskMixture(specs, cfg.positions.train, cfg.positions.settings())
    batch = mixture.sample(rng, min(sample, cfg.data.batch_size))
    tokens_per_step = cfg.data.batch_size * float(np.mean([ex.seq_len for ex in batch]))
    eval_tokens = 0.0
    for spec in specs:
        for variant in spec.eval_variants():
            for length in cfg.eval.length_list():
                try:
                    example = variant.sample(rng, 1, length, for_eval=True)[0]
                except Exception:  # noqa: BLE001 -- a length the task cannot make is skipped by evaluation too
                    continue
                eval_tokens += cfg.eval.n * example.seq_len
    tc = cfg.train
    regular = set(range(tc.eval_every, tc.steps, tc.eval_every)) if tc.eval_every else set()
    evaluations = len(regular | set(tc.snapshot_steps)) + 1  # the final one too; a snapshot may be regular
    weights = matmul_parameters(cfg, len(vocab))
    return 6 * weights * tokens_per_step * tc.steps + 2 * weights * eval_tokens * evaluations
