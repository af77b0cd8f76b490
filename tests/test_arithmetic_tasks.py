"""Arithmetic tasks of Paper B (B3): labels against independent references, worked examples,
negative subtraction, determinism, vocabulary coverage. References parse the prompt string and use
Python integers / string manipulation only, never the task code."""

import numpy as np
import pytest

from lengthgen.errors import UserError
from lengthgen.tasks import example_rng, make_task
from lengthgen.vocab import Vocab

from references import REFERENCES, parse, ref_mult_cot, ref_reverse_sub

TWO_OPERAND = ["reverse_add", "no_carry", "carry_only", "reverse_sub", "copy_first_op"]
ALL = [*TWO_OPERAND, "mult_cot"]
LENGTHS = [1, 2, 5, 17]
SEEDS = [0, 1, 2]
OPERATOR = {"reverse_sub": "-", "mult_cot": "*"}


@pytest.mark.parametrize("name", TWO_OPERAND)
@pytest.mark.parametrize("mode", ["mixed", "equal"])
@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize("seed", SEEDS)
def test_two_operand_labels_match_references(name, mode, length, seed):
    task = make_task(name, {"operand_digits": mode})
    op = OPERATOR.get(name, "+")
    for ex in task.sample(np.random.default_rng(seed), 40, length):
        prompt, answer = "".join(ex.prompt), "".join(ex.answer)
        assert answer == REFERENCES[name](prompt)
        a_rev, b_rev, a, b = parse(prompt, op)
        assert max(len(a_rev), len(b_rev)) == length  # length = max operand digits
        assert a_rev[-1] != "0" and b_rev[-1] != "0"  # leading digits non-zero
        assert ex.meta == {"a": a, "b": b}
        if mode == "equal":
            assert len(a_rev) == len(b_rev) == length
        if name in ("reverse_add", "no_carry", "carry_only"):
            assert len(answer) == length + 1


@pytest.mark.parametrize("params", [{}, {"second_digits": 1}, {"second_digits": 4}, {"pad": False}])
@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize("seed", SEEDS)
def test_mult_cot_labels_match_reference(params, length, seed):
    task = make_task("mult_cot", params)
    m = params.get("second_digits", 3)
    for ex in task.sample(np.random.default_rng(seed), 40, length):
        prompt, answer = "".join(ex.prompt), "".join(ex.answer)
        assert answer == ref_mult_cot(prompt, pad=params.get("pad", True))
        a_rev, b_rev, a, b = parse(prompt, "*")
        assert len(a_rev) == length and len(b_rev) == m  # exact lengths, no mixing
        assert a_rev[-1] != "0" and b_rev[-1] != "0"
        assert ex.meta == {"a": a, "b": b}
        # The chain of thought is arithmetically consistent: partials sum to the product.
        steps, product = answer.split("=")
        partials = steps.split("+")
        assert len(partials) == m
        assert sum(int(p[::-1]) for p in partials) == int(product[::-1]) == a * b


def test_paper_worked_examples():
    # PAPERS.md B3, operands 4789 and 563 (prompt `9874+365=`).
    expected = {
        "reverse_add": "25350",
        "no_carry": "24240",
        "carry_only": "01110",
        "reverse_sub": "62240",
        "copy_first_op": "9874",
        "mult_cot": "76341+043782+0054932=7026962",
    }
    for name, answer in expected.items():
        assert make_task(name).answer(4789, 563, 4) == answer
        op = OPERATOR.get(name, "+")
        assert REFERENCES[name](f"9874{op}365=") == answer  # the references agree with the paper
    assert make_task("reverse_sub").answer(563, 4789, 4) == "62240-"
    assert make_task("mult_cot", {"pad": False}).answer(1000, 203, 4) == "0003+00+000002=000302"


