"""Variable assignment, round 1 (written 2026-12-06, not yet run): can the token shift make the
lookup learnable? In `a=3;c=7;?ca=` the value `3` sits two tokens after its name `a`, so with
`model.token_shift: 2` the value token carries its name and one attention layer can do name ->
value. PPC (1 and 2 layers) beside NoPE and RoPE (2 layers), each with and without the shift,
seeds 0-1 (issue 26 item 3).

    lengthgen sweep experiments/coupling/va.py --dir sweeps

Base: a-ppc's variable-assignment point at `--scale cpu-v1` (trained on 1-8 statements, greedy
decoding, d_model 128, 3,000 steps of 64).
"""

from lengthgen.presets import get_preset
from lengthgen.sweeps.spec import expand

PPC = {"model.encoding": "learned", "model.position_head": True, "positions.train": "coupled_random_offset",
       "positions.eval": "coupled"}
METHODS = {"ppc-1-layer": {**PPC, "model.layers": 1, "model.logit_scaling": "log_keys"},
           "ppc-2-layers": {**PPC, "model.layers": 2},
           "nope": {"model.encoding": "nope"},
           "rope": {"model.encoding": "rope"}}


def sweep() -> dict:
    """Each method with token_shift 0 and 2, on a-ppc's variable-assignment base; seeds 0-1."""
    plan = next(p for p in expand(get_preset("a-ppc").spec("cpu-v1"))
                if p.config.data.tasks[0].task == "variable_assignment" and p.config.model.encoding == "rope")
    base = plan.config.model_dump(mode="json")
    base.pop("name")
    base["eval"]["lengths"] = [1, 2, 4, 6, 8, 12, 16, 24, 32]
    points = [{**method, "model.token_shift": shift} for method in METHODS.values() for shift in (0, 2)]
    return {"name": "coupling-va", "base": base, "seeds": [0, 1], "points": points}
