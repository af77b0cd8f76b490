"""Head-ablation maps: every head's ablation in shared forward passes versus one head at a time.

Run (from the repository root, with the venv active):

    python benchmarks/head_analysis.py                 # b-heads' CPU model and analysis set
    python benchmarks/head_analysis.py --rows 256,1024 --repeats 3

One checkpoint of `lengthgen heads` (and of b-heads' analysis) scores each task of a pair at each
length with every head ablated alone. This times that map two ways on the same random-init model
and evaluation sets:

  * one head at a time: the unablated scores, then `evaluate` once per head with `ablator`
    (how the map was computed until 2026-12-06);
  * shared passes: `ablation_map`, where a set's examples are repeated once per head with each
    copy's own head ablated, `--rows` examples per forward pass.

It prints seconds per map (median over --repeats), the ratio, and whether both give the same map
(a random model scores 0 almost everywhere, so that line is a smoke check; tests/test_heads.py
checks the equality on a model that answers, and on every b-heads checkpoint both gave the same
maps on this CPU).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from common import machine_line

from lengthgen.analysis.ablation import EvalSetup, ablation_map, ablator
from lengthgen.data import build_spec
from lengthgen.model.config import ModelConfig
from lengthgen.model.transformer import Decoder
from lengthgen.positions import PolicySettings
from lengthgen.runtime import resolve_precision
from lengthgen.vocab import Vocab


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tasks", default="swapcase_reverse,reverse", help="the pair, main first")
    p.add_argument("--lengths", default="1:16", help="LO:HI or comma-separated lengths")
    p.add_argument("--n", type=int, default=64, help="examples per (task, length), as b-heads' CPU analysis")
    p.add_argument("--model", default="3,4,128,512", help="layers,heads,d_model,d_ff (b-heads' CPU model)")
    p.add_argument("--rows", default="256,1024", help="comma-separated examples per shared pass (ablation_map's "
                   "default is the evaluation batch size, 256 in the presets)")
    p.add_argument("--kind", default="mean", choices=["mean", "zero"])
    p.add_argument("--mode", default="teacher_forced", choices=["teacher_forced", "greedy"])
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    return p.parse_args()


def parse_lengths(text: str) -> list[int]:
    """'1:16' -> 1..16; '2,5' -> [2, 5]."""
    if ":" in text:
        lo, hi = map(int, text.split(":"))
        return list(range(lo, hi + 1))
    return [int(x) for x in text.split(",")]


def one_head_at_a_time(model, specs, lengths, setup: EvalSetup, kind: str, heads) -> list[float]:
    """The map as `evaluate` gives it with one ablated head per call, in ablation_map's row order."""
    setup.evaluate(model, specs, lengths)  # the unablated scores, as ablation_map computes them too
    return [r.exact_match for head in heads for r in setup.evaluate(model, specs, lengths,
                                                                     adapt=ablator(kind, [head], setup))]


def timed(fn, repeats: int):
    """(median seconds, last result) over `repeats` calls."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    layers, heads, d_model, d_ff = map(int, args.model.split(","))
    vocab = Vocab.default()
    specs = [build_spec({"task": task, "lengths": [1, 8]}) for task in args.tasks.split(",")]
    lengths = parse_lengths(args.lengths)
    model = Decoder(ModelConfig(layers=layers, heads=heads, d_model=d_model, d_ff=d_ff, encoding="rope"),
                    len(vocab), max_position=1024).eval()
    precision = resolve_precision("auto", torch.device("cpu"))
    setup = EvalSetup(vocab, args.n, 0, "consecutive", PolicySettings(1024), mode=args.mode, precision=precision)
    every = [(layer, head) for layer in range(layers) for head in range(heads)]
    print(machine_line())
    print(f"model {layers} layers x {heads} heads, d_model {d_model}; {args.tasks} at lengths "
          f"{lengths[0]}..{lengths[-1]}, n {args.n}, {args.kind} ablation, {args.mode}, {precision}, "
          f"{args.threads} thread(s)")
    alone_s, alone = timed(lambda: one_head_at_a_time(model, specs, lengths, setup, args.kind, every), args.repeats)
    print(f"{'one head at a time':<28} {alone_s:7.2f} s per map   1.00x")
    for rows in (int(x) for x in args.rows.split(",")):
        shared_s, (_, table) = timed(lambda: ablation_map(model, specs, lengths, setup, args.kind, rows=rows),
                                     args.repeats)
        same = table["exact_match"].tolist() == alone
        print(f"{f'shared passes, rows {rows}':<28} {shared_s:7.2f} s per map   {alone_s / shared_s:4.2f}x"
              f"   same map: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
