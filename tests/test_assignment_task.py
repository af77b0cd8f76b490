"""variable_assignment (PAPERS.md A5): answers and input-dependent coupled IDs against an
independent regex parser, chains (hops), length limits, determinism and parameter errors."""

import re
import string

import numpy as np
import pytest

from lengthgen.errors import UserError
from lengthgen.tasks import TASKS, example_rng, make_task

NAME = "variable_assignment"
LENGTHS = [1, 2, 5, 17, 52]
SEEDS = [0, 1, 2]
STATEMENT = re.compile(r"(.)=(.);")


def parse(prompt: str):
    """Independent parser: [(name, rhs, index of rhs in the prompt)], query string."""
    body, sep, rest = prompt.partition("?")
    assert sep and rest.endswith("=")
    statements = [(m.group(1), m.group(2), m.start(2)) for m in STATEMENT.finditer(body)]
    # The statements must tile the body exactly: four characters each.
    assert len(body) == 4 * len(statements)
    return statements, rest[:-1]


def resolve(statements, name, values):
    """Follow `x=y` references back to a value; return (value, prompt index of it, chain length)."""
    table = {n: (rhs, at) for n, rhs, at in statements}
    depth = 1
    rhs, at = table[name]
    while rhs not in values:
        rhs, at = table[rhs]
        depth += 1
    return rhs, at, depth


def check_example(ex, queries=0, values=string.digits):
    prompt = "".join(ex.prompt)
    statements, asked = parse(prompt)
    names = [n for n, _, _ in statements]
    assert len(statements) == ex.length and len(set(names)) == len(names)
    assert len(set(asked)) == len(asked) and set(asked) <= set(names)
    assert len(asked) == (queries or ex.length) == ex.meta["num_queries"]
    resolved = [resolve(statements, q, values) for q in asked]
    assert "".join(ex.answer) == "".join(v for v, _, _ in resolved)
    # Coupled IDs: prompt index p has consecutive ID p + 1 (<bos> is 0), the final '=' included,
    # so no answer-dependent ID sits in the prompt. Answer token j - 1 predicts answer j (j >= 1,
    # 0-based) and sits at the ID of the value answer j reads.
    ids = ex.coupled
    assert ids.bos == 0 and list(ids.prompt) == list(range(1, len(prompt) + 1))
    for j, (_, at, _) in enumerate(resolved):
        assert ex.prompt[at] == ex.answer[j]
        if j >= 1:
            assert ids.answer[j - 1] == at + 1
    assert ids.answer[-1] == len(prompt) + 1 and ids.eos == len(prompt) + 2
    return resolved


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("length", LENGTHS)
def test_answers_and_coupled_ids_match_the_parser(seed, length):
    rng = np.random.default_rng(seed)
    for ex in make_task(NAME).sample(rng, 40, length):
        resolved = check_example(ex)
        assert all(d == 1 for _, _, d in resolved) and "depths" not in ex.meta
        assert set(asked_in(ex)) == {n for n, _, _ in parse("".join(ex.prompt))[0]}  # all queried


def asked_in(ex):
    return parse("".join(ex.prompt))[1]


@pytest.mark.parametrize("length", [3, 8, 20])
def test_fixed_number_of_queries(length):
    for ex in make_task(NAME, {"queries": 3}).sample(np.random.default_rng(0), 40, length):
        check_example(ex, queries=3)


