"""Variable assignment (PAPERS.md A5): the showcase task for Predictive Position Coupling.

`a=3;c=7;b=1;?cab=` -> `731`. Each answer token copies the value of one queried variable, so the
position ID it should be coupled to depends on the input (where that variable's statement is),
not on lengths alone: plain position coupling cannot supply it at test time, PPC must predict it.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

import numpy as np

from ..errors import UserError
from .base import Positions, Task, register_task

LETTERS = string.ascii_lowercase + string.ascii_uppercase
# Characters with a fixed role in the layout; names and values must avoid them.
SYNTAX = "=;?"


@register_task
@dataclass(frozen=True)
class VariableAssignment(Task):
    """`a=3;c=7;b=1;?cab=` -> `731`: statements, then queried names, answer their values.

    Layout [ours where PAPERS.md is silent]: length L = number of statements. Statement i is the
    four tokens `name = rhs ;`; then `?`, the queried names, and a final `=` that separates the
    query from the answer (the example in PAPERS.md has no final separator; one is needed so the
    model knows where the answer starts, and `=` is what every other task uses). The answer is
    one value per queried name, in query order.

    Parameters:
      names     [ours, default a-zA-Z] symbols for variable names; the L names of an example are
                distinct, drawn uniformly without replacement, so L <= len(names)
      values    [ours, default 0-9] symbols for values, uniform and independent (may repeat);
                disjoint from names so that `b=a` (a reference) and `b=3` (a value) differ
      queries   0 (default): every variable once, in random order; q > 0: q distinct variables
                in random order (needs L >= q)
      hops      1 (default): every statement assigns a value. h > 1: a statement may instead copy
                an earlier variable (`b=a`), giving chains of up to h statements; the answer is
                the value at the chain's end [ours]
      ref_prob  [ours, default 0.5, used only with hops > 1] probability that a statement after
                the first is a reference, when some earlier variable has a chain shorter than
                hops (the referenced one is uniform among those); otherwise it assigns a value
    meta: {"num_queries": q, "depths": chain length of each queried variable (hops > 1 only)}.

    Coupled IDs (input-dependent; copy's convention from the second answer on): prompt tokens,
    the final `=` included, have IDs 1, 2, ..., P in order; answer token j-1, which predicts
    answer j (j >= 2), sits at the ID of the value token that answer j reads (for a chain, the
    value at its end); the last answer token, which predicts <eos>, gets ID P + 1 and <eos>
    P + 2. [ours] The `=` keeps its own consecutive ID instead of the first value's ID: the
    prompt is given at test time, so an answer-dependent ID there would hand PPC one ground-truth
    ID per example; the first answer is read by content, every later ID must be predicted.
    """

    name = "variable_assignment"
    description = "variable assignment 'a=3;c=7;?ca=' -> '73' (length = statements)"
    # Class-level value for `lengthgen tasks` (the default names); instances recompute both
    # limits from their own parameters in __post_init__.
    max_length = len(LETTERS)

    names: str = LETTERS
    values: str = string.digits
    queries: int = 0
    hops: int = 1
    ref_prob: float = 0.5

    def __post_init__(self) -> None:
        # Names are distinct, so at most len(names) statements; q queries need q statements.
        # Stored on the instance (as mqar does) so check_length and the evaluation length
        # filter, which read task.min/max_length, see them.
        object.__setattr__(self, "max_length", len(self.names))
        object.__setattr__(self, "min_length", max(1, self.queries))

    def validate(self) -> None:
        """Reject symbol sets that clash with the layout or each other, and bad counts."""
        for label, symbols in (("names", self.names), ("values", self.values)):
            if not symbols or len(set(symbols)) != len(symbols) or set(symbols) & set(SYNTAX):
                raise UserError(
                    f"task {self.name!r}: {label} must be non-empty, unique symbols, without any of {SYNTAX!r}"
                )
        if set(self.names) & set(self.values):
            raise UserError(f"task {self.name!r}: names and values must not share symbols")
        if not 0 <= self.queries <= len(self.names):
            raise UserError(
                f"task {self.name!r}: queries must be in 0..{len(self.names)} (0 = query every variable), "
                f"got {self.queries}"
            )
        if self.hops < 1:
            raise UserError(f"task {self.name!r}: hops must be >= 1 (1 = no references), got {self.hops}")
        if not 0.0 <= self.ref_prob <= 1.0:
            raise UserError(f"task {self.name!r}: ref_prob must be in [0, 1], got {self.ref_prob}")

    def length_limits_reason(self) -> str:
        """The limits come from the distinct names and the number of queries."""
        return f"variable names are distinct symbols of names, {len(self.names)} of them; queries={self.queries}"

    def generate(self, rng: np.random.Generator, n: int, length: int):
        """n (prompt, answer, meta) triples; length = number of statements."""
        names, values = np.array(list(self.names)), np.array(list(self.values))
        q = self.queries or length
        # argsort of uniform noise = a uniform permutation per row (vectorized ordered draws
        # without replacement, as in mqar).
        name_rows = names[np.argsort(rng.random((n, len(names))), axis=1)[:, :length]].tolist()
        value_rows = values[rng.integers(0, len(values), size=(n, length))].tolist()
        query_rows = np.argsort(rng.random((n, length)), axis=1)[:, :q].tolist()
        for var, val, picks in zip(name_rows, value_rows, query_rows):
            rhs, depth, resolved = list(val), [1] * length, list(val)
            if self.hops > 1:
                for i in range(1, length):
                    # Only variables with room left in their chain can be referenced.
                    open_ = [j for j in range(i) if depth[j] < self.hops]
                    if open_ and rng.random() < self.ref_prob:
                        j = open_[int(rng.integers(0, len(open_)))]
                        rhs[i], depth[i], resolved[i] = var[j], depth[j] + 1, resolved[j]
            statements = [tok for i in range(length) for tok in (var[i], "=", rhs[i], ";")]
            prompt = (*statements, "?", *(var[i] for i in picks), "=")
            meta = {"num_queries": q}
            if self.hops > 1:
                meta["depths"] = [depth[i] for i in picks]
            yield prompt, tuple(resolved[i] for i in picks), meta

    def value_ids(self, prompt: tuple[str, ...]) -> list[int]:
        """Consecutive ID of the value token each queried name reads (chains followed)."""
        query_at = prompt.index("?")
        # Statement i occupies prompt[4i : 4i+4]; its right-hand side has ID 4i + 3.
        source: dict[str, int] = {}
        for i in range(query_at // 4):
            name, rhs = prompt[4 * i], prompt[4 * i + 2]
            # A reference reads whatever its target reads; a value is read at its own ID.
            source[name] = source[rhs] if rhs in source else 4 * i + 3
        return [source[name] for name in prompt[query_at + 1 : -1]]

    def coupled_positions(self, prompt, answer):
        """See the class docstring: the prompt is consecutive; each answer token sits at the ID
        of the value the next answer reads."""
        p = len(prompt)
        reads = self.value_ids(prompt)
        return Positions(0, tuple(range(1, p + 1)), tuple(reads[1:]) + (p + 1,), p + 2)
