"""Position coupling and operand padding for the two-operand arithmetic tasks (PAPERS.md A4).

Coupled IDs are checked by significance: digits of a and b of equal significance share one ID,
and the token that predicts answer token j sits at the ID of significance j (copy's shift).
References parse the prompt string and never call the task code."""

import numpy as np
import pytest

from lengthgen.errors import UserError
from lengthgen.positions import PolicySettings, apply_policy
from lengthgen.tasks import example_rng, make_task

TWO_OPERAND = ["reverse_add", "no_carry", "carry_only", "reverse_sub", "copy_first_op"]
OPERATOR = {"reverse_sub": "-"}
LENGTHS = [1, 2, 5, 17]


def split(prompt: str, op: str) -> tuple[str, str]:
    assert prompt.endswith("=") and prompt.count(op) == 1
    a_rev, b_rev = prompt[:-1].split(op)
    return a_rev, b_rev


def reference_answer(task: str, a_rev: str, b_rev: str) -> str:
    """Answer from the operands as written (padding zeros included), by schoolbook columns."""
    w = max(len(a_rev), len(b_rev))
    xs = [int(c) for c in a_rev.ljust(w, "0")]
    ys = [int(c) for c in b_rev.ljust(w, "0")]
    if task == "copy_first_op":
        return a_rev
    if task == "no_carry":
        return "".join(str((x + y) % 10) for x, y in zip(xs, ys)) + "0"
    if task in ("reverse_add", "carry_only"):
        out, carries, c = [], ["0"], 0
        for x, y in zip(xs, ys):
            out.append(str((x + y + c) % 10))
            c = (x + y + c) // 10
            carries.append(str(c))
        return "".join(out) + str(c) if task == "reverse_add" else "".join(carries)
    # reverse_sub: via Python integers on the un-reversed strings.
    a, b = int(a_rev[::-1]), int(b_rev[::-1])
    return str(abs(a - b))[::-1].ljust(w + 1, "0") + ("-" if a < b else "")


def significance_ids(ex, op):
    """Map (operand, significance) -> coupled ID, read off the prompt by character class."""
    prompt = "".join(ex.prompt)
    a_rev, b_rev = split(prompt, op)
    ids = ex.coupled.prompt
    a_ids = {i: ids[i] for i in range(len(a_rev))}
    b_ids = {i: ids[len(a_rev) + 1 + i] for i in range(len(b_rev))}
    return a_rev, b_rev, a_ids, b_ids


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize("name", TWO_OPERAND)
@pytest.mark.parametrize("pad", [False, True])
def test_equal_significance_shares_an_id(seed, length, name, pad):
    op = OPERATOR.get(name, "+")
    task = make_task(name, {"pad_operands": pad})
    assert task.supports_coupling
    for ex in task.sample(np.random.default_rng(seed), 40, length):
        a_rev, b_rev, a_ids, b_ids = significance_ids(ex, op)
        width = max(len(a_rev), len(b_rev))
        assert width == length
        if pad:
            assert len(a_rev) == len(b_rev) == length
        assert "".join(ex.answer) == reference_answer(name, a_rev, b_rev)
        # One ID per significance, shared by both operands, distinct across significances.
        by_sig = {}
        for sig, i in [*a_ids.items(), *b_ids.items()]:
            by_sig.setdefault(sig, set()).add(i)
        assert all(len(v) == 1 for v in by_sig.values())
        sig_id = {s: next(iter(v)) for s, v in by_sig.items()}
        assert len(set(sig_id.values())) == len(sig_id)
        # Copy's shift: the predictor of answer token j ('=' for j = 0) sits at significance j's
        # ID; significances past the operands (carry, '-') continue one ID per place.
        ids = ex.coupled
        predictors = [ids.prompt[-1], *ids.answer[:-1]]
        for j, pid in enumerate(predictors):
            if j in sig_id:
                assert pid == sig_id[j]
            else:
                assert pid == sig_id[width - 1] + (j - width + 1)
                assert pid not in sig_id.values()
        assert ids.answer[-1] == predictors[-1] + 1 and ids.eos == ids.answer[-1] + 1 and ids.bos == 0
        # Coupled IDs do not grow with the prompt: the largest is about the answer length.
        assert max(ids.as_array()) <= max(width + 1, len(ex.answer) + 2)


def test_worked_examples():
    task = make_task("reverse_add")
    ids = task.coupled_positions(tuple("9874+365="), tuple("25350"))
    assert list(ids.as_array()) == [0, 1, 2, 3, 4, 5, 1, 2, 3, 1, 2, 3, 4, 5, 6, 7]
    # Padded: the padding zero of b takes the ID of significance 3, like a's 4.
    ids = task.coupled_positions(tuple("9874+3650="), tuple("25350"))
    assert ids.prompt == (1, 2, 3, 4, 5, 1, 2, 3, 4, 1)
    # Negative subtraction: the trailing '-' is one more place.
    ids = make_task("reverse_sub").coupled_positions(tuple("365-9874="), tuple("62240-"))
    assert ids.prompt[-1] == 1 and ids.answer == (2, 3, 4, 5, 6, 7) and ids.eos == 8


@pytest.mark.parametrize("name", TWO_OPERAND)
def test_padding_changes_only_the_prompt(name):
    plain = make_task(name).sample(np.random.default_rng(7), 50, 6)
    padded = make_task(name, {"pad_operands": True}).sample(np.random.default_rng(7), 50, 6)
    op = OPERATOR.get(name, "+")
    for p, q in zip(plain, padded):
        assert p.meta == q.meta  # same operands: padding draws nothing extra
        a_p, b_p = split("".join(p.prompt), op)
        a_q, b_q = split("".join(q.prompt), op)
        assert a_q.rstrip("0") == a_p.rstrip("0") and a_q.startswith(a_p) and b_q.startswith(b_p)
        assert set(a_q[len(a_p):] + b_q[len(b_p):]) <= {"0"}
        if name == "copy_first_op":
            assert "".join(q.answer) == a_q
        else:
            assert p.answer == q.answer
            assert p.coupled.answer == q.coupled.answer


def test_coupled_policies_fit_small_max_position_at_long_lengths():
    # The point of coupling: 60-digit additions (prompt 122 tokens) fit max_position 64.
    examples = make_task("reverse_add", {"pad_operands": True}).sample(np.random.default_rng(0), 10, 60)
    out = apply_policy(examples, "coupled_random_offset", np.random.default_rng(1), PolicySettings(max_position=64))
    assert all(ex.positions.as_array().max() < 64 for ex in out)


def test_mult_cot_stays_uncoupled_and_unpadded():
    task = make_task("mult_cot")
    assert not task.supports_coupling
    with pytest.raises(UserError, match="no parameter 'pad_operands'"):
        make_task("mult_cot", {"pad_operands": True})
    with pytest.raises(UserError, match="must be bool"):
        make_task("reverse_add", {"pad_operands": "yes"})


@pytest.mark.parametrize("name", TWO_OPERAND)
def test_same_seed_same_examples_with_padding(name):
    task = make_task(name, {"pad_operands": True})
    first = task.sample(example_rng(3, "eval", name, 9), 20, 9)
    again = task.sample(example_rng(3, "eval", name, 9), 20, 9)
    other = task.sample(example_rng(4, "eval", name, 9), 20, 9)
    assert first == again and first != other


def test_malformed_prompt_is_a_clear_error():
    with pytest.raises(UserError, match=r"coupled IDs need a prompt 'a\+b='"):
        make_task("reverse_add").coupled_positions(("1",), ("1",))
