"""Data generation as a share of a training step, for every registered task, grouped by family.

Run (from the repository root, with the venv active):

    python benchmarks/data_generation.py                 # defaults below
    python benchmarks/data_generation.py --batch 1024    # paper-scale batch

For each task: a TaskMixture of that task alone with lengths uniform in [min, --max-length]
(clipped to the task's own limits) draws --batch examples and collates them (`generation`), then
one training step runs on that batch: answer-only loss, backward, AdamW, in the precision
`auto` picks here, on the model of Paper B's CPU scale (3 layers, d_model 128, 4 heads, d_ff 512,
RoPE), with one thread as the sweeps run it (`step`). Reported: the median of --repeats of each,
and generation / step. A family's figure is its worst task. The target is <= 5 %.
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import numpy as np
import torch
from common import machine_line, median_seconds

from lengthgen.data import TaskMixture, build_spec, collate
from lengthgen.model.config import ModelConfig
from lengthgen.model.transformer import Decoder
from lengthgen.positions import PolicySettings
from lengthgen.runtime import autocast, resolve_precision
from lengthgen.tasks.base import TASKS
from lengthgen.train import answer_loss
from lengthgen.vocab import Vocab


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--max-length", type=int, default=32)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    return p.parse_args()


def family(task_cls) -> str:
    """The module a task lives in (arithmetic, strings, maze, sparse, assignment, language)."""
    return task_cls.__module__.rsplit(".", 1)[-1]


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    vocab = Vocab.default()
    cpu = torch.device("cpu")
    precision = resolve_precision("auto", cpu)
    torch.manual_seed(0)
    model = Decoder(ModelConfig(layers=3, d_model=128, heads=4, d_ff=512, encoding="rope"), len(vocab), 1024).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    print(machine_line())
    print(f"batch {args.batch}, lengths up to {args.max_length}, precision {precision}, median of {args.repeats}\n")
    header = f"{'family':<11} {'task':<20} {'gen ms':>8} {'step ms':>8} {'share':>7}"
    print(header + "\n" + "-" * len(header))
    worst: dict[str, float] = defaultdict(float)
    for name, cls in sorted(TASKS.items(), key=lambda kv: (family(kv[1]), kv[0])):
        lo = cls.min_length
        hi = min(args.max_length, cls.max_length or args.max_length)
        mixture = TaskMixture([build_spec({"task": name, "lengths": [lo, hi]})], "consecutive", PolicySettings())
        rng = np.random.default_rng(0)
        gen = median_seconds(lambda: collate(mixture.sample(rng, args.batch), vocab), args.repeats)
        batch = collate(mixture.sample(rng, args.batch), vocab)

        def step():
            with autocast(cpu, precision):
                loss = answer_loss(model, batch)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        step()  # kernels for this shape
        seconds = median_seconds(step, args.repeats)
        share = gen / seconds
        worst[family(cls)] = max(worst[family(cls)], share)
        print(f"{family(cls):<11} {name:<20} {1e3 * gen:>8.2f} {1e3 * seconds:>8.1f} {100 * share:>6.1f}%", flush=True)
    print("\nworst task per family: " + ", ".join(f"{f} {100 * s:.1f}%" for f, s in sorted(worst.items())))
    print(f"all families <= 5%: {max(worst.values()) <= 0.05}")


if __name__ == "__main__":
    main()
