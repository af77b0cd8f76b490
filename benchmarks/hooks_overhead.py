"""What hook points cost: a forward pass with hooks=None, with an empty Hooks(), and capturing one
attention pattern, timed in the same run.

Run (from the repository root, with the venv active):

    python benchmarks/hooks_overhead.py                      # defaults below
    python benchmarks/hooks_overhead.py --sizes small --repeats 3

A random-init RoPE Decoder per size (`common.SIZES`) scores one batch of `--batch` sequences of
`--seq-len` tokens under no_grad, in the precision `auto` picks. The three variants are timed in
interleaved rounds (so drift in the machine's load hits them alike) and the median seconds per
forward pass of each is reported with its ratio to hooks=None:

  * hooks=None: the plain model;
  * empty Hooks(): a Hooks that asks for nothing (should cost nothing: ratio ~1.00);
  * capture one pattern: `blocks.0.attn.hook_pattern`, which makes that one layer compute its
    softmax explicitly (its cost is that layer's math attention plus the stored tensor).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from common import SIZES, build_lengthgen, machine_line

from lengthgen.model.hooks import Hooks
from lengthgen.runtime import autocast, resolve_precision


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="small,base")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--forwards", type=int, default=10, help="forward passes per timing")
    p.add_argument("--repeats", type=int, default=5, help="interleaved rounds; the median is reported")
    p.add_argument("--threads", type=int, default=None)
    return p.parse_args()


VARIANTS = {
    "hooks=None": lambda: None,
    "empty Hooks()": lambda: Hooks(),
    "capture one pattern": lambda: Hooks(capture=["blocks.0.attn.hook_pattern"]),
}


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cpu = torch.device("cpu")
    precision = resolve_precision("auto", cpu)
    print(machine_line())
    print(f"precision {precision}, batch {args.batch}, sequence {args.seq_len}, {args.forwards} forwards x "
          f"{args.repeats} rounds")
    for size in args.sizes.split(","):
        torch.manual_seed(0)
        model = build_lengthgen(SIZES[size], vocab_size=128).eval()
        tokens = torch.randint(0, 128, (args.batch, args.seq_len))
        positions = torch.arange(args.seq_len).expand(args.batch, -1)

        def forwards(make_hooks):
            with torch.no_grad(), autocast(cpu, precision):
                for _ in range(args.forwards):
                    model(tokens, positions, hooks=make_hooks())

        for make_hooks in VARIANTS.values():  # warm-up: kernels chosen, memory allocated
            forwards(make_hooks)
        times = {name: [] for name in VARIANTS}
        for _ in range(args.repeats):
            for name, make_hooks in VARIANTS.items():
                start = time.perf_counter()
                forwards(make_hooks)
                times[name].append((time.perf_counter() - start) / args.forwards)
        base = statistics.median(times["hooks=None"])
        print(f"\n{size}: {SIZES[size]}")
        for name, values in times.items():
            value = statistics.median(values)
            print(f"  {name:<22} {value * 1e3:8.3f} ms/forward   ratio to hooks=None {value / base:5.2f}x")


if __name__ == "__main__":
    main()
