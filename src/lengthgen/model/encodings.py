"""Positional encodings as plug-ins with three hooks, all driven by explicit position IDs.

  embed(ids)              -> [B, T, D] added to token embeddings, or None  (learned, sinusoidal)
  bias(q_ids, k_ids)      -> [B, H, Tq, Tk] added to attention scores, or None  (alibi, fire)
  rotation(ids)           -> state for `rotate`, or None                   (rope)
  rotate(x, state)        -> x rotated, applied to queries and keys

Each hook is evaluated once per forward pass and shared by all layers. An encoding never
invents positions: it uses the IDs the data gave it.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import UserError
from .config import ModelConfig
from .plugins import register_encoding


class Encoding(nn.Module):
    """No positional information (NoPE); subclasses override the hooks they use."""

    name = "nope"
    bounded = False  # True: IDs must be < max_position (a table of positions)

    def __init__(self, cfg: ModelConfig, max_position: int):
        super().__init__()
        self.max_position = max_position

    def embed(self, ids: torch.Tensor) -> torch.Tensor | None:
        return None

    def bias(self, q_ids: torch.Tensor, k_ids: torch.Tensor) -> torch.Tensor | None:
        return None

    def rotation(self, ids: torch.Tensor):
        return None

    def rotate(self, x: torch.Tensor, state) -> torch.Tensor:
        return x


register_encoding("nope")(Encoding)


@register_encoding("learned")
class Learned(Encoding):
    """A learned absolute embedding per position ID (IDs must be < max_position)."""

    bounded = True

    def __init__(self, cfg, max_position):
        super().__init__(cfg, max_position)
        self.table = nn.Embedding(max_position, cfg.d_model)
        nn.init.normal_(self.table.weight, std=cfg.init_std)

    def embed(self, ids):
        if ids.numel() and int(ids.max()) >= self.max_position:
            raise UserError(f"position ID {int(ids.max())} >= max_position {self.max_position} of the learned encoding")
        return self.table(ids)


@register_encoding("sinusoidal")
class Sinusoidal(Encoding):
    """The fixed sin/cos embedding of Vaswani et al., evaluated at the given IDs, at the token embeddings'
    scale.

    Vaswani et al. scale the token embeddings up by sqrt(d_model) to meet the unit-amplitude sinusoid;
    here the sinusoid is scaled down to the token table's starting std instead. At unit amplitude it
    was 35x the N(0, 0.02) token rows, and copy never left the uniform-answer loss (3.3 nats after
    3,000 steps, experiments/coupling/encodings.py).
    """

    def __init__(self, cfg, max_position):
        super().__init__(cfg, max_position)
        self.amplitude = cfg.embedding_init_std if cfg.embedding_init_std is not None else cfg.init_std
        half = cfg.d_model // 2
        freq = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
        self.register_buffer("freq", freq, persistent=False)
        self.d_model = cfg.d_model

    def embed(self, ids):
        angles = ids.to(torch.float32)[..., None] * self.freq
        out = self.amplitude * torch.cat([angles.sin(), angles.cos()], dim=-1)
        if out.shape[-1] < self.d_model:  # odd width: one zero column
            out = nn.functional.pad(out, (0, 1))
        return out


def _swap_halves(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat([x[..., half:], x[..., :half]], dim=-1)


class _HalfSplitRotation(torch.autograd.Function):
    """x * cos + swap_halves(x) * signed_sin (Llama's rotate_half with the sign folded into the sine).

    The rotation is orthogonal, so its gradient is the inverse rotation, the same formula with the
    sine negated: the backward pass saves only the angles (not x) and runs three elementwise passes
    where autograd's graph of the same expression took seven (slices, negation, zero-filled
    gradient buffers and their sums).
    """

    @staticmethod
    def forward(ctx, x, cos, signed_sin):
        ctx.save_for_backward(cos, signed_sin)
        return torch.addcmul(x * cos, _swap_halves(x), signed_sin)

    @staticmethod
    def backward(ctx, grad):
        cos, signed_sin = ctx.saved_tensors
        return torch.addcmul(grad * cos, _swap_halves(grad), signed_sin, value=-1), None, None


@register_encoding("rope")
class Rotary(Encoding):
    """Rotary embedding (Su et al.), Llama's half-split convention, theta configurable."""

    def __init__(self, cfg, max_position):
        super().__init__(cfg, max_position)
        dim = cfg.head_dim
        inv_freq = 1.0 / (cfg.rope_theta ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def rotation(self, ids):
        """(cos, signed sin), float32 [B, 1, T, hd]: the sine's first half negated, as rotate_half's sign."""
        angles = ids.to(torch.float32)[:, None, :, None] * self.inv_freq  # [B, 1, T, hd/2]
        sin = angles.sin()
        return torch.cat([angles, angles], dim=-1).cos(), torch.cat([-sin, sin], dim=-1)

    def rotate(self, x, state):
        """x [..., B, H, T, hd] rotated; leading dimensions (queries and keys stacked) broadcast."""
        # Angles are computed in float32 (rotation), but the rotation runs in x's dtype, as in HF
        # Llama: under bf16 autocast a float32 rotation doubled the attention's elementwise cost.
        cos, signed_sin = (t.to(x.dtype) for t in state)
        return _HalfSplitRotation.apply(x, cos, signed_sin)


def _distance(q_ids: torch.Tensor, k_ids: torch.Tensor) -> torch.Tensor:
    """Query ID minus key ID, [B, 1, Tq, Tk], as float."""
    return (q_ids[:, None, :, None] - k_ids[:, None, None, :]).to(torch.float32)


@register_encoding("alibi")
class ALiBi(Encoding):
    """Linear distance penalties with geometric per-head slopes (Press et al. 2022)."""

    def __init__(self, cfg, max_position):
        super().__init__(cfg, max_position)
        slopes = torch.tensor([2.0 ** (-8.0 * (h + 1) / cfg.heads) for h in range(cfg.heads)])
        self.register_buffer("slopes", slopes.view(1, -1, 1, 1), persistent=False)

    def bias(self, q_ids, k_ids):
        # Future keys are masked anyway; |distance| keeps the bias finite for any ID order.
        return -self.slopes * _distance(q_ids, k_ids).abs()


@register_encoding("fire")
class FIRE(Encoding):
    """Functional interpolation for relative positions (Li et al. 2024).

    bias = MLP(log(c*d + 1) / log(c*max(q, L) + 1)) per head, with learnable c and L; one
    instance shared by all layers [ours: the paper uses one per layer]. The MLP's weights start
    N(0, model.init_std) like every matrix of the decoder [ours], so the bias starts near zero.
    """

    def __init__(self, cfg, max_position):
        super().__init__(cfg, max_position)
        self.mlp = nn.Sequential(nn.Linear(1, cfg.fire_width), nn.ReLU(), nn.Linear(cfg.fire_width, cfg.heads))
        self.log_c = nn.Parameter(torch.zeros(()))
        self.threshold = nn.Parameter(torch.tensor(float(max_position)))

    def bias(self, q_ids, k_ids):
        c = self.log_c.exp()
        dist = _distance(q_ids, k_ids).clamp(min=0)
        scale = torch.maximum(q_ids.to(torch.float32), self.threshold.abs())[:, None, :, None]
        x = torch.log(c * dist + 1) / torch.log(c * scale + 1)
        return self.mlp(x.squeeze(1)[..., None]).permute(0, 3, 1, 2)


@register_encoding("kerple_log")
class KerpleLog(Encoding):
    """KERPLE-log (Chi et al. 2022): bias = -r1 * log(1 + r2 * |q - k|), r1, r2 > 0 per head.

    Both start at softplus(0) = 0.69 and stay positive through a softplus [ours: the paper clamps].
    """

    def __init__(self, cfg, max_position):
        super().__init__(cfg, max_position)
        self.raw_r1 = nn.Parameter(torch.zeros(1, cfg.heads, 1, 1))
        self.raw_r2 = nn.Parameter(torch.zeros(1, cfg.heads, 1, 1))

    def bias(self, q_ids, k_ids):
        r1, r2 = nn.functional.softplus(self.raw_r1), nn.functional.softplus(self.raw_r2)
        return -r1 * torch.log1p(r2 * _distance(q_ids, k_ids).abs())
