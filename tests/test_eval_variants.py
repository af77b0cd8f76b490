"""Evaluation variants (`eval_grid`): one labelled evaluation set per parameter combination."""

import numpy as np
import pytest

from lengthgen.config import build_config
from lengthgen.data import build_spec, eval_examples, variant_task
from lengthgen.errors import UserError
from lengthgen.evaluate import evaluate
from lengthgen.experiment import build_experiment
from lengthgen.positions import PolicySettings

from helpers import tiny_config

PARITY = {"task": "sparse_parity", "lengths": [4, 10], "params": {"k_max": 4},
          "eval_params": {"k_max": 0}, "eval_grid": {"k": [1, 2, 4]}}


def test_variants_are_labelled_and_hold_their_fixed_parameter():
    spec = build_spec(PARITY)
    variants = spec.eval_variants()
    assert [v.name for v in variants] == ["sparse_parity[k=1]", "sparse_parity[k=2]", "sparse_parity[k=4]"]
    assert all(variant_task(v.name) == "sparse_parity" for v in variants)
    for variant, k in zip(variants, [1, 2, 4]):
        examples = eval_examples(variant, 12, 30, 0, "consecutive", PolicySettings())
        assert {ex.meta["k"] for ex in examples} == {k}
        # Every marked item is a letter; exactly k of them per prompt.
        assert all(sum(t.isalpha() for t in ex.prompt) == k for ex in examples)
    # Training still draws the k mixture.
    rng_examples = spec.sample(np.random.default_rng(0), 200, 8)
    assert {ex.meta["k"] for ex in rng_examples} == {1, 2, 3, 4}
    # Without a grid, a spec is its own only variant, named after its task.
    plain = build_spec({"task": "copy", "lengths": [1, 4]})
    assert plain.eval_variants() == [plain] and plain.name == "copy"


def test_bad_grid_values_fail_at_build_time():
    with pytest.raises(UserError, match="no parameter 'j'"):
        build_spec({**PARITY, "eval_grid": {"j": [1]}})
    with pytest.raises(UserError, match="must be int"):
        build_spec({**PARITY, "eval_grid": {"k": ["two"]}})


def test_evaluate_reports_one_row_per_variant_and_length():
    tree = tiny_config(data={"tasks": [PARITY], "batch_size": 8})
    cfg = build_config(tree)
    assert cfg.data.tasks[0].eval_grid == {"k": [1, 2, 4]}
    exp = build_experiment(cfg)
    calls = []
    rows = evaluate(exp.model, exp.specs, [6, 20], n=8, eval_seed=0, policy="consecutive",
                    settings=cfg.positions.settings(), vocab=exp.vocab, batch_size=4,
                    progress=lambda done, total: calls.append((done, total)))
    assert [(r.task, r.length) for r in rows] == [
        (f"sparse_parity[k={k}]", n) for k in (1, 2, 4) for n in (6, 20)]
    assert all(0.0 <= r.exact_match <= 1.0 for r in rows)
    # progress is reported batch by batch as the sets are scored: 6 sets x 2 batches of 4
    assert calls == [(done, 12) for done in range(1, 13)]


def test_variant_eval_sets_differ_from_each_other():
    variants = build_spec(PARITY).eval_variants()
    prompts = [[ex.prompt for ex in eval_examples(v, 10, 20, 0, "consecutive", PolicySettings())] for v in variants]
    assert prompts[0] != prompts[1] != prompts[2]
