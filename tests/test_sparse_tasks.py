"""sparse_parity, sparse_sum and offset_parity (PAPERS.md A1-A3): labels recomputed from the prompt
text, mark counts and windows, the k_max mixture, coupled IDs, determinism and parameter errors.
References parse the prompt string only; they never call the task code."""

import numpy as np
import pytest

from lengthgen.errors import UserError
from lengthgen.tasks import TASKS, example_rng, make_task

from references import parse_marked, ref_marked_sum, ref_offset_parity

LENGTHS = [1, 2, 5, 13, 40]
SEEDS = [0, 1, 2]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("length", LENGTHS)
def test_sparse_parity_labels_and_marks(seed, length):
    rng = np.random.default_rng(seed)
    for k in (1, 2, 4):
        if length < k:
            continue
        for ex in make_task("sparse_parity", {"k": k}).sample(rng, 60, length):
            prompt = "".join(ex.prompt)
            # Parity uses exactly the symbols of PAPERS.md A1.
            assert set(prompt) <= set("01AB=") and len(prompt) == length + 1
            _, marked = parse_marked(prompt)
            assert len(marked) == k == ex.meta["k"]
            assert marked == ex.meta["marked"]
            # XOR written as counting B's: the parity of the number of marked ones.
            assert "".join(ex.answer) == str(prompt.count("B") % 2)
            assert len(ex.answer) == 1 and ex.coupled is None


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize("modulus", [3, 7, 10])
def test_sparse_sum_labels_and_symbols(seed, length, modulus):
    rng = np.random.default_rng(seed)
    k = min(3, length)
    for ex in make_task("sparse_sum", {"k": k, "modulus": modulus}).sample(rng, 60, length):
        prompt = "".join(ex.prompt)
        values, marked = parse_marked(prompt)
        assert all(0 <= v < modulus for v in values)
        assert len(marked) == k == ex.meta["k"]
        assert "".join(ex.answer) == ref_marked_sum(prompt, modulus)


def test_sparse_sum_default_modulus_and_value_coverage():
    task = make_task("sparse_sum")
    assert task.modulus == 10 and task.k == 2
    examples = task.sample(np.random.default_rng(0), 300, 12)
    text = "".join("".join(ex.prompt) for ex in examples)
    assert set("0123456789") <= set(text) and set("ABCDEFGHIJ") <= set(text)
    assert {ex.answer[0] for ex in examples} == set("0123456789")


@pytest.mark.parametrize("name", ["sparse_parity", "sparse_sum"])
@pytest.mark.parametrize("length", [3, 4, 9, 30])
def test_marks_stay_inside_the_locality_window(name, length):
    locality = 4
    starts = set()
    for ex in make_task(name, {"k": 3, "locality": locality}).sample(np.random.default_rng(5), 200, length):
        _, marked = parse_marked("".join(ex.prompt))
        assert len(marked) == 3
        assert marked[-1] - marked[0] < locality
        starts.add(marked[0])
    if length >= 9:
        assert len(starts) > 3  # the window moves around the input


def test_marks_without_locality_spread_over_the_input():
    first, last, spans = set(), set(), set()
    for ex in make_task("sparse_parity", {"k": 2}).sample(np.random.default_rng(0), 400, 20):
        _, marked = parse_marked("".join(ex.prompt))
        first.add(marked[0])
        last.add(marked[1])
        spans.add(marked[1] - marked[0])
    # Both ends of the input get marked, and pairs are near and far apart.
    assert 0 in first and 19 in last
    assert min(spans) == 1 and max(spans) > 15


def test_k_max_mixture_draws_every_k():
    task = make_task("sparse_parity", {"k_max": 6})
    ks = []
    for ex in task.sample(np.random.default_rng(0), 600, 10):
        _, marked = parse_marked("".join(ex.prompt))
        assert len(marked) == ex.meta["k"]
        assert "".join(ex.answer) == ref_marked_sum("".join(ex.prompt), 2)
        ks.append(ex.meta["k"])
    assert set(ks) == {1, 2, 3, 4, 5, 6}
    # Clipping (the default): short inputs only carry as many marks as they have items.
    short = [ex.meta["k"] for ex in task.sample(np.random.default_rng(0), 200, 3)]
    assert set(short) == {1, 2, 3}
    assert task.min_length == 1
    strict = make_task("sparse_sum", {"k_max": 6, "clip_k": False})
    assert strict.min_length == 6
    with pytest.raises(UserError, match="cannot make length 5.*k_max=6"):
        strict.sample(np.random.default_rng(0), 1, 5)
    assert {ex.meta["k"] for ex in strict.sample(np.random.default_rng(1), 400, 6)} == set(range(1, 7))


def test_short_lengths_are_clear_errors():
    with pytest.raises(UserError, match=r"cannot make length 3; valid lengths: >= 4 .*k=4"):
        make_task("sparse_parity", {"k": 4}).sample(np.random.default_rng(0), 1, 3)
    with pytest.raises(UserError, match="cannot make length 0"):
        make_task("sparse_sum").sample(np.random.default_rng(0), 1, 0)


