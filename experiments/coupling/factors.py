"""Coupled copy, one factor at a time from a-coupling's CPU point toward the position-coupling code's
recipe (RECIPES.md 1.5), 3 seeds each (issue 26). A frozen record of 2026-12-06.

    lengthgen sweep experiments/coupling/factors.py --dir sweeps
    for run in sweeps/coupling-factors/runs/*; do lengthgen align $run --lengths 10,20,40 -n 64; done

Base: copy, lengths 1-10, learned IDs under coupled_random_offset (training) / coupled
(evaluation), 2 layers, d_model 128, max_position 256, batch 64, AdamW lr 1e-3, weight decay 0.01,
3,000 steps, cosine, packed rows: a-coupling's copy point at CPU scale. Evaluated on strings with
repeated letters (the task's default) and without (`distinct`), so that copying by content (find
the previous occurrence, take the next letter) and copying by position can be told apart.
"""

from lengthgen.presets import get_preset
from lengthgen.sweeps.spec import expand

# factor -> overrides (one factor each; the run names spell the overrides out)
FACTORS = {
    "base": {},
    "1-layer": {"model.layers": 1},
    "tight-max-position": {"positions.max_position": 43},  # longest test (40) + <eos> ID + 1, as the PC code
    "batch-256": {"data.batch_size": 256},
    "cho-id-rule": {"data.tasks.0.params.id_rule": "copied"},
    "lr-3e-4": {"train.lr": 3e-4},
    "no-weight-decay": {"train.weight_decay": 0.0},
    "6000-steps": {"train.steps": 6000, "train.eval_every": 1000, "train.checkpoint_every": 1000},
}


def sweep() -> dict:
    """The a-coupling copy point as the base, one point per factor, seeds 0-2."""
    plan = expand(get_preset("a-coupling").spec("cpu-v1"))[0]  # copy, coupling, seed 0
    base = plan.config.model_dump(mode="json")
    base.pop("name")
    base["eval"]["lengths"] = [5, 10, 15, 20, 25, 30, 40]
    base["train"]["eval_every"] = base["train"]["checkpoint_every"] = 500
    base["data"]["tasks"][0]["eval_grid"] = {"distinct": [False, True]}
    return {"name": "coupling-factors", "base": base, "seeds": [0, 1, 2],
            "points": list(FACTORS.values())}
