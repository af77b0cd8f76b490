"""String tasks of Paper B.

copy, reverse, duplicate, swapcase, swapcase_reverse: prompt `s=` over letters, answer the transformed s
(length = characters of s). mqar: multi-query associative recall (length = key-value pairs).
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..errors import UserError
from .base import Positions, Task, register_task

LETTERS = string.ascii_lowercase + string.ascii_uppercase


@dataclass(frozen=True)
class _StringTask(Task):
    """Shared sampling for tasks whose prompt is `s=` with s uniform over an alphabet. Every such
    task takes the input s, so each can re-label another's examples (`tasks.base.relabel`).

    alphabet   the symbols of s
    distinct   False: each symbol uniform and independent (repeats allowed); True: s is a uniform
               draw without replacement, so no symbol repeats (length <= len(alphabet)). Copy
               without repeats cannot be solved by content (find the previous occurrence of the
               current symbol, copy the next one), only by position.
    """

    input_kind = "string"
    alphabet: str = LETTERS
    distinct: bool = False

    def __post_init__(self) -> None:
        # Without repeats a string is at most as long as the alphabet; the instance's limit lets
        # check_length and the evaluation length filter see it (the class keeps None).
        if self.distinct:
            object.__setattr__(self, "max_length", len(self.alphabet))

    def validate(self) -> None:
        """Reject alphabets that clash with the prompt syntax or repeat symbols."""
        if not self.alphabet or "=" in self.alphabet or len(set(self.alphabet)) != len(self.alphabet):
            raise UserError(f"task {self.name!r}: alphabet must be non-empty, unique symbols, without '='")

    def length_limits_reason(self) -> str:
        """Why distinct strings are no longer than the alphabet."""
        return f"distinct symbols of an alphabet of {len(self.alphabet)}" if self.distinct else ""

    def transform(self, s: tuple[str, ...]) -> tuple[str, ...]:
        """The answer for input string s."""
        raise NotImplementedError

    def generate(self, rng: np.random.Generator, n: int, length: int):
        symbols = np.array(list(self.alphabet))
        if self.distinct:  # argsort of uniform noise: a uniform permutation per row, cut to length
            draws = symbols[np.argsort(rng.random((n, len(symbols))), axis=1)[:, :length]]
        else:
            draws = symbols[rng.integers(0, len(symbols), size=(n, length))]
        for row in draws.tolist():
            yield self.build(tuple(row))

    def inputs(self, example) -> tuple[str, ...]:
        """The string s of one of this task's examples (its prompt without the final `=`)."""
        return example.prompt[:-1]

    def build(self, inputs: tuple[str, ...]):
        """(prompt, answer, meta) for the string s."""
        return (*inputs, "="), self.transform(inputs), {}


# How coupled IDs pair an answer with its input (the `id_rule` of copy and reverse and their
# swapcase variants):
#   predictor  [ours] the token that predicts answer j sits at the ID of the input token answer j
#              copies, so attention finds "my own ID";
#   copied     Cho et al. 2024 (their code's layout, RECIPES.md 1.1): answer j carries the ID of the
#              input token it copies, `=` sits at the start ID, and the token with ID p predicts the
#              token with ID p + 1 (copy) or p - 1 (reverse).
#   marked_end [ours, copy only] predictor, with `=` at the start ID and the last answer token at `=`'s
#              ID: the token that predicts `<eos>` then finds `=` at its own ID, as every other answer
#              token finds its source, instead of finding no input at all (the cause of coupled copy's
#              failures beyond the training lengths, experiments/coupling/README.md). `=` predicts
#              answer 1 from the next ID.


@register_task
@dataclass(frozen=True)
class Copy(_StringTask):
    """`abc=` -> `abc`. Coupled IDs (id_rule predictor): input i has ID i; the token predicting
    answer i sits at ID i. id_rule copied: input i has ID i + 1, `=` ID 1, answer i ID i + 1.
    id_rule marked_end: input i has ID i + 1, `=` ID 1; answer i < n sits at ID i + 2 (the ID of the
    input it predicts), answer n at ID 1 (`=`'s, where `<eos>` is found)."""

    name = "copy"
    description = "copy a string of letters (length = characters)"
    id_rule: Literal["predictor", "copied", "marked_end"] = "predictor"

    def transform(self, s):
        return s

    def coupled_positions(self, prompt, answer):
        n = len(answer)
        if self.id_rule == "copied":
            # '=' at the start ID 1 predicts answer 1, the copy of input 1 at ID 2: "predict ID + 1".
            return Positions(0, tuple(range(2, n + 2)) + (1,), tuple(range(2, n + 2)), n + 2)
        if self.id_rule == "marked_end":
            return Positions(0, tuple(range(2, n + 2)) + (1,), tuple(range(3, n + 2)) + (1,), n + 2)
        # '=' predicts answer 1, so it shares ID 1; answer j predicts answer j+1 -> ID j+1.
        return Positions(0, tuple(range(1, n + 1)) + (1,), tuple(range(2, n + 2)), n + 2)


