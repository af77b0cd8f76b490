"""How sparsely each token of a window depends on its far context (PAPERS.md A6; estimator ours).

A window holds tokens w[0..n-1]; token w[t] is predicted from `<bos>` and w[0..t-1]. With a
training context of L positions (`<bos>` and L-1 tokens), the *near* context of w[t] is its last
L-1 tokens w[t-L+1..t-1]; the *far* tokens are w[0..t-L], so tokens t >= L (1-based positions
beyond L) have some. Losses are in nats (-log p).

  loss_full       w[t] given everything before it, at the original position IDs
  loss_truncated  w[t] given its near context only, re-numbered from `<bos>` = 0 as in training
                  (IDs 0..L-1: in distribution for any model trained on windows of L tokens)
  gain            loss_truncated - loss_full: what the far context is worth to the model

Sparsity estimator, for each token with gain > threshold:
  1. rank the far tokens by importance (registry RANKINGS): `occlusion` (default) is the drop in
     log p(w[t]) when that far token alone is removed from the full context; `attention` is the
     attention that the query predicting w[t] pays to it, averaged over layers and heads.
  2. k = the fewest top-ranked far tokens that, kept with the near context (every other far
     token removed; kept tokens keep their original position IDs, so no custom mask is needed),
     recover at least `fraction` of the gain: loss_truncated - loss(kept) >= fraction * gain.
     k is searched by doubling (0, 1, 2, 4, ...; the whole far context always recovers the
     gain, since it is the full context) and then bisecting between the last two rungs, which
     is exact when recovery grows with k between them (true for the oracle of the tests).
  k = 0 means the near context at its original IDs already recovers the gain: the far tokens'
  content is not needed, only the change of position (the distance to `<bos>`).
Assumptions and limits: occlusion scores each far token alone, so a token with several
redundant sources (a word that occurs twice in the far context) gets a low score for each of
them; the ranking then misses them and k is an upper bound on the smallest sufficient set.
The estimator only needs a `Scorer`: log-probabilities of one target given a subset of the
window in original positions (`log_probs`); `analysis.context.ModelScorer` is the model's, and
the tests use an oracle that knows each token's dependency set by construction.
Cost per window, in model forwards: 1 (full) + (n - L + 1) short ones (truncated, length <= L)
+ (n - L + 1) long ones (occlusion: one per removed far token, shared by all targets) + about
2 log2(far tokens) per analysed token (the search, each as long as the kept set + L).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from ..registry import Registry

Query = tuple[np.ndarray, int]  # (sorted window indices kept as context, target index)


class Scorer:
    """log p(w[t] | a subset of the window in original positions) for one window of n tokens.

    Subclasses implement `log_probs`; the other methods have generic implementations on top of
    it that a model scorer may replace by faster equivalents.
    """

    n: int

    def log_probs(self, queries: list[Query]) -> np.ndarray:
        """For each (kept context indices, t): log p(w[t] | `<bos>`, w[kept])."""
        raise NotImplementedError

    def full(self) -> np.ndarray:
        """[n] log p(w[t] | w[0..t-1])."""
        return self.log_probs([(np.arange(t), t) for t in range(self.n)])

    def truncated(self, near: int) -> np.ndarray:
        """[n] log p(w[t] | its last `near` tokens), in distribution (a model re-numbers them)."""
        return self.log_probs([(np.arange(max(0, t - near), t), t) for t in range(self.n)])

    def occlusion(self, targets: list[int], near: int) -> dict[int, np.ndarray]:
        """Per target t: log p(w[t] | everything before it but far token j), for each far j."""
        out = {}
        for t in targets:
            far = t - near
            queries = [(np.delete(np.arange(t), j), t) for j in range(far)]
            out[t] = self.log_probs(queries)
        return out

    def attention(self, targets: list[int], near: int) -> dict[int, np.ndarray]:
        """Per target t: attention paid to each far token (only models have it)."""
        raise NotImplementedError(f"{type(self).__name__} has no attention")


Ranking = Callable[[Scorer, list[int], int, np.ndarray], dict[int, np.ndarray]]
RANKINGS = Registry("far-token ranking")


@RANKINGS.register("occlusion")
def rank_by_occlusion(scorer: Scorer, targets: list[int], near: int, full: np.ndarray) -> dict[int, np.ndarray]:
    """Importance of far token j for w[t]: log p(w[t] | full) - log p(w[t] | full without j)."""
    dropped = scorer.occlusion(targets, near)
    return {t: full[t] - dropped[t] for t in targets}


@RANKINGS.register("attention")
def rank_by_attention(scorer: Scorer, targets: list[int], near: int, full: np.ndarray) -> dict[int, np.ndarray]:
    """Importance of far token j for w[t]: the mean attention the query predicting w[t] pays to it."""
    return scorer.attention(targets, near)


def smallest_k(scorer: Scorer, targets: list[int], orders: dict[int, np.ndarray], near: int,
               truncated: np.ndarray, gains: np.ndarray, fraction: float) -> dict[int, int]:
    """Per target: the fewest top-ranked far tokens that recover `fraction` of its gain (doubling,
    then bisection; all targets of one step are scored in one batch)."""
    lo = {t: -1 for t in targets}  # largest k known not to recover
    hi = {t: len(orders[t]) for t in targets}  # smallest k known to recover (all far tokens do)

    def recovered(pairs: list[tuple[int, int]]) -> list[bool]:
        queries = []
        for t, k in pairs:
            kept = np.sort(orders[t][:k])
            queries.append((np.concatenate([kept, np.arange(t - near, t)]).astype(np.int64), t))
        values = scorer.log_probs(queries)
        return [(value - truncated[t]) >= fraction * gains[t] for (t, _), value in zip(pairs, values)]

    rung, active = 0, list(targets)
    while active:  # doubling: 0, 1, 2, 4, ... while below the known answer
        following = 1 if rung == 0 else 2 * rung
        still = []
        for t, ok in zip(active, recovered([(t, rung) for t in active])):
            if ok:
                hi[t] = rung
            else:
                lo[t] = rung
                if following < hi[t]:
                    still.append(t)
        rung, active = following, still
    while True:
        pairs = [(t, (lo[t] + hi[t]) // 2) for t in targets if hi[t] - lo[t] > 1]
        if not pairs:
            return hi
        for (t, k), ok in zip(pairs, recovered(pairs)):
            if ok:
                hi[t] = k
            else:
                lo[t] = k


def analyse_window(scorer: Scorer, train_length: int, threshold: float = 0.1, fraction: float = 0.8,
                   ranking: str = "occlusion", max_tokens: int = 0) -> pd.DataFrame:
    """One row per token of the window: position (1-based), losses, gain, and for tokens beyond
    the training length whose gain exceeds `threshold`, k (and n_far, the far tokens it had).
    max_tokens > 0 analyses only the that many largest gains of the window."""
    near = train_length - 1
    full = scorer.full()
    truncated = scorer.truncated(near)
    gains = full - truncated
    beyond = np.arange(scorer.n) >= train_length
    chosen = [int(t) for t in np.flatnonzero(beyond & (gains > threshold))]
    if max_tokens and len(chosen) > max_tokens:
        chosen = sorted(sorted(chosen, key=lambda t: -gains[t])[:max_tokens])
    k = {}
    if chosen:
        importance = RANKINGS.lookup(ranking)(scorer, chosen, near, full)
        # Most important first; ties keep the nearer token first (a stable sort of reversed indices).
        orders = {t: (t - near - 1 - np.argsort(-importance[t][::-1], kind="stable")).astype(np.int64)
                  for t in chosen}
        k = smallest_k(scorer, chosen, orders, near, truncated, gains, fraction)
    positions = np.arange(scorer.n)
    return pd.DataFrame({
        "position": positions + 1, "loss_full": -full, "loss_truncated": -truncated,
        "gain": np.where(beyond, gains, np.nan), "n_far": np.maximum(positions - near, 0),
        "k": [k.get(t, np.nan) for t in range(scorer.n)]})


def k_bin(k: float) -> str:
    """The sparsity bin of a k: '0', '1', '2', '3-4', '5-8', ... (NaN: no k)."""
    if np.isnan(k):
        return ""
    k = int(k)
    if k <= 2:
        return str(k)
    top = 1 << (k - 1).bit_length()
    return f"{top // 2 + 1}-{top}"


def bin_order(label: str) -> int:
    """Sort key of a bin label."""
    return int(label.split("-")[0])


def gain_by_bin(tokens: pd.DataFrame) -> pd.DataFrame:
    """Per sparsity bin of the analysed tokens: count, share of those tokens, mean gain, total gain
    and share of their total gain."""
    analysed = tokens[tokens["k"].notna()]
    columns = ["bin", "count", "share_of_tokens", "mean_gain", "total_gain", "share_of_gain"]
    if analysed.empty:
        return pd.DataFrame(columns=columns)
    total_gain, count = analysed["gain"].sum(), len(analysed)
    rows = []
    for label, sub in analysed.groupby(analysed["k"].map(k_bin)):
        rows.append({"bin": label, "count": len(sub), "share_of_tokens": len(sub) / count,
                     "mean_gain": sub["gain"].mean(), "total_gain": sub["gain"].sum(),
                     "share_of_gain": sub["gain"].sum() / total_gain})
    return pd.DataFrame(rows, columns=columns).sort_values("bin", key=lambda s: s.map(bin_order)).reset_index(drop=True)