@pytest.mark.parametrize("name,params,match", [
    ("sparse_parity", {"k": 0}, "k must be >= 1"),
    ("sparse_parity", {"k_max": -1}, "k_max must be >= 0"),
    ("sparse_parity", {"locality": -2}, "locality must be >= 0"),
    ("sparse_parity", {"k": 3, "locality": 2}, "locality 2 cannot hold 3"),
    ("sparse_sum", {"k_max": 5, "locality": 4}, "locality 4 cannot hold 5"),
    ("sparse_sum", {"modulus": 11}, "modulus must be in 2..10"),
    ("sparse_sum", {"modulus": 1}, "modulus must be in 2..10"),
    ("sparse_parity", {"modulus": 3}, "no parameter 'modulus'"),
    ("sparse_parity", {"k": 2.5}, "must be int"),
    ("offset_parity", {"dependency": "far"}, "must be one of"),
    ("offset_parity", {"offsets": []}, "offsets must be a non-empty list"),
    ("offset_parity", {"offsets": [0, 1]}, "distinct integers >= 1"),
    ("offset_parity", {"offsets": [2, 2]}, "distinct"),
    ("offset_parity", {"offsets": "12"}, "offsets must be"),
])
def test_bad_parameters(name, params, match):
    with pytest.raises(UserError, match=match):
        make_task(name, params)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("length", [2, 3, 6, 11, 40])
@pytest.mark.parametrize("dependency,offsets", [("local", (1, 2)), ("local", (3,)), ("local", (1, 2, 5)),
                                                ("nonlocal", (1, 2))])
def test_offset_parity_labels(seed, length, dependency, offsets):
    task = make_task("offset_parity", {"dependency": dependency, "offsets": list(offsets)})
    if length < task.min_length:
        with pytest.raises(UserError, match=f"cannot make length {length}"):
            task.sample(np.random.default_rng(seed), 1, length)
        return
    for ex in task.sample(np.random.default_rng(seed), 60, length):
        prompt = "".join(ex.prompt)
        bits = prompt[:-1]
        assert prompt.endswith("=") and len(bits) == length and set(bits) <= {"0", "1"}
        assert "".join(ex.answer) == ref_offset_parity(bits, dependency, offsets)


def test_offset_parity_labels_are_balanced_and_offsets_normalized():
    task = make_task("offset_parity", {"offsets": [3, 1]})
    assert task.offsets == (3, 1) and task.min_length == 3
    assert task == make_task("offset_parity", {"offsets": (3, 1)})
    answers = [ex.answer[0] for ex in task.sample(np.random.default_rng(0), 400, 8)]
    assert 150 < answers.count("1") < 250
    assert make_task("offset_parity", {"dependency": "nonlocal", "offsets": [9]}).min_length == 2


@pytest.mark.parametrize("length", [2, 3, 7, 10, 31])
def test_offset_parity_nonlocal_coupling_makes_first_and_middle_share_an_id(length):
    for ex in make_task("offset_parity", {"dependency": "nonlocal"}).sample(np.random.default_rng(0), 5, length):
        ids = ex.coupled
        half = length // 2
        expected = list(range(1, half + 1)) + list(range(1, length - half + 1))
        assert list(ids.prompt[:-1]) == expected
        assert ids.prompt[0] == ids.prompt[half] == ids.prompt[-1] == 1  # first, middle and '='
        fresh = max(expected) + 1
        assert ids.answer == (fresh,) and ids.eos == fresh + 1 and ids.bos == 0
        assert fresh not in ids.prompt
        # The coupled IDs depend on the length only, and IDs stay below the half length + 3.
        assert max(ids.as_array()) <= (length + 1) // 2 + 2


@pytest.mark.parametrize("length", [2, 5, 12])
def test_offset_parity_local_coupling_numbers_offsets(length):
    offsets = (1, 2)
    for ex in make_task("offset_parity", {"offsets": list(offsets)}).sample(np.random.default_rng(0), 5, length):
        ids = ex.coupled
        bits = ids.prompt[:-1]
        # Walking back from '=', the bit at offset o carries ID o at every length.
        for o in range(1, length + 1):
            assert bits[len(bits) - o] == o
        assert ids.prompt[-1] == 1
        assert ids.answer == (length + 1,) and ids.eos == length + 2


def test_sparse_marked_tasks_do_not_define_coupling():
    assert not make_task("sparse_parity").supports_coupling
    assert make_task("offset_parity").supports_coupling


@pytest.mark.parametrize("name,params", [
    ("sparse_parity", {}), ("sparse_parity", {"k_max": 4, "locality": 5}),
    ("sparse_sum", {"k": 3, "modulus": 7}), ("offset_parity", {}), ("offset_parity", {"dependency": "nonlocal"}),
])
def test_same_seed_same_examples(name, params):
    task = make_task(name, params)
    assert name in TASKS
    first = task.sample(example_rng(3, "eval", name, 12), 30, 12)
    again = task.sample(example_rng(3, "eval", name, 12), 30, 12)
    other = task.sample(example_rng(4, "eval", name, 12), 30, 12)
    assert first == again and first != other
    assert all(ex.task == name and ex.length == 12 for ex in first)
    assert all(list(ex.positions.as_array()) == list(range(ex.seq_len)) for ex in first)


def test_examples_encode_with_the_shared_vocabulary():
    from lengthgen.vocab import Vocab

    vocab = Vocab.default()
    for name in ("sparse_parity", "sparse_sum", "offset_parity"):
        for ex in make_task(name).sample(np.random.default_rng(0), 20, 9):
            assert len(vocab.encode(ex.prompt)) == len(ex.prompt)
            assert vocab.decode(vocab.encode(ex.answer)) == "".join(ex.answer)
