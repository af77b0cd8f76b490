"""swapcase, swapcase_reverse and mqar: labels against independent references, structure,
length limits, parameter validation, determinism and vocabulary coverage."""

import string

import numpy as np
import pytest
import torch

from lengthgen import evaluate as evaluate_module
from lengthgen.data import collate
from lengthgen.errors import UserError
from lengthgen.tasks import make_task
from lengthgen.vocab import Vocab

from references import parse_mqar

LENGTHS = [1, 2, 7, 30]
SEEDS = [0, 1, 2]


@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize("seed", SEEDS)
def test_swapcase_labels_match_reference(length, seed):
    rng = np.random.default_rng(seed)
    for ex in make_task("swapcase").sample(rng, 50, length):
        prompt = "".join(ex.prompt)
        s = prompt[:-1]
        assert prompt.endswith("=") and len(s) == length
        assert set(s) <= set(string.ascii_letters)
        assert "".join(ex.answer) == s.swapcase()
    for ex in make_task("swapcase_reverse").sample(rng, 50, length):
        s = "".join(ex.prompt)[:-1]
        assert len(s) == length
        assert "".join(ex.answer) == s.swapcase()[::-1]


def test_swapcase_examples_from_the_docstrings():
    # Hand-checked instances of the formats (the order of swapcase and reverse does not matter).
    assert make_task("swapcase").transform(tuple("aBc")) == tuple("AbC")
    assert make_task("swapcase_reverse").transform(tuple("aBc")) == tuple("CbA")


def test_swapcase_sees_both_cases():
    # With the default alphabet both lower and upper case letters appear in prompts.
    ex = make_task("swapcase").sample(np.random.default_rng(0), 20, 30)
    chars = set("".join("".join(e.prompt) for e in ex))
    assert chars & set(string.ascii_lowercase) and chars & set(string.ascii_uppercase)


@pytest.mark.parametrize("name,source_of", [
    ("swapcase", lambda j, n: j),
    ("swapcase_reverse", lambda j, n: n - 1 - j),
])
def test_swapcase_coupled_ids_pair_answer_with_source(name, source_of):
    for ex in make_task(name).sample(np.random.default_rng(0), 5, 7):
        ids, n = ex.coupled, ex.length
        predictors = [ids.prompt[-1], *ids.answer[:-1]]
        for j in range(n):
            assert predictors[j] == ids.prompt[source_of(j, n)]
            assert ex.answer[j] == ex.prompt[source_of(j, n)].swapcase()


@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("num_queries,separator", [(0, True), (1, True), (1, False), (0, False)])
def test_mqar_labels_match_reference(length, seed, num_queries, separator):
    task = make_task("mqar", {"num_queries": num_queries, "separator": separator})
    for ex in task.sample(np.random.default_rng(seed), 50, length):
        prompt = "".join(ex.prompt)
        assert len(ex.prompt) == len(prompt)  # one character per token
        pairs, queries = parse_mqar(prompt, separator)
        table = dict(pairs)
        keys = [k for k, _ in pairs]
        assert len(pairs) == length  # length = number of key-value pairs
        assert len(set(keys)) == length  # keys distinct
        assert set(keys) <= set(string.ascii_letters)
        assert all(v in string.digits for _, v in pairs)
        assert all(q in table for q in queries)  # every query is a key
        assert len(set(queries)) == len(queries)  # queries without replacement
        expected_m = length if num_queries == 0 else num_queries
        assert len(queries) == expected_m == ex.meta["num_queries"]
        if num_queries == 0:
            assert sorted(queries) == sorted(keys)  # every key queried once
        answer = "".join(ex.answer)
        assert len(answer) == len(queries)
        assert answer == "".join(table[q] for q in queries)


def test_mqar_example_layout():
    # The docstring example, through the same reference parser.
    pairs, queries = parse_mqar("a3Z7k1|kaZ=")
    assert "".join(dict(pairs)[q] for q in queries) == "137"


def test_mqar_custom_alphabets_and_query_count():
    task = make_task("mqar", {"key_alphabet": "abcdef", "value_alphabet": "XY", "num_queries": 4})
    for ex in task.sample(np.random.default_rng(5), 100, 6):
        pairs, queries = parse_mqar("".join(ex.prompt))
        assert sorted(k for k, _ in pairs) == list("abcdef")
        assert {v for _, v in pairs} <= {"X", "Y"}
        assert len(queries) == 4 == len(ex.answer)
        assert "".join(ex.answer) == "".join(dict(pairs)[q] for q in queries)