@pytest.mark.parametrize("mode", ["mixed", "equal"])
def test_negative_subtraction_results_appear(mode):
    task = make_task("reverse_sub", {"operand_digits": mode})
    signs = {"neg": 0, "pos": 0}
    for ex in task.sample(np.random.default_rng(0), 300, 5):
        prompt, answer = "".join(ex.prompt), "".join(ex.answer)
        negative = ex.meta["a"] < ex.meta["b"]
        signs["neg" if negative else "pos"] += 1
        assert answer.endswith("-") == negative and answer.count("-") == int(negative)
        assert len(answer) == 6 + negative
        assert answer == ref_reverse_sub(prompt)
    assert signs["neg"] > 50 and signs["pos"] > 50


@pytest.mark.parametrize("mode", ["mixed", "equal"])
def test_subtraction_sign_slices_hold_one_sign_and_the_same_digit_counts(mode):
    """`sign` keeps a >= b or a < b (the slices issue 28 scores apart), by swapping the operands."""
    anything = make_task("reverse_sub", {"operand_digits": mode})
    for sign, negative in (("nonneg", False), ("neg", True)):
        task = make_task("reverse_sub", {"operand_digits": mode, "sign": sign})
        for length in (1, 3, 6):
            examples = task.sample(np.random.default_rng(length), 200, length)
            assert all((ex.meta["a"] < ex.meta["b"]) == negative for ex in examples)
            assert all("".join(ex.answer) == ref_reverse_sub("".join(ex.prompt)) for ex in examples)
            # Swapping keeps each example's pair of digit counts: the same lengths as the unsliced task.
            widths = {max(len(str(ex.meta["a"])), len(str(ex.meta["b"]))) for ex in examples}
            unsliced = {max(len(str(ex.meta["a"])), len(str(ex.meta["b"])))
                        for ex in anything.sample(np.random.default_rng(length), 200, length)}
            assert widths == unsliced == {length}
    with pytest.raises(UserError, match="must be one of"):
        make_task("reverse_sub", {"sign": "positive"})


@pytest.mark.parametrize("name", TWO_OPERAND)
def test_mixed_operands_vary_both_ways(name):
    shapes = set()
    for ex in make_task(name).sample(np.random.default_rng(0), 300, 6):
        a_rev, b_rev, _, _ = parse("".join(ex.prompt), OPERATOR.get(name, "+"))
        shapes.add((len(a_rev) < 6, len(b_rev) < 6))
    assert {(True, False), (False, True), (False, False)} <= shapes


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("split", ["train", "eval"])
def test_determinism_per_seed(name, split):
    task = make_task(name)
    if split == "eval":
        task = task.with_params(**task.eval_overrides)
    first = task.sample(example_rng(7, split, name, 5), 30, 5)
    assert first == task.sample(example_rng(7, split, name, 5), 30, 5)
    assert first != task.sample(example_rng(8, split, name, 5), 30, 5)


@pytest.mark.parametrize("name", ALL)
def test_vocabulary_covers_prompts_and_answers(name):
    vocab = Vocab.default()
    task = make_task(name)
    for length in LENGTHS:
        for ex in task.sample(np.random.default_rng(length), 20, length):
            for tokens in (ex.prompt, ex.answer):
                text = "".join(tokens)
                assert vocab.tokenize(text) == list(tokens)  # one character, one token
                assert vocab.decode(vocab.encode(text)) == text


def test_eval_overrides_and_parameters():
    for name in TWO_OPERAND:
        assert make_task(name).eval_overrides == {"operand_digits": "equal"}
    assert make_task("mult_cot").eval_overrides == {}
    with pytest.raises(UserError, match="no parameter 'operand_digits'"):
        make_task("mult_cot", {"operand_digits": "equal"})
    with pytest.raises(UserError, match="second_digits must be >= 1"):
        make_task("mult_cot", {"second_digits": 0})
    with pytest.raises(UserError, match="must be one of"):
        make_task("reverse_sub", {"operand_digits": "odd"})