def test_worked_example_layout():
    ex = make_task(NAME, {"names": "abc"}).sample(np.random.default_rng(0), 1, 3)[0]
    prompt = "".join(ex.prompt)
    assert re.fullmatch(r"([abc]=\d;){3}\?[abc]{3}=", prompt)
    # Hand check of the coupling on the docstring's example `a=3;c=7;b=1;?cab=` -> `731`.
    task = make_task(NAME)
    ids = task.coupled_positions(tuple("a=3;c=7;b=1;?cab="), tuple("731"))
    assert ids.prompt == tuple(range(1, 18)) and ids.answer == (3, 11, 18) and ids.eos == 19


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("hops", [2, 3])
def test_chains_resolve_through_earlier_statements(seed, hops):
    depths = []
    task = make_task(NAME, {"hops": hops})
    for ex in task.sample(np.random.default_rng(seed), 60, 12):
        resolved = check_example(ex)
        got = [d for _, _, d in resolved]
        assert got == ex.meta["depths"] and max(got) <= hops
        depths += got
        # A reference always names a variable assigned by an earlier statement.
        statements, _ = parse("".join(ex.prompt))
        seen = set()
        for name, rhs, _ in statements:
            assert rhs in string.digits or rhs in seen
            seen.add(name)
    assert set(depths) == set(range(1, hops + 1))


def test_ref_prob_extremes():
    plain = make_task(NAME, {"hops": 3, "ref_prob": 0.0}).sample(np.random.default_rng(0), 20, 10)
    assert all(set(ex.meta["depths"]) == {1} for ex in plain)
    chained = make_task(NAME, {"hops": 4, "ref_prob": 1}).sample(np.random.default_rng(0), 20, 10)
    for ex in chained:
        statements, _ = parse("".join(ex.prompt))
        # Every statement after the first is a reference while some chain has room (always,
        # since the first statement has depth 1 < hops).
        assert all(rhs not in string.digits for _, rhs, _ in statements[1:])
        check_example(ex)


def test_length_limits_follow_names_and_queries():
    task = make_task(NAME, {"names": "xyz"})
    assert task.max_length == 3 and NAME in TASKS and TASKS[NAME].max_length == 52
    with pytest.raises(UserError, match=r"cannot make length 4; valid lengths: 1\.\.3 .*3 of them"):
        task.sample(np.random.default_rng(0), 1, 4)
    with pytest.raises(UserError, match=r"cannot make length 53"):
        make_task(NAME).sample(np.random.default_rng(0), 1, 53)
    with pytest.raises(UserError, match=r"cannot make length 2; valid lengths: 3\.\.52 .*queries=3"):
        make_task(NAME, {"queries": 3}).sample(np.random.default_rng(0), 1, 2)


@pytest.mark.parametrize("params,match", [
    ({"names": "ab="}, "names must be non-empty, unique symbols"),
    ({"names": "aab"}, "names must be"),
    ({"names": ""}, "names must be"),
    ({"values": "12;"}, "values must be"),
    ({"names": "ab1", "values": "123"}, "must not share"),
    ({"queries": -1}, "queries must be in 0..52"),
    ({"names": "ab", "queries": 3}, "queries must be in 0..2"),
    ({"hops": 0}, "hops must be >= 1"),
    ({"ref_prob": 1.5}, r"ref_prob must be in \[0, 1\]"),
    ({"queries": "2"}, "must be int"),
])
def test_bad_parameters(params, match):
    with pytest.raises(UserError, match=match):
        make_task(NAME, params)


def test_custom_values_and_names():
    task = make_task(NAME, {"names": "pqrs", "values": "XYZ"})
    for ex in task.sample(np.random.default_rng(0), 30, 4):
        check_example(ex, values="XYZ")
        assert set(ex.answer) <= set("XYZ")


@pytest.mark.parametrize("params", [{}, {"hops": 3, "queries": 2}])
def test_same_seed_same_examples(params):
    task = make_task(NAME, params)
    first = task.sample(example_rng(3, "eval", NAME, 9), 20, 9)
    again = task.sample(example_rng(3, "eval", NAME, 9), 20, 9)
    other = task.sample(example_rng(4, "eval", NAME, 9), 20, 9)
    assert first == again and first != other
    assert all(list(ex.positions.as_array()) == list(range(ex.seq_len)) for ex in first)


def test_examples_encode_with_the_shared_vocabulary():
    from lengthgen.vocab import Vocab

    vocab = Vocab.default()
    for ex in make_task(NAME, {"hops": 2}).sample(np.random.default_rng(0), 20, 30):
        assert vocab.decode(vocab.encode(ex.prompt)) == "".join(ex.prompt)
