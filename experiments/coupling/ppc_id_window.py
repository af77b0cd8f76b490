"""a-ppc's controls with attention banded in ID space, 3 seeds (issue 26).

`id_window.py` found that a band in coupled-ID space (`model.attention_id_window: 1`) makes
coupling hold copy, reverse and reverse addition at 4x in every seed. a-ppc's part (1) failed on its
controls (copy over three letters, and reverse; 1 layer + log(keys), sinusoidal IDs, decoded
greedily): PPC scored 0.00-1.00 at 2x and 0.00-0.01 at 4x against coupling's 1.00 on reverse, and
PPC's predicted IDs were right only 0.50-0.71 of the time at 20 on reverse. With the band, PPC's
position head also sees only the tokens near its current ID, so a longer input adds no competitors
there either; at test the band is drawn on PPC's own predicted IDs. Here a-ppc's four `cpu` control
points (copy and reverse, coupling and PPC) with the band, seeds 0-2.

Rule, written 2026-12-07 before the run, a-ppc's part (1) on the banded models: PPC matches coupling
if, on copy and on reverse, the banded PPC point's best seed is within 0.1 of the banded coupling
point's best seed (or above it) at 2x and at 4x, with coupling's best seed >= 0.5 there (a-ppc's
precondition) and every point fitted (best seed >= 0.9 mean exact match over 1-10). Variable
assignment is not rerun (6,000 steps, about 40 minutes a run here), so this cannot decide a-ppc;
a-ppc's FAIL stands for the model as PAPERS.md A5 states it.

    lengthgen sweep experiments/coupling/ppc_id_window.py --dir sweeps
"""

from lengthgen.presets import get_preset


def sweep() -> dict:
    """a-ppc's `cpu` control points (copy, reverse; coupling, PPC) with `model.attention_id_window: 1`."""
    tree = get_preset("a-ppc").scales["cpu"]
    controls = [p for p in tree["points"] if p["data.tasks.0.task"] in ("copy", "reverse")]
    return {"name": "a-ppc-controls-id-window", "base": tree["base"], "seeds": tree["seeds"],
            "points": [{**p, "model.attention_id_window": 1} for p in controls]}
