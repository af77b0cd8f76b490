"""a-ppc's controls at its CPU scale, 3 seeds (issue 26 item 4): copy over three letters and reverse,
under position coupling and under PPC (1 layer + log(keys), the coupled recipe), decoded greedily.

They decide a-ppc's precondition (coupling itself >= 0.5 at 2x and 4x on both) and its first part
(PPC within 0.1 of coupling). The runs are the preset's own, so `lengthgen repro a-ppc` copies
them instead of training them again. Written 2026-12-06 before its run.

    lengthgen sweep experiments/coupling/ppc_controls.py --dir sweeps
"""

from lengthgen.presets import get_preset


def sweep() -> dict:
    """a-ppc's `cpu` tree with only the copy and reverse points."""
    tree = get_preset("a-ppc").scales["cpu"]
    points = [p for p in tree["points"] if p["data.tasks.0.task"] in ("copy", "reverse")]
    return {"name": "a-ppc-controls", "base": tree["base"], "seeds": tree["seeds"], "points": points}
