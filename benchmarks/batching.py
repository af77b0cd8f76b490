"""Training speed of the ways to batch mixed lengths: one padded batch, length-sorted micro-batches
(`train.micro_batches`), packed rows (`train.pack`), and both.

Run (from the repository root, with the venv active):

    python benchmarks/batching.py                          # Paper B's CPU-scale groups below
    python benchmarks/batching.py --groups maze-dfs --variants padded,micro4,packed --steps 20 --repeats 2

What it measures: for each task group, Paper B's CPU-scale training setup (`presets/transfer.py`:
3 layers, d_model 128, RoPE, batch 64, the group's halved training lengths, auxiliaries on,
markers on), trained by the real trainer (`run_training`) for --steps steps in a temporary run
directory with one thread, once per variant. Each timed window is one such training; the windows
of the variants are interleaved, --repeats times, so that background load hits them alike.
Evaluation is cut to one example at one length so that it costs nothing.

Reported per group and variant: the median seconds per step by the trainer's own clock
(done.json), the useful (non-padding) input tokens per second, the share of computed token slots
that are useful, and the speed-up over the first variant. Every variant trains on the same
examples with the same gradient (up to float rounding), so the loss after the window is printed
beside it as a sanity check.
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
from lengthgen.train import Trainer, run_training

# variant -> train overrides
VARIANTS = {
    "padded": {},
    "micro2": {"micro_batches": 2},
    "micro4": {"micro_batches": 4},
    "micro8": {"micro_batches": 8},
    "packed": {"pack": True},
    "packed-micro2": {"pack": True, "micro_batches": 2},
    "packed-micro4": {"pack": True, "micro_batches": 4},
}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--groups", default="maze-dfs,arith-carry,string-mqar", help="comma-separated task groups")
    p.add_argument("--variants", default="padded,micro4,packed,packed-micro2",
                   help=f"comma-separated, the first is the baseline; from {', '.join(VARIANTS)}")
    p.add_argument("--steps", type=int, default=30, help="training steps per timed window")
    p.add_argument("--repeats", type=int, default=3, help="timed windows per variant; the median is reported")
    return p.parse_args()


def config(group: str, variant: str, steps: int) -> ExperimentConfig:
    """Paper B's CPU-scale config of `group` (with auxiliaries), trained `steps` steps as `variant` batches."""
    tree = sweep_tree("cpu", [{"data.group": group, "data.aux": True}], [group])
    base, point = tree["base"], tree["points"][0]
    data = {**base["data"], "group": group, "group_max": point["data.group_max"], "aux": True}
    train = {**base["train"], "steps": steps, "eval_every": 0, "checkpoint_every": 0, "log_every": steps,
             "threads": 1, "micro_batches": 1, **VARIANTS[variant]}
    return ExperimentConfig(name=f"{group}-{variant}", data=data, positions=base["positions"], model=base["model"],
                            train=train, eval={"lengths": [2], "n": 1})


def token_slots(cfg: ExperimentConfig, steps: int, root: Path) -> tuple[int, int]:
    """(useful input tokens, computed token slots) of the first `steps` batches as this config cuts them (the
    trainer draws a step's batch from the step's seed, so these are the timed training's batches)."""
    trainer = Trainer(build_experiment(cfg), RunDir(root / "slots"), quiet=True)
    useful = slots = 0
    for step in range(steps):
        for batch in trainer._batch(step):
            useful += batch.num_tokens
            slots += batch.tokens.numel()
    return useful, slots


def seconds_per_step(cfg: ExperimentConfig, steps: int, root: Path) -> tuple[float, float]:
    """(training seconds per step, last logged loss) of one fresh training."""
    run = RunDir(root / f"{cfg.name}-{len(list(root.iterdir()))}")
    run_training(build_experiment(cfg), run, quiet=True)
    done = json.loads((run.path / "done.json").read_text())
    loss = json.loads((run.path / "metrics.jsonl").read_text().splitlines()[-1])["loss"]
    return done["seconds"] / steps, loss


def main():
    args = parse_args()
    variants = args.variants.split(",")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variant {unknown[0]!r}; valid: {', '.join(VARIANTS)}")
    print(f"{'group':<14} {'variant':<14} {'s/step':>8} {'useful tok/s':>13} {'useful':>7} {'speed-up':>9} "
          f"{'loss':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for group in args.groups.split(","):
            times: dict[str, list[float]] = {v: [] for v in variants}
            losses: dict[str, float] = {}
            for _ in range(args.repeats):
                for v in variants:
                    t, losses[v] = seconds_per_step(config(group, v, args.steps), args.steps, root)
                    times[v].append(t)
            base = statistics.median(times[variants[0]])
            for v in variants:
                t = statistics.median(times[v])
                useful, slots = token_slots(config(group, v, args.steps), args.steps, root)
                print(f"{group:<14} {v:<14} {t:>8.3f} {useful / args.steps / t:>13,.0f} {useful / slots:>7.0%} "
                      f"{base / t:>8.2f}x {losses[v]:>8.4f}")


if __name__ == "__main__":
    main()
