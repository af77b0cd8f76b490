"""TransformerLens-style hook points, paid for only when used.

Names: `blocks.{l}.attn.hook_pattern` [batch, head, query, key],
`blocks.{l}.attn.hook_z` [batch, pos, head, d_head] (per-head outputs before the output
projection), `blocks.{l}.hook_resid_post` [batch, pos, d_model].
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch

HookFn = Callable[[torch.Tensor], torch.Tensor | None]


class Hooks:
    """What to capture and what to replace in one forward pass.

    capture: hook names whose tensors are stored (detached) in `self.cache`.
    replace: hook name -> fn(tensor) returning a replacement tensor (or None to keep it).
    """

    def __init__(self, capture: Iterable[str] = (), replace: dict[str, HookFn] | None = None):
        self.capture = set(capture)
        self.replace = dict(replace or {})
        self.cache: dict[str, torch.Tensor] = {}

    def wants(self, name: str) -> bool:
        """Whether anything happens at this hook point (lets the model skip extra work)."""
        return name in self.capture or name in self.replace

    def __call__(self, name: str, tensor: torch.Tensor) -> torch.Tensor:
        fn = self.replace.get(name)
        if fn is not None:
            out = fn(tensor)
            tensor = tensor if out is None else out
        if name in self.capture:
            self.cache[name] = tensor.detach()
        return tensor


def replace_heads_output(layer: int, values: dict[int, torch.Tensor | float]) -> dict[str, HookFn]:
    """A `replace` entry that sets several heads' outputs (hook_z) of one layer, each to its value:
    a number (0 for zero ablation) or a [d_head] vector (a mean), broadcast over batch and positions.
    One entry per layer, since a Hooks holds one replacement per hook name."""

    def fn(z: torch.Tensor) -> torch.Tensor:
        z = z.clone()
        for head, value in values.items():
            z[:, :, head] = value
        return z

    return {f"blocks.{layer}.attn.hook_z": fn}


def replace_heads_output_by_row(layer: int, ablate: torch.Tensor, values: torch.Tensor) -> dict[str, HookFn]:
    """A `replace` entry that ablates different heads in different rows of one batch: where
    `ablate[row, head]` is True, that head's output (hook_z) at every position of the row becomes
    `values[head]` ([heads, d_head]: zeros or means). Rows never mix, so one forward pass scores
    many single-head ablations side by side."""

    def fn(z: torch.Tensor) -> torch.Tensor:
        # z: [batch, pos, head, d_head]; `ablate` has one row per batch row (the same rows, also
        # at every step of KV-cached decoding).
        return torch.where(ablate[:, None, :, None], values.to(z.dtype)[None, None], z)

    return {f"blocks.{layer}.attn.hook_z": fn}


def replace_head_output(layer: int, head: int, value: torch.Tensor | float = 0.0) -> dict[str, HookFn]:
    """A `replace` entry that sets one head's output (hook_z) to `value` (zero or a mean)."""
    return replace_heads_output(layer, {head: value})


class HookedModel:
    """A model whose every forward pass runs with the same Hooks.

    The scorers and decoders call `model(...)` and read a few attributes (`encoding`,
    `position_head`, `supports_cache`); this passes the calls on with `hooks=` added and every
    attribute through, so heads can be ablated during evaluation without touching the scorers.
    """

    def __init__(self, model, hooks: Hooks):
        self.model = model
        self.hooks = hooks

    def __call__(self, *args, **kwargs):
        return self.model(*args, hooks=self.hooks, **kwargs)

    def __getattr__(self, name: str):
        # Only reached for names this wrapper lacks: everything else is the model's. "model" itself
        # is missing only on a half-built object (copy, pickle): no recursion then.
        if name == "model":
            raise AttributeError(name)
        return getattr(self.model, name)
