"""Variable assignment, round 4 (issue 26 item 3): what keeps PPC on the plateau?

In rounds 2-3 NoPE and RoPE learned variable assignment on 1-4 statements within about 1,000
steps of 512, while PPC at 1, 2 and 3 layers stayed where it was at step 500 for 3,000 steps. Even
its token head misses the first answer, which is one lookup by content (with the two-token shift,
`=` carries the first query's name). What differs from the baselines is the learned absolute IDs
under random offsets, the log(keys) scaling and the position head. One factor at a time, all at
2 layers, round 2's recipe otherwise, 1,500 steps (the baselines fitted by then), seed 0:
- PPC without log(keys);
- PPC with the position loss weighted 0.1 instead of 1;
- PPC trained on coupled IDs without the random offset;
- position coupling without the position head (learned IDs, coupled IDs given at test time);
- learned absolute IDs under random offsets, not coupled (a-coupling's `learned` baseline).
A frozen record (written 2026-12-06 before its run).

    lengthgen sweep experiments/coupling/va_factors.py --dir sweeps
"""

import runpy
from pathlib import Path

COUPLED = {"model.encoding": "learned", "positions.train": "coupled_random_offset", "positions.eval": "coupled"}
PPC = {**COUPLED, "model.position_head": True}


def sweep() -> dict:
    """va_recipe.py's base (2 layers) at 1,500 steps under each factor."""
    base = runpy.run_path(str(Path(__file__).with_name("va_recipe.py")))["sweep"]()["base"]
    base["train"]["steps"] = 1500
    points = [PPC,
              {**PPC, "train.position_loss_weight": 0.1},
              {**PPC, "positions.train": "coupled"},
              COUPLED,
              {"model.encoding": "learned", "positions.train": "random_offset"}]
    return {"name": "coupling-va-factors", "base": base, "seeds": [0], "points": points}
