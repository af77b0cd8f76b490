"""`lengthgen align`: attention of the answer-predicting tokens on the input token each answer copies."""

import numpy as np
import pandas as pd
import pytest

from lengthgen.analysis.alignment import PARTS, query_source_pairs, sources_of
from lengthgen.cli.main import main
from lengthgen.data import wrap_in_marker
from lengthgen.tasks import make_task


@pytest.mark.parametrize("name", ["copy", "reverse"])
def test_each_answer_is_paired_with_the_input_token_it_copies(name):
    ex = make_task(name).sample(np.random.default_rng(0), 1, 5)[0]
    wrapped = wrap_in_marker(ex, "<t1>", repeat=2)
    inputs = ["<bos>", *wrapped.prompt, *wrapped.answer]
    pairs = query_source_pairs(wrapped, sources_of(name, wrapped))
    assert [inputs[source] for _, (source,) in pairs] == list(wrapped.answer)  # the source holds the answer symbol
    # the query predicting answer j is the token just before it: the trailing marker, then the answers
    assert [q for q, _ in pairs] == [len(wrapped.prompt) + j for j in range(5)]
    assert inputs[pairs[0][0]] == "<t1>" and inputs[pairs[1][0]] == wrapped.answer[0]


def test_align_command_splits_every_heads_attention_and_scores_each_position(trained_copy, capsys):
    _, run = trained_copy
    assert main(["align", str(run.path), "--lengths", "4,6", "-n", "16"]) == 0
    out = capsys.readouterr().out
    assert "copy, step 400" in out and "teacher-forced accuracy by answer position" in out
    mass = pd.read_csv(run.path / "alignment.csv")
    assert (run.path / "alignment.png").stat().st_size > 5_000  # every head as stacked bars, a panel per length
    positions = pd.read_csv(run.path / "alignment_positions.csv")
    assert set(mass["length"]) == {4, 6} and len(mass) == 2 * 2 * 2  # lengths x layers x heads
    assert np.allclose(mass[list(PARTS)].sum(axis=1), 1.0, atol=1e-4)  # every query's mass, split four ways
    six = positions[positions["length"] == 6]
    assert list(six["position"]) == ["1", "2", "3", "4", "5", "6", "eos"] and (six["n"] == 16).all()
    assert six["accuracy"].between(0, 1).all()
    # A copy model that copies at all reads the source: some head puts far more than a uniform share on it.
    best = mass[mass["length"] == 6]["source"].max()
    assert best > 2 / (6 + 2)


@pytest.mark.parametrize("dependency", ["local", "nonlocal"])
def test_parity_answers_read_the_bits_their_examples_name(dependency):
    ex = make_task("offset_parity", {"dependency": dependency}).sample(np.random.default_rng(0), 1, 9)[0]
    inputs = ["<bos>", *ex.prompt, *ex.answer]
    [(query, keys)] = query_source_pairs(ex, sources_of("offset_parity", ex))
    assert inputs[query] == "=" and query == len(ex.prompt)
    bits = [int(inputs[k]) for k in keys]
    assert len(keys) == 2 and str(bits[0] ^ bits[1]) == ex.answer[0]  # the answer is their XOR
    assert sorted(keys) == ([1, 1 + 9 // 2] if dependency == "nonlocal" else [8, 9])  # <bos> is key 0


def test_mqar_answers_read_the_value_after_their_queried_key():
    ex = make_task("mqar").sample(np.random.default_rng(0), 1, 6)[0]
    wrapped = wrap_in_marker(ex, "<t1>")
    inputs = ["<bos>", *wrapped.prompt, *wrapped.answer]
    pairs = query_source_pairs(wrapped, sources_of("mqar", wrapped))
    queries = list(ex.prompt[13:19])  # `k1 v1 ... k6 v6 |`, then the six queried keys
    assert sorted(queries) == sorted(ex.prompt[0:12:2])
    for j, (query, (source,)) in enumerate(pairs):
        assert inputs[source - 1] == queries[j]  # the key just before the source is the one queried
        assert inputs[source] == ex.answer[j]  # and the source holds the answer
        assert query == len(wrapped.prompt) + j


def test_align_refuses_a_task_without_an_alignment(tmp_path, capsys):
    from helpers import tiny_config, train_tree

    tree = tiny_config(data={"tasks": [{"task": "reverse_add", "lengths": [1, 3]}], "batch_size": 8})
    tree["train"] = {**tree["train"], "steps": 2}
    run = train_tree(tree, tmp_path / "add")
    assert main(["align", str(run.path), "--lengths", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "align needs a task whose answers copy input tokens (copy, reverse" in err
    assert "'reverse_add' does neither" in err
