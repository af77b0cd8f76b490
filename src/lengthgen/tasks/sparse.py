"""Sparse-dependency tasks of Paper A (PAPERS.md A1-A3).

sparse_parity, sparse_sum  k marked items among l background items; the single answer token is
                           the sum mod m of the marked values (parity = the m = 2 case). The
                           sparsity knob is k: the answer depends on exactly k input tokens.
offset_parity              unmarked bits; the answer is the XOR of bits at fixed places, either
                           local (fixed offsets before `=`) or non-local (first and middle bit,
                           whose distance grows with l).

Length is always the number of items/bits before `=`. Formats:
  sparse_parity  `01B0A1=` -> `1`   (marked B=1, A=0: 1 xor 0 = 1)
  sparse_sum     `3C9A47=` -> `2`   (modulus 10, marked C=2, A=0: 2+0 = 2)
  offset_parity  `10110=`  -> `1`   (local, offsets (1, 2): last bit 0 xor second-to-last 1)
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np

from ..errors import UserError
from .base import Positions, Task, register_task

# Marked items are written as capital letters: A = value 0, B = value 1, ... (PAPERS.md A1).
MARK_LETTERS = string.ascii_uppercase


@dataclass(frozen=True)
class _MarkedSumTask(Task):
    """Shared implementation of sparse_parity and sparse_sum (one code path, any modulus).

    Sample of length l [ours where PAPERS.md A1 is silent]: l items uniform over 0..m-1; k
    distinct positions are marked, uniformly inside a window (the whole input when `locality`
    is 0, else `locality` consecutive positions at a uniform start); marked values are written
    as letters, the rest as digits; the prompt ends with `=`; the answer is one digit, the sum
    of the k marked values mod m. meta: {"k": k, "marked": sorted marked indices}.

    Parameters:
      k         number of marked items when k_max is 0 (the fixed-k test distribution)
      k_max     0: every example has k marks; > 0: k is drawn uniformly from 1..k_max per
                example (the training mixture behind h_{K_train}); `k` is then unused
      locality  0: marks anywhere; w > 0: all marks inside one window of w consecutive
                positions (clipped to l when l < w) [ours: window start uniform]
      clip_k    only with k_max > 0 [ours, default True]: at a length l < k_max draw k from
                1..min(k_max, l) (short inputs only carry small k, as in the paper's l >= k);
                False refuses lengths below k_max instead
    Subclasses provide `modulus` (a field or a class constant).
    """

    # Class-level value for `lengthgen tasks` (the default k = 2); each instance replaces it
    # with the limit its own parameters imply in __post_init__.
    min_length = 2

    k: int = 2
    k_max: int = 0
    locality: int = 0
    clip_k: bool = True

    modulus: ClassVar[int] = 2  # replaced by a field in sparse_sum, fixed at 2 for parity

    def __post_init__(self) -> None:
        # The shortest usable length is the smallest k an example may need: the fixed k, or 1
        # for the clipped mixture, or k_max for the unclipped one. Stored on the instance (as
        # mqar does) so check_length and the evaluation length filter both see it.
        if self.k_max > 0:
            low = 1 if self.clip_k else self.k_max
        else:
            low = self.k
        object.__setattr__(self, "min_length", max(1, low))

    @property
    def largest_k(self) -> int:
        """The largest number of marks an example can have."""
        return self.k_max if self.k_max > 0 else self.k

    def validate(self) -> None:
        """Reject non-positive k, negative k_max/locality, windows too narrow for k marks and
        moduli that cannot be written with one digit and one letter per value."""
        if self.k < 1:
            raise UserError(f"task {self.name!r}: k must be >= 1, got {self.k}")
        if self.k_max < 0:
            raise UserError(f"task {self.name!r}: k_max must be >= 0 (0 = use k), got {self.k_max}")
        if self.locality < 0:
            raise UserError(f"task {self.name!r}: locality must be >= 0 (0 = marks anywhere), got {self.locality}")
        if 0 < self.locality < self.largest_k:
            raise UserError(
                f"task {self.name!r}: locality {self.locality} cannot hold {self.largest_k} distinct marks; "
                f"set locality >= {self.largest_k} (the largest k) or 0"
            )
        # Background values are single digits, so at most 10 values per item.
        if not 2 <= self.modulus <= 10:
            raise UserError(f"task {self.name!r}: modulus must be in 2..10 (one digit per value), got {self.modulus}")

    def length_limits_reason(self) -> str:
        """The lower limit comes from the number of marks."""
        why = f"k_max={self.k_max} with clip_k=False" if self.k_max > 0 else f"k={self.k}"
        return f"an input of length l holds at most l distinct marks; {why}"

    def draw_k(self, rng: np.random.Generator, n: int, length: int) -> np.ndarray:
        """Number of marks of each of the n examples at this length."""
        if self.k_max == 0:
            return np.full(n, self.k)
        hi = min(self.k_max, length) if self.clip_k else self.k_max
        return rng.integers(1, hi + 1, size=n)

    def generate(self, rng: np.random.Generator, n: int, length: int):
        """n (prompt, answer, meta) triples; length = number of items before `=`."""
        m = self.modulus
        width = length if self.locality == 0 else min(self.locality, length)
        ks = self.draw_k(rng, n, length)
        values = rng.integers(0, m, size=(n, length))
        starts = rng.integers(0, length - width + 1, size=n)
        # The rank of uniform noise is a uniform permutation of the window; marking the offsets
        # ranked below k picks k distinct offsets uniformly (vectorized over the n examples).
        ranks = np.argsort(np.argsort(rng.random((n, width)), axis=1), axis=1)
        in_window = ranks < ks[:, None]
        for row, k, start, pick in zip(values.tolist(), ks.tolist(), starts.tolist(), in_window.tolist()):
            marked = [start + j for j, chosen in enumerate(pick) if chosen]
            tokens = [str(v) for v in row]
            for i in marked:
                tokens[i] = MARK_LETTERS[row[i]]
            target = sum(row[i] for i in marked) % m
            yield (*tokens, "="), (str(target),), {"k": int(k), "marked": marked}


@register_task
@dataclass(frozen=True)
class SparseParity(_MarkedSumTask):
    """D^sp(l, k) of PAPERS.md A1: `01B0A1=` -> `1`, the XOR of the k bits written as A (0) /
    B (1) among background bits 0/1. The modulus-2 case of sparse_sum; parameters there."""

    name = "sparse_parity"
    description = "XOR of k marked bits (A=0, B=1) among background bits (length = bits)"
    modulus: ClassVar[int] = 2


@register_task
@dataclass(frozen=True)
class SparseSum(_MarkedSumTask):
    """Sum mod `modulus` of k marked items (PAPERS.md A2): `3C9A47=` -> `2` with modulus 10.

    Background items are digits 0..modulus-1, marked ones letters A..; see `_MarkedSumTask`
    for k, k_max, locality and clip_k. modulus [ours, default 10]: 2..10.
    """

    name = "sparse_sum"
    description = "sum mod m of k marked items (letters) among background digits (length = items)"
    modulus: int = 10


@register_task
@dataclass(frozen=True)
class OffsetParity(Task):
    """Unmarked parity at fixed places (PAPERS.md A3): prompt = l uniform bits then `=`, answer =
    the XOR of the bits the dependency names. meta: {"sources": indices of those bits}.

    dependency 'local' (default): the bits `offsets` places before `=` (offset 1 = last bit);
    `10110=` -> `1` with offsets (1, 2). 'nonlocal': the first bit and the middle bit (index
    l // 2), whose distance grows with l; `10110=` -> `0` (bits 0 and 2: 1 xor 1); `offsets`
    is unused.
    offsets [ours, default (1, 2)]: distinct positive offsets; lengths start at max(offsets).

    Coupled IDs [ours], so that each dependency is local in position-ID space:
      nonlocal  the bits are split into halves at l // 2 and each half is numbered from 1 (index
                i < l//2 -> i+1, i >= l//2 -> i - l//2 + 1), so the first and the middle bit
                share ID 1; `=` predicts the answer from them and also sits at ID 1 (like
                copy's `=`); the answer gets the fresh ID (l - l//2) + 1 (one past the longer
                half) and <eos> the next.
      local     bits are numbered backwards from `=` (index i -> ID l - i, i.e. its offset), so
                every offset is one fixed ID at any length; `=` sits at ID 1 as above; the
                answer gets ID l + 1 (one past the largest bit ID) and <eos> the next.
    """

    name = "offset_parity"
    description = "XOR of the bits at fixed offsets before '=' (local) or of the first and middle bit (nonlocal)"
    min_length = 2

    dependency: Literal["local", "nonlocal"] = "local"
    offsets: tuple[int, ...] = (1, 2)

    def __post_init__(self) -> None:
        # Configs arrive as lists; keep a tuple so the frozen task stays hashable and equal to
        # its defaults. Invalid values are left for validate() to report.
        if isinstance(self.offsets, list):
            object.__setattr__(self, "offsets", tuple(self.offsets))
        # local: every offset must point at a bit; nonlocal: first and middle bit must differ.
        low = 2
        if self.dependency == "local" and self._offsets_ok():
            low = max(self.offsets)
        object.__setattr__(self, "min_length", low)

    def _offsets_ok(self) -> bool:
        """Whether offsets is a non-empty tuple of distinct positive ints."""
        return (
            isinstance(self.offsets, tuple)
            and len(self.offsets) > 0
            and all(isinstance(o, int) and not isinstance(o, bool) and o >= 1 for o in self.offsets)
            and len(set(self.offsets)) == len(self.offsets)
        )

    def validate(self) -> None:
        """Reject offsets that are empty, repeated (they would cancel in the XOR) or below 1."""
        if not self._offsets_ok():
            raise UserError(
                f"task {self.name!r}: offsets must be a non-empty list of distinct integers >= 1 "
                f"(1 = the bit just before '='), got {self.offsets!r}"
            )

    def length_limits_reason(self) -> str:
        """The lower limit comes from where the XORed bits sit."""
        return (f"offsets {list(self.offsets)} must point at bits" if self.dependency == "local"
                else "the first and the middle bit must differ")

    def sources(self, length: int) -> list[int]:
        """Indices of the bits the answer XORs, at this length."""
        if self.dependency == "local":
            return [length - o for o in self.offsets]
        return [0, length // 2]

    def generate(self, rng: np.random.Generator, n: int, length: int):
        """n (prompt, answer, meta) triples; length = number of bits before `=`."""
        src = self.sources(length)
        bits = rng.integers(0, 2, size=(n, length))
        answers = np.bitwise_xor.reduce(bits[:, src], axis=1)
        for row, target in zip(bits.tolist(), answers.tolist()):
            yield (*map(str, row), "="), (str(target),), {"sources": src}

    def coupled_positions(self, prompt, answer):
        """See the class docstring: halves numbered from 1 (nonlocal), offsets as IDs (local)."""
        length = len(prompt) - 1
        if self.dependency == "nonlocal":
            half = length // 2
            bit_ids = tuple(i + 1 if i < half else i - half + 1 for i in range(length))
            fresh = (length - half) + 1
        else:
            bit_ids = tuple(length - i for i in range(length))
            fresh = length + 1
        return Positions(0, bit_ids + (1,), (fresh,), fresh + 1)
