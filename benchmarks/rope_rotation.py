"""What the rotary encoding costs in a training step: lengthgen's rotation against autograd of Llama's
expression, forward and backward, timed in the same run.

Run (from the repository root, with the venv active):

    python benchmarks/rope_rotation.py                       # defaults below
    python benchmarks/rope_rotation.py --sizes small --repeats 3

Per size (`common.SIZES`), the queries, keys and values of one attention layer come out of a fused
projection as a [B, T, 3, H, hd] tensor in bf16 (the dtype autocast gives them on this CPU). Each
variant rotates the queries and keys, then backpropagates a fixed gradient through them:

  * Llama's rotate_half (baseline): `x * cos + cat(-x2, x1) * sin` on the queries and on the keys
    apart, differentiated by autograd, as HF Llama and lengthgen before 2026-12-06 did it;
  * lengthgen: `Rotary.rotate` on queries and keys stacked, whose backward is the inverse rotation.

The variants run in interleaved rounds, so drift in the machine's load hits them alike; reported
is the median time per layer (forward + backward) and the speed-up over the baseline. The two are
checked to agree (forward and gradient) before timing.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from common import SIZES, machine_line

from lengthgen.model import ENCODINGS, ModelConfig


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="small,base")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--seq-len", type=int, default=100)
    p.add_argument("--layers", type=int, default=20, help="rotations (forward + backward) per timing")
    p.add_argument("--repeats", type=int, default=5, help="interleaved rounds; the median is reported")
    p.add_argument("--threads", type=int, default=None)
    return p.parse_args()


def llama_rotate_half(x, cos, sin):
    """The baseline: HF Llama's apply_rotary_pos_emb for one tensor, left to autograd."""
    half = x.shape[-1] // 2
    return x * cos + torch.cat([-x[..., half:], x[..., :half]], dim=-1) * sin


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(machine_line())
    print(f"bf16, batch {args.batch}, sequence {args.seq_len}, {args.layers} layers x {args.repeats} rounds")
    for size in args.sizes.split(","):
        cfg = ModelConfig(**SIZES[size], encoding="rope")
        rope = ENCODINGS["rope"](cfg, max_position=args.seq_len)
        ids = torch.arange(args.seq_len).expand(args.batch, -1)
        state = rope.rotation(ids)
        angles = ids.float()[:, None, :, None] * rope.inv_freq
        cos, sin = (f(torch.cat([angles, angles], dim=-1)).to(torch.bfloat16) for f in (torch.cos, torch.sin))
        torch.manual_seed(0)
        qkv = torch.randn(args.batch, args.seq_len, 3, cfg.heads, cfg.head_dim, dtype=torch.bfloat16,
                          requires_grad=True)
        grad = torch.randn(2, args.batch, cfg.heads, args.seq_len, cfg.head_dim, dtype=torch.bfloat16)

        variants = {
            "Llama rotate_half (autograd)": lambda x: [llama_rotate_half(t, cos, sin) for t in x[:2]],
            "lengthgen Rotary.rotate": lambda x: list(rope.rotate(x[:2], state)),
        }
        outputs = {}
        for name, rotate in variants.items():
            out = rotate(qkv.permute(2, 0, 3, 1, 4))
            outputs[name] = (torch.stack(out).float(), torch.autograd.grad(out, qkv, list(grad))[0].float())
        (base_out, base_grad), (our_out, our_grad) = outputs.values()
        forward, gradient = ((a - b).abs().max().item() for a, b in ((base_out, our_out), (base_grad, our_grad)))
        print(f"\n{size}: {SIZES[size]}; largest difference, forward {forward:.2g}, gradient {gradient:.2g}")

        def layers(rotate):
            for _ in range(args.layers):
                torch.autograd.grad(rotate(qkv.permute(2, 0, 3, 1, 4)), qkv, list(grad))

        for rotate in variants.values():  # warm-up
            layers(rotate)
        times = {name: [] for name in variants}
        for _ in range(args.repeats):
            for name, rotate in variants.items():
                start = time.perf_counter()
                layers(rotate)
                times[name].append((time.perf_counter() - start) / args.layers)
        base = statistics.median(times["Llama rotate_half (autograd)"])
        for name, samples in times.items():
            per_layer = statistics.median(samples)
            print(f"  {name:<30} {per_layer * 1e3:8.3f} ms per layer   speed-up {base / per_layer:5.2f}x")


if __name__ == "__main__":
    main()
