"""Time to verdict before running: every preset's estimated FLOPs and wall time at a scale.

Run (from the repository root, with the venv active):

    python benchmarks/preset_cost.py                                  # every CPU preset, rate 81 GFLOP/s
    python benchmarks/preset_cost.py --calibrate sweeps/transfer-budget-d128 --dir sweeps

Per preset: its runs, their estimated FLOPs (`sweeps.cost.run_cost`, summed over the preset's own
runs, as a sweep from scratch trains them; `lengthgen repro --all` trains a run that presets share
once), and the minutes that takes on `--workers` workers of one thread each at `--rate` GFLOP/s per
worker. `--calibrate SWEEP...` measures the rate instead, from finished runs (estimated FLOPs over
their own seconds, done.json). With `--dir`, the measured wall time of each preset's sweep there
(sessions.jsonl) is printed beside the estimate. Analysis after training (b-heads' head maps,
a-language's sparsity analysis) is not in the estimate. The default rate, 81 GFLOP/s per worker, is what the
2,500-step arith-carry run of transfer-budget-d128 did on this project's 2-core machine on 2026-12-07,
beside a second worker.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lengthgen.presets.suite import plan_suite
from lengthgen.sweeps.cost import run_cost
from lengthgen.sweeps.run import SweepDir
from lengthgen.sweeps.spec import expand, load_spec


def measured_rate(sweeps: list[Path]) -> tuple[float, int]:
    """(GFLOP/s per worker, runs measured) over the finished runs of these sweep directories."""
    flops = seconds = 0.0
    runs = 0
    for path in sweeps:
        sweep = SweepDir(path)
        for plan in expand(load_spec(path / "sweep.yaml"), path):
            done = sweep.run_dir(plan).path / "done.json"
            if done.is_file():
                flops += run_cost(plan.config)
                seconds += json.loads(done.read_text())["seconds"]
                runs += 1
    if not runs:
        raise SystemExit(f"no finished runs in {', '.join(map(str, sweeps))}")
    return flops / seconds / 1e9, runs


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scale", default="cpu")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--rate", type=float, default=81.0, help="GFLOP/s per one-thread worker")
    p.add_argument("--calibrate", nargs="+", type=Path, help="measure the rate from these sweeps' finished runs")
    p.add_argument("--dir", type=Path, help="sweeps to read measured wall times from")
    args = p.parse_args()
    rate = args.rate
    if args.calibrate:
        rate, runs = measured_rate(args.calibrate)
        print(f"rate measured over {runs} finished runs: {rate:.1f} GFLOP/s per worker")
    root = args.dir or Path("/nonexistent")
    header = f"{'preset':<22} {'runs':>5} {'TFLOP':>7} {'estimated':>10} {'measured':>10}"
    print(header + "\n" + "-" * len(header))
    distinct: dict[str, float] = {}
    for item in plan_suite(args.scale, root):
        costs = {item.keys[plan.name]: run_cost(plan.config) for plan in item.plans}
        distinct.update(costs)
        flops = sum(costs[item.keys[plan.name]] for plan in item.plans)
        minutes = flops / (rate * 1e9 * args.workers) / 60
        sessions = SweepDir(item.sweep.path).sessions() if item.sweep.path.is_dir() else []
        wall = f"{sum(s['wall_s'] for s in sessions) / 60:.0f} min" if sessions else "-"
        print(f"{item.name:<22} {len(item.plans):>5} {flops / 1e12:>7,.0f} {minutes:>6,.0f} min {wall:>10}")
    total = sum(distinct.values())
    hours = total / (rate * 1e9 * args.workers) / 3600
    print(f"{'the suite, shared runs once':<28} {total / 1e12:>7,.0f} {hours:>6.1f} h ({len(distinct)} distinct runs)")


if __name__ == "__main__":
    main()
