"""Aggregation, summaries, the generalization gap and preset checks against hand-computed values."""

import json

import pandas as pd
import pytest
import yaml

from lengthgen.errors import UserError
from lengthgen.evaluate import EvalRow
from lengthgen.presets import PRESETS, get_preset
from lengthgen.presets.copy_tasks import check_encodings
from lengthgen.reports.aggregate import collect, final, generalization_gap, summarize
from lengthgen.store.rundir import RunDir
from lengthgen.sweeps.run import SweepDir
from lengthgen.sweeps.spec import expand, load_spec, parse_spec

from helpers import finished_sweep

# Final-step exact match per (encoding, seed) -> task -> lengths 1, 2, 3.
FINAL = {
    ("nope", 0): {"copy": [1.0, 0.5, 0.0], "reverse": [1.0, 1.0, 0.5]},
    ("nope", 1): {"copy": [1.0, 0.7, 0.1], "reverse": [0.9, 0.6, 0.1]},
    ("rope", 0): {"copy": [1.0, 1.0, 1.0], "reverse": [0.0, 0.0, 0.0]},
    ("rope", 1): {"copy": [0.0, 0.0, 0.0], "reverse": [0.0, 0.0, 0.0]},
}


@pytest.fixture
def fake_sweep(tmp_path):
    """A sweep directory whose eval.csv files hold the numbers above (plus an earlier step)."""
    spec = parse_spec({
        "name": "fake",
        "base": {"data": {"tasks": [{"task": "copy", "lengths": [1, 2]}, {"task": "reverse", "lengths": [1, 3]}]}},
        "grid": {"model.encoding": ["nope", "rope"]}, "seeds": [0, 1]})

    def rows(plan):
        out = []
        for task, values in FINAL[(plan.point["model.encoding"], plan.seed)].items():
            for length, value in enumerate(values, start=1):
                out.append(EvalRow(5, task, length, 10, 0.123, 0.5))  # an earlier step, ignored at the end
                out.append(EvalRow(10, task, length, 10, value, value))
        return out

    return finished_sweep(tmp_path / "fake", spec, rows)


def test_collect_is_tidy(fake_sweep):
    df = collect(fake_sweep)
    assert len(df) == 4 * 2 * 3 * 2
    assert list(df.columns[:4]) == ["model.encoding", "seed", "run", "status"]
    assert set(df["status"]) == {"done"}
    assert df.loc[df["task"] == "reverse", "train_max"].unique().tolist() == [3]
    assert len(final(df)) == 4 * 2 * 3


def test_reevaluated_rows_replace_older_ones_and_unfinished_runs_stay_out(fake_sweep):
    run = RunDir(fake_sweep.path / "runs" / "encoding=nope__seed0")
    run.append_eval([EvalRow(10, "copy", 2, 10, 0.9, 0.9)])  # `lengthgen eval` at the same step
    df = collect(fake_sweep)
    row = final(df).query("run == 'encoding=nope__seed0' and task == 'copy' and length == 2")
    assert row["exact_match"].tolist() == [0.9]
    (run.path / "done.json").unlink()
    assert "encoding=nope__seed0" not in set(final(collect(fake_sweep))["run"])


def test_summary_over_seeds(fake_sweep):
    summary = summarize(collect(fake_sweep)).set_index(["model.encoding", "task", "length"])
    row = summary.loc[("nope", "copy", 2)]
    assert row["mean"] == pytest.approx(0.6)
    assert row["std"] == pytest.approx(0.1414213, abs=1e-6)  # sample std of 0.5 and 0.7
    assert (row["min"], row["max"], row["seeds"]) == (0.5, 0.7, 2)
    assert row["best_seed"] == 1 and row["best"] == pytest.approx(0.7)  # seed 1 averages 0.6 > 0.5
    rope = summary.loc[("rope", "copy", 3)]
    assert rope["best_seed"] == 0 and rope["best"] == 1.0 and rope["mean"] == 0.5


