"""a-ppc's controls with the ID band on the learned ID table, 3 seeds (issue 26).

`ppc_id_window.py` ran a-ppc's `cpu` control points (sinusoidal IDs) with
`model.attention_id_window: 1`: there the banded coupling points did not fit (reverse 0.16-0.18,
copy 0.27-0.86 over 1-10, loss flat near 0.75 from step 1,000), although the same band on the
learned table (`id_window.py`) fits coupled copy and reverse at 1.00 and holds them to 16x. Inside
the band every candidate key is a neighbouring ID, and neighbouring rows of a sinusoidal table
differ only in their fast components; a learned table's rows are independent. Here the same four
control points on the learned table (a-ppc's controls before `controls_sinusoidal.py` moved them),
with the band, seeds 0-2.

Rule, written 2026-12-07 before the run (the rule of `ppc_id_window.py`): PPC matches coupling if, on
copy and on reverse, the banded PPC point's best seed is within 0.1 of the banded coupling point's
best seed (or above it) at 2x and at 4x, with coupling's best seed >= 0.5 there and every point
fitted (best seed >= 0.9 mean exact match over 1-10). Variable assignment is not rerun; a-ppc's FAIL
stands for the model as PAPERS.md A5 states it.

    lengthgen sweep experiments/coupling/ppc_id_window_learned.py --dir sweeps
"""

import runpy
from pathlib import Path


def sweep() -> dict:
    """ppc_id_window.py's points and seeds on the learned ID table."""
    tree = runpy.run_path(str(Path(__file__).with_name("ppc_id_window.py")))["sweep"]()
    points = [{**p, "model.encoding": "learned"} for p in tree["points"]]
    return {**tree, "name": "a-ppc-controls-id-window-learned", "points": points}
