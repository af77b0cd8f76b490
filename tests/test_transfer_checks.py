"""Paper B preset checks against hand-made result tables."""

import pandas as pd
import pytest

from lengthgen.presets.ratio import check_ratio
from lengthgen.presets.transfer import compare_check, transfer_check

L_MAIN, L_AUX = 8, 16


def results(points: dict, seeds=(0, 1, 2)) -> pd.DataFrame:
    """points: (group, aux, encoding) -> (fit, band score of seed 0); other seeds score 0 in the band."""
    rows = []
    mains = {"string-mqar": ("copy", "mqar"), "control-copy-reverse": ("copy", "reverse"),
             "arith-carry": ("reverse_add", "no_carry")}
    for (group, aux, encoding), (fit, band) in points.items():
        main, other = mains[group]
        for seed in seeds:
            run = f"{group}-{aux}-{encoding}-{seed}"
            for length in range(1, 21):
                value = fit if length <= L_MAIN else (band if seed == 0 and length <= L_AUX else 0.0)
                base = {"data.group": group, "data.aux": aux, "model.encoding": encoding, "seed": seed, "run": run,
                        "status": "done", "step": 100, "length": length, "n": 8, "token_acc": 0.0}
                rows.append({**base, "task": main, "exact_match": value, "train_max": L_MAIN})
                if aux:
                    rows.append({**base, "task": other, "exact_match": 1.0, "train_max": L_AUX})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("with_aux,alone,fit,expect,verdict", [
    (0.8, 0.1, 1.0, True, "PASS"), (0.3, 0.1, 1.0, True, "FAIL"), (0.8, 0.1, 0.5, True, "INCONCLUSIVE"),
    (0.2, 0.1, 1.0, False, "PASS"), (0.8, 0.1, 1.0, False, "FAIL")])
def test_transfer_rule(with_aux, alone, fit, expect, verdict):
    df = results({("string-mqar", True, "rope"): (fit, with_aux), ("string-mqar", False, "rope"): (fit, alone)})
    result = transfer_check(expect)(df)
    assert result.status == verdict
    row = result.numbers.set_index("data.aux").loc[True]
    assert row["band"] == "9-16" and row["band_best"] == pytest.approx(with_aux)
    assert row["band_mean"] == pytest.approx(with_aux / 3) and row["effect"] == pytest.approx(with_aux - alone)
    # Beside the best seed: the mean effect, and how many seeds show one (only seed 0 moves here).
    assert row["effect_mean"] == pytest.approx((with_aux - alone) / 3)
    assert row["seeds_effect_ge_0.3"] == ("1 of 3" if with_aux - alone >= 0.3 else "0 of 3")
    assert "band_by_seed" not in result.numbers


def test_seeds_with_an_effect_pair_each_seed_with_itself_alone():
    df = results({("string-mqar", True, "rope"): (1, 0.9), ("string-mqar", False, "rope"): (1, 0.0)})
    band = (df["task"] == "copy") & df["length"].between(L_MAIN + 1, L_AUX) & df["data.aux"]
    df.loc[band & (df["seed"] == 1), "exact_match"] = 0.5  # seed 1 too, with the auxiliaries
    alone = (df["task"] == "copy") & df["length"].between(L_MAIN + 1, L_AUX) & ~df["data.aux"]
    df.loc[alone & (df["seed"] == 1), "exact_match"] = 0.4  # ... but alone it nearly matches: no effect
    row = transfer_check(True)(df).numbers.set_index("data.aux").loc[True]
    assert row["seeds_effect_ge_0.3"] == "1 of 3"
    assert row["effect"] == pytest.approx(0.9 - 0.4) and row["effect_mean"] == pytest.approx(1.4 / 3 - 0.4 / 3)


def test_control_needs_a_learned_auxiliary():
    df = results({("control-copy-reverse", True, "rope"): (1, 0.0), ("control-copy-reverse", False, "rope"): (1, 0.0)})
    assert transfer_check(False)(df).status == "PASS"
    df.loc[df["task"] == "reverse", "exact_match"] = 0.2  # the auxiliary never learned its lengths
    assert transfer_check(False)(df).status == "INCONCLUSIVE"
    missing = df[df["data.aux"] == True]  # noqa: E712 -- no baseline: nothing to compare with
    assert transfer_check(True)(missing).status == "INCONCLUSIVE"


def test_every_group_must_transfer():
    df = results({("string-mqar", True, "rope"): (1, 0.9), ("string-mqar", False, "rope"): (1, 0.0),
                  ("control-copy-reverse", True, "rope"): (1, 0.1), ("control-copy-reverse", False, "rope"): (1, 0.0)})
    assert transfer_check(True)(df).status == "FAIL"