def test_generalization_gap(fake_sweep):
    gap = generalization_gap(final(collect(fake_sweep)), main="copy", aux="reverse").set_index(
        ["model.encoding", "seed"])
    assert gap.loc[("nope", 0), "gap"] == pytest.approx((0 + 0.5 + 0.5) / 3)
    assert gap.loc[("nope", 1), "gap"] == pytest.approx((0.1 + 0.1 + 0.0) / 3)
    assert gap.loc[("rope", 0), "gap"] == pytest.approx(1.0)
    only_long = generalization_gap(final(collect(fake_sweep)), "copy", "reverse", lengths=[3])
    assert only_long.set_index(["model.encoding", "seed"]).loc[("nope", 0), "gap"] == pytest.approx(0.5)
    with pytest.raises(UserError, match="both tasks must be evaluated"):
        generalization_gap(collect(fake_sweep), "copy", "maze")


def test_report_gap_section_and_heatmap(fake_sweep):
    from lengthgen.reports.plots import plot_heatmap
    from lengthgen.reports.report import write_report

    report = write_report(fake_sweep.path, gaps=[("copy", "reverse")]).read_text()
    assert "## Generalization gap copy vs reverse" in report and "| nope | 0 |" in report
    grid = pd.DataFrame([[0.03, 0.23], [0.15, 0.16]], index=pd.Index([16, 32], name="L_main"),
                        columns=pd.Index([16, 32], name="L_aux"))
    path = plot_heatmap(grid, fake_sweep.path / "heat.png", "gap")
    assert path.stat().st_size > 5_000


def encodings_table(long_rope: float, long_nope: float, fit: float = 1.0, top: int = 10,
                    long: tuple[int, ...] = (20, 24, 28, 32, 36, 40)) -> pd.DataFrame:
    """copy trained on 1..top: exact match `fit` there, seed 0's long value at the `long` lengths (seed 1: 0),
    and 1.0 at every length between top and the first long one (a band that must not be judged as 2x-4x)."""
    rows = []
    for point, long_value in (("nope", long_nope), ("rope", long_rope)):
        for seed in (0, 1):
            for length in [*range(1, long[0]), *long]:
                value = fit if length <= top else (long_value if seed == 0 else 0.0) if length in long else 1.0
                rows.append({"model.encoding": point, "seed": seed, "run": f"{point}{seed}", "status": "done",
                             "step": 100, "task": "copy", "length": length, "n": 8, "exact_match": value,
                             "token_acc": value, "train_max": top})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("rope,nope,fit,verdict", [
    (0.1, 0.2, 1.0, "PASS"), (0.6, 0.1, 1.0, "FAIL"), (0.1, 0.9, 1.0, "FAIL"), (0.1, 0.1, 0.8, "INCONCLUSIVE")])
def test_encodings_check_rule(rope, nope, fit, verdict):
    result = check_encodings(encodings_table(rope, nope, fit))
    assert result.status == verdict
    # Every seed is reported next to the best and the mean.
    assert set(result.numbers.columns) >= {"long_best", "long_mean", "long_seeds", "fit_best"}
    row = result.numbers.set_index("model.encoding").loc["rope"]
    assert row["long_best"] == pytest.approx(rope) and row["long_mean"] == pytest.approx(rope / 2)
    assert row["long_seeds"] == f"0: {rope:.3f}, 1: 0.000"
    # A rerun trained on 1-12: the band is 24-48 as evaluated, not the preset's 20-40.
    rerun = check_encodings(encodings_table(rope, nope, fit, top=12, long=(24, 30, 36, 48)))
    assert rerun.status == verdict and "lengths <= L = 12" in rerun.rule and "24-48 (2x-4x)" in rerun.rule
    # 2x not evaluated: the claim cannot be judged.
    table = encodings_table(rope, nope, fit, top=12, long=(24, 30, 36, 48))
    assert check_encodings(table[table["length"] != 24]).status == "INCONCLUSIVE"
    # No run finished yet: INCONCLUSIVE, not an error that stops the report.
    assert check_encodings(encodings_table(rope, nope, fit).assign(status="running")).status == "INCONCLUSIVE"


