"""Thread policy for sweeps: one job on every core, or one job per core?

Run (from the repository root, with the venv active, on an otherwise idle machine):

    python benchmarks/thread_policy.py            # --steps 60 --size cpu
    python benchmarks/thread_policy.py --size base

Trains the same model on the same real batches (reverse addition, lengths 1-16, batch 64;
answer-only loss, AdamW, the precision `auto` picks) in two layouts and reports training steps
per second summed over jobs:

  * one job with torch threads = all cores;
  * one job per core, each with 1 thread, started together (what `lengthgen sweep` does by
    default: workers = cores / threads, threads = 1).

The ratio (> 1: one job per core wins) decides the sweep default; docs/performance.md quotes it.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time

SIZES = {"cpu": dict(layers=3, d_model=128, heads=4, d_ff=512), "base": dict(layers=6, d_model=384, heads=6, d_ff=1536)}


def job(size: str, threads: int, steps: int, start, out) -> None:
    """Train `steps` steps with `threads` threads once `start` is set; put (steps, seconds) on out."""
    import numpy as np
    import torch

    from lengthgen.data import TaskMixture, build_spec, collate
    from lengthgen.model.config import ModelConfig
    from lengthgen.model.transformer import Decoder
    from lengthgen.positions import PolicySettings
    from lengthgen.runtime import autocast, resolve_precision
    from lengthgen.train import answer_loss
    from lengthgen.vocab import Vocab

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    vocab, cpu = Vocab.default(), torch.device("cpu")
    precision = resolve_precision("auto", cpu)
    model = Decoder(ModelConfig(**SIZES[size], encoding="rope"), len(vocab), 1024).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    mixture = TaskMixture([build_spec({"task": "reverse_add", "lengths": [1, 16]})], "consecutive", PolicySettings())
    rng = np.random.default_rng(0)
    batches = [collate(mixture.sample(rng, 64), vocab) for _ in range(8)]

    def step(i):
        with autocast(cpu, precision):
            loss = answer_loss(model, batches[i % len(batches)])
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for i in range(len(batches)):  # warm-up: every batch shape once
        step(i)
    start.wait()
    t0 = time.perf_counter()
    for i in range(steps):
        step(i)
    out.put((steps, time.perf_counter() - t0))


def layout(size: str, jobs: int, threads: int, steps: int) -> float:
    """Steps per second summed over `jobs` concurrent processes of `threads` threads each."""
    ctx = mp.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=job, args=(size, threads, steps, start, out)) for _ in range(jobs)]
    for p in procs:
        p.start()
    time.sleep(1.0)
    start.set()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    return sum(n / s for n, s in results)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--size", choices=sorted(SIZES), default="cpu")
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    cores = os.cpu_count() or 1
    print(f"{cores} cores, model {args.size} {SIZES[args.size]}, {args.steps} steps per job, best of {args.repeats}")
    one = max(layout(args.size, 1, cores, args.steps) for _ in range(args.repeats))
    per_core = max(layout(args.size, cores, 1, args.steps) for _ in range(args.repeats))
    print(f"one job x {cores} threads:  {one:6.2f} steps/s")
    print(f"{cores} jobs x 1 thread:     {per_core:6.2f} steps/s in total")
    print(f"one job per core / one job on all cores: {per_core / one:.2f}x")


if __name__ == "__main__":
    main()