@pytest.mark.parametrize("rope,nope,verdict", [(0.9, 0.3, "PASS"), (0.5, 0.45, "FAIL"), (0.1, 0.0, "INCONCLUSIVE")])
def test_rope_versus_nope(rope, nope, verdict):
    df = results({("arith-carry", True, "rope"): (1, rope), ("arith-carry", False, "rope"): (1, 0.0),
                  ("arith-carry", True, "nope"): (1, nope), ("arith-carry", False, "nope"): (1, 0.0)})
    assert compare_check("rope", "nope", "model.encoding", 0.1, "RoPE > NoPE")(df).status == verdict


def ratio_table(gaps: dict) -> pd.DataFrame:
    """Both tasks right at length 1; at length 40 the main task is 2*gap below the auxiliary, so the
    gap averaged over the two lengths is `gap`."""
    rows = []
    for (l_main, l_aux), gap in gaps.items():
        run = f"{l_main}-{l_aux}"
        for length, main_value in ((1, 1.0), (40, 1.0 - 2 * gap)):
            for task, value, top in (("reverse_add", main_value, l_main), ("no_carry", 1.0, l_aux)):
                rows.append({"data.group_max": f"[{l_main}, {l_aux}, {l_aux}]", "seed": 0, "run": run,
                             "status": "done", "step": 10, "task": task, "length": length, "n": 4,
                             "exact_match": value, "token_acc": value, "train_max": top})
    return pd.DataFrame(rows)


def test_ratio_window_rule():
    assert check_ratio(ratio_table({(8, 4): 0.05, (8, 16): 0.1, (8, 32): 0.45})).status == "PASS"
    assert check_ratio(ratio_table({(8, 4): 0.3, (8, 16): 0.3, (8, 32): 0.35})).status == "FAIL"
    assert check_ratio(ratio_table({(8, 8): 0.1, (8, 16): 0.2})).status == "INCONCLUSIVE"
    unfitted = ratio_table({(8, 4): 0.05, (8, 16): 0.1, (8, 32): 0.45})
    unfitted.loc[(unfitted["run"] == "8-4") & (unfitted["task"] == "no_carry"), "exact_match"] = 0.0
    assert check_ratio(unfitted).status == "INCONCLUSIVE"
    numbers = check_ratio(ratio_table({(8, 4): 0.05, (8, 32): 0.45})).numbers.set_index("L_aux")
    assert numbers.loc[32, "mean"] == pytest.approx(0.45) and not numbers.loc[32, "in_window"]
    # The steps plot follows reverse addition (L_main), not the shorter auxiliary of L_aux = 4.
    from lengthgen.presets.base import get_preset

    trained = pd.DataFrame({"task": ["reverse_add", "no_carry", "carry_only"], "train_max": [8, 4, 4]})
    assert get_preset("b-ratio").step_lengths(trained) == [9, 12]
    # No run finished yet (a sweep stopped early): nothing to judge, and no error for the report to stop on.
    running = ratio_table({(8, 4): 0.05, (8, 32): 0.45}).assign(status="running")
    assert check_ratio(running).status == "INCONCLUSIVE"


def test_groups_at_their_own_scales_are_judged_on_their_own_bands():
    """b-transfer-arith's CPU scale trains arith-sub at a quarter of the paper's lengths with its own
    batch and steps, and arith-carry at half: each group's band comes from its own training lengths,
    and the knobs only one group sets do not break the pairing of with and without auxiliaries."""
    from lengthgen.presets.base import get_preset
    from lengthgen.sweeps.spec import expand

    rows = []
    scales = {"arith-carry": (8, 16, ("reverse_add", "no_carry"), {}),
              "arith-sub": (4, 8, ("reverse_add", "reverse_sub[sign=neg]"), {"data.batch_size": 256})}
    for group, (l_main, l_aux, (main, other), knobs) in scales.items():
        for aux in (True, False):
            for seed in (0, 1):
                run = f"{group}-{aux}-{seed}"
                for length in range(1, 21):
                    # Transfer in seed 0 over each group's own band; the arith-sub band is (4, 8].
                    band = aux and seed == 0 and l_main < length <= l_aux
                    value = 1.0 if length <= l_main or band else 0.0
                    base = {"data.group": group, "data.aux": aux, "seed": seed, "run": run, "status": "done",
                            "step": 100, "length": length, "n": 8, "token_acc": 0.0, **knobs}
                    rows.append({**base, "task": main, "exact_match": value, "train_max": l_main})
                    if aux:
                        rows.append({**base, "task": other, "exact_match": 1.0, "train_max": l_aux})
    result = transfer_check(True)(pd.DataFrame(rows))
    assert result.status == "PASS"
    numbers = result.numbers.set_index(["data.group", "data.aux"])
    assert numbers.loc[("arith-sub", True), "band"] == "5-8" and numbers.loc[("arith-carry", True), "band"] == "9-16"
    assert numbers.loc[("arith-sub", True), "effect"] == pytest.approx(1.0)
    # The preset's own CPU scale is that layout; `cpu-v1` keeps the half-scale arith-sub group.
    tasks = {}
    for scale in ("cpu", "cpu-v1"):
        for plan in expand(get_preset("b-transfer-arith").spec(scale, seeds=[0])):
            if plan.config.data.group == "arith-sub" and plan.config.data.aux:
                tasks[scale] = ([(e.task, e.lengths) for e in plan.config.data.resolved_tasks()],
                                plan.config.data.batch_size, plan.config.train.steps)
    assert tasks["cpu"] == ([("reverse_add", (1, 4)), ("reverse_sub", (1, 8))], 256, 5000)
    assert tasks["cpu-v1"] == ([("reverse_add", (1, 8)), ("reverse_sub", (1, 16))], 64, 7500)


