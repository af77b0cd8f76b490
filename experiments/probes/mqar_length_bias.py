"""b-transfer-string with MQAR's lengths weighted toward few pairs (issue 28, item 1).

zoology trains MQAR on a mixture dominated by few key-value pairs (RECIPES.md 2); the preset draws
1-16 pairs uniformly, and every layout tried sits on the bag-of-values plateau. Here the preset's
with-auxiliary run (copy 1-8 + MQAR 1-16, 2,500 steps, the CPU model) with MQAR's pairs drawn as
P(n) ~ 1/n (`length_bias: 1`), with and without the previous-token shift, seeds 0 and 1. The tasks
are written out (not through `data.group`) so that MQAR's entry can carry the bias. The preset's
run is that of its first CPU scale (`cpu-v1`, its `cpu` scale until 2026-12-06).

    lengthgen sweep experiments/probes/mqar_length_bias.py --dir sweeps
"""

from lengthgen.presets.base import get_preset
from lengthgen.sweeps.spec import expand


def sweep() -> dict:
    """The preset's with-auxiliary run as explicit tasks, MQAR at length_bias 1, token shift 0 and 1."""
    plan = next(p for p in expand(get_preset("b-transfer-string").spec("cpu-v1"))
                if p.config.data.aux and p.config.seed.model == 0)
    base = plan.config.model_dump(mode="json")
    base.pop("name")
    data = base["data"]
    data["tasks"] = [entry.model_dump(mode="json") | ({"length_bias": 1.0} if entry.task == "mqar" else {})
                     for entry in plan.config.data.resolved_tasks()]
    data["group"], data["group_max"] = None, None
    return {"name": "probe-mqar-length-bias", "base": base, "seeds": [0, 1],
            "points": [{"model.token_shift": 0}, {"model.token_shift": 1}]}
