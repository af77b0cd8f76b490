"""How much of the matmul peak can a training step of a given model size reach at all? The matmuls of
one step, timed alone at their own shapes, against the whole step.

Run (from the repository root, with the venv active):

    python benchmarks/matmul_ceiling.py                          # small and base, bf16 and float32
    python benchmarks/matmul_ceiling.py --sizes base --precisions bf16 --top 8   # and where the rest goes

`train_throughput.py` reports MFU as model FLOPs per second over the peak of a square 2048 x 2048
matmul. That peak is not what the model's own matmuls can run at: their inner dimensions are d_model
(128, 384) and the sequence, not 2048. This script lists every matmul of one training step of
lengthgen's Decoder on the lm workload (batch x seq_len random tokens, loss everywhere) and times each
alone, with the operand layouts the step uses:

  * each linear layer (fused QKV, attention output, fused gate/up, down, LM head): the forward
    X @ W^T, the input gradient dY @ W and the weight gradient dY^T @ X;
  * each layer's attention: Q K^T and P V forward, and their four gradients (dP, dV, dQ, dK).

Their FLOPs add up to exactly the model FLOPs of `train_throughput.py` (6 N tokens + 12 layers batch
seq_len^2 d_model). Reported per size and precision:

  * matmul-only step time: the sum of the medians, each shape times its count in one step;
  * ceiling MFU: model FLOPs / that time / the square-matmul peak, which is the MFU a step would have
    if everything but its matmuls took no time, as fast as these kernels run at these shapes;
  * the real step of lengthgen's Decoder (math attention under bf16, as `attention: auto` picks on
    CPU; fused AdamW), timed in the same run: its MFU and the share of it the matmuls account for;
    with --top N also its N costliest operators outside the matmuls (torch.profiler self time).

So a target MFU above the ceiling cannot be met by any change outside the matmul kernels.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch
import torch.nn.functional as F
from common import SIZES, build_lengthgen, machine_line, median_seconds, peak_matmul_flops

from lengthgen.vocab import Vocab

DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--seq-len", type=int, default=100)
    p.add_argument("--sizes", default="small,base", help=f"comma-separated subset of {','.join(SIZES)}")
    p.add_argument("--precisions", default="bf16,fp32", help="comma-separated subset of bf16,fp32")
    p.add_argument("--reps", type=int, default=10, help="timed calls per matmul shape (median)")
    p.add_argument("--steps", type=int, default=10, help="timed training steps of the real model (median)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--top", type=int, default=0,
                   help="also profile the real step and print its N costliest operators outside the matmuls")
    return p.parse_args()


def step_matmuls(size: dict, batch: int, seq_len: int, vocab: int) -> list[tuple[str, tuple, tuple, bool, bool, int]]:
    """Every matmul of one training step: (label, A's shape, B's shape, A transposed, B transposed, count),
    shapes as the product sees them ([n, k] @ [k, m], or batched [b, n, k] @ [b, k, m]); a transposed
    operand is a transposed view of a contiguous tensor, as autograd passes it."""
    d, d_ff, layers, heads = size["d_model"], size["d_ff"], size["layers"], size["heads"]
    n, hd, bh = batch * seq_len, d // heads, batch * heads
    linears = [("qkv", d, 3 * d, layers), ("attn out", d, d, layers), ("gate/up", d, 2 * d_ff, layers),
               ("down", d_ff, d, layers), ("lm head", d, vocab, 1)]
    out = []
    for name, d_in, d_out, count in linears:
        out += [(f"{name} forward", (n, d_in), (d_in, d_out), False, True, count),       # X @ W^T
                (f"{name} input grad", (n, d_out), (d_out, d_in), False, False, count),  # dY @ W
                (f"{name} weight grad", (d_out, n), (n, d_in), True, False, count)]      # dY^T @ X
    t = seq_len
    out += [("QK^T forward", (bh, t, hd), (bh, hd, t), False, True, layers),
            ("PV forward", (bh, t, t), (bh, t, hd), False, False, layers),
            ("dP = dO V^T", (bh, t, hd), (bh, hd, t), False, True, layers),
            ("dV = P^T dO", (bh, t, t), (bh, t, hd), True, False, layers),
            ("dQ = dS K", (bh, t, t), (bh, t, hd), False, False, layers),
            ("dK = dS^T Q", (bh, t, t), (bh, t, hd), True, False, layers)]
    return out


def operand(shape: tuple, transposed: bool, dtype: torch.dtype) -> torch.Tensor:
    """A random operand of the given (product-facing) shape; transposed: a view of the swapped layout."""
    if not transposed:
        return torch.randn(shape).to(dtype)
    swapped = (*shape[:-2], shape[-1], shape[-2])
    return torch.randn(swapped).to(dtype).transpose(-1, -2)


def matmul_seconds(shapes, dtype: torch.dtype, reps: int) -> list[tuple[str, float, float, int]]:
    """(label, median seconds of one call, its FLOPs, count per step) for each matmul."""
    rows = []
    for label, a_shape, b_shape, a_t, b_t, count in shapes:
        a, b = operand(a_shape, a_t, dtype), operand(b_shape, b_t, dtype)
        for _ in range(2):  # the library picks its kernel on the first calls
            torch.matmul(a, b)
        seconds = median_seconds(lambda: torch.matmul(a, b), reps)
        flops = 2 * a.shape[-2] * a.shape[-1] * b.shape[-1] * (a.shape[0] if a.dim() == 3 else 1)
        rows.append((label, seconds, flops, count))
    return rows


def real_step(size: dict, vocab: int, batch: int, seq_len: int, bf16: bool) -> Callable[[], None]:
    """One training step of lengthgen's Decoder on the lm workload (fused AdamW), as a closure."""
    torch.manual_seed(0)
    model = build_lengthgen(size, vocab).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.98), weight_decay=0.01, fused=True)
    tokens = torch.randint(vocab, (batch, seq_len))
    targets = torch.randint(vocab, (batch, seq_len))
    positions = torch.arange(seq_len).expand(batch, seq_len)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(tokens, positions)
            loss = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten())
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def step_seconds(step: Callable[[], None], steps: int) -> float:
    """Median seconds of `steps` calls of step, after two untimed ones."""
    for _ in range(2):
        step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def costliest_other_ops(step: Callable[[], None], steps: int, top: int) -> list[tuple[str, float]]:
    """(operator, milliseconds per step) of the `top` operators with the most self time, matmuls left out."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    others = [e for e in prof.key_averages() if e.key not in ("aten::mm", "aten::bmm", "aten::addmm")]
    others.sort(key=lambda e: -e.self_cpu_time_total)
    return [(e.key, e.self_cpu_time_total / 1e3 / steps) for e in others[:top]]


def main():
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    vocab = len(Vocab.default())
    precisions = args.precisions.split(",")
    peaks = {p: peak_matmul_flops(DTYPES[p]) for p in precisions}
    print(machine_line())
    print(f"batch {args.batch}, seq_len {args.seq_len}, vocab {vocab}; peak matmul 2048^2: "
          + ", ".join(f"{p} {v / 1e9:.1f} GFLOP/s" for p, v in peaks.items()) + "\n")
    for size_name in args.sizes.split(","):
        size = SIZES[size_name]
        shapes = step_matmuls(size, args.batch, args.seq_len, vocab)
        for precision in precisions:
            rows = matmul_seconds(shapes, DTYPES[precision], args.reps)
            mm_s = sum(s * c for _, s, _, c in rows)
            flops = sum(f * c for _, _, f, c in rows)
            step = real_step(size, vocab, args.batch, args.seq_len, precision == "bf16")
            step_s = step_seconds(step, args.steps)
            peak = peaks[precision]
            print(f"{size_name} ({size['layers']} layers, d_model {size['d_model']}), {precision}: "
                  f"{flops / 1e9:.2f} GFLOP of matmuls per step")
            for label, s, f, c in rows:
                print(f"  {label:<22} x{c}  {1e3 * s:7.3f} ms  {f / s / 1e9:7.1f} GFLOP/s  "
                      f"({100 * f / s / peak:5.1f}% of peak)")
            print(f"  matmuls alone: {1e3 * mm_s:.1f} ms per step -> ceiling MFU {100 * flops / mm_s / peak:.1f}%")
            print(f"  real step: {1e3 * step_s:.1f} ms -> MFU {100 * flops / step_s / peak:.1f}%; "
                  f"the matmuls' share of it {100 * mm_s / step_s:.0f}%", flush=True)
            if args.top:
                print("  costliest other operators (torch.profiler, ms per step): " + ", ".join(
                    f"{name} {ms:.1f}" for name, ms in costliest_other_ops(step, args.steps, args.top)))
            print()


if __name__ == "__main__":
    main()
