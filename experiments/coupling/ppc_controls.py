"""a-ppc's controls at its CPU scale, 3 seeds (issue 26 item 4): copy over three letters and reverse,
under position coupling and under PPC (1 layer + log(keys), the coupled recipe), decoded greedily.

They were to decide a-ppc's precondition (coupling itself >= 0.5 at 2x and 4x on both) and its first
part (PPC within 0.1 of coupling), on learned IDs. Written 2026-12-06 before its run; run 2026-12-07.
Coupling stayed under the precondition here, and by `controls_sinusoidal.py`'s rule the preset's
controls moved to sinusoidal IDs; these learned-ID points stay as they were run.

    lengthgen sweep experiments/coupling/ppc_controls.py --dir sweeps
"""

from lengthgen.presets import get_preset


def sweep() -> dict:
    """a-ppc's `cpu` tree with only the copy and reverse points, on learned IDs (the preset's controls
    moved to sinusoidal IDs on 2026-12-07, by `controls_sinusoidal.py`'s rule)."""
    tree = get_preset("a-ppc").scales["cpu"]
    points = [{**p, "model.encoding": "learned"} for p in tree["points"]
              if p["data.tasks.0.task"] in ("copy", "reverse")]
    return {"name": "a-ppc-controls", "base": tree["base"], "seeds": tree["seeds"], "points": points}
