"""Parts of a block with hand-written backward passes: fewer elementwise passes than autograd's graph of
the same ops (`python benchmarks/elementwise_fusion.py`; docs/performance.md, "What made the difference")."""

from __future__ import annotations

import torch


class RMSNormFunction(torch.autograd.Function):
    """x / rms(x) * weight in float32 (float64 stays), returned in `out_dtype`, with the closed-form backward.

    Autograd's backward of `F.rms_norm` runs about a dozen elementwise passes over the activations, this
    one six; and returning the autocast dtype saves the cast the next projection would make
    (`python benchmarks/elementwise_fusion.py`; with `AttentionProbs`, 1.13x for the small model's whole
    training step, docs/performance.md).
    """

    @staticmethod
    def forward(ctx, x, weight, eps: float, out_dtype: torch.dtype):
        ctx.x_dtype = x.dtype
        x = x.to(torch.promote_types(x.dtype, torch.float32))  # float32 at least (float64 stays)
        rstd = torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
        normed = x * rstd
        ctx.save_for_backward(normed, rstd, weight)
        return (normed * weight.to(x.dtype)).to(out_dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        normed, rstd, weight = ctx.saved_tensors
        grad = grad.to(normed.dtype)
        grad_normed = grad * weight.to(normed.dtype)
        # d/dx of x * rstd(x): (g - normed * mean(g * normed)) * rstd
        mean_dot = torch.linalg.vecdot(grad_normed, normed).unsqueeze(-1) / normed.shape[-1]
        d_x = torch.addcmul(grad_normed, normed, mean_dot, value=-1).mul_(rstd)
        d_weight = (grad * normed).flatten(0, -2).sum(0).to(weight.dtype)
        return d_x.to(ctx.x_dtype), d_weight, None, None


class AttentionProbs(torch.autograd.Function):
    """softmax(mask + scale * scores), computed in float32 and returned in `out_dtype` (the values'
    dtype: bf16 under autocast), with a backward pass in that dtype.

    The same forward as autograd's graph of those ops; what changes is the backward: autograd kept the
    float32 probabilities and ran four passes over the [B, H, T, S] scores (cast the gradient up,
    softmax backward, scale, cast down for the matmul); this keeps the probabilities as returned and
    runs two, in bf16 under autocast (`python benchmarks/elementwise_fusion.py`: about 1.15x for this
    part of a layer). The mask gets no gradient: callers with a learned bias keep the plain path.
    """

    @staticmethod
    def forward(ctx, scores, mask, scale: float, out_dtype: torch.dtype):
        probs = torch.add(mask, scores, alpha=scale).softmax(dim=-1).to(out_dtype)
        ctx.save_for_backward(probs)
        ctx.scale = scale
        return probs

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        (probs,) = ctx.saved_tensors
        # probs * (grad - sum(grad * probs)) in one kernel (the op autograd's softmax backward calls).
        d_scores = torch._softmax_backward_data(grad.to(probs.dtype), probs, -1, probs.dtype)
        return d_scores.mul_(ctx.scale), None, None, None
