"""Coupled reverse addition (zero-padded operands), one factor at a time from a-coupling's CPU point,
toward a fit >= 0.9 over 1-10 digits (issue 26, item 2). 2 seeds each. A frozen record of 2026-12-06.

    lengthgen sweep experiments/coupling/addition.py --dir sweeps

Base: reverse_add with pad_operands, 1-10 digits, learned IDs under coupled_random_offset /
coupled, 2 layers, d_model 128, max_position 256, batch 64, AdamW lr 1e-3, 3,000 steps, cosine,
packed rows: a-coupling's reverse_add point at CPU scale (best seed 0.77 in distribution).
"""

from lengthgen.presets import get_preset
from lengthgen.sweeps.spec import expand

FACTORS = {
    "base": {},
    "7500-steps": {"train.steps": 7500},
    "3-layers": {"model.layers": 3},
    "batch-256": {"data.batch_size": 256},
    "1-layer": {"model.layers": 1},
    "lr-3e-3": {"train.lr": 3e-3},
}


def sweep() -> dict:
    """The a-coupling reverse_add coupling point as the base, one point per factor, seeds 0-1."""
    plan = next(p for p in expand(get_preset("a-coupling").spec("cpu-v1"))
                if p.config.data.tasks[0].task == "reverse_add" and p.config.positions.eval == "coupled")
    base = plan.config.model_dump(mode="json")
    base.pop("name")
    base["eval"]["lengths"] = [1, 2, 4, 6, 8, 10, 15, 20, 30, 40]
    base["train"]["eval_every"] = base["train"]["checkpoint_every"] = 1500
    return {"name": "coupling-addition", "base": base, "seeds": [0, 1], "points": list(FACTORS.values())}
