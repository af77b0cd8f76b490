"""Arithmetic tasks in the reversed (least-significant digit first) format of Paper B (B3).

Every prompt is `<a reversed><op><b reversed>=`; every number in an answer is written least-
significant digit first as well. Worked examples use a=4789, b=563 (prompt `9874+365=`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..errors import UserError
from .base import Positions, Task, register_task


def _draw_numbers(rng: np.random.Generator, n: int, digits: np.ndarray) -> list[int]:
    """n integers with exactly digits[i] decimal digits each (leading digit non-zero)."""
    out = []
    for d in digits.tolist():
        lead = int(rng.integers(1, 10))
        rest = rng.integers(0, 10, size=d - 1).tolist()
        out.append(int(str(lead) + "".join(map(str, rest))))
    return out


def reversed_digits(value: int, width: int) -> str:
    """Digits of value least-significant first, zero-padded on the right to `width`."""
    return str(value)[::-1].ljust(width, "0")


def _digit_columns(a: int, b: int, width: int) -> list[tuple[int, int]]:
    """(digit of a, digit of b) per position, least significant first, zero-padded to `width`."""
    return [(int(x), int(y)) for x, y in zip(reversed_digits(a, width), reversed_digits(b, width))]


@dataclass(frozen=True)
class _OperandTask(Task):
    """Shared machinery: two random operands written reversed around `operator`, then `=`.

    Subclasses choose how many digits each operand gets (`digit_counts`) and what the answer is
    (`answer`); meta records the operands as {"a": a, "b": b}. Every such task takes the inputs
    (a, b), so each can re-label another's examples (`tasks.base.relabel`).
    """

    operator = "+"
    input_kind = "operands"

    def digit_counts(self, rng: np.random.Generator, n: int, length: int) -> tuple[np.ndarray, np.ndarray]:
        """Digit counts of the first and second operand of each of the n examples."""
        raise NotImplementedError

    def answer(self, a: int, b: int, width: int) -> str:
        """Answer string for operands a, b whose longer one has `width` digits."""
        raise NotImplementedError

    def operand_strings(self, a: int, b: int, width: int) -> tuple[str, str]:
        """How a and b are written in the prompt: reversed, unpadded (subclasses may pad)."""
        return str(a)[::-1], str(b)[::-1]

    def generate(self, rng: np.random.Generator, n: int, length: int):
        """n (prompt, answer, meta) triples; see `digit_counts` for what `length` means."""
        first, second = self.digit_counts(rng, n, length)
        a_values = _draw_numbers(rng, n, first)
        b_values = _draw_numbers(rng, n, second)
        for a, b in zip(a_values, b_values):
            yield self.build((a, b))

    def inputs(self, example) -> tuple[int, int]:
        """The operands (a, b) of one of this task's examples."""
        return example.meta["a"], example.meta["b"]

    def build(self, inputs: tuple[int, int]):
        """(prompt, answer, meta) for operands (a, b)."""
        a, b = inputs
        width = max(len(str(a)), len(str(b)))
        a_text, b_text = self.operand_strings(a, b, width)
        prompt = f"{a_text}{self.operator}{b_text}="
        return tuple(prompt), tuple(self.answer(a, b, width)), {"a": a, "b": b}


