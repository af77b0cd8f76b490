"""Shortest path at twice b-transfer-maze's CPU steps (issue 28, item 4): does it fit then?

b-transfer-maze (2,500 steps of 64, DFS trace and shortest path on 2-16 nodes as main task, 2-32 as
auxiliary) is INCONCLUSIVE only because shortest path does not fit: 0.895 best alone on 2-16 (seeds
0.86 / 0.90 / 0.88) and 0.85 best as the auxiliary on 2-32; DFS trace fits (0.97 / 0.95). This
probe trains the two runs in which shortest path must fit, at 5,000 steps (everything else the
preset's CPU config): the maze-path group alone (shortest path 2-16) and the maze-dfs group with
its auxiliary (DFS trace 2-16 + shortest path 2-32). About 30 minutes on two workers (the
estimate of `benchmarks/preset_cost.py`'s FLOP model, 51 and 73 TFLOP x 2).

Rule, written before the run (2026-12-07): 5,000 steps is b-transfer-maze's CPU budget if, in the
probe's seed, shortest path fits (mean exact match >= 0.9) over 2-16 alone and over 2-32 beside
DFS trace, and DFS trace still fits over 2-16. Otherwise the preset stays INCONCLUSIVE with this
as the last budget tried. The preset's verdict at the new budget then needs all 12 runs (about
2.6 h by the same estimate): more than the 45 minutes issue 28 asks, which this probe does not
solve.

    lengthgen sweep experiments/probes/maze_path_budget.py --dir sweeps

Result (2026-12-07, seed 0, step 5,000): shortest path alone 0.946 over 2-16; beside DFS trace,
shortest path 0.879 over 2-32 and DFS trace 0.976 over 2-16. The auxiliary misses 0.9, so the rule
is not met and the preset keeps its 2,500-step CPU budget (INCONCLUSIVE).
"""

from lengthgen.presets.base import get_preset

SEEDS = [0]
STEPS = 5000


def sweep() -> dict:
    """Two of the preset's CPU points (shortest path alone; DFS trace with shortest path), 5,000 steps."""
    tree = get_preset("b-transfer-maze").spec("cpu", SEEDS).model_dump(mode="json")
    tree["name"] = "probe-maze-path-budget"
    tree["points"] = [p for p in tree["points"]
                      if (p["data.group"], p["data.aux"]) in {("maze-path", False), ("maze-dfs", True)}]
    every = STEPS // 5
    tree["overrides"] = [*tree["overrides"], f"train.steps={STEPS}", f"train.eval_every={every}",
                         f"train.checkpoint_every={every}"]
    return tree
