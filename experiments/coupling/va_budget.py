"""Variable assignment, round 6 (issue 26 item 3): with the random offset kept, is it the budget or
the ID table?

Rounds 4-5 found that learned-ID models trained under random offsets (over 0-230 or 0-64) stay on
the plateau for 3,000 steps of 512, and learn by step 1,000 without the offset. PPC's method trains
with the offset (PAPERS.md A5), so it stays. Two ways out, seed 0, round 2's recipe otherwise:
- twice the steps (6,000) for a-ppc's coupled model (PPC, 1 layer + log(keys), learned IDs): MQAR
  left its plateau only after 1,500-4,000 steps of 512;
- a sinusoidal ID table instead of a learned one (PPC, 2 layers, 3,000 steps): a shifted sinusoid
  is a rotation of the unshifted one, so the offset may be less in the way of a content lookup.
A frozen record (written 2026-12-06 before its run).

    lengthgen sweep experiments/coupling/va_budget.py --dir sweeps
"""

import runpy
from pathlib import Path

PPC = {"positions.train": "coupled_random_offset", "positions.eval": "coupled", "model.position_head": True}


def sweep() -> dict:
    """va_recipe.py's base: PPC 1 layer + log(keys) at 6,000 steps; sinusoidal PPC at 2 layers."""
    base = runpy.run_path(str(Path(__file__).with_name("va_recipe.py")))["sweep"]()["base"]
    points = [{**PPC, "model.encoding": "learned", "model.layers": 1, "model.logit_scaling": "log_keys",
               "train.steps": 6000},
              {**PPC, "model.encoding": "sinusoidal", "model.layers": 2, "train.steps": 3000}]
    return {"name": "coupling-va-budget", "base": base, "seeds": [0], "points": points}
