"""Variable assignment, round 5 (issue 26 item 3): a narrower range of random offsets.

Round 4 (`va_factors.py`) found what keeps PPC on the plateau: trained on coupled IDs without the
random offset it learns variable assignment on 1-4 statements by step 1,000 (1.00), with the offset
it does not (nor does coupling without the position head). Without the offset, though, the IDs of
longer inputs are never trained, and it scores 0.00 from 6 statements on. The offset is drawn so
that the sequence fits under `max_position` (256 here, so offsets of up to about 230 for the
training lengths). Here `max_position` is 88, the least that 16 statements (4x) need, so offsets
range over about 0-64: every ID a 4x test uses is still trained. PPC at 1 layer + log(keys)
(a-ppc's coupled model) and at 2 layers, round 2's recipe otherwise, 3,000 steps, seed 0.
A frozen record (written 2026-12-06 before its run).

    lengthgen sweep experiments/coupling/va_offsets.py --dir sweeps
"""

import runpy
from pathlib import Path

PPC = {"model.encoding": "learned", "positions.train": "coupled_random_offset", "positions.eval": "coupled",
       "model.position_head": True, "positions.max_position": 88}


def sweep() -> dict:
    """va_recipe.py's base with max_position 88, PPC at 1 layer + log(keys) and at 2 layers."""
    base = runpy.run_path(str(Path(__file__).with_name("va_recipe.py")))["sweep"]()["base"]
    points = [{**PPC, "model.layers": 1, "model.logit_scaling": "log_keys"}, {**PPC, "model.layers": 2}]
    return {"name": "coupling-va-offsets", "base": base, "seeds": [0], "points": points}
