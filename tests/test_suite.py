"""`lengthgen repro --all`: every preset's sweep as one queue (lengthgen.presets.suite)."""

import json

import pandas as pd
import pytest

from lengthgen.cli.main import main
from lengthgen.presets import Preset, Verdict
from lengthgen.presets import suite as suite_module
from lengthgen.registry import Registry
from lengthgen.sweeps.executors import EXECUTORS, execute_job
from lengthgen.sweeps.run import SweepDir

from helpers import tiny_config


def fitted(df: pd.DataFrame) -> Verdict:
    """PASS when copy is exact at length 1 (a rule that sees the numbers, for the test)."""
    last = df[(df["task"] == "copy") & (df["length"] == 1)]
    return Verdict("PASS" if (last["exact_match"] >= 0).all() else "FAIL", "exact match at length 1 exists",
                   last[["run", "exact_match"]])


def tiny_preset(name: str, encodings: list[str], steps: int = 6) -> Preset:
    base = tiny_config(train={**tiny_config()["train"], "steps": steps, "threads": 1, "log_every": 3})
    base["eval"] = {"lengths": [1, 2], "n": 4}
    tree = {"base": base, "grid": {"model.encoding": encodings}, "seeds": [0]}
    return Preset(name, "T", f"{name} claim", {"cpu": tree}, fitted)


@pytest.fixture
def presets(monkeypatch):
    registry = Registry("preset")
    for preset in (tiny_preset("wide", ["nope", "rope"]), tiny_preset("narrow", ["rope"]),
                   tiny_preset("long", ["alibi"], steps=40)):
        registry.register(preset.name)(preset)
    monkeypatch.setattr(suite_module, "PRESETS", registry)
    monkeypatch.setattr("lengthgen.reports.summary.PRESETS", registry)
    calls = []

    def inline(jobs, workers, address=None):
        calls.extend(job.name for job in jobs)
        return map(execute_job, jobs)

    monkeypatch.setitem(EXECUTORS, "inline", inline)
    return calls


def test_the_suite_trains_shared_runs_once_cheapest_first_and_reports_each(presets, tmp_path, capsys):
    code = main(["repro", "--all", "--dir", str(tmp_path), "--executor", "inline", "--workers", "1"])
    out = capsys.readouterr()
    assert code == 0, out.err
    # narrow (one run) before wide (whose rope run narrow trains) before long (the costliest run)
    assert presets == ["narrow/encoding=rope__seed0", "wide/encoding=nope__seed0", "long/encoding=alibi__seed0"]
    assert "order: narrow, wide, long" in out.out
    shared = tmp_path / "wide-cpu" / "runs" / "encoding=rope__seed0"
    assert json.loads((shared / "reused.json").read_text())["source"].endswith("narrow-cpu/runs/encoding=rope__seed0")
    for name in ("narrow", "wide", "long"):
        report = (tmp_path / f"{name}-cpu" / "report.md").read_text()
        assert "**Verdict: PASS**" in report
        assert SweepDir(tmp_path / f"{name}-cpu").sessions()[-1]["queue"] == "suite"
    summary = (tmp_path / "repro-cpu.md").read_text()
    assert "3 presets. PASS: 3." in summary
    # Again: everything is done, nothing is trained, the verdicts stand.
    presets.clear()
    assert main(["repro", "--all", "--dir", str(tmp_path), "--executor", "inline", "--workers", "1"]) == 0
    assert presets == []
    assert "PASS" in capsys.readouterr().out


def test_run_cost_grows_with_steps_model_and_lengths():
    from lengthgen.config import build_config

    small = build_config(tiny_config())
    more_steps = build_config(tiny_config(train={**tiny_config()["train"], "steps": 60}))
    wider = build_config(tiny_config(model={**tiny_config()["model"], "d_model": 64, "d_ff": 128}))
    longer = build_config(tiny_config(data={"tasks": [{"task": "copy", "lengths": [1, 12]}], "batch_size": 32}))
    from lengthgen.sweeps.cost import run_cost as cost
    assert cost(small) < cost(more_steps) and cost(small) < cost(wider) and cost(small) < cost(longer)


@pytest.mark.parametrize("argv,message", [
    (["repro", "copy-encodings", "--all"], "--all covers every preset; give no preset name"),
    (["repro", "--all", "--summary"], "give --all (run every preset) or --summary"),
    (["repro", "--all", "--no-reuse"], "--reuse and --no-reuse do not apply"),
    (["repro", "--all", "--scale", "huge"], "unknown scale 'huge'"),
])
def test_bad_suite_options_fail_in_one_line(argv, message, tmp_path, capsys):
    assert main([*argv, "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
