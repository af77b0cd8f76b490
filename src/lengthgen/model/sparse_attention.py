"""The idealized model of Paper A (PAPERS.md A0): one attention over k-tuples of positions.

Notation: tokens x_0..x_{T-1} (array indices, not position IDs), k = `tuple_size`,
L = `window`, d = `d_model`, h = `hidden`, E a token embedding table.

Tuples. A relative shape is delta = (delta_1 > ... > delta_{k-1} > delta_k = 0) with
delta_1 <= L - 1; there are C = binom(L-1, k-1) of them (`tuple_shapes`). Anchored at its last
position s, a shape gives the tuple S(s, delta) = (s - delta_1, ..., s - delta_{k-1}, s): k
distinct increasing positions of span s_k - s_1 = delta_1 < L. Every such tuple is a candidate
for every query t >= s, so each query sees all k-tuples of the prefix whose span is < L, each
exactly once. The tuple exists only if all its positions are in range and real (not padding).

Score (phi) and value (psi), both small MLPs that never see an absolute position:

    a(S)      = sum_j A_j E(x_{s_j}) + R[delta]                 (R: one learned row per shape)
    [u; beta] = W_2 gelu(a(S)) + b_2                            (u in R^h, beta a scalar)
    phi(S, t) = u(S) . Q[x_t] / sqrt(h) + beta(S)               (Q: one learned row per token)
    psi(S)    = V_2 gelu(sum_j V_j E(x_{s_j}) + b_v) + c_2      (in R^d; tokens of S only)

phi depends on the query through its token x_t alone, via the rank-h match u . Q[x_t]; with h
at least the number of distinct query tokens a task uses, this is any function of (S, x_t).

A null candidate is always present: score n[x_t] (a learned scalar per token) and value p
(a learned vector). It is there because a query near the start (t < k - 1, or a row whose
first k - 1 tokens are padding) has no tuple at all, and a softmax needs a non-empty support;
it also gives "no tuple matches" a learned answer. It is one candidate whatever the length, so
it does not break A0's argument (only background tuples grow with length). Tuples with
repeated or fewer positions are not candidates: the null candidate already covers the empty
case and a k-tuple can hold a shorter pattern plus k - m tokens the MLPs learn to ignore.

Output and readout:

    y_t      = sum_{s <= t, delta} softmax(phi)(S(s, delta)) psi(S(s, delta)) + softmax(phi)(null) p
    logits_t = W_o y_t + b_o

The softmax runs over the null candidate and every existing tuple with s <= t.

Position IDs are ignored by design: A0's phi and psi see relative shape in the token sequence,
never absolute position, and the shape here is measured in array indices. A position policy
that changes IDs (coupling, random offsets) therefore changes nothing for this model; the
model carries a NoPE `encoding` so code that asks about position limits sees an unbounded one.

Cost: tuple features are computed once per (anchor, shape), O(B T C h); the first MLP layer is
linear in the concatenated slot embeddings, so each slot is projected before the gather
(B T C h memory instead of B T C k d). The attention is a batched matmul over the (s, delta)
keys with s <= t, O(B T^2 C h) for all queries, done in query chunks (bounding the score
tensor and skipping each chunk's future anchors). With `select` only the selected queries are
scored, which is what training needs (loss at answer positions only).
"""

from __future__ import annotations

import math
from itertools import combinations

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .encodings import Encoding
from .hooks import Hooks
from .plugins import register_architecture

# More shapes than this per anchor is almost surely a typo in tuple_size/window (C grows like
# L^(k-1)), and the score tensor would not fit in memory at useful lengths.
MAX_SHAPES = 4096

# Elements of one chunk's score tensor (float32: 64 MiB); queries are processed in chunks so a
# long evaluation batch does not materialize B x T x (T * C) scores at once.
SCORE_CHUNK_ELEMENTS = 1 << 24
# Queries per chunk: small enough that skipping each chunk's future anchors saves most of the
# masked half of a full causal pass, large enough for efficient batched matmuls.
QUERY_CHUNK = 32


def num_shapes(tuple_size: int, window: int) -> int:
    """C = binom(window - 1, tuple_size - 1): relative shapes of a k-tuple with span < window."""
    return math.comb(window - 1, tuple_size - 1)


def tuple_shapes(tuple_size: int, window: int) -> torch.Tensor:
    """All relative shapes as a long tensor [C, k] of offsets back from the tuple's last position.

    Row c is (delta_1, ..., delta_{k-1}, 0) with window - 1 >= delta_1 > ... > delta_{k-1} > 0:
    slot j of the tuple anchored at s is position s - row[j], so slots are in increasing order.
    """
    rows = [tuple(sorted(back, reverse=True)) + (0,) for back in combinations(range(1, window), tuple_size - 1)]
    return torch.tensor(rows, dtype=torch.long).view(len(rows), tuple_size)