TINY_COST = {"train.steps": 4, "train.eval_every": 2, "train.checkpoint_every": 2, "model.layers": 1,
             "model.d_model": 32, "model.d_ff": 64, "model.heads": 2, "data.batch_size": 8}


def run_tiny_preset(name: str, root) -> tuple[SweepDir, list]:
    """A preset's CPU sweep, seed 0, under root/<name>-cpu-seeds-0 as `lengthgen repro` lays it out, run for
    a few steps of a tiny model: every piece of the preset runs end to end, in seconds."""
    from lengthgen.sweeps.run import run_sweep

    spec = get_preset(name).spec("cpu", seeds=[0])
    # A point's own values win over the spec's overrides, so the knobs that set a run's cost are shrunk
    # in the points that set them too (a-ppc's variable assignment sets 6,000 steps of 512).
    points = [{**p, **{k: v for k, v in TINY_COST.items() if k in p}} for p in spec.points]
    spec = spec.model_copy(update={"points": points, "overrides": [
        *(f"{k}={v}" for k, v in TINY_COST.items()),
        "train.snapshot_steps=[]", "eval.n=4", "eval.lengths=[2,5,9,17,33]"]})
    sweep = SweepDir(root / spec.name)
    sweep.prepare(spec, force=False)
    (sweep.path / "preset.json").write_text(json.dumps({"name": name, "scale": "cpu"}))
    return sweep, run_sweep(spec, sweep.path, workers=1, threads=2, quiet=True)


# Presets with a preparation step (b-pretrained pretrains the models its points start from) are run
# end to end by their own tests (tests/test_pretrained.py), with that step shrunk too.
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(n for n, p in PRESETS.items() if p.prepare is None))
def test_preset_cpu_config_runs_end_to_end(name, tmp_path, monkeypatch):
    from lengthgen.presets.language import C4_VARIABLE
    from lengthgen.reports.report import write_report

    # a-language's paper scale reads the user's C4 shard; a small local file stands in for it.
    shard = tmp_path / "c4-shard.txt"
    shard.write_text("A stand-in for a local C4 shard.\n" * 50)
    monkeypatch.setenv(C4_VARIABLE, str(shard))
    preset = get_preset(name)
    assert preset.spec("paper").base["model"]["d_model"] == 384  # the paper scale exists and is the paper's size
    sweep, results = run_tiny_preset(name, tmp_path)
    assert results and all(r.status == "done" for r in results)
    # every run is the tiny one, whatever its point sets
    assert {json.loads((run / "done.json").read_text())["steps"] for run in (sweep.path / "runs").iterdir()} == {4}
    report = write_report(sweep.path, preset=preset).read_text()
    assert "**Verdict: INCONCLUSIVE**" in report  # four steps fit nothing, and the check says so
    # seed 0 alone is a sweep of its own, named as `lengthgen repro NAME --seeds 0` names it
    assert yaml.safe_load((sweep.path / "sweep.yaml").read_text())["name"] == sweep.path.name == f"{name}-cpu-seeds-0"


