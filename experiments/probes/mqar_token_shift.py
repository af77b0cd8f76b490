"""b-transfer-string with a previous-token shift (issue 28): does `model.token_shift` make MQAR
learnable inside the run that also trains copy?

With the shift a value token carries its key, so one attention layer can do key -> value
(zoology's short convolution does the same). The preset's first CPU sweep (`cpu-v1`, the `cpu` scale
until 2026-12-06), with-auxiliary points only, model.token_shift = 1, seed 0, 2,500 steps of 64:

    lengthgen sweep experiments/probes/mqar_token_shift.py --dir sweeps
"""

from lengthgen.presets.base import get_preset


def sweep() -> dict:
    """The preset's cpu-v1 sweep, renamed, restricted to data.aux = true, with token_shift 1."""
    tree = get_preset("b-transfer-string").spec("cpu-v1").model_dump(mode="json")
    tree["name"] = "probe-mqar-token-shift"
    tree["points"] = [{**p, "model.token_shift": 1} for p in tree["points"] if p.get("data.aux") is True]
    tree["seeds"] = [0]
    return tree
