"""Reverse addition at CPU scale, round 4: can the plain baselines fit 1-5 digits with one more layer?

Round 3 (addition_short.py, seed 0, 3,000 steps of 256): coupling fits (0.96) and RoPE (1.00), but
NoPE (0.78) and learned IDs at random offsets (0.75) do not, though both were still rising (NoPE
0.38 / 0.63 / 0.78 at 1,000 / 2,000 / 3,000 steps), so a-coupling's rule ("every point fits") could
only say INCONCLUSIVE. NoPE has to build positions out of the causal mask, which takes depth.
Here: the same points with 3 layers instead of 2, seed 0 (issue 26). A frozen record of 2026-12-06.

    lengthgen sweep experiments/coupling/addition_baselines.py --dir sweeps
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from addition_short import sweep as short_sweep  # noqa: E402


def sweep() -> dict:
    """addition_short's NoPE and learned-ID points at 3 layers, seed 0."""
    tree = short_sweep()
    tree["name"] = "coupling-addition-baselines"
    tree["points"] = [{**p, "model.layers": 3} for p in tree["points"]
                      if p["model.encoding"] == "nope" or p["positions.train"] == "random_offset"]
    return tree