@pytest.mark.slow
def test_repro_summary_lists_every_preset_with_its_reported_verdict(tmp_path, capsys):
    import os

    from lengthgen.cli.main import main
    from lengthgen.reports.report import write_report

    sweep, results = run_tiny_preset("b-transfer-string", tmp_path)
    assert [r.status for r in results] == ["done", "done"]
    write_report(sweep.path, preset=get_preset("b-transfer-string"))
    # A sweep that has started but has no report yet: its spec is stored, no run has finished.
    started = SweepDir(tmp_path / "b-control-cpu")
    started.prepare(get_preset("b-control").spec("cpu"), force=False)

    assert main(["repro", "--summary", "--dir", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    table = (tmp_path / "repro-cpu.md").read_text()
    assert f"summary {tmp_path / 'repro-cpu.md'}" in printed
    lines = [line.split(" | ") for line in table.splitlines()
             if line.startswith("| ") and not line.startswith("| preset")]
    rows = {cells[0].strip("| "): cells for cells in lines if "-seeds-" not in cells[-1]}  # the original sweeps
    assert set(rows) == {n for n, p in PRESETS.items() if "cpu" in p.scales}
    # The tiny run is seed 0 alone, a replication of its own: its row stands beside the original's "not run".
    (string,) = [cells for cells in lines if "b-transfer-string-cpu-seeds-0" in cells[-1]]
    assert rows["b-transfer-string"][2] == "not run"
    assert string[2:6] == ["INCONCLUSIVE", "2 / 2", "0", f"{sum(s['wall_s'] for s in sweep.sessions()):,.0f} s"]
    assert ("[report](b-transfer-string-cpu-seeds-0/report.md)" in string[6]
            and "[lengths](b-transfer-string-cpu-seeds-0/lengths.png)" in string[6])
    assert rows["b-control"][2:5] == ["no report (run `lengthgen report` on the sweep)", "0 / 12", "0, 1, 2"]
    assert rows["b-ratio"][2] == "not run"
    assert (f"{len(rows)} presets, {len(lines)} sweeps with replications. INCONCLUSIVE: 1, "
            f"not run: {len(lines) - 2}, no verdict: 1." in table)
    assert "b-transfer-string    INCONCLUSIVE  (2 / 2 runs)" in printed
    # The overview: one panel per preset, the sweep's curve where a report exists, linked from the table.
    from lengthgen.reports.summary import overview_panels, repro_summary

    assert "![overview](repro-cpu.png)" in table and (tmp_path / "repro-cpu.png").stat().st_size > 10_000
    panels = dict(overview_panels(tmp_path, repro_summary(tmp_path, "cpu"), "cpu"))
    assert len(panels) == len(lines) and panels["b-transfer-string (seeds 0): INCONCLUSIVE"] is not None
    assert panels["b-ratio: not run"] is None

    # A run that finished after the report was written makes its verdict stale, and the summary says so.
    done = next((sweep.path / "runs").glob("*/done.json"))
    later = (sweep.path / "report.md").stat().st_mtime + 10
    os.utime(done, (later, later))
    assert main(["repro", "--summary", "--dir", str(tmp_path)]) == 0
    assert "INCONCLUSIVE (report older than its newest run: run `lengthgen report` again)" in \
        (tmp_path / "repro-cpu.md").read_text()


@pytest.mark.parametrize("argv, message", [
    (["repro", "b-ratio", "--summary"], "error: --summary covers every preset; give no preset name"),
    (["repro", "--summary", "--dir", "no-such-folder"], "error: sweeps folder 'no-such-folder' does not exist"),
    (["repro", "--summary", "--scale", "laptop"], "error: unknown scale 'laptop'"),
])
def test_repro_summary_bad_use_is_one_line_exit_2(argv, message, tmp_path, monkeypatch, capsys):
    from lengthgen.cli.main import main

    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert capsys.readouterr().err.strip().startswith(message)


def test_swapcase_trains_its_own_cpu_budget_and_the_old_one_stays_a_probe():
    from pathlib import Path

    runs = {p.config.train.steps for p in expand(get_preset("b-transfer-swapcase").spec("cpu"))}
    assert runs == {7500}
    # The budget is the preset's own: the single-auxiliary preset on the same main task keeps 2,500.
    assert {p.config.train.steps for p in expand(get_preset("b-single-aux-string").spec("cpu"))} == {2500}
    every = {(p.config.train.eval_every, p.config.train.checkpoint_every)
             for p in expand(get_preset("b-transfer-swapcase").spec("cpu"))}
    assert every == {(1500, 1500)}  # as many evaluations as at 2,500 steps
    old = load_spec(Path(__file__).parent.parent / "experiments" / "probes" / "b_transfer_swapcase_2500.py")
    assert old.name == "b-transfer-swapcase-cpu-2500"
    assert {(p.config.train.steps, p.config.train.eval_every) for p in expand(old)} == {(2500, 500)}
    assert len(expand(old)) == 6


def test_points_that_set_different_keys_summarize(tmp_path):
    # Regression: a number only some points set (train.lr here) made summarize's merge fail
    # ("merge on float64 and object columns").
    spec = parse_spec({"name": "mixed", "base": {"data": {"tasks": [{"task": "copy", "lengths": [1, 2]}]}},
                       "points": [{}, {"train.lr": 3e-4}, {"model.encoding": "nope"}], "seeds": [0, 1]})
    sweep = finished_sweep(tmp_path / "mixed", spec, lambda plan: [
        EvalRow(10, "copy", length, 10, 0.1 * plan.seed + 0.2 * length, 0.5) for length in (1, 2)])
    summary = summarize(collect(sweep))
    assert len(summary) == 3 * 2 and summary["train.lr"].dtype == float
    lr = summary[summary["train.lr"] == 3e-4].set_index("length")
    assert lr.loc[2, "mean"] == pytest.approx(0.45) and lr.loc[2, "best_seed"] == 1
    from lengthgen.reports.aggregate import point_label

    row = pd.Series({"model.layers": 1.0, "train.lr": float("nan"), "model.encoding": "nope"})
    assert point_label(row, ["model.layers", "train.lr", "model.encoding"]) == "layers=1, encoding=nope"
    # A legend wraps a long label (a task_options dict) instead of widening its panel.
    options = {"reverse_sub": {"eval_grid": {"sign": ["nonneg", "neg"]}}}
    row = pd.Series({"data.group": "arith-sub", "data.task_options": str(options)})
    wrapped = point_label(row, list(row.index), wrap=30)
    assert max(len(line) for line in wrapped.split("\n")) <= 30 < len(wrapped)
    assert wrapped.replace("\n", " ") == point_label(row, list(row.index))


def test_other_seeds_make_a_replication_sweep_that_the_summary_lists_apart(tmp_path):
    from lengthgen.reports.summary import overview_panels, repro_summary

    preset = get_preset("b-control")
    assert preset.spec("cpu").name == "b-control-cpu"
    assert preset.spec("cpu", [2, 0, 1]).name == "b-control-cpu"  # its own seeds in any order: the original
    assert preset.spec("cpu", [2, 0, 1]).seeds == [0, 1, 2]  # ... with the original's spec, run order included
    # Some of its own seeds: a sweep of its own, so that it can neither clash with the original nor replace it.
    assert preset.spec("cpu", [0, 1]).name == "b-control-cpu-seeds-0-1"
    replication = preset.spec("cpu", [3, 4, 5])
    assert replication.name == "b-control-cpu-seeds-3-4-5" and replication.seeds == [3, 4, 5]
    for spec, verdict in ((preset.spec("cpu"), "PASS"), (replication, "FAIL")):
        sweep = SweepDir(tmp_path / spec.name)
        sweep.prepare(spec, force=False)
        (sweep.path / "report.md").write_text(f"# {spec.name}\n\n**Verdict: {verdict}**\n")
    (tmp_path / "b-control-cpu-seeds-notes").mkdir()  # not a replication: ignored
    table = repro_summary(tmp_path, "cpu").set_index("sweep")
    assert table.loc["b-control-cpu", "verdict"] == "PASS" and table.loc["b-control-cpu", "seeds"] == "0, 1, 2"
    assert table.loc["b-control-cpu-seeds-3-4-5", "verdict"] == "FAIL"
    assert table.loc["b-control-cpu-seeds-3-4-5", "seeds"] == "3, 4, 5"
    assert (table["preset"] == "b-control").sum() == 2
    titles = [title for title, _ in overview_panels(tmp_path, repro_summary(tmp_path, "cpu"), "cpu")]
    assert "b-control: PASS" in titles and "b-control (seeds 3, 4, 5): FAIL" in titles


def test_legends_name_only_the_keys_that_differ_between_a_panels_lines():
    from lengthgen.reports.plots import varying_keys

    rows = pd.DataFrame({"data.tasks.0.task": ["copy"] * 3, "model.encoding": ["learned", "nope", "rope"],
                         "model.layers": [1.0, float("nan"), float("nan")], "data.batch_size": [64, 64, 64]})
    keys = list(rows.columns)
    # The task and the batch are the same on every line; a key only one point sets (layers) differs.
    assert varying_keys(rows, keys) == ["model.encoding", "model.layers"]
    assert varying_keys(rows.iloc[:1], keys) == keys  # one line: nothing differs, keep the full label


def test_overrides_make_a_variant_sweep_whose_overrides_win_over_the_points():
    preset = get_preset("a-coupling")
    plain = preset.spec("cpu")
    variant = preset.spec("cpu", [0], ["data.tasks.0.lengths=[1,6]", "eval.lengths=[2,6,12,24]"])
    assert variant.name.startswith("a-coupling-cpu-seeds-0-set-") and len(variant.name) == len(
        "a-coupling-cpu-seeds-0-set-") + 8
    assert variant.name == preset.spec("cpu", [0], ["data.tasks.0.lengths=[1,6]", "eval.lengths=[2,6,12,24]"]).name
    # reverse addition's points set their own lengths and evaluation lengths; the overrides replace them
    assert any("data.tasks.0.lengths" in p for p in plain.points)
    assert not any("data.tasks.0.lengths" in p or "eval.lengths" in p for p in variant.points)
    plans = expand(variant)
    assert len(plans) == len(plain.points)
    assert {p.config.data.tasks[0].lengths for p in plans} == {(1, 6)}
    assert {tuple(p.config.eval.length_list()) for p in plans} == {(2, 6, 12, 24)}
    with pytest.raises(UserError, match="must be KEY=VALUE"):
        preset.spec("cpu", None, ["data.tasks.0.lengths"])


@pytest.mark.slow
def test_repro_with_overrides_judges_the_variant_at_its_own_lengths(tmp_path, capsys):
    from lengthgen.cli.main import main

    tiny = ["train.steps=4", "train.eval_every=2", "train.checkpoint_every=2", "model.d_model=16", "model.d_ff=32",
            "model.heads=2", "data.batch_size=8", "eval.n=4", "data.tasks.0.lengths=[1,6]", "eval.lengths=[2,6,12]"]
    argv = ["repro", "coupling-vs-rope", "--dir", str(tmp_path), "--seeds", "0", "--workers", "1", "--threads", "1",
            *(f"--set={o}" for o in tiny)]
    assert main(argv) == 0
    (sweep,) = tmp_path.glob("coupling-vs-rope-cpu-seeds-0-set-*")
    assert yaml.safe_load((sweep / "sweep.yaml").read_text())["overrides"][-len(tiny):] == tiny
    report = (sweep / "report.md").read_text()
    # Four steps fit nothing; the rule is stated at the variant's L = 6 and 2x = 12, not the preset's 10 and 20.
    assert "**Verdict: INCONCLUSIVE**" in report and "L = 6" in report and "at length 12 (2x)" in report
    capsys.readouterr()
    assert main(["repro", "--all", "--dir", str(tmp_path), "--set=eval.n=4"]) == 2
    assert "give a preset name" in capsys.readouterr().err


def test_copy_encodings_keeps_its_first_cpu_budget_reachable():
    """3,000 steps since NoPE did not fit copy on 1-12 at 1,600; the first budget stays as `cpu-v1`."""
    preset = get_preset("copy-encodings")
    steps = {scale: {p.config.train.steps for p in expand(preset.spec(scale))} for scale in ("cpu", "cpu-v1")}
    assert steps == {"cpu": {3000}, "cpu-v1": {1600}}
    assert preset.spec("cpu-v1").name == "copy-encodings-cpu-v1"
