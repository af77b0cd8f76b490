"""Variable assignment, round 7 (issue 26 item 3): sinusoidal PPC for longer.

In round 6 (`va_budget.py`) PPC with a sinusoidal ID table (2 layers, under the random offset, 3,000
steps) was the first PPC model to leave the plateau: at step 2,500 it was right 0.97 / 0.52 / 0.22
at 2 / 3 / 4 statements, still rising when the cosine schedule ran out. Learned IDs at twice the
steps did not move. The same point at 6,000 steps. A frozen record: written 2026-12-06 for seed 0
before its run; seeds 1 and 2 added 2026-12-07, after seed 0 learned the task and before their runs.

    lengthgen sweep experiments/coupling/va_sinusoidal.py --dir sweeps
"""

import runpy
from pathlib import Path


def sweep() -> dict:
    """Round 6's sinusoidal PPC point at 6,000 steps."""
    here = runpy.run_path(str(Path(__file__).with_name("va_budget.py")))
    base = here["sweep"]()["base"]
    point = {**here["PPC"], "model.encoding": "sinusoidal", "model.layers": 2, "train.steps": 6000}
    return {"name": "coupling-va-sinusoidal", "base": base, "seeds": [0, 1, 2], "points": [point]}
