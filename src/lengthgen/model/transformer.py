"""A Llama-style decoder that takes explicit position IDs and exposes hook points.

forward(tokens, position_ids, attention_mask=None, cache=None, hooks=None) -> logits.
A model built with `position_head` (PPC) also gives next-token position-ID logits:
forward(..., return_positions=True) -> (logits, position_logits).
attention_mask is [B, S] with S = cached + new tokens (True = real token); with a KV cache the
model appends the new keys and values. Left padding is supported: a padding query attends to
itself only, so no row of the softmax is empty.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .backward import AttentionProbs, RMSNormFunction
from .config import ModelConfig
from .hooks import Hooks
from .plugins import ENCODINGS, register_architecture


class RMSNorm(nn.Module):
    """Root-mean-square norm with a learned gain, computed in float32 and returned in the autocast dtype
    when autocast is on (the dtype the next projection computes in), else in the input's dtype."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        device = x.device.type
        out_dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else x.dtype
        return RMSNormFunction.apply(x, self.weight, self.eps, out_dtype)


def make_norm(cfg: ModelConfig) -> nn.Module:
    """RMSNorm or LayerNorm (no bias), per the config."""
    if cfg.norm == "rmsnorm":
        return RMSNorm(cfg.d_model, cfg.norm_eps)
    return nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps, bias=False)


class MLP(nn.Module):
    """SwiGLU (gate and up projections fused in one matmul) or a plain GELU MLP."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.gated = cfg.mlp == "swiglu"
        self.up = nn.Linear(cfg.d_model, cfg.d_ff * (2 if self.gated else 1), bias=False)
        self.down = nn.Linear(cfg.d_ff, cfg.d_model, bias=False)

    def forward(self, x):
        h = self.up(x)
        if self.gated:
            gate, up = h.chunk(2, dim=-1)
            return self.down(F.silu(gate) * up)
        return self.down(F.gelu(h))


@dataclass
class KVCache:
    """Per-layer keys/values [B, H, S, hd] (rotated keys for RoPE) and the keys' position IDs."""

    keys: list[torch.Tensor | None] = field(default_factory=list)
    values: list[torch.Tensor | None] = field(default_factory=list)
    position_ids: torch.Tensor | None = None
    # token_shift k: the first block's inputs at the last k cached positions [B, k, d_model], before the
    # shift (zeros stand in where there were fewer).
    recent_inputs: torch.Tensor | None = None

    @property
    def length(self) -> int:
        """Number of cached positions."""
        return 0 if self.position_ids is None else self.position_ids.shape[1]


def causal_mask(t: int, s: int, device) -> torch.Tensor:
    """Bool [t, s]: the last t of s positions query, each sees itself and everything before."""
    return torch.ones(t, s, dtype=torch.bool, device=device).tril(s - t)


def additive_mask(mask: torch.Tensor) -> torch.Tensor:
    """A bool keep-mask as a float32 0 / -inf mask of the same shape."""
    return torch.zeros(mask.shape, device=mask.device).masked_fill_(~mask, float("-inf"))


@dataclass
class AttentionInputs:
    """What every layer's attention shares in one forward pass."""

    rotation: object
    mask: torch.Tensor | None  # bool [B, 1, T, S] or None for plain causal
    bias: torch.Tensor | None  # float [B, H, T, S] (encoding bias), or None
    use_math: bool
    # Math attention only: the mask as 0 / -inf, [T, S] or [B, 1, T, S], built once per forward
    # so that each layer adds it in the same pass that scales the scores.
    additive_mask: torch.Tensor | None = None
    log_keys: torch.Tensor | None = None  # logit_scaling: log(keys each query may attend), [B or 1, 1, T, 1]


