"""Where the time of a CPU-preset run goes: data, forward, backward, optimizer, evaluation, and the
operators inside a step (matmuls, attention, norms, ...).

Run (from the repository root, with the venv active):

    python benchmarks/step_profile.py                                   # the presets below, point 0
    python benchmarks/step_profile.py --presets b-transfer-maze --point 1 --steps 20

For each preset, the config of one grid point (seed 0, its CPU scale exactly as `lengthgen repro`
trains it, one thread) is built and its trainer's own pieces are timed for --steps steps after
--warmup steps: drawing and collating the batch (`Trainer._batch`), the forward pass with the
loss, the backward pass, and the optimizer (clipping, AdamW, schedule). One evaluation on the
config's fixed sets is timed too, and the run's share of each phase is projected from the config
(steps x step time against evaluations x evaluation time). Then `torch.profiler` records --steps
more steps and groups the CPU time of the operators into matmul, attention, norm, elementwise,
optimizer, loss and other.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from lengthgen.evaluate import evaluate
from lengthgen.experiment import build_experiment
from lengthgen.presets import get_preset
from lengthgen.runtime import autocast
from lengthgen.store.rundir import RunDir
from lengthgen.sweeps.spec import expand
from lengthgen.train import Trainer, answer_loss, ppc_loss

# Operator name fragments -> category (first match wins).
CATEGORIES = [
    ("optimizer", ("adam", "clip", "_foreach", "norm_of", "lerp")),
    ("matmul", ("mm", "matmul", "linear", "bmm", "baddbmm")),
    ("attention", ("softmax", "scaled_dot_product", "masked_fill", "_masked", "where")),
    ("norm", ("rms_norm", "layer_norm", "native_layer_norm", "rsqrt")),
    ("loss", ("cross_entropy", "nll_loss", "log_softmax")),
    ("embedding", ("embedding",)),
    ("elementwise", ("mul", "add", "silu", "gelu", "cat", "neg", "sub", "div", "copy_", "to", "cos", "sin",
                     "fill_", "clone", "contiguous", "index", "slice", "view", "reshape", "transpose", "permute",
                     "expand", "split", "chunk", "select", "empty", "zero_", "sum", "mean")),
]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--presets", default="b-transfer-arith,b-transfer-maze,a-coupling",
                   help="comma-separated preset names (their CPU scale)")
    p.add_argument("--point", type=int, default=0, help="which grid point of each preset (0-based)")
    p.add_argument("--steps", type=int, default=20, help="timed steps (and profiled steps)")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    return p.parse_args()


def category(name: str) -> str:
    """The category of an operator name (CATEGORIES, else 'other')."""
    low = name.lower()
    for label, fragments in CATEGORIES:
        if any(f in low for f in fragments):
            return label
    return "other"


def one_step(trainer: Trainer, step: int, clock: dict[str, float]) -> None:
    """One training step as Trainer.fit takes it, each phase's seconds added to `clock`."""
    exp, tc = trainer.exp, trainer.cfg.train
    t0 = time.perf_counter()
    micro = trainer._batch(step)
    t1 = time.perf_counter()
    counts = [int(b.loss_mask.sum()) for b in micro]
    total = sum(counts)
    forward = backward = 0.0
    for batch, count in zip(micro, counts):
        batch = batch.to(exp.device)
        a = time.perf_counter()
        with autocast(exp.device, exp.precision):
            loss = ppc_loss(trainer.step_fn, batch, tc.position_loss_weight)[0] if trainer.ppc else \
                answer_loss(trainer.step_fn, batch)
        b = time.perf_counter()
        (loss * (count / total)).backward()
        forward, backward = forward + b - a, backward + time.perf_counter() - b
    t2 = time.perf_counter()
    torch.nn.utils.clip_grad_norm_(exp.model.parameters(), tc.grad_clip if tc.grad_clip > 0 else float("inf"))
    trainer.optimizer.step()
    trainer.optimizer.zero_grad(set_to_none=True)
    trainer.scheduler.step()
    t3 = time.perf_counter()
    for key, value in (("data", t1 - t0), ("forward", forward), ("backward", backward), ("optimizer", t3 - t2)):
        clock[key] += value


def profile_preset(name: str, point: int, steps: int, warmup: int, root: Path) -> None:
    """Print the phase table, the projected run shares and the operator categories of one preset point."""
    plans = expand(get_preset(name).spec("cpu"))
    plan = [p for p in plans if p.seed == plans[0].seed][point]
    cfg = plan.config.model_copy(update={"train": plan.config.train.model_copy(update={"threads": 1})})
    exp = build_experiment(cfg)
    run = RunDir(root / f"{name}-{point}")
    trainer = Trainer(exp, run, quiet=True)
    exp.model.train()
    clock: dict[str, float] = defaultdict(float)
    for step in range(warmup):
        one_step(trainer, step, defaultdict(float))
    for step in range(warmup, warmup + steps):
        one_step(trainer, step, clock)
    per_step = {k: v / steps for k, v in clock.items()}
    step_s = sum(per_step.values())
    t0 = time.perf_counter()
    evaluate(exp.model, exp.specs, cfg.eval.length_list(), n=cfg.eval.n, eval_seed=cfg.seed.eval,
             policy=cfg.positions.eval, settings=cfg.positions.settings(), vocab=exp.vocab, mode=cfg.eval.mode,
             batch_size=cfg.eval.batch_size, device=exp.device, precision=exp.precision, step=0)
    eval_s = time.perf_counter() - t0
    exp.model.train()
    tc = cfg.train
    evals = (tc.steps // tc.eval_every if tc.eval_every else 0) + (0 if tc.eval_every and tc.steps % tc.eval_every == 0
                                                                   else 1)
    run_s = tc.steps * step_s + evals * eval_s
    print(f"\n{name} point {point} ({plan.name}): {cfg.model.layers} layers, d_model {cfg.model.d_model}, "
          f"batch {cfg.data.batch_size}, micro_batches {tc.micro_batches}, precision {exp.precision}, "
          f"{tc.steps} steps, {evals} evaluations")
    print(f"  step {1000 * step_s:.1f} ms: " + ", ".join(f"{k} {1000 * v:.1f} ms ({v / step_s:.0%})"
                                                       for k, v in per_step.items()))
    print(f"  one evaluation {eval_s:.1f} s ({len(cfg.eval.length_list())} lengths x {cfg.eval.n} examples x "
          f"{sum(len(s.eval_variants()) for s in exp.specs)} tasks)")
    print(f"  projected run {run_s / 60:.1f} min: training {tc.steps * step_s / run_s:.0%}, "
          f"evaluation {evals * eval_s / run_s:.0%}")
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for step in range(warmup + steps, warmup + 2 * steps):
            one_step(trainer, step, defaultdict(float))
    totals: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        totals[category(event.key)] += event.self_cpu_time_total
    whole = sum(totals.values())
    print("  operators (self CPU time): " + ", ".join(f"{k} {v / whole:.0%}" for k, v in
                                                     sorted(totals.items(), key=lambda kv: -kv[1])))


def main():
    args = parse_args()
    print(f"torch {torch.__version__}, threads 1")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.presets.split(","):
            profile_preset(name, args.point, args.steps, args.warmup, Path(tmp))


if __name__ == "__main__":
    main()
