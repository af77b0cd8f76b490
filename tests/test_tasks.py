"""Task labels against independent references, determinism, and parameter validation."""

import numpy as np
import pytest

from lengthgen.errors import UserError
from lengthgen.tasks import TASKS, example_rng, make_task


def reference_reverse_add(prompt: str) -> str:
    # Independent of the task code: parse the reversed operands, add as integers.
    a_rev, b_rev = prompt.rstrip("=").split("+")
    a, b = int(a_rev[::-1]), int(b_rev[::-1])
    width = max(len(a_rev), len(b_rev)) + 1
    digits = []
    total = a + b
    for _ in range(width):
        digits.append(str(total % 10))
        total //= 10
    assert total == 0
    return "".join(digits)


@pytest.mark.parametrize("length", [1, 2, 7, 30])
@pytest.mark.parametrize("seed", [0, 1])
def test_labels_match_references(length, seed):
    rng = np.random.default_rng(seed)
    for ex in make_task("copy").sample(rng, 50, length):
        s = "".join(ex.prompt)
        assert s.endswith("=") and len(s) == length + 1
        assert "".join(ex.answer) == s[:-1]
    for ex in make_task("reverse").sample(rng, 50, length):
        s = "".join(ex.prompt)[:-1]
        assert "".join(ex.answer) == "".join(reversed(s))
    for params in ({}, {"operand_digits": "equal"}):
        for ex in make_task("reverse_add", params).sample(rng, 50, length):
            prompt = "".join(ex.prompt)
            assert "".join(ex.answer) == reference_reverse_add(prompt)
            a_rev, b_rev = prompt.rstrip("=").split("+")
            assert max(len(a_rev), len(b_rev)) == length  # length = max operand digits
            assert a_rev[-1] != "0" and b_rev[-1] != "0"  # leading digits non-zero
            assert int(a_rev[::-1]) == ex.meta["a"] and int(b_rev[::-1]) == ex.meta["b"]
            if params:
                assert len(a_rev) == len(b_rev) == length


def test_mixed_operands_vary_both_ways():
    rng = np.random.default_rng(0)
    shapes = set()
    for ex in make_task("reverse_add").sample(rng, 400, 6):
        a_rev, b_rev = "".join(ex.prompt).rstrip("=").split("+")
        shapes.add((len(a_rev) < 6, len(b_rev) < 6))
    assert {(True, False), (False, True), (False, False)} <= shapes


@pytest.mark.parametrize("name", sorted(TASKS))
def test_same_seed_same_examples(name):
    task = make_task(name)
    first = task.sample(example_rng(3, "eval", name, 9), 20, 9)
    again = task.sample(example_rng(3, "eval", name, 9), 20, 9)
    other = task.sample(example_rng(4, "eval", name, 9), 20, 9)
    assert first == again
    assert first != other


@pytest.mark.parametrize("name", sorted(TASKS))
def test_consecutive_positions_and_metadata(name):
    for ex in make_task(name).sample(np.random.default_rng(0), 5, 4):
        assert list(ex.positions.as_array()) == list(range(ex.seq_len))
        assert ex.task == name and ex.length == 4


def test_coupled_ids_pair_each_answer_with_its_source():
    rng = np.random.default_rng(0)
    for name, source_of in (("copy", lambda j, n: j), ("reverse", lambda j, n: n - 1 - j)):
        for ex in make_task(name).sample(rng, 5, 7):
            ids = ex.coupled
            n = ex.length
            # The token that predicts answer j (the '=' for j=0, else answer j-1) sits at the ID
            # of the input token answer j copies.
            predictors = [ids.prompt[-1], *ids.answer[:-1]]
            for j in range(n):
                assert predictors[j] == ids.prompt[source_of(j, n)]
                assert ex.answer[j] == ex.prompt[source_of(j, n)]


def test_bad_parameters_and_lengths():
    with pytest.raises(UserError, match=r"valid: .*copy, .*reverse_add"):
        make_task("nope")
    with pytest.raises(UserError, match="no parameter 'k'; valid: alphabet"):
        make_task("copy", {"k": 3})
    with pytest.raises(UserError, match="must be one of"):
        make_task("reverse_add", {"operand_digits": "odd"})
    with pytest.raises(UserError, match="alphabet"):
        make_task("copy", {"alphabet": "ab="})
    with pytest.raises(UserError, match="cannot make length 0"):
        make_task("copy").sample(np.random.default_rng(0), 1, 0)
    with pytest.raises(UserError, match="n must be >= 0"):
        make_task("copy").sample(np.random.default_rng(0), -1, 3)
    with pytest.raises(UserError, match="does not define coupled"):
        make_task("mqar").coupled_positions(("1",), ("1",))


