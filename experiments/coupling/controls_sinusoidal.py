"""a-ppc's controls with a sinusoidal ID table (issue 26 items 1 and 4), 3 seeds.

a-ppc's variable-assignment PPC point moved to sinusoidal IDs (round 7, `va_sinusoidal.py`): with
the learned table PPC stays on the elimination plateau under the random offset. Its controls (copy
over three letters, and reverse; coupling and PPC, 1 layer + log(keys), decoded greedily) still use
learned IDs, and with them coupling itself stays far below a-ppc's precondition at 4x (a-coupling's
coupled reverse: 0.00 / 0.20 / 0.01). Sinusoidal coupled IDs were never measured on copy: in
`encodings.py` they hit the amplitude bug (every seed 0.00), fixed since. These are the same control
points with `model.encoding: sinusoidal`, beside `ppc_controls.py` (the learned ones).

Rule, written 2026-12-07 before the run: if sinusoidal coupling's best seed is >= 0.5 at 2x and at
4x on both controls, and learned coupling's is not, a-ppc's `cpu` scale moves its control points to
sinusoidal IDs (the table its variable-assignment PPC point uses); otherwise they stay learned.

    lengthgen sweep experiments/coupling/controls_sinusoidal.py --dir sweeps
"""

import runpy
from pathlib import Path


def sweep() -> dict:
    """ppc_controls.py's points and seeds with a sinusoidal ID table."""
    tree = runpy.run_path(str(Path(__file__).with_name("ppc_controls.py")))["sweep"]()
    points = [{**p, "model.encoding": "sinusoidal"} for p in tree["points"]]
    return {**tree, "name": "a-ppc-controls-sinusoidal", "points": points}