@register_task
@dataclass(frozen=True)
class Reverse(_StringTask):
    """`abc=` -> `cba`. Coupled IDs: answer IDs run backwards over the input IDs."""

    name = "reverse"
    description = "reverse a string of letters (length = characters)"
    id_rule: Literal["predictor", "copied"] = "predictor"

    def transform(self, s):
        return s[::-1]

    def coupled_positions(self, prompt, answer):
        n = len(answer)
        if self.id_rule == "copied":
            # Inputs 1..n, '=' at n+1; answer j copies input n+1-j and carries its ID, so the token
            # with ID p predicts the one at p - 1, down to <eos> at 0 (as Cho et al.'s <bos>/<eos>).
            return Positions(0, tuple(range(1, n + 2)), tuple(range(n, 0, -1)), 0)
        # '=' predicts answer 1 (= input n) -> ID n; answer j predicts input n-j -> ID n-j;
        # the last answer token predicts <eos> from a fresh ID n+1, as in copy.
        answer_ids = tuple(range(n - 1, 0, -1)) + (n + 1,)
        return Positions(0, tuple(range(1, n + 1)) + (n,), answer_ids, n + 2)


@register_task
@dataclass(frozen=True)
class Duplicate(_StringTask):
    """`abc=` -> `abcabc` (NNCH's duplicate_string): the answer is twice the input's length."""

    name = "duplicate"
    description = "write a string of letters twice (length = characters)"

    def transform(self, s):
        return s + s


class _Swapcased:
    """Mixin for the swapcase tasks: each symbol must swap to exactly one character."""

    def validate(self) -> None:
        """The base checks, plus: swapcase keeps one character per symbol (so answer length =
        input length), which some non-ASCII letters break ('ß' -> 'SS')."""
        super().validate()
        if any(len(c.swapcase()) != 1 for c in self.alphabet):
            raise UserError(f"task {self.name!r}: every alphabet symbol must swapcase to one character")


def _swapcase(s: tuple[str, ...]) -> tuple[str, ...]:
    """Flip the case of every symbol (non-letters are unchanged)."""
    return tuple(c.swapcase() for c in s)


# The swapcase tasks subclass copy/reverse only to inherit their coupled IDs: answer j comes
# from the same input token as in copy (resp. reverse), so the pairing is identical.
@register_task
@dataclass(frozen=True)
class Swapcase(_Swapcased, Copy):
    """`aBc=` -> `AbC` (the paper's "capitalize"). Coupled IDs as in copy."""

    name = "swapcase"
    description = "flip the case of each letter (length = characters)"

    def transform(self, s):
        return _swapcase(s)


@register_task
@dataclass(frozen=True)
class SwapcaseReverse(_Swapcased, Reverse):
    """`aBc=` -> `CbA`: swapcase, then reverse. Coupled IDs as in reverse."""

    name = "swapcase_reverse"
    description = "flip the case of each letter, then reverse (length = characters)"

    def transform(self, s):
        return _swapcase(s)[::-1]


