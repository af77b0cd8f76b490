"""Sweeps: run, skip finished work, survive being killed, aggregate, report; both executors."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from lengthgen.cli import main
from lengthgen.report import write_report
from lengthgen.sweep import SweepDir, expand, load_spec, parse_spec, run_sweep

SPEC = {
    "name": "tiny",
    "base": {
        "data": {"tasks": [{"task": "copy", "lengths": [1, 4]}], "batch_size": 16},
        "model": {"layers": 1, "heads": 2, "d_model": 16, "d_ff": 32},
        "train": {"steps": 40, "eval_every": 10, "checkpoint_every": 10, "log_every": 5, "precision": "float32"},
        "eval": {"lengths": "1:6", "n": 16},
    },
    "grid": {"model.encoding": ["nope", "rope"]},
    "seeds": [0, 1],
}


def spec_file(tmp_path, tree=SPEC, suffix=".yaml"):
    path = tmp_path / f"spec{suffix}"
    path.write_text(yaml.safe_dump(tree) if suffix == ".yaml" else f"SWEEP = {tree!r}\n")
    return path


def table(path):
    return pd.read_csv(path / "results.csv").sort_values(["run", "step", "task", "length"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """An uninterrupted sweep, the reference for the other tests."""
    root = tmp_path_factory.mktemp("sweeps")
    spec = parse_spec(SPEC)
    results = run_sweep(spec, root / "tiny", workers=2, threads=1, quiet=True)
    write_report(root / "tiny")
    return root / "tiny", results


def test_sweep_runs_aggregates_plots_and_reports(finished):
    path, results = finished
    assert sorted(r.name for r in results) == [f"encoding={e}__seed{s}" for e in ("nope", "rope") for s in (0, 1)]
    assert all(r.status == "done" for r in results)
    df = table(path)
    assert set(df.columns) >= {"model.encoding", "seed", "step", "task", "length", "n", "exact_match", "token_acc"}
    assert len(df) == 4 * 4 * 6  # runs x eval steps x lengths
    assert pd.read_parquet(path / "results.parquet").shape == df.shape
    summary = pd.read_csv(path / "summary.csv")
    assert len(summary) == 2 * 6 and {"mean", "std", "min", "max", "best_seed", "best"} <= set(summary.columns)
    report = (path / "report.md").read_text()
    for needle in ("## Runs", "4 of 4 runs finished", "lengths.png", "steps.png", "## Configuration"):
        assert needle in report
    assert (path / "lengths.png").stat().st_size > 10_000 and (path / "steps.png").stat().st_size > 10_000


def test_rerun_does_no_work(finished):
    path, _ = finished
    before = {p: p.stat().st_mtime_ns for p in path.glob("runs/*/eval.csv")}
    assert run_sweep(parse_spec(SPEC), path, workers=2, threads=1, quiet=True) == []
    assert before == {p: p.stat().st_mtime_ns for p in path.glob("runs/*/eval.csv")}


def test_killed_sweep_completes_only_the_missing_runs(finished, tmp_path):
    path, _ = finished
    spec = spec_file(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "lengthgen.cli", "sweep", str(spec), "--dir", str(tmp_path),
                             "--workers", "1"], start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    runs = tmp_path / "tiny" / "runs"

    def interrupted_midway() -> bool:
        done = {p.parent.name for p in runs.glob("*/done.json")}
        resumable = {p.parent.parent.name for p in runs.glob("*/checkpoints/step_*")} - done
        return (len(done) >= 1 and bool(resumable)) or len(done) >= 2

    deadline = time.time() + 120
    while time.time() < deadline and not interrupted_midway():
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = {p.parent.name for p in runs.glob("*/done.json")}
    assert 1 <= len(done_before) < 4
    mtimes = {name: (runs / name / "done.json").stat().st_mtime_ns for name in done_before}
    results = run_sweep(load_spec(spec), tmp_path / "tiny", workers=2, threads=1, quiet=True)
    assert {r.name for r in results} == {f"encoding={e}__seed{s}" for e in ("nope", "rope") for s in (0, 1)} - done_before
    assert mtimes == {name: (runs / name / "done.json").stat().st_mtime_ns for name in done_before}
    write_report(tmp_path / "tiny")
    pd.testing.assert_frame_equal(table(tmp_path / "tiny"), table(path))


def _live_members(group: int, within: float) -> list[str]:
    """Processes of a process group still running (not zombies) after waiting up to `within` s."""
    deadline = time.time() + within
    while True:
        live = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == group and fields[0] != "Z":
                live.append(stat.parent.name)
        if not live or time.time() > deadline:
            return live
        time.sleep(0.1)


def test_ctrl_c_stops_a_sweep_at_once_and_it_resumes(finished, tmp_path):
    path, _ = finished
    spec = spec_file(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "lengthgen.cli", "sweep", str(spec), "--dir", str(tmp_path),
                             "--workers", "1"], start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    runs = tmp_path / "tiny" / "runs"
    deadline = time.time() + 120
    while time.time() < deadline and not list(runs.glob("*/metrics.jsonl")):
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole process group
    started = time.time()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "resume" in err
    assert time.time() - started < 30  # it did not wait for the queued runs
    assert len(list(runs.glob("*/done.json"))) < 4
    assert not _live_members(proc.pid, within=10)  # no worker of that sweep trains on
    results = run_sweep(load_spec(spec), tmp_path / "tiny", workers=2, threads=1, quiet=True)
    assert all(r.status == "done" for r in results) and len(list(runs.glob("*/done.json"))) == 4
    write_report(tmp_path / "tiny")
    pd.testing.assert_frame_equal(table(tmp_path / "tiny"), table(path))


def test_ray_executor_gives_the_same_table(finished, tmp_path):
    import ray  # an optional extra for users; [dev] installs it, so the test never skips
    path, _ = finished
    try:
        results = run_sweep(parse_spec(SPEC), tmp_path / "tiny", executor="ray", address="local", threads=1,
                            quiet=True)
    finally:
        ray.shutdown()
    assert len(results) == 4 and all(r.status == "done" for r in results)
    write_report(tmp_path / "tiny")
    pd.testing.assert_frame_equal(table(tmp_path / "tiny"), table(path))


def test_python_spec_and_expansion(tmp_path):
    tree = {**SPEC, "points": [{"data.tasks.0.lengths": [1, 3]}, {"data.tasks.0.lengths": [1, 5]}],
            "seed_keys": ["seed.model", "seed.data"]}
    plans = expand(load_spec(spec_file(tmp_path, tree, ".py")))
    assert len(plans) == 2 * 2 * 2
    first = plans[0]
    assert first.name == "lengths=1-3,encoding=nope__seed0"
    assert first.config.data.tasks[0].lengths == (1, 3) and first.config.model.encoding == "nope"
    assert plans[1].config.seed.model == plans[1].config.seed.data == 1


@pytest.mark.parametrize("change,needle", [
    ({"colour": 1}, "unknown sweep key 'colour'"),
    ({"grid": {"model.encoding": []}}, "has no values"),
    ({"seeds": []}, "seeds must be"),
    ({"seeds": [1, 1]}, "seeds must be"),
    ({"seeds": "abc"}, "seeds"),
    ({"grid": {"model.encodng": ["rope"]}}, "unknown config key 'model.encodng'"),
    ({"grid": {"model.encoding": ["t5"]}}, "unknown encoding 't5'"),
])
def test_malformed_spec_is_one_line_exit_2(tmp_path, capsys, change, needle):
    code = main(["sweep", str(spec_file(tmp_path, {**SPEC, **change})), "--dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1


def test_other_spec_in_same_directory_needs_force(finished, capsys, tmp_path):
    path, _ = finished
    other = spec_file(tmp_path, {**SPEC, "seeds": [5]})
    code = main(["sweep", str(other), "--dir", str(path.parent)])
    assert code == 2 and "--force" in capsys.readouterr().err