def test_mqar_queries_are_not_in_key_order():
    # Queries are a random order of the keys, not a copy of the key sequence.
    exs = make_task("mqar").sample(np.random.default_rng(0), 50, 7)
    orders = ["".join(k for k, _ in parse_mqar("".join(e.prompt))[0]) for e in exs]
    queries = [parse_mqar("".join(e.prompt))[1] for e in exs]
    assert sum(o != q for o, q in zip(orders, queries)) > 40


def test_mqar_length_limits_name_the_valid_range():
    rng = np.random.default_rng(0)
    task = make_task("mqar")
    assert task.max_length == 52 and type(task).max_length == 52
    task.sample(rng, 2, 52)  # the largest length works
    with pytest.raises(UserError, match=r"cannot make length 53; valid lengths: 1\.\.52"):
        task.sample(rng, 1, 53)
    with pytest.raises(UserError, match=r"cannot make length 0; valid lengths: 1\.\.52"):
        task.sample(rng, 1, 0)
    small = make_task("mqar", {"key_alphabet": "abcd"})
    with pytest.raises(UserError, match=r"cannot make length 5; valid lengths: 1\.\.4"):
        small.sample(rng, 1, 5)
    three = make_task("mqar", {"num_queries": 3})
    with pytest.raises(UserError, match=r"cannot make length 2; valid lengths: 3\.\.52.*num_queries=3"):
        three.sample(rng, 1, 2)
    # with_params (used for evaluation overrides) recomputes the limits.
    assert task.with_params(key_alphabet="xyz").max_length == 3


@pytest.mark.parametrize("name,params,needle", [
    ("mqar", {"key_alphabet": ""}, "key_alphabet must be non-empty"),
    ("mqar", {"value_alphabet": ""}, "value_alphabet must be non-empty"),
    ("mqar", {"key_alphabet": "aab"}, "key_alphabet .*unique"),
    ("mqar", {"value_alphabet": "0|1"}, "value_alphabet .*'\\|'"),
    ("mqar", {"key_alphabet": "ab="}, "key_alphabet .*'='"),
    ("mqar", {"key_alphabet": "ab1"}, "must not share symbols"),
    ("mqar", {"num_queries": -1}, r"num_queries must be in 0\.\.52"),
    ("mqar", {"num_queries": 53}, r"num_queries must be in 0\.\.52"),
    ("mqar", {"num_queries": "3"}, "must be int"),
    ("mqar", {"keys": "ab"},
     "no parameter 'keys'; valid: eos_in_loss, key_alphabet, num_queries, separator, value_alphabet"),
    ("swapcase", {"alphabet": "ab="}, "alphabet"),
    ("swapcase_reverse", {"alphabet": "aa"}, "alphabet"),
    ("swapcase", {"alphabet": "aß"}, "swapcase to one character"),
    ("swapcase_reverse", {"alphabet": "ß"}, "swapcase to one character"),
])
def test_bad_parameters(name, params, needle):
    with pytest.raises(UserError, match=needle):
        make_task(name, params)


@pytest.mark.parametrize("name", ["swapcase", "swapcase_reverse", "mqar"])
@pytest.mark.parametrize("length", LENGTHS)
def test_prompts_and_answers_encode_in_default_vocab(name, length):
    vocab = Vocab.default()
    for ex in make_task(name).sample(np.random.default_rng(length), 20, length):
        for part in (ex.prompt, ex.answer):
            assert len(vocab.encode(part)) == len(part)  # token tuple
            assert len(vocab.encode("".join(part))) == len(part)  # and the joined string
        assert list(ex.positions.as_array()) == list(range(ex.seq_len))


def _answers_then(examples, vocab, filler):
    """Stand-in for greedy decoding: each example's answer, then `filler` where <eos> belongs."""
    width = max(len(ex.answer) for ex in examples) + 1
    out = torch.full((len(examples), width), filler, dtype=torch.long)
    for i, ex in enumerate(examples):
        out[i, : len(ex.answer)] = torch.tensor(vocab.encode(ex.answer))
    return out


