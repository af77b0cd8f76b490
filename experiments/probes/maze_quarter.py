"""b-transfer-maze at a quarter of the paper's lengths (issue 28, item 4): is every task fitted there?

At half the paper's lengths (main task 2-16 nodes, auxiliary 2-32; the preset's `cpu` scale)
shortest path does not fit in the DFS-trace direction: 0.85 best over 2-32 at 2,500 steps, 0.879
at 5,000 (experiments/probes/maze_path_budget.py), and 12 runs at 7,500 steps would take about 5
hours. b-transfer-arith's arith-sub group was decided the same way, at a quarter of the paper's
lengths. Here: main task 2-8 nodes, auxiliary 2-16 (the 8 x 8 grid unchanged, so every node id
is still trained), the preset's CPU model, batch 64, packed rows, at 2,500 and at 5,000 steps; only
the two runs with auxiliaries, which hold every task at its longest training range, seed 0.

Rule, written before the run (2026-12-07): the quarter scale becomes b-transfer-maze's `cpu` scale
(the half scale kept as `cpu-v1`) at the smaller of the two budgets at which, in seed 0, both runs
fit every task (mean exact match >= 0.9 over each task's training lengths): DFS trace 2-8 with
shortest path 2-16, and shortest path 2-8 with DFS trace 2-16. If neither budget does, the preset
stays INCONCLUSIVE with this probe as the last recipe tried. Transfer is then judged by the
preset's check, unchanged, over 9-16 nodes.

    lengthgen sweep experiments/probes/maze_quarter.py --dir sweeps

Result (2026-12-07, seed 0; 3,125 s sweep wall on 2 workers, the first half beside another sweep's
last run): at 5,000 steps every task fits, DFS trace 0.975 over 2-8 with shortest path 0.916 over
2-16, and shortest path 0.977 over 2-8 with DFS trace 0.966 over 2-16; at 2,500 steps not (shortest
path 0.815 over 2-16 beside DFS trace 0.896 over 2-8; DFS trace 0.879 over 2-16 beside shortest path
0.940). By the rule, b-transfer-maze's `cpu` scale is the quarter scale at 5,000 steps.
"""

from lengthgen.presets.transfer import group_max, sweep_tree

SEEDS = [0]
BUDGETS = [2500, 5000]
GROUPS = ["maze-dfs", "maze-path"]


def sweep() -> dict:
    """The two runs with auxiliaries at a quarter of the paper's lengths, at each budget."""
    points = [{"data.group": group, "data.aux": True, "data.group_max": group_max(group, 0.25),
               "train.steps": steps, "train.eval_every": steps // 5, "train.checkpoint_every": steps // 5}
              for steps in BUDGETS for group in GROUPS]
    tree = sweep_tree("cpu", points, GROUPS)
    tree["name"] = "probe-maze-quarter"
    tree["seeds"] = SEEDS
    return tree
