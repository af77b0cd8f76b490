"""Reverse addition at CPU scale, round 5: do the plain baselines fit 1-4 digits at 2 layers?

Round 3 (addition_short.py, trained on 1-5 digits, seed 0) scored NoPE 1.00 / 1.00 / 0.99 / 0.84 /
0.09 and learned IDs at random offsets 1.00 / 1.00 / 0.95 / 0.71 / 0.09 at 1-5 digits: both fail
only at the longest length they trained. Round 4 (addition_baselines.py) gave them a third layer:
learned IDs fit, NoPE reached 0.83, at ~600 s a run. Here: the same 2-layer points trained on
1-4 digits (2x = 8, 4x = 16), seed 0, 3,000 steps of 256 (issue 26). A frozen record of 2026-12-06.

    lengthgen sweep experiments/coupling/addition_four.py --dir sweeps
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from addition_short import sweep as short_sweep  # noqa: E402


def sweep() -> dict:
    """addition_short's NoPE and learned-ID points, trained on 1-4 digits, seed 0."""
    tree = short_sweep()
    tree["name"] = "coupling-addition-four"
    tree["base"]["data"]["tasks"][0]["lengths"] = [1, 4]
    tree["base"]["eval"]["lengths"] = [1, 2, 3, 4, 5, 6, 8, 12, 16]
    tree["points"] = [p for p in tree["points"]
                      if p["model.encoding"] == "nope" or p["positions.train"] == "random_offset"]
    return tree
