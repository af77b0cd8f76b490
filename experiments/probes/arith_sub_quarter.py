"""The arith-sub group at a quarter of the paper's lengths (issue 28, item 2): reverse addition on 1-4
digits with reverse subtraction on 1-8, RECIPES.md 4.4's budget (batch 256, 5,000 steps), seed 0
(seed 1 next: `SEEDS = [0, 1]`, then the same command with `--reuse sweeps` after moving the
one-seed sweep aside).

At b-transfer-arith's CPU scale (half the paper's lengths: reverse add 1-8, reverse subtraction
1-16, batch 64, 7,500 steps) neither task is learned jointly, and subtraction is not learned even
alone; on 1-8 digits alone at batch 256 x 5,000 it was (seeds 0.98 / 0.48, reverse_sub_recipe.py).
b-transfer-mult already trains at these lengths (reverse add 1-4, multiplication 1-8).

Rule, written before the run (2026-12-07): the quarter scale makes the group learnable if the best
seed fits both tasks, mean exact match >= 0.9 over reverse addition's 1-4 and over reverse
subtraction's 1-8 (the a >= b and a < b slices reported apart). If it does, b-transfer-arith's
arith-sub group gets this scale (3 seeds, with and without the auxiliary) and is decided there; if
not, the group stays INCONCLUSIVE with this probe as the last recipe tried.

    lengthgen sweep experiments/probes/arith_sub_quarter.py --dir sweeps
"""

import copy

from lengthgen.presets.transfer import sweep_tree

SEEDS = [0]  # one seed first: it ran beside the transfer budget sweep, in the compute one session had left


def sweep() -> dict:
    """Reverse add 1-4 + reverse subtraction 1-8, batch 256, 5,000 steps."""
    point = {"data.group": "arith-sub", "data.aux": True, "data.group_max": [4, 8], "data.batch_size": 256,
             "data.task_options": {"reverse_sub": {"eval_grid": {"sign": ["nonneg", "neg"]}}},
             "train.steps": 5000, "train.eval_every": 1000, "train.checkpoint_every": 1000}
    tree = sweep_tree("cpu", [copy.deepcopy(point)], ["arith-sub"], longest=8)
    tree["name"] = "probe-arith-sub-quarter"
    tree["seeds"] = SEEDS
    return tree