@pytest.mark.parametrize("eos_in_loss", [False, True])
def test_mqar_eos_is_trained_and_judged_only_when_asked(monkeypatch, eos_in_loss):
    # PAPERS.md B3: MQAR's loss is on the answer characters only (the default); eos_in_loss=True
    # trains and judges <eos> as every other task does.
    vocab = Vocab.default()
    params = {"num_queries": 2} if not eos_in_loss else {"num_queries": 2, "eos_in_loss": True}
    examples = make_task("mqar", params).sample(np.random.default_rng(0), 6, 5)
    assert all(ex.scores_eos is eos_in_loss for ex in examples)
    batch = collate(examples, vocab)
    scored = batch.targets[batch.loss_mask]
    assert int(batch.loss_mask.sum()) == 6 * (2 + eos_in_loss)
    assert bool((scored == vocab.eos_id).any()) is eos_in_loss
    # Greedy evaluation: answers followed by a wrong token instead of <eos> are exact only when
    # <eos> is not judged; the same answers followed by <eos> are exact either way.
    for filler, exact in ((vocab.index["|"], not eos_in_loss), (vocab.eos_id, True)):
        monkeypatch.setattr(evaluate_module, "greedy_decode",
                            lambda model, batch, n, eos, pad, f=filler: _answers_then(examples, vocab, f))
        hits, right, total = evaluate_module.score_greedy(None, examples, vocab, "cpu", torch.float32)
        assert hits.tolist() == [exact] * 6
        assert total == 6 * (2 + eos_in_loss) and right == total - (0 if exact else 6)


def test_distinct_strings_never_repeat_a_symbol_and_stop_at_the_alphabet():
    task = make_task("copy", {"distinct": True, "alphabet": "abcdefgh"})
    for ex in task.sample(np.random.default_rng(0), 50, 8):
        s = "".join(ex.prompt)[:-1]
        assert len(set(s)) == len(s) == 8 and "".join(ex.answer) == s
    with pytest.raises(UserError, match=r"cannot make length 9; valid lengths: 1..8 \(distinct symbols"):
        task.sample(np.random.default_rng(0), 1, 9)
    # The default draws with repeats, from the generator exactly as before the option existed.
    plain = make_task("copy", {"alphabet": "ab"}).sample(np.random.default_rng(1), 20, 6)
    assert any(len(set(ex.prompt[:-1])) < 6 for ex in plain)
    assert make_task("reverse", {"distinct": True}).max_length == 52 and make_task("reverse").max_length is None


@pytest.mark.parametrize("name,ids", [
    # RECIPES.md 1.1 (Cho et al.'s code): copy 4725 -> 0 2 3 4 5 1 | 2 3 4 5, reverse -> 0 1 2 3 4 5 | 4 3 2 1
    ("copy", ([0], [2, 3, 4, 5, 1], [2, 3, 4, 5], 6)),
    ("reverse", ([0], [1, 2, 3, 4, 5], [4, 3, 2, 1], 0)),
])
def test_the_copied_id_rule_is_cho_et_al_layout(name, ids):
    ex = make_task(name, {"id_rule": "copied"}).sample(np.random.default_rng(0), 1, 4)[0]
    bos, prompt, answer, eos = ids
    assert (ex.coupled.bos, list(ex.coupled.prompt), list(ex.coupled.answer), ex.coupled.eos) == \
        (bos[0], prompt, answer, eos)
    # The token with ID p predicts the token with ID p + 1 (copy) or p - 1 (reverse): every answer
    # token's ID is its predictor's plus the step, `=` predicting the first.
    step = 1 if name == "copy" else -1
    predictors = [ex.coupled.prompt[-1], *ex.coupled.answer[:-1]]
    assert [p + step for p in predictors] == list(ex.coupled.answer)
    # and each answer token carries the ID of the input token it copies
    source = {"copy": lambda j: j, "reverse": lambda j: 3 - j}[name]
    assert [ex.coupled.prompt[source(j)] for j in range(4)] == list(ex.coupled.answer)


def test_marked_end_copy_finds_eos_at_the_equals_sign():
    """The token that predicts each answer token, and `<eos>`, sits at the ID of what it must find."""
    ex = make_task("copy", {"id_rule": "marked_end"}).sample(np.random.default_rng(0), 1, 4)[0]
    ids = ex.coupled
    # copy 4725 -> <bos> 0 | 2 3 4 5 =1 | 3 4 5 1 | <eos> 6
    assert (ids.bos, list(ids.prompt), list(ids.answer), ids.eos) == (0, [2, 3, 4, 5, 1], [3, 4, 5, 1], 6)
    inputs = ids.prompt[:-1]
    # answer j < n predicts answer j + 1, the copy of input j + 1, and sits at that input's ID ...
    assert list(ids.answer[:-1]) == list(inputs[1:])
    # ... and the last answer token, which predicts <eos>, sits at the ID of `=`, the end of the input.
    assert ids.answer[-1] == ids.prompt[-1] and ids.prompt[-1] not in inputs
    # One symbol: its only answer token predicts <eos> at once.
    one = make_task("copy", {"id_rule": "marked_end"}).sample(np.random.default_rng(0), 1, 1)[0].coupled
    assert (list(one.prompt), list(one.answer), one.eos) == ([2, 1], [1], 3)