def test_multiplication_preset_trains_the_papers_lengths_and_shares_the_alone_runs():
    """b-transfer-mult's CPU scale trains reverse add 1-8 and multiplication 1-16 (`cpu-v1`: half of
    that), evaluates a quarter past 16, and its main-task-alone runs are b-transfer-arith's arith-carry
    alone runs (one fingerprint), so `--reuse` copies them instead of training them twice."""
    from lengthgen.presets.base import get_preset
    from lengthgen.sweeps.reuse import fingerprint
    from lengthgen.sweeps.spec import expand

    def plans(name, scale):
        return expand(get_preset(name).spec(scale, seeds=[0]))

    layout = {}
    for scale in ("cpu", "cpu-v1"):
        for plan in plans("b-transfer-mult", scale):
            if plan.config.data.aux:
                layout[scale] = ([(e.task, e.lengths) for e in plan.config.data.resolved_tasks()],
                                 max(plan.config.eval.length_list()))
    assert layout["cpu"] == ([("reverse_add", (1, 8)), ("mult_cot", (1, 16))], 20)
    assert layout["cpu-v1"] == ([("reverse_add", (1, 4)), ("mult_cot", (1, 8))], 12)
    # The steps plot: just past reverse add's training range as the runs trained it (1-8 here, 1-4 at cpu-v1).
    trained = pd.DataFrame({"task": ["reverse_add", "mult_cot"], "train_max": [8, 16]})
    assert get_preset("b-transfer-mult").step_lengths(trained) == [10, 12]
    assert get_preset("b-transfer-mult").step_lengths(trained.assign(train_max=[4, 8])) == [6, 8]
    arith = {fingerprint(p.config) for p in plans("b-transfer-arith", "cpu") if p.config.data.group == "arith-carry"}
    mult = plans("b-transfer-mult", "cpu")
    assert [p.config.data.aux for p in mult if fingerprint(p.config) in arith] == [False]


def test_maze_preset_trains_a_quarter_of_the_papers_lengths_and_reuses_its_probe():
    """b-transfer-maze's CPU scale trains the main task on 2-8 nodes and the auxiliary on 2-16 (`cpu-v1`:
    twice that), at the budget experiments/probes/maze_quarter.py chose; the probe's runs at that budget
    have the preset's fingerprints, so `repro` copies them instead of training them again."""
    from pathlib import Path

    from lengthgen.presets.base import get_preset
    from lengthgen.presets.transfer import MAZE_CPU
    from lengthgen.sweeps.reuse import fingerprint
    from lengthgen.sweeps.spec import expand, load_spec

    def layout(scale):
        return {(p.config.data.group, p.config.data.aux): [(e.task, e.lengths) for e in p.config.data.resolved_tasks()]
                for p in expand(get_preset("b-transfer-maze").spec(scale, seeds=[0]))}

    quarter, half = layout("cpu"), layout("cpu-v1")
    assert quarter[("maze-dfs", True)] == [("maze_dfs_trace", (2, 8)), ("maze_shortest_path", (2, 16))]
    assert quarter[("maze-path", False)] == [("maze_shortest_path", (2, 8))]
    assert half[("maze-dfs", True)] == [("maze_dfs_trace", (2, 16)), ("maze_shortest_path", (2, 32))]
    trained = pd.DataFrame({"task": ["maze_dfs_trace", "maze_shortest_path"], "train_max": [8, 16]})
    assert get_preset("b-transfer-maze").step_lengths(trained) == [10, 12]
    preset = expand(get_preset("b-transfer-maze").spec("cpu", seeds=[0]))
    assert {p.config.train.steps for p in preset} == {MAZE_CPU["train.steps"]}
    probe = expand(load_spec(Path(__file__).parent.parent / "experiments" / "probes" / "maze_quarter.py"))
    shared = {fingerprint(p.config) for p in probe} & {fingerprint(p.config) for p in preset}
    assert len(shared) == 2  # the two runs with auxiliaries, seed 0, at the chosen budget
