"""Reverse addition at CPU scale, round 3: can every method of a-coupling fit it in 3,000 steps? At
1-10 digits and 256 examples a step, NoPE reached 0.13 (step 2,000) and RoPE 0.17 (step 1,000) in
a-coupling's first 3-seed attempt, and the coupled 1-layer model 0.91: the as-written rule would
say INCONCLUSIVE whatever coupling does. Here: 1-5 digits (2x = 10, 4x = 20), every a-coupling
method, batch 256, seed 0 (issue 26). A frozen record of 2026-12-06.

    lengthgen sweep experiments/coupling/addition_short.py --dir sweeps
"""

from lengthgen.presets import get_preset
from lengthgen.sweeps.spec import expand


def sweep() -> dict:
    """a-coupling's reverse_add points at `--scale cpu`, trained on 1-5 digits, seed 0."""
    plans = [p for p in expand(get_preset("a-coupling").spec("cpu")) if p.config.data.tasks[0].task == "reverse_add"
             and p.config.seed.model == 0]
    base = plans[0].config.model_dump(mode="json")
    base.pop("name")
    base["data"]["tasks"][0]["lengths"] = [1, 5]
    base["eval"]["lengths"] = [1, 2, 3, 4, 5, 8, 10, 15, 20]
    points = []
    for plan in plans:
        model, positions = plan.config.model, plan.config.positions
        points.append({"model.encoding": model.encoding, "model.layers": model.layers,
                       "model.logit_scaling": model.logit_scaling, "positions.train": positions.train,
                       "positions.eval": positions.eval})
    return {"name": "coupling-addition-short", "base": base, "seeds": [0], "points": points}