def check_sparse_config(cfg: ModelConfig) -> None:
    """Validate the knobs the sparse-attention model uses (ValueError with the fix named)."""
    for name in ("tuple_size", "window", "hidden", "d_model"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"model.{name} must be >= 1 for arch sparse_attention")
    if cfg.window < cfg.tuple_size:
        raise ValueError(f"model.window ({cfg.window}) must be >= model.tuple_size ({cfg.tuple_size}): "
                         "k distinct positions need a span of at least k - 1 < window")
    shapes = num_shapes(cfg.tuple_size, cfg.window)
    if shapes > MAX_SHAPES:
        raise ValueError(f"model.tuple_size {cfg.tuple_size} with model.window {cfg.window} gives {shapes} tuple "
                         f"shapes per position (limit {MAX_SHAPES}); lower one of them")


@register_architecture("sparse_attention")
class SparseAttentionModel(nn.Module):
    """A0's generalized attention over k-tuples of positions with span < window (see module doc).

    Same forward contract as Decoder: logits [B, T, vocab], or [N, vocab] at the `select`
    positions. No KV cache (`supports_cache = False`): greedy decoding recomputes the prefix.
    Hook points: `sparse.hook_pattern` [B, Q, T * C + 1] (softmax weights; the key axis is
    anchor-major over (s, shape) with the null candidate last; Q = T, or the number of
    selected positions per row, padded, when `select` is given) and `sparse.hook_out` [B, Q, d]
    (y before the readout).
    """

    supports_cache = False

    @staticmethod
    def check_config(cfg: ModelConfig) -> None:
        """ModelConfig's validator calls this instead of the transformer's checks."""
        check_sparse_config(cfg)

    def __init__(self, cfg: ModelConfig, vocab_size: int, max_position: int):
        super().__init__()
        check_sparse_config(cfg)
        self.cfg = cfg
        self.vocab_size = vocab_size
        self.max_position = max_position
        k, d, h = cfg.tuple_size, cfg.d_model, cfg.hidden
        self.tuple_size, self.window, self.hidden = k, cfg.window, h
        # Not persistent: it is a function of the config, so checkpoints need not carry it.
        self.register_buffer("offsets", tuple_shapes(k, cfg.window), persistent=False)
        shapes = self.offsets.shape[0]
        # Position IDs are ignored; a NoPE encoding (no parameters, unbounded) says so to the
        # code that checks evaluation lengths against an encoding's max_position.
        self.encoding = Encoding(cfg, max_position)
        self.embed = nn.Embedding(vocab_size, d)
        # First layers of the score and value MLPs, one [h x d] block per tuple slot (A_j, V_j):
        # applied to every token once, then gathered into tuples and summed.
        self.score_slots = nn.Linear(d, k * h, bias=False)
        self.value_slots = nn.Linear(d, k * h, bias=False)
        # R[delta]: the one-hot shape's first-layer contribution (it also acts as the bias).
        self.shape_score = nn.Embedding(shapes, h)
        self.value_bias = nn.Parameter(torch.zeros(h))
        # Separate layers rather than one sliced output: slicing a [B, T, C, .] tensor costs a
        # zero-filled gradient buffer of its full size in the backward pass.
        self.score_u = nn.Linear(h, h)
        self.score_beta = nn.Linear(h, 1)
        self.value_out = nn.Linear(h, d)
        self.query = nn.Embedding(vocab_size, h)
        self.null_score = nn.Embedding(vocab_size, 1)
        self.null_value = nn.Parameter(torch.zeros(d))
        self.readout = nn.Linear(d, vocab_size)
        nn.init.zeros_(self.null_score.weight)  # start neutral: the null competes like one tuple

    def tuple_features(self, tokens: torch.Tensor, attention_mask: torch.Tensor | None):
        """u [B, T, C, h], beta [B, T, C], psi [B, T, C, d] and exists [B, T, C] per (anchor, shape)."""
        b, t = tokens.shape
        k, h, pad = self.tuple_size, self.hidden, self.window - 1
        x = self.embed(tokens)
        # [k, B, T + L - 1, h]: slot-major so each slot's block is contiguous for index_select,
        # whose backward (an index_add) is far cheaper than advanced indexing's scatter. The
        # time axis is left-padded by L - 1 so every slot index is >= 0; tuples reaching into
        # that padding are dropped through `exists`, so the zeros there never matter.
        def per_slot(linear):
            return F.pad(linear(x).view(b, t, k, h).permute(2, 0, 1, 3), (0, 0, pad, 0)).contiguous()

        score_proj, value_proj = per_slot(self.score_slots), per_slot(self.value_slots)
        real = torch.ones(b, t, dtype=torch.bool, device=tokens.device) if attention_mask is None \
            else attention_mask.bool()
        real = F.pad(real, (pad, 0), value=False)
        index = torch.arange(t, device=tokens.device)[:, None, None] - self.offsets[None] + pad  # [T, C, k]
        score_pre, value_pre, exists = self.shape_score.weight, self.value_bias, None
        for j in range(k):  # k is small; summing as we go keeps one [B, T, C, h] buffer per MLP
            flat = index[..., j].reshape(-1)
            score_pre = score_pre + score_proj[j].index_select(1, flat).view(b, t, -1, h)
            value_pre = value_pre + value_proj[j].index_select(1, flat).view(b, t, -1, h)
            here = real.index_select(1, flat).view(b, t, -1)
            exists = here if exists is None else exists & here
        score_hidden = F.gelu(score_pre)
        return (self.score_u(score_hidden), self.score_beta(score_hidden).squeeze(-1),
                self.value_out(F.gelu(value_pre)), exists)

    def attend(self, u, beta, psi, exists, query_tokens, query_pos, hooks: Hooks | None = None) -> torch.Tensor:
        """y [B, Q, d] for queries with tokens and array positions [B, Q] (see the module doc)."""
        b, t, c, h = u.shape
        keys = u.reshape(b, t * c, h)
        values = psi.reshape(b, t * c, -1)
        key_bias = beta.masked_fill(~exists, float("-inf")).reshape(b, t * c)
        anchor = torch.arange(t, device=u.device).repeat_interleave(c)  # anchor s of each key
        q = self.query(query_tokens) * h**-0.5
        null = self.null_score(query_tokens)
        want_pattern = hooks is not None and hooks.wants("sparse.hook_pattern")
        n_queries = query_tokens.shape[1]
        # One chunk when a hook wants the whole pattern; otherwise chunks of at most
        # QUERY_CHUNK queries, fewer if needed to bound the score tensor's size.
        step = n_queries if want_pattern else \
            max(1, min(QUERY_CHUNK, SCORE_CHUNK_ELEMENTS // max(1, b * (t * c + 1))))
        outs = []
        for start in range(0, n_queries, step):
            stop = min(start + step, n_queries)
            pos = query_pos[:, start:stop]
            # Anchors after the chunk's last query are masked for all of it, so leave them out:
            # a full causal pass in chunks then scores about half of the T x T C pairs.
            n_keys = t * c if want_pattern else (int(pos.max()) + 1) * c
            scores = torch.baddbmm(key_bias[:, None, :n_keys].to(q.dtype), q[:, start:stop],
                                   keys[:, :n_keys].transpose(1, 2))
            causal = anchor[None, None, :n_keys] <= pos[..., None]
            scores = scores.masked_fill(~causal, float("-inf"))
            scores = torch.cat([scores, null[:, start:stop].to(scores.dtype)], dim=-1)
            # At least float32 for the softmax: under bf16 autocast the many background terms
            # would lose precision (float64 stays float64, which the exactness tests use).
            pattern = scores.to(torch.promote_types(scores.dtype, torch.float32)).softmax(-1)
            if want_pattern:
                pattern = hooks("sparse.hook_pattern", pattern)
            pattern = pattern.to(values.dtype)
            outs.append(pattern[..., :-1] @ values[:, :n_keys] + pattern[..., -1:] * self.null_value.to(values.dtype))
        return torch.cat(outs, dim=1)

    def forward(self, tokens, position_ids=None, attention_mask=None, cache=None,
                hooks: Hooks | None = None, select: torch.Tensor | None = None) -> torch.Tensor:
        """Logits [B, T, vocab] for tokens [B, T]; [N, vocab] at the True entries of `select`.

        position_ids is accepted for the Decoder's signature and ignored (module doc).
        attention_mask [B, T] (True = real token): tuples touching padding are dropped, so a
        padded row's real positions get the logits the row gets alone (either padding side).
        cache must be None: this model keeps no KV cache (`supports_cache` is False).
        """
        if cache is not None:
            raise ValueError("SparseAttentionModel keeps no KV cache (supports_cache = False); "
                             "pass the whole prefix with cache=None")
        b, t = tokens.shape
        if attention_mask is not None and attention_mask.shape != tokens.shape:
            raise ValueError(f"attention_mask {tuple(attention_mask.shape)} must match tokens {tuple(tokens.shape)}")
        u, beta, psi, exists = self.tuple_features(tokens, attention_mask)
        if select is None:
            query_pos = torch.arange(t, device=tokens.device).expand(b, t)
            y = self.attend(u, beta, psi, exists, tokens, query_pos, hooks)
        else:
            # Only the selected queries are scored (training needs answer positions only): pack
            # each row's selected positions to the left of a [B, Q] block, Q = most per row.
            select = select.bool()
            rows, cols = select.nonzero(as_tuple=True)  # row-major: the order of x[select]
            if rows.numel() == 0:
                return self.readout(psi.new_zeros(0, psi.shape[-1]))
            slot = select.long().cumsum(1)[rows, cols] - 1
            query_pos = torch.zeros(b, int(slot.max()) + 1, dtype=torch.long, device=tokens.device)
            query_pos[rows, slot] = cols
            y = self.attend(u, beta, psi, exists, tokens.gather(1, query_pos), query_pos, hooks)
        if hooks is not None:
            y = hooks("sparse.hook_out", y)
        if select is not None:
            y = y[rows, slot]
        return self.readout(y)

    def num_parameters(self) -> int:
        """Trainable parameters."""
        return sum(p.numel() for p in self.parameters())
