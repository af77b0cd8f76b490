"""How much the order of a sweep's runs costs in wall time, replayed from a finished sweep.

Run (from the repository root, with the venv active) on sweeps whose runs have finished:

    python benchmarks/sweep_order.py sweeps/transfer-budget-d128 sweeps/a-coupling-cpu --workers 2

Each run's own seconds (done.json) are handed to `workers` simulated workers, a run to the first
worker free, in two orders: seed by seed in grid order (how `lengthgen sweep` ran before runs were
ordered by cost), and `execution_order` with the estimated FLOPs of `sweeps.cost`, as it runs now.
Printed per sweep: both wall times, their ratio, and how well the FLOP estimate ranks the runs'
real seconds (Spearman). The replay ignores what two workers do to each other's speed, the same
for both orders.
"""

from __future__ import annotations

import argparse
import heapq
import json
from pathlib import Path

import pandas as pd

from lengthgen.sweeps.cost import run_cost
from lengthgen.sweeps.run import SweepDir, execution_order
from lengthgen.sweeps.spec import expand, load_spec


def replay(seconds: list[float], workers: int) -> float:
    """Wall time of running jobs of these durations, in this order, on `workers` workers."""
    free = [0.0] * workers
    end = 0.0
    for s in seconds:
        start = heapq.heappop(free)
        end = max(end, start + s)
        heapq.heappush(free, start + s)
    return end


def sweep_orders(path: Path, workers: int) -> dict:
    """The replayed wall time of the sweep at `path` in grid order and in cost order."""
    spec = load_spec(path / "sweep.yaml")
    plans = expand(spec, path)
    sweep = SweepDir(path)
    seconds = {}
    for plan in plans:
        done = sweep.run_dir(plan).path / "done.json"
        if done.is_file():
            seconds[plan.name] = json.loads(done.read_text())["seconds"]
    plans = [p for p in plans if p.name in seconds]
    status = {p.name: "new" for p in plans}
    cost = {p.name: run_cost(p.config) for p in plans}
    grid = execution_order(plans, spec.seeds, status)
    costly = execution_order(plans, spec.seeds, status, cost)
    before = replay([seconds[p.name] for p in grid], workers)
    after = replay([seconds[p.name] for p in costly], workers)
    rank = pd.DataFrame({"cost": cost, "seconds": seconds}).corr(method="spearman").loc["cost", "seconds"]
    return {"sweep": path.name, "runs": len(plans), "run_s": sum(seconds.values()), "grid_order_s": before,
            "cost_order_s": after, "speedup": before / after, "spearman": rank}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("sweeps", nargs="+", help="sweep directories with finished runs")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    rows = [sweep_orders(Path(s), args.workers) for s in args.sweeps]
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:,.2f}"))


if __name__ == "__main__":
    main()
