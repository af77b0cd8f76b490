"""How far a main task reaches (`--reach`): band score, furthest length, the report section and plot,
on the transfer-vs-budget sweep spec with made-up evaluation rows."""

from pathlib import Path

import pandas as pd
import pytest

from lengthgen.cli.main import main
from lengthgen.evaluate import EvalRow
from lengthgen.reports.aggregate import collect
from lengthgen.reports.reach import furthest_length, reach_table, reach_x
from lengthgen.sweeps.spec import load_spec

from helpers import finished_sweep

SPEC = Path(__file__).resolve().parents[1] / "experiments" / "transfer" / "budget.py"


def test_furthest_length_stops_at_the_first_miss():
    assert furthest_length(pd.Series({1: 1.0, 2: 0.9, 3: 0.4, 4: 0.95})) == 2  # 4 does not count past the miss
    assert furthest_length(pd.Series({3: 0.6, 1: 1.0, 2: 0.5})) == 3  # sorted by length, 0.5 reaches
    assert furthest_length(pd.Series({1: 0.2, 2: 1.0})) == 0


def reach_of(plan) -> int:
    """Made-up reach of reverse add: 10 at 2,500 steps, 12 at 7,500, 14 at 20,000 with auxiliaries, + seed;
    8 (its training length) alone."""
    if not plan.point["data.aux"]:
        return 8
    return {2500: 10, 7500: 12, 20000: 14}[plan.point["train.steps"]] + plan.seed


def rows_of(plan):
    """Every task right up to its training length; reverse add right up to `reach_of`."""
    rows = []
    for task in plan.config.data.resolved_tasks():
        top = reach_of(plan) if task.task == "reverse_add" else task.lengths[1]
        rows += [EvalRow(plan.config.train.steps, task.task, n, 8, float(n <= top), float(n <= top))
                 for n in range(1, 21)]
    return rows


@pytest.fixture
def budget_sweep(tmp_path):
    spec = load_spec(SPEC)
    return finished_sweep(tmp_path / spec.name, spec, rows_of)


def test_budget_spec_trains_each_budget_and_width_with_the_baseline_alone():
    plans = load_spec(SPEC)
    points = {(p["data.aux"], p["train.steps"], p["model.d_model"]) for p in plans.points}
    assert points == {(True, s, w) for s in (2500, 7500, 20000) for w in (128, 256)} | {
        (False, 20000, 128), (False, 20000, 256)}
    assert plans.seeds == [0, 1, 2]


def test_reach_table_scores_every_seed_on_the_auxiliaries_band(budget_sweep):
    table = reach_table(collect(budget_sweep), "reverse_add")
    assert len(table) == 24 and set(table[["L_main", "L_aux"]].itertuples(index=False)) == {(8, 16)}
    row = table[(table["train.steps"] == 7500) & (table["model.d_model"] == 256) & table["data.aux"]
                & (table["seed"] == 1)].iloc[0]
    assert row["furthest"] == 13 and row["band"] == pytest.approx(5 / 8)  # 9-13 of 9-16 right
    alone = table[~table["data.aux"].astype(bool)]
    assert (alone["furthest"] == 8).all() and (alone["band"] == 0).all()
    assert reach_x(table) == "train.steps"  # not data.aux, although booleans are numbers to pandas


def test_report_has_the_reach_section_and_plot(budget_sweep, capsys):
    assert main(["report", str(budget_sweep.path), "--reach", "reverse_add"]) == 0
    text = (budget_sweep.path / "report.md").read_text()
    assert "## How far reverse_add reaches" in text and "![reach](reach_reverse_add.png)" in text
    assert (budget_sweep.path / "reach_reverse_add.png").stat().st_size > 0
    per_seed = pd.read_csv(budget_sweep.path / "reach_reverse_add.csv")
    assert sorted(per_seed["furthest"].unique()) == [8, 10, 11, 12, 13, 14, 15, 16]


@pytest.mark.parametrize("task,needle", [("mqar", "not a task of this sweep"),
                                         ("no_carry", "no other task is trained beyond")])
def test_reach_errors_are_one_line_and_come_before_training(budget_sweep, capsys, task, needle):
    assert main(["report", str(budget_sweep.path), "--reach", task]) == 2
    assert main(["sweep", str(SPEC), "--dir", str(budget_sweep.path.parent / "new"), "--reach", task]) == 2
    for err in capsys.readouterr().err.strip().splitlines():
        assert needle in err
    assert not (budget_sweep.path.parent / "new").exists()  # nothing trained, nothing made


def test_a_sweep_under_way_still_gets_its_report(tmp_path):
    spec = load_spec(SPEC)
    sweep = finished_sweep(tmp_path / spec.name, spec, rows_of)
    for run in (sweep.path / "runs").iterdir():
        if "aux=True" in run.name:  # only the main task alone has finished: no longer-trained task yet
            (run / "done.json").unlink()
    assert main(["report", str(sweep.path), "--reach", "reverse_add"]) == 0
    text = (sweep.path / "report.md").read_text()
    assert "## How far reverse_add reaches" in text and "Nothing to score yet" in text