@dataclass(frozen=True)
class _TwoOperandTask(_OperandTask):
    """Two operands written reversed: `a+b=`. Length = max operand digits.

    operand_digits: 'mixed' (training default): one operand has exactly `length` digits and the
    other a uniform 1..length, in random order, so operand lengths vary independently;
    'equal': both have exactly `length` digits (the test protocol, applied at evaluation).
    pad_operands (default False): zero-pad the shorter operand to the longer one's digits, on
    its most-significant end (the right, since digits are reversed): `9874+3650=` for
    4789+563, as in Cho et al. 2024. Only prompts change; answers keep their format
    (copy_first_op copies the operand as written, padding included).

    Coupled IDs (position coupling, PAPERS.md A4; [ours] for the operator and the answer's
    last token), defined by significance so they work with and without padding: digit i
    (least significant = 0) of a and of b get ID i+1; the operator gets ID digits(a)+1 (it
    ends operand a, one place past its last digit); answer token j stands for significance j
    (for reverse_sub the trailing `-` is significance width+1), and, as in copy, the token
    that predicts it sits at ID j+1: `=` at ID 1, answer token j at ID j+2 for all but the
    last; the last answer token (which predicts <eos>) gets ID len(answer)+1 and <eos>
    len(answer)+2. The carry digit (significance = width) is predicted from ID width+1, one
    past the operands' digits. Example (unpadded) `9874+365=` -> `25350`: IDs 1 2 3 4 5 1 2 3
    1 | answer 2 3 4 5 6 | <eos> 7.
    """

    operand_digits: Literal["mixed", "equal"] = "mixed"
    pad_operands: bool = False
    eval_overrides = {"operand_digits": "equal"}

    def operand_strings(self, a: int, b: int, width: int) -> tuple[str, str]:
        """Reversed operands, zero-padded to `width` digits when pad_operands is set."""
        pad = width if self.pad_operands else 0
        return reversed_digits(a, pad), reversed_digits(b, pad)

    def coupled_positions(self, prompt, answer):
        """Digits of equal significance share an ID; see the class docstring."""
        if prompt.count(self.operator) != 1 or prompt[-1:] != ("=",):
            raise UserError(
                f"task {self.name!r}: coupled IDs need a prompt 'a{self.operator}b=', got {''.join(prompt)!r}"
            )
        a_digits = prompt.index(self.operator)
        b_digits = len(prompt) - a_digits - 2  # minus the operator and the final '='
        prompt_ids = (*range(1, a_digits + 2), *range(1, b_digits + 1), 1)
        n = len(answer)
        return Positions(0, tuple(prompt_ids), tuple(range(2, n + 2)), n + 2)

    def digit_counts(self, rng: np.random.Generator, n: int, length: int) -> tuple[np.ndarray, np.ndarray]:
        """'equal': both `length`; 'mixed': one `length`, the other U[1, length], random order."""
        first = np.full(n, length)
        second = np.full(n, length)
        if self.operand_digits == "mixed":
            other = rng.integers(1, length + 1, size=n)
            swap = rng.random(n) < 0.5
            first = np.where(swap, other, length)
            second = np.where(swap, length, other)
        return first, second


@register_task
@dataclass(frozen=True)
class ReverseAdd(_TwoOperandTask):
    """`9874+365=` -> `25350`: 4789+563=5352 written reversed, padded with 0 to max digits + 1."""

    name = "reverse_add"
    description = "addition, digits least-significant first (length = max operand digits)"

    def answer(self, a, b, width):
        """a+b reversed, zero-padded to width+1."""
        return reversed_digits(a + b, width + 1)


@register_task
@dataclass(frozen=True)
class NoCarry(_TwoOperandTask):
    """`9874+365=` -> `24240`: digit-wise sum mod 10 of the zero-padded reversed operands
    (9+3, 8+6, 7+5, 4+0 -> 2 4 2 4), then a trailing 0, so the answer has max digits + 1
    characters like reverse_add's. Prompts are byte-identical to reverse_add's (B1 markers)."""

    name = "no_carry"
    description = "digit-wise sum mod 10, no carries (reverse_add auxiliary)"

    def answer(self, a, b, width):
        """Per-position (a_i + b_i) mod 10, least significant first, then '0'."""
        return "".join(str((x + y) % 10) for x, y in _digit_columns(a, b, width)) + "0"


@register_task
@dataclass(frozen=True)
class CarryOnly(_TwoOperandTask):
    """`9874+365=` -> `01110`: the carry (0/1) INTO each position 0..max digits of a+b, least
    significant first; position 0 always gets 0, so the answer has max digits + 1 characters."""

    name = "carry_only"
    description = "the carry into each digit position of a+b (reverse_add auxiliary)"

    def answer(self, a, b, width):
        """Carries into positions 0..width of the reversed addition."""
        carries, carry = ["0"], 0
        for x, y in _digit_columns(a, b, width):
            carry = (x + y + carry) // 10
            carries.append(str(carry))
        return "".join(carries)