class Attention(nn.Module):
    """Multi-head causal self-attention with fused QKV projection."""

    def __init__(self, cfg: ModelConfig, layer: int):
        super().__init__()
        self.heads, self.head_dim = cfg.heads, cfg.head_dim
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.out = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.prefix = f"blocks.{layer}.attn."
        # logit_scaling log_keys: a learned log-factor per head (see ModelConfig).
        self.log_scale = None
        if cfg.logit_scaling == "log_keys":
            self.log_scale = nn.Parameter(torch.full((cfg.heads,), -math.log(math.log(16.0))))

    def forward(self, x, encoding, shared: AttentionInputs, cache: KVCache | None, layer: int, hooks: Hooks | None):
        b, t, _ = x.shape
        qkv = self.qkv(x).view(b, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if shared.rotation is not None:
            # Queries and keys in one call: half the elementwise launches of rotating each.
            q, k = encoding.rotate(qkv[:2], shared.rotation)
            v = qkv[2]
        else:
            q, k, v = qkv
        if self.log_scale is not None:  # logits are linear in q: scaling q scales them, in any kernel
            q = q * (self.log_scale.exp()[None, :, None, None] * shared.log_keys).to(q.dtype)
        if cache is not None:
            if cache.keys[layer] is not None:
                k = torch.cat([cache.keys[layer], k], dim=2)
                v = torch.cat([cache.values[layer], v], dim=2)
            cache.keys[layer], cache.values[layer] = k, v
        want_pattern = hooks is not None and hooks.wants(self.prefix + "hook_pattern")
        if shared.use_math or want_pattern:
            z = self._math_attention(q, k, v, shared, hooks)
        else:
            z = self._sdpa(q, k, v, shared)
        z = z.transpose(1, 2)  # [B, T, H, hd]
        if hooks is not None:
            z = hooks(self.prefix + "hook_z", z)
        return self.out(z.reshape(b, t, -1))

    @staticmethod
    def _scores_mask(q, k, shared: AttentionInputs):
        if shared.mask is not None:
            return shared.mask
        t, s = q.shape[2], k.shape[2]
        return causal_mask(t, s, q.device)

    def _math_attention(self, q, k, v, shared, hooks):
        additive = shared.additive_mask
        if additive is None:
            additive = additive_mask(self._scores_mask(q, k, shared))
        scale = self.head_dim**-0.5
        if shared.bias is None and not (hooks is not None and hooks.wants(self.prefix + "hook_pattern")):
            return AttentionProbs.apply(q @ k.transpose(-1, -2), additive, scale, v.dtype) @ v
        # mask + scale * scores in one pass, which also promotes bf16 scores (autocast) to the float32
        # mask's dtype without a cast pass of its own; softmax in float32 whatever the autocast dtype.
        scores = torch.add(additive, q @ k.transpose(-1, -2), alpha=scale)
        if shared.bias is not None:
            scores = scores + shared.bias
        pattern = scores.softmax(dim=-1)
        if hooks is not None:
            pattern = hooks(self.prefix + "hook_pattern", pattern)
        return pattern.to(v.dtype) @ v

    def _sdpa(self, q, k, v, shared):
        if shared.mask is None and shared.bias is None and q.shape[2] == k.shape[2]:
            return F.scaled_dot_product_attention(q, k, v, is_causal=True)
        mask = self._scores_mask(q, k, shared)
        if shared.bias is not None:
            mask = shared.bias.masked_fill(~mask, float("-inf")).to(q.dtype)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


class Block(nn.Module):
    """Pre-norm residual block: attention then MLP."""

    def __init__(self, cfg: ModelConfig, layer: int):
        super().__init__()
        self.layer = layer
        self.attn_norm, self.mlp_norm = make_norm(cfg), make_norm(cfg)
        self.attn = Attention(cfg, layer)
        self.mlp = MLP(cfg)

    def forward(self, x, encoding, shared, cache, hooks):
        x = x + self.attn(self.attn_norm(x), encoding, shared, cache, self.layer, hooks)
        x = x + self.mlp(self.mlp_norm(x))
        if hooks is not None:
            x = hooks(f"blocks.{self.layer}.hook_resid_post", x)
        return x


@register_architecture("transformer")
class Decoder(nn.Module):
    """Token embedding + positional encoding plug-in + blocks + final norm + LM head."""

    def __init__(self, cfg: ModelConfig, vocab_size: int, max_position: int):
        super().__init__()
        self.cfg = cfg
        self.vocab_size = vocab_size
        self.max_position = max_position
        self.embed = nn.Embedding(vocab_size, cfg.d_model)
        self.encoding = ENCODINGS[cfg.encoding](cfg, max_position)
        self.blocks = nn.ModuleList(Block(cfg, i) for i in range(cfg.layers))
        self.norm = make_norm(cfg)
        self.lm_head = nn.Linear(cfg.d_model, vocab_size, bias=False)
        self.token_shift = (nn.Linear(cfg.token_shift * cfg.d_model, cfg.d_model, bias=False) if cfg.token_shift
                            else None)
        self.apply(self._init)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.embed.weight
        # PPC: logits over position IDs 0..max_position-1 for the next token. Built after the
        # rest is initialised, so every other weight starts exactly as in the same model
        # without the head (a controlled PC-vs-PPC comparison).
        self.position_head = None
        if cfg.position_head:
            self.position_head = nn.Linear(cfg.d_model, max_position, bias=False)
            nn.init.normal_(self.position_head.weight, std=cfg.init_std)

    def _init(self, module):
        # Every matrix, the encodings' own included (FIRE's MLP, learned position rows), starts
        # N(0, init_std), embedding tables N(0, embedding_init_std) when set; biases keep PyTorch's default.
        if isinstance(module, nn.Embedding) and self.cfg.embedding_init_std is not None:
            nn.init.normal_(module.weight, std=self.cfg.embedding_init_std)
        elif isinstance(module, (nn.Linear, nn.Embedding)) and module.weight.dim() == 2:
            nn.init.normal_(module.weight, std=self.cfg.init_std)

    def _use_math(self, x: torch.Tensor) -> bool:
        if self.cfg.attention != "auto":
            return self.cfg.attention == "math"
        # Measured: on CPU under bf16 autocast, SDPA is slower than matmul + softmax.
        return x.device.type == "cpu" and torch.is_autocast_enabled("cpu")

    def _mask(self, attention_mask, t: int, s: int, device, segments=None) -> torch.Tensor | None:
        mask = self._base_mask(attention_mask, t, s, device, segments)
        window = self.cfg.attention_window
        if not window or window >= s:
            return mask
        q_index = torch.arange(s - t, s, device=device)[:, None]
        band = (q_index - torch.arange(s, device=device)[None, :]) < window  # itself and window - 1 before
        return (mask if mask is not None else causal_mask(t, s, device)[None, None]) & band[None, None]

    def _base_mask(self, attention_mask, t: int, s: int, device, segments=None) -> torch.Tensor | None:
        if segments is not None:
            # Packed rows: causal within each example, nothing across (padding is one more segment).
            return (causal_mask(t, s, device)[None] & (segments[:, :, None] == segments[:, None, :]))[:, None]
        if attention_mask is None:
            return None if t == s else causal_mask(t, s, device)[None, None]
        q_index = torch.arange(s - t, s, device=device)[:, None]
        k_index = torch.arange(s, device=device)[None, :]
        causal = k_index <= q_index
        mask = causal[None] & attention_mask[:, None, :].bool()
        # A padding query sees itself only, so its softmax row is never empty.
        mask = mask | (k_index == q_index)[None]
        return mask[:, None]

    def _previous_inputs(self, x, s: int, attention_mask, cache: KVCache | None, segments) -> torch.Tensor:
        """token_shift k: [B, T, k * d], each position's inputs at t - 1, ..., t - k side by side, zero
        where that predecessor is not in the same example (before the first token, padding, another
        packed example). `s` is the number of keys, cached ones included."""
        k_max = self.cfg.token_shift
        b, t, d = x.shape
        past = cache.recent_inputs if cache is not None else None
        past = past if past is not None else x.new_zeros(b, k_max, d)
        history = torch.cat([past, x], dim=1)  # [B, k_max + T, d]
        if cache is not None:
            cache.recent_inputs = history[:, -k_max:]
        key_index = torch.arange(s - t, s, device=x.device)  # the new positions among all keys
        shifted = []
        for k in range(1, k_max + 1):
            valid = (key_index >= k)[None].expand(b, t)
            if segments is not None:
                same = torch.zeros_like(valid)
                same[:, k:] = segments[:, k:] == segments[:, :-k]
                valid = valid & same
            elif attention_mask is not None:  # [B, S]: a padding token is no predecessor, nor has one
                real = attention_mask.bool()
                valid = valid & real[:, (key_index - k).clamp(min=0)] & real[:, s - t:]
            shifted.append(history[:, k_max - k : k_max - k + t] * valid[..., None])
        return torch.cat(shifted, dim=-1)

    # Packed training batches (several examples per row, `data.collate_packed`) are understood.
    supports_packing = True

    def forward(self, tokens, position_ids, attention_mask=None, cache: KVCache | None = None,
                hooks: Hooks | None = None, select: torch.Tensor | None = None,
                return_positions: bool = False, segments: torch.Tensor | None = None):
        """Logits [B, T, vocab] for tokens [B, T] at the given position IDs [B, T].

        select: optional bool [B, T]; then only those positions go through the LM head and the
        result is [N, vocab] (training needs logits at answer positions only).
        return_positions: return (token_logits, position_logits) instead, the second [B, T,
        max_position] (or [N, max_position] with select) from the PPC position head; needs a
        model built with `position_head`. Without it the position head is never computed.
        segments: optional int [B, T] of a packed batch (several examples per row): a token attends
        only to the tokens of its own segment (replaces attention_mask; no cache).
        """
        if segments is not None and cache is not None:
            raise ValueError("packed rows (segments) are for training and scoring, not for cached decoding")
        if cache is not None and not cache.keys:
            cache.keys = [None] * len(self.blocks)
            cache.values = [None] * len(self.blocks)
        past_ids = cache.position_ids if cache is not None else None
        key_ids = position_ids if past_ids is None else torch.cat([past_ids, position_ids], dim=1)
        if cache is not None:
            cache.position_ids = key_ids
        t, s = tokens.shape[1], key_ids.shape[1]
        x = self.embed(tokens)
        pos = self.encoding.embed(position_ids)
        if pos is not None:
            x = x + pos
        if self.token_shift is not None:
            x = x + self.token_shift(self._previous_inputs(x, s, attention_mask, cache, segments))
        mask = self._mask(attention_mask, t, s, tokens.device, segments)
        if self.cfg.attention_id_window:
            near = (position_ids[:, :, None] - key_ids[:, None, :]).abs() <= self.cfg.attention_id_window
            mask = (mask if mask is not None else causal_mask(t, s, tokens.device)[None, None]) & near[:, None]
        shared = AttentionInputs(
            rotation=self.encoding.rotation(position_ids),
            mask=mask,
            bias=self.encoding.bias(position_ids, key_ids),
            use_math=self._use_math(x),
        )
        if self.cfg.logit_scaling == "log_keys":
            counts = (shared.mask.sum(-1, keepdim=True) if shared.mask is not None
                      else torch.arange(s - t + 1, s + 1, device=tokens.device)[None, None, :, None])
            shared.log_keys = counts.float().log()
        if shared.use_math:
            mask = shared.mask if shared.mask is not None else causal_mask(t, s, tokens.device)
            shared.additive_mask = additive_mask(mask)
        for block in self.blocks:
            x = block(x, self.encoding, shared, cache, hooks)
        if select is not None:
            x = x[select]
        h = self.norm(x)
        if not return_positions:
            return self.lm_head(h)
        if self.position_head is None:
            raise ValueError("return_positions=True needs a model built with model.position_head: true")
        return self.lm_head(h), self.position_head(h)

    def num_parameters(self) -> int:
        """Trainable parameters (tied weights counted once)."""
        return sum(p.numel() for p in self.parameters())