def test_task_markers_wrap_prompts_and_keep_positions_consistent():
    from lengthgen.data import build_spec

    spec = build_spec({"task": "copy", "lengths": [1, 5]}, index=3, markers=True, marker_repeat=2)
    for ex in spec.sample(np.random.default_rng(0), 4, 5) + spec.sample(np.random.default_rng(0), 4, 5, for_eval=True):
        assert ex.prompt[:2] == ("<t3>", "<t3>") and ex.prompt[-2:] == ("<t3>", "<t3>")
        assert "".join(ex.prompt[2:-2]) == "".join(ex.answer) + "="
        assert list(ex.positions.as_array()) == list(range(ex.seq_len))
        assert len(ex.coupled.prompt) == len(ex.prompt) and ex.coupled.prompt[:2] == (0, 0)
        # The last trailing marker predicts answer 1, so it carries the ID of the token it replaces.
        assert ex.coupled.prompt[-2:] == (ex.coupled.prompt[-3],) * 2 == (1, 1)
    plain = build_spec({"task": "copy", "lengths": [1, 5]}, index=3)
    assert plain.sample(np.random.default_rng(0), 1, 5)[0].prompt[0] != "<t3>"


def test_groups_name_registered_tasks_and_build_from_config():
    from lengthgen.config import build_config
    from lengthgen.errors import UserError
    from lengthgen.tasks.groups import GROUPS

    assert len(GROUPS) == 13
    for name, group in GROUPS.items():
        for task, lo, hi in group.tasks:
            assert task in TASKS, (name, task)
            make_task(task).check_length(hi)
    cfg = build_config({"data": {"group": "arith-carry", "markers": True}})
    assert [(t.task, t.lengths) for t in cfg.data.resolved_tasks()] == [
        ("reverse_add", (1, 16)), ("no_carry", (1, 32)), ("carry_only", (1, 32))]
    with pytest.raises(UserError, match="unknown task group 'nope'; valid: arith-carry"):
        build_config({"data": {"group": "nope"}})


def test_a_groups_task_options_reach_its_entries_and_are_checked():
    from lengthgen.config import build_config
    from lengthgen.errors import UserError
    from lengthgen.sweeps.reuse import fingerprint

    data = {"group": "string-mqar", "group_max": [4, 8], "task_options": {"mqar": {"length_bias": 1.0, "weight": 3}}}
    cfg = build_config({"data": data})
    copy, mqar = cfg.data.resolved_tasks()
    assert (copy.length_bias, copy.weight) == (0.0, 1.0)
    assert (mqar.length_bias, mqar.weight, mqar.lengths) == (1.0, 3, (1, 8))
    alone = build_config({"data": {**data, "aux": False}}).data.resolved_tasks()
    assert [e.task for e in alone] == ["copy"]
    # The options are part of the experiment: the same tasks spelled out are the same run, without them another.
    spelled = build_config({"data": {"tasks": [e.model_dump() for e in cfg.data.resolved_tasks()]}})
    assert fingerprint(spelled) == fingerprint(cfg)
    assert fingerprint(build_config({"data": {**data, "task_options": {}}})) != fingerprint(cfg)
    for options, message in [({"copyx": {}}, "'copyx' is not a task of group 'string-mqar' \\(copy, mqar\\)"),
                             ({"mqar": {"lengths": [1, 4]}}, "lengths come from the group"),
                             ({"mqar": {"length_bias": 9}}, "task_options: length_bias: Input should be less than")]:
        with pytest.raises(UserError, match=message):
            build_config({"data": {**data, "task_options": options}})
    with pytest.raises(UserError, match="apply to a data.group"):
        build_config({"data": {"tasks": [{"task": "copy", "lengths": [1, 3]}], "task_options": {"copy": {}}}})


def test_length_bias_weights_short_training_lengths_and_leaves_uniform_runs_unchanged():
    from lengthgen.config import build_config
    from lengthgen.data import TaskMixture, build_spec
    from lengthgen.positions import PolicySettings

    def lengths(bias: float | None, seed: int = 0) -> np.ndarray:
        entry = {"task": "copy", "lengths": [1, 16]} | ({} if bias is None else {"length_bias": bias})
        mixture = TaskMixture([build_spec(entry)], "consecutive", PolicySettings())
        return np.array([len(ex.answer) for ex in mixture.sample(np.random.default_rng(seed), 4000)])

    # 0 is the uniform draw, example for example, whether or not the key is given.
    assert (lengths(None) == lengths(0.0)).all()
    uniform, inverse = lengths(0.0), lengths(1.0)
    assert abs((uniform == 1).mean() - 1 / 16) < 0.02
    # P(n) proportional to 1/n: length 1 has 1 / H_16 = 0.296 of the mass, length 16 has 0.019.
    harmonic = sum(1 / n for n in range(1, 17))
    assert abs((inverse == 1).mean() - 1 / harmonic) < 0.03
    assert abs((inverse == 16).mean() - 1 / (16 * harmonic)) < 0.01
    assert inverse.min() == 1 and inverse.max() == 16
    with pytest.raises(UserError, match="length_bias"):
        build_config({"data": {"tasks": [{"task": "copy", "lengths": [1, 8], "length_bias": -1}]}})
