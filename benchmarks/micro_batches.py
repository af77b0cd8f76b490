"""Training speed with `train.micro_batches` (length-sorted micro-batches) against one padded batch.

Run (from the repository root, with the venv active):

    python benchmarks/micro_batches.py                        # Paper B's CPU-scale groups below
    python benchmarks/micro_batches.py --groups maze-dfs --parts 1,4 --steps 20 --repeats 2

What it measures: for each task group, Paper B's CPU-scale training setup (`presets/transfer.py`:
3 layers, d_model 128, RoPE, batch 64, the group's halved training lengths, auxiliaries on,
markers on), trained by the real trainer (`run_training`) for --steps steps in a temporary run
directory with one thread, once per value of --parts. Each timed window is one such training;
the windows of the different values are interleaved, --repeats times, so that background load
hits them alike. Evaluation is cut to one example at one length so that it costs nothing.

Reported per group and value: the median seconds per step by the trainer's own clock (done.json;
the one-example evaluation is included and negligible) and the speed-up over --parts 1 (> 1:
faster). Every value trains on the same examples with the same gradient (up to float rounding),
so the loss after the window is printed beside it as a sanity check.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from lengthgen.config import ExperimentConfig
from lengthgen.experiment import build_experiment
from lengthgen.presets.transfer import sweep_tree
from lengthgen.store.rundir import RunDir
from lengthgen.train import run_training


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--groups", default="maze-dfs,arith-carry,string-mqar", help="comma-separated task groups")
    p.add_argument("--parts", default="1,2,4,8", help="comma-separated train.micro_batches values (1 = baseline)")
    p.add_argument("--steps", type=int, default=30, help="training steps per timed window")
    p.add_argument("--repeats", type=int, default=3, help="timed windows per value; the median is reported")
    return p.parse_args()


def config(group: str, parts: int, steps: int) -> ExperimentConfig:
    """Paper B's CPU-scale config of `group` (with auxiliaries), trained `steps` steps."""
    tree = sweep_tree("cpu", [{"data.group": group, "data.aux": True}], [group])
    base, point = tree["base"], tree["points"][0]
    data = {**base["data"], "group": group, "group_max": point["data.group_max"], "aux": True}
    train = {**base["train"], "steps": steps, "eval_every": 0, "checkpoint_every": 0, "log_every": steps,
             "threads": 1, "micro_batches": parts}
    return ExperimentConfig(name=f"{group}-{parts}", data=data, positions=base["positions"], model=base["model"],
                            train=train, eval={"lengths": [2], "n": 1})


def seconds_per_step(group: str, parts: int, steps: int, root: Path) -> tuple[float, float]:
    """(training seconds per step, last logged loss) of one fresh training."""
    run = RunDir(root / f"{group}-{parts}-{len(list(root.iterdir()))}")
    run_training(build_experiment(config(group, parts, steps)), run, quiet=True)
    done = json.loads((run.path / "done.json").read_text())
    loss = json.loads((run.path / "metrics.jsonl").read_text().splitlines()[-1])["loss"]
    return done["seconds"] / steps, loss


def main():
    args = parse_args()
    parts = [int(x) for x in args.parts.split(",")]
    if 1 not in parts:
        parts = [1, *parts]
    print(f"{'group':<14} {'micro_batches':>13} {'s/step':>8} {'speed-up':>9} {'loss':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for group in args.groups.split(","):
            times: dict[int, list[float]] = {k: [] for k in parts}
            losses: dict[int, float] = {}
            for _ in range(args.repeats):
                for k in parts:
                    t, losses[k] = seconds_per_step(group, k, args.steps, Path(tmp))
                    times[k].append(t)
            base = statistics.median(times[1])
            for k in parts:
                t = statistics.median(times[k])
                print(f"{group:<14} {k:>13} {t:>8.3f} {base / t:>8.2f}x {losses[k]:>8.4f}")


if __name__ == "__main__":
    main()
