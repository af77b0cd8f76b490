"""The replication report: every seed set of a preset judged by its own rule, the union, every seed plotted."""

import dataclasses

import pandas as pd
import pytest

from lengthgen.cli.main import main
from lengthgen.errors import UserError
from lengthgen.evaluate import EvalRow
from lengthgen.presets import get_preset
from lengthgen.reports.replication import load_seed_sets, replicated, union, write_replication_report
from lengthgen.tasks.groups import GROUPS

from helpers import finished_sweep

PRESET = "b-single-aux-string"  # swapcase-reverse 1-8 with reverse or swapcase 1-16, or alone
# Main-task exact match over 9-16 per (group, with auxiliaries, seed); everything else fits (1.0).
BAND = {("string-reverse-only", True): {0: 0.1, 1: 0.9, 2: 0.2, 3: 0.1, 4: 0.2, 5: 0.25},
        ("string-swapcase-only", True): {s: 0.0 for s in range(6)}}


def rows_of(plan):
    """Final-step rows: every task right up to its training length, the main task's band as in BAND."""
    group = plan.point["data.group"]
    main = GROUPS[group].main
    band = BAND.get((group, plan.point.get("data.aux", True)), {}).get(plan.seed, 0.0)
    rows = []
    for task in plan.config.data.resolved_tasks():
        for length in range(1, 21):
            value = 1.0 if length <= task.lengths[1] else (band if task.task == main and length <= 16 else 0.0)
            rows.append(EvalRow(100, task.task, length, 8, value, value))
    return rows


@pytest.fixture
def seed_sets(tmp_path):
    """The original sweep (seeds 0-2) and a replication on seeds 3-5, every run finished."""
    preset = get_preset(PRESET)
    for seeds in (None, [3, 4, 5]):
        spec = preset.spec("cpu", seeds)
        finished_sweep(tmp_path / spec.name, spec, rows_of)
    return tmp_path


def test_each_seed_set_is_judged_alone_and_a_pass_that_fresh_seeds_lose_is_not_replicated(seed_sets):
    sets = load_seed_sets(seed_sets, get_preset(PRESET), "cpu")
    assert [(s.name, s.seeds, s.verdict) for s in sets] == [
        ("b-single-aux-string-cpu", [0, 1, 2], "PASS"),  # seed 1 carries reverse: 0.9 against 0.0
        ("b-single-aux-string-cpu-seeds-3-4-5", [3, 4, 5], "INCONCLUSIVE")]  # no seed reaches 0.3
    assert replicated("PASS", "INCONCLUSIVE") == "not replicated (INCONCLUSIVE)"
    assert replicated("PASS", "PASS") == "replicated"
    assert replicated("FAIL", "PASS").startswith("nothing to replicate")
    assert sorted(union(sets)["seed"].unique()) == [0, 1, 2, 3, 4, 5]


def test_report_has_the_union_verdict_and_every_seeds_effect(seed_sets, capsys):
    assert main(["repro", PRESET, "--replication", "--dir", str(seed_sets)]) == 0
    path = seed_sets / "b-single-aux-string-cpu-replication.md"
    assert capsys.readouterr().out.strip() == str(path)
    text = path.read_text()
    assert "| b-single-aux-string-cpu-seeds-3-4-5 | 3, 4, 5 | INCONCLUSIVE | not replicated (INCONCLUSIVE) |" in text
    assert "**The same rule over all 6 seeds (0, 1, 2, 3, 4, 5): PASS**" in text  # best of six is seed 1
    assert "more lenient than any one set" in text  # a best-seed rule over the union
    # Every seed's own effect (with reverse minus the same seed alone), its mean and the count >= 0.3.
    line = next(x for x in text.splitlines() if x.startswith("| group=string-reverse-only") and "all seeds" in x)
    assert "0: 0.100, 1: 0.900, 2: 0.200, 3: 0.100, 4: 0.200, 5: 0.250" in line
    assert f"| {sum(BAND[('string-reverse-only', True)].values()) / 6:.3f} | 1 of 6 |" in line
    assert (seed_sets / "b-single-aux-string-cpu-replication.png").stat().st_size > 10_000
    assert main(["repro", "--summary", "--dir", str(seed_sets)]) == 0  # the summary links it
    assert "[b-single-aux-string-cpu-replication](b-single-aux-string-cpu-replication.md)" in \
        (seed_sets / "repro-cpu.md").read_text()


