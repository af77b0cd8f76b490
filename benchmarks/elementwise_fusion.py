"""Do hand-written backward passes speed up the elementwise work of a small-model step? Each part of a
block as autograd differentiates its ops against the same part as one `torch.autograd.Function` with a
hand-written backward, timed in the same run.

Run (from the repository root, with the venv active):

    python benchmarks/elementwise_fusion.py                  # small size, one thread
    python benchmarks/elementwise_fusion.py --sizes small,base --threads 2

A profile of the small size's bf16 step (2 layers, d_model 128, batch 64, sequence 100) puts most of its
time outside the matmuls: SwiGLU's products on the strided halves of the fused projection and the
concatenation of their gradients, the float32 RMSNorm backward (a dozen elementwise passes), and the
casts and scalings around the float32 softmax of the attention. Each variant here does the same
arithmetic in fewer passes:

  * SwiGLU: one Function saving the projection and silu(gate); its backward writes both halves of the
    gradient into one buffer (no concatenation);
  * RMSNorm + the next projection: one Function computing the norm, saving the normalized input and
    returning it in the autocast dtype (no cast pass); its backward is the closed form (the model's
    `RMSNorm` since 2026-12-07);
  * attention probabilities: mask, scale and float32 softmax as before, but the probabilities saved in
    bf16 and their backward computed in bf16 (no float32 gradient and no casts): the model's
    `AttentionProbs` since 2026-12-07.

SwiGLU's hand-written version did not pay (1.00-1.02x on an idle machine: its backward writes into the
strided halves of one buffer), so it stays in this script.

Variants run in interleaved rounds under bf16 autocast; reported is the median time of forward +
backward and the speed-up over autograd (> 1: the hand-written one is faster). Outputs and gradients
are compared first. Last, the whole training step of a Decoder of that size (random tokens at every
position, fused AdamW, as `train_throughput.py`'s lm workload) with the model's code against the same
model with both parts put back to autograd's ops, and the loss of one forward both ways. The model
takes a hand-written backward only where the speed-up is clearly above 1.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch
import torch.nn.functional as F
from common import SIZES, build_lengthgen, machine_line

from lengthgen.model import ModelConfig
from lengthgen.model.transformer import (
    MLP,
    Attention,
    AttentionInputs,
    AttentionProbs,
    RMSNorm,
    additive_mask,
    causal_mask,
)
from lengthgen.vocab import Vocab

# Relative difference allowed between the two versions of a part: a few bf16 roundings (2^-8 each).
BF16_AGREEMENT = 0.02


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="small")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--seq-len", type=int, default=100)
    p.add_argument("--calls", type=int, default=5, help="forward + backward calls per timing")
    p.add_argument("--repeats", type=int, default=7, help="interleaved rounds; the median is reported")
    p.add_argument("--threads", type=int, default=1)
    return p.parse_args()


class SwiGLU(torch.autograd.Function):
    """silu(gate) * up of h = [gate | up], with both halves of the gradient written into one buffer."""

    @staticmethod
    def forward(ctx, h):
        gate, up = h.chunk(2, dim=-1)
        act = F.silu(gate)
        ctx.save_for_backward(h, act)
        return act * up

    @staticmethod
    def backward(ctx, grad):
        h, act = ctx.saved_tensors
        gate, up = h.chunk(2, dim=-1)
        dh = torch.empty_like(h)
        d_gate, d_up = dh.chunk(2, dim=-1)
        torch.mul(grad, act, out=d_up)
        torch.ops.aten.silu_backward.grad_input(grad * up, gate, grad_input=d_gate)
        return dh


def parts(cfg: ModelConfig, batch: int, seq_len: int) -> dict:
    """Per part: (autograd of the ops, the hand-written variant, its inputs), both over the same weights."""
    torch.manual_seed(0)
    mlp = MLP(cfg)
    norm = RMSNorm(cfg.d_model, cfg.norm_eps)
    proj = torch.nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
    attention = Attention(cfg, 0)
    x = torch.randn(batch, seq_len, cfg.d_model)
    # bf16, as the fused projection's output is under autocast
    qkv = torch.randn(3, batch, cfg.heads, seq_len, cfg.head_dim, dtype=torch.bfloat16)
    mask = additive_mask(causal_mask(seq_len, seq_len, x.device))
    shared = AttentionInputs(rotation=None, mask=None, bias=None, use_math=True, additive_mask=mask)
    scale = cfg.head_dim**-0.5

    def autograd_attention(q, k, v):
        return torch.add(mask, q @ k.transpose(-1, -2), alpha=scale).softmax(-1).to(v.dtype) @ v

    return {
        "SwiGLU MLP": (mlp, lambda t: mlp.down(SwiGLU.apply(mlp.up(t))), [x]),
        "RMSNorm + projection": (lambda t: proj(F.rms_norm(t, (t.shape[-1],), norm.weight, norm.eps)),
                                 lambda t: proj(norm(t)), [x]),
        "attention probabilities": (autograd_attention,
                                    lambda q, k, v: attention._math_attention(q, k, v, shared, None), list(qkv)),
    }


@contextlib.contextmanager
def autograd_ops():
    """The model as it was before its hand-written backwards: RMSNorm through `F.rms_norm`, the attention
    probabilities through autograd's ops."""
    own_forward = RMSNorm.forward
    RMSNorm.forward = lambda self, x: F.rms_norm(x.float(), (x.shape[-1],), self.weight.float(), self.eps).to(x.dtype)
    AttentionProbs.apply = staticmethod(
        lambda scores, mask, scale, dtype: torch.add(mask, scores, alpha=scale).softmax(-1).to(dtype))
    try:
        yield
    finally:
        RMSNorm.forward = own_forward
        del AttentionProbs.apply  # back to autograd.Function's own