@register_task
@dataclass(frozen=True)
class ReverseSub(_TwoOperandTask):
    """`9874-365=` -> `62240`: |a-b| = 4226 written reversed, zero-padded to max digits + 1.

    Negative results [ours: the paper only says they "end with `-`"]: the same zero-padded
    reversed |a-b|, then `-` appended, so `365-9874=` -> `62240-` (one character longer).
    In 'mixed' mode the longer operand is second about half the time, so both signs are common.
    """

    name = "reverse_sub"
    operator = "-"
    description = "subtraction a-b, reversed, negative results end with '-' (reverse_add auxiliary)"
    # [ours] 'nonneg' (a >= b) or 'neg' (a < b) keeps one sign only, by swapping the operands, so that
    # evaluation can score the two slices apart (`eval_grid: {sign: [nonneg, neg]}`); 'any' is the paper's.
    sign: Literal["any", "nonneg", "neg"] = "any"

    def generate(self, rng: np.random.Generator, n: int, length: int):
        """As every two-operand task; with `sign` set, operands swapped into the wanted order (a draw
        with a == b, which has no negative order, is drawn again for 'neg')."""
        if self.sign == "any":
            yield from super().generate(rng, n, length)
            return
        first, second = self.digit_counts(rng, n, length)
        for a, b, digits in zip(_draw_numbers(rng, n, first), _draw_numbers(rng, n, second), second):
            while self.sign == "neg" and a == b:
                b = _draw_numbers(rng, 1, np.array([digits]))[0]
            if (a < b) != (self.sign == "neg"):
                a, b = b, a
            yield self.build((a, b))

    def answer(self, a, b, width):
        """|a-b| reversed, zero-padded to width+1, with '-' appended when a < b."""
        return reversed_digits(abs(a - b), width + 1) + ("-" if a < b else "")


@register_task
@dataclass(frozen=True)
class CopyFirstOp(_TwoOperandTask):
    """`9874+365=` -> `9874`: the first operand exactly as written in the prompt (reversed).
    A control auxiliary for reverse_add: same prompts, unrelated computation (B2)."""

    name = "copy_first_op"
    description = "copy the first operand of an addition prompt (control auxiliary)"

    def answer(self, a, b, width):
        """a reversed, as written in the prompt (zero-padded to width when pad_operands)."""
        return reversed_digits(a, width if self.pad_operands else 0)


@register_task
@dataclass(frozen=True)
class MultCot(_OperandTask):
    """n x k multiplication with chain of thought: `9874*365=` -> `76341+043782+0054932=7026962`.

    The first operand has exactly `length` digits (the n of "n x 3"; [ours] length = n even
    when n < second_digits), the second exactly `second_digits` (default 3); both leading digits
    non-zero. Training and evaluation use these exact lengths, so there is no 'mixed' mode and
    no eval override. For each digit d_i of b (least significant first) the partial product
    a*d_i*10^i is written reversed (starting with i zeros), joined by `+`, then `=` and a*b
    reversed: 4789*3=14367 -> `76341`, 4789*60=287340 -> `043782`, 4789*500 -> `0054932`,
    4789*563=2696207 -> `7026962`.
    pad [ours, default True]: partial i is zero-padded to digits(a)+1+i characters and the
    product to digits(a)+digits(b), so the layout depends on the lengths alone; False writes
    the natural digits (a zero partial is then i+1 zeros).
    """

    name = "mult_cot"
    operator = "*"
    description = "n x 3 multiplication with reversed partial products as chain of thought"
    second_digits: int = 3
    pad: bool = True

    def validate(self) -> None:
        """Reject a second operand without digits."""
        if self.second_digits < 1:
            raise UserError(f"task {self.name!r}: second_digits must be >= 1, got {self.second_digits}")

    def digit_counts(self, rng: np.random.Generator, n: int, length: int) -> tuple[np.ndarray, np.ndarray]:
        """First operand exactly `length` digits, second exactly `second_digits`."""
        return np.full(n, length), np.full(n, self.second_digits)

    def _number(self, value: int, width: int) -> str:
        """value reversed, zero-padded to width when `pad` is set."""
        return reversed_digits(value, width if self.pad else 0)

    def answer(self, a, b, width):
        """Reversed shifted partial products joined by '+', then '=' and the reversed product."""
        n, m = len(str(a)), len(str(b))
        partials = [
            "0" * i + self._number(a * int(d), n + 1) for i, d in enumerate(str(b)[::-1])
        ]
        return "+".join(partials) + "=" + self._number(a * b, n + m)