@register_task
@dataclass(frozen=True)
class MQAR(Task):
    """Multi-query associative recall (Arora et al. 2023, zoology); layout [ours].

    Prompt `k1 v1 k2 v2 ... kL vL | q1 ... qm =`, answer `val(q1) ... val(qm)`, one token each:
      length L      number of key-value pairs (1..len(key_alphabet))
      keys          L distinct symbols of `key_alphabet`, in random order
      values        one symbol of `value_alphabet` per key, uniform and independent (may repeat)
      queries       `num_queries` = 0: every key once, in random order (m = L);
                    k > 0: k distinct keys in random order (m = k, needs L >= k)
      separator     True: the prompt ends with `=`, as every task's does; False: it ends with
                    the last query. With one query and no separator the answer is read at the
                    query itself, as in an induction head (`A B ... A -> B`); behind `=` the model
                    must first move the query one position on. Measured with one query over 1-4
                    pairs (experiments/probes): with `=`, chance after 9,000 steps; without, a
                    2-layer HF Llama learned it in ~1,000 steps, while 3-layer runs were still on
                    the plateau at 1,500-3,000 (docs/experiments.md).
      eos_in_loss   False (default): the loss is on the answer characters only, as PAPERS.md B3
                    specifies for MQAR, and evaluation judges the answer alone; True: the `<eos>`
                    after the answer is trained and judged, as in every other task. Measured
                    (one query, no `=`, 1-4 pairs, 2 layers, 1,500 steps, same seeds and
                    examples): with `<eos>` in the loss 0 of 9 seeds left the bag-of-values
                    plateau; without it most did (docs/experiments.md, "Why MQAR is not learned").
    Example: `a3Z7k1|kaZ=` -> `137`. meta: {"num_queries": m, "answer_sources": per answer token, the
    prompt index of the value it reads (`[[5], [1], [3]]` here)}.
    """

    name = "mqar"
    description = "multi-query associative recall: key-value pairs, '|', queried keys (length = pairs)"
    # Class-level value for `lengthgen tasks` (the default key alphabet); each instance replaces
    # both limits with ones computed from its own parameters in __post_init__.
    max_length = len(LETTERS)

    key_alphabet: str = LETTERS
    value_alphabet: str = string.digits
    num_queries: int = 0
    separator: bool = True
    # A parameter here (a class-level setting elsewhere): replaces Task.eos_in_loss per instance.
    eos_in_loss: bool = False

    def __post_init__(self) -> None:
        # Keys are distinct, so there can be at most len(key_alphabet) pairs; k queries need at
        # least k pairs. Storing the limits on the instance lets the base check_length and the
        # evaluation length filter (which read task.min/max_length) see them.
        object.__setattr__(self, "max_length", len(self.key_alphabet))
        object.__setattr__(self, "min_length", max(1, self.num_queries))

    def validate(self) -> None:
        """Reject alphabets that clash with the prompt syntax or each other, and bad num_queries."""
        for label, symbols in (("key_alphabet", self.key_alphabet), ("value_alphabet", self.value_alphabet)):
            if not symbols or len(set(symbols)) != len(symbols) or set(symbols) & set("|="):
                raise UserError(f"task {self.name!r}: {label} must be non-empty, unique symbols, without '|' or '='")
        # Disjoint, so that every position's role (key or value) is readable from its symbol.
        if set(self.key_alphabet) & set(self.value_alphabet):
            raise UserError(f"task {self.name!r}: key_alphabet and value_alphabet must not share symbols")
        if not 0 <= self.num_queries <= len(self.key_alphabet):
            raise UserError(
                f"task {self.name!r}: num_queries must be in 0..{len(self.key_alphabet)} "
                f"(0 = query every key), got {self.num_queries}"
            )

    def check_length(self, length: int) -> None:
        """The base range check, with the reason for the limits added to the message."""
        try:
            super().check_length(length)
        except UserError as err:
            raise UserError(
                f"{err} (keys are distinct symbols of key_alphabet, {len(self.key_alphabet)} of them; "
                f"num_queries={self.num_queries})"
            ) from None

    def generate(self, rng: np.random.Generator, n: int, length: int):
        keys, values = np.array(list(self.key_alphabet)), np.array(list(self.value_alphabet))
        m = self.num_queries or length
        # argsort of uniform noise = a uniform random permutation per row; its first columns are
        # then a uniform ordered draw without replacement (vectorized over the n examples).
        key_rows = keys[np.argsort(rng.random((n, len(keys))), axis=1)[:, :length]]
        value_rows = values[rng.integers(0, len(values), size=(n, length))]
        query_rows = np.argsort(rng.random((n, length)), axis=1)[:, :m]
        for k, v, q in zip(key_rows.tolist(), value_rows.tolist(), query_rows.tolist()):
            pairs = [sym for kv in zip(k, v) for sym in kv]
            prompt = (*pairs, "|", *(k[i] for i in q), *(("=",) if self.separator else ()))
            # answer_sources: the prompt index each answer reads, the value after its key (`lengthgen align`).
            yield prompt, tuple(v[i] for i in q), {"num_queries": m, "answer_sources": [[2 * i + 1] for i in q]}