def whole_step(size: dict, batch: int, seq_len: int, steps: int, repeats: int) -> tuple[float, float, float]:
    """(autograd s/step, model s/step, loss difference) of a Decoder's bf16 training step."""
    vocab = len(Vocab.default())
    torch.manual_seed(0)
    model = build_lengthgen(size, vocab, attention="math")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
    tokens, targets = torch.randint(0, vocab, (batch, seq_len)), torch.randint(0, vocab, (batch, seq_len))
    ids = torch.arange(seq_len).expand(batch, -1)

    def loss():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(tokens, ids)
        return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten())

    def train(n):
        for _ in range(n):
            loss().backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    def variant(label):
        return autograd_ops() if label == "autograd" else contextlib.nullcontext()

    with torch.no_grad():
        with variant("autograd"):
            before = loss().item()
        difference = abs(loss().item() - before)
    times = {"autograd": [], "model": []}
    for label in times:  # warm-up
        with variant(label):
            train(2)
    for _ in range(repeats):
        for label in times:
            with variant(label):
                start = time.perf_counter()
                train(steps)
                times[label].append((time.perf_counter() - start) / steps)
    return statistics.median(times["autograd"]), statistics.median(times["model"]), difference


def forward_backward(fn, inputs):
    """One forward under bf16 autocast and one backward of a fixed linear function of the output."""
    leaves = [t.detach().requires_grad_() for t in inputs]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = fn(*leaves)
    weights = torch.linspace(-1, 1, out.shape[-1])
    (out.float() * weights).sum().backward()
    return out.float().detach(), [t.grad for t in leaves]


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    print(machine_line())
    print(f"bf16 autocast, batch {args.batch}, sequence {args.seq_len}, {args.calls} calls x {args.repeats} rounds")
    for size in args.sizes.split(","):
        cfg = ModelConfig(**SIZES[size], encoding="rope")
        print(f"\n{size}: {SIZES[size]}")
        for name, (plain, fused, inputs) in parts(cfg, args.batch, args.seq_len).items():
            (out_a, grads_a), (out_b, grads_b) = (forward_backward(f, inputs) for f in (plain, fused))
            diffs = [float((b - a).abs().max() / a.abs().max()) for a, b in zip([out_a, *grads_a], [out_b, *grads_b])]
            if max(diffs) > BF16_AGREEMENT:
                raise SystemExit(f"{name}: the two versions disagree (relative difference {max(diffs):.2g})")
            times = {"autograd": [], "hand-written": []}
            for _ in range(args.repeats):
                for label, fn in (("autograd", plain), ("hand-written", fused)):
                    start = time.perf_counter()
                    for _ in range(args.calls):
                        forward_backward(fn, inputs)
                    times[label].append((time.perf_counter() - start) / args.calls)
            base, hand = (statistics.median(times[k]) * 1e3 for k in ("autograd", "hand-written"))
            print(f"  {name:<24} autograd {base:8.2f} ms   hand-written {hand:8.2f} ms   speed-up {base / hand:5.2f}x"
                  f"   (largest relative difference, output and gradients: {max(diffs):.2g})")
        base, hand, difference = whole_step(SIZES[size], args.batch, args.seq_len, args.calls, args.repeats)
        print(f"  {'whole training step':<24} autograd {base * 1e3:8.2f} ms   model        {hand * 1e3:8.2f} ms   "
              f"speed-up {base / hand:5.2f}x   (loss difference {difference:.2g})")


if __name__ == "__main__":
    main()