def test_a_seed_in_two_sets_counts_once(seed_sets):
    spec = get_preset(PRESET).spec("cpu", [2, 6])  # seed 2 again, beside a new one
    finished_sweep(seed_sets / spec.name, spec, rows_of)
    sets = load_seed_sets(seed_sets, get_preset(PRESET), "cpu")
    assert [s.name for s in sets][-1] == "b-single-aux-string-cpu-seeds-3-4-5"  # by name: -2-6 sorts first
    merged = union(sets)
    assert sorted(merged["seed"].unique()) == [0, 1, 2, 3, 4, 5, 6]
    original = sets[0].results
    assert (merged["seed"] == 2).sum() == (original["seed"] == 2).sum()  # the original's seed 2, once
    assert not merged.duplicated(["run", "step", "task", "length"]).any()


def test_replication_errors_are_one_line(tmp_path, capsys):
    with pytest.raises(UserError, match="no sweep of b-rope"):
        write_replication_report(tmp_path, get_preset("b-rope"), "cpu")
    assert main(["repro", "--replication"]) == 2
    assert main(["repro", PRESET, "--replication", "--seeds", "3", "--dir", str(tmp_path)]) == 2
    assert "give no --seeds" in capsys.readouterr().err
    for bad in ("-1,2", "3,3,4"):  # a negative seed, a repeated one: nothing is written
        assert main(["repro", PRESET, f"--seeds={bad}", "--dir", str(tmp_path)]) == 2
        assert "must be distinct integers >= 0" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_a_preset_that_judges_an_analysis_is_judged_on_it_in_every_set(tmp_path):
    """b-heads judges the head analysis of each run's checkpoints; here the analysis is replaced by a made-up
    tracking table (related pair tracking in seeds 0, 1 and 3; the control in none), the plumbing is real."""
    def tracking(df, path):
        rows = []
        for (group, seed, run), _ in df.groupby(["data.group", "seed", "run"]):
            pair = "related" if group == "string-reverse-only" else "control"
            tracks = pair == "related" and seed in (0, 1, 3)
            for step, gap in zip(range(1, 6), [0.5, 0.4, 0.3, 0.2, 0.1]):
                distance = gap if tracks else 0.5 - gap
                rows.append({"pair": pair, "data.group": group, "seed": seed, "run": run, "step": step, "gap": gap,
                             "map_distance": distance, "attention_diff": 0.0, "map_distance_in": distance,
                             "attention_diff_in": 0.0, "main_fit": 1.0, "aux_fit": 1.0, "main_band": 0.0})
        return pd.DataFrame(rows)

    preset = dataclasses.replace(get_preset("b-heads"), analyze=tracking)
    for seeds in (None, [3, 4, 5]):
        spec = preset.spec("cpu", seeds)
        finished_sweep(tmp_path / spec.name, spec, rows_of)
    sets = load_seed_sets(tmp_path, preset, "cpu")
    assert [(s.seeds, s.verdict) for s in sets] == [([0, 1, 2], "PASS"), ([3, 4, 5], "FAIL")]  # 2 of 3, 1 of 3
    text = write_replication_report(tmp_path, preset, "cpu").read_text()
    assert "| b-heads-cpu-seeds-3-4-5 | 3, 4, 5 | FAIL | not replicated (FAIL) |" in text
    assert "**The same rule over all 6 seeds (0, 1, 2, 3, 4, 5): FAIL**" in text  # 3 of 6 is not more than half
    assert "a majority of its counted seeds, now of every seed" in text and "lenient" not in text
    line = next(x for x in text.splitlines() if x.startswith("| related") and "all seeds" in x)
    assert "0: 1.000, 1: 1.000, 2: -1.000, 3: 1.000, 4: -1.000, 5: -1.000" in line and "3 of 6" in line


def test_an_analysis_without_runs_and_seeds_cannot_be_merged(tmp_path):
    """An analysis whose rows are not runs and seeds (one per checkpoint, say) cannot be merged across
    seed sets: a one-line error."""
    preset = dataclasses.replace(get_preset("b-heads"),
                                 analyze=lambda df, path: pd.DataFrame({"checkpoint": [1000], "score": [0.5]}))
    spec = preset.spec("cpu")
    finished_sweep(tmp_path / spec.name, spec, rows_of)
    with pytest.raises(UserError, match="without runs and seeds"):
        load_seed_sets(tmp_path, preset, "cpu")
