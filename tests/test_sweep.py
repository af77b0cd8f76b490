"""Sweeps: run, skip finished work, survive being killed, aggregate, report; both executors."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from lengthgen.cli.main import main
from lengthgen.errors import UserError
from lengthgen.reports.report import write_report
from lengthgen.sweeps.executors import EXECUTORS, Job, execute_job, ray_resources
from lengthgen.sweeps.reuse import fingerprint, finished_runs
from lengthgen.sweeps.run import SweepDir, execution_order, run_sweep
from lengthgen.sweeps.spec import expand, load_spec, parse_spec

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


@pytest.mark.slow
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
    (session,) = SweepDir(path).sessions()
    assert session["runs"] == 4 and session["completed"] and session["workers"] == 2 and session["wall_s"] > 0
    assert f"Sweep wall time {session['wall_s']:.0f} s over 1 invocation(s)" in report


def test_rerun_does_no_work(finished):
    path, _ = finished
    before = {p: p.stat().st_mtime_ns for p in path.glob("runs/*/eval.csv")}
    assert run_sweep(parse_spec(SPEC), path, workers=2, threads=1, quiet=True) == []
    assert len(SweepDir(path).sessions()) == 1  # nothing ran, nothing recorded
    assert before == {p: p.stat().st_mtime_ns for p in path.glob("runs/*/eval.csv")}


@pytest.mark.slow
def test_runs_with_the_same_config_are_copied_from_another_sweep(finished, tmp_path, capsys):
    """A second sweep sharing the `rope` point trains only its new `alibi` runs; the copies keep
    the original results, name their source in reused.json and in the report, and `--no-reuse`
    trains everything."""
    path, _ = finished
    other = {**SPEC, "name": "other", "grid": {"model.encoding": ["rope", "alibi"]}}
    results = run_sweep(parse_spec(other), tmp_path / "other", workers=2, threads=1, quiet=True,
                        reuse=[path.parent])
    assert sorted(r.name for r in results) == ["encoding=alibi__seed0", "encoding=alibi__seed1"]
    for seed in (0, 1):
        copy = tmp_path / "other" / "runs" / f"encoding=rope__seed{seed}"
        source = path / "runs" / f"encoding=rope__seed{seed}"
        assert (copy / "eval.csv").read_text() == (source / "eval.csv").read_text()
        assert json.loads((copy / "reused.json").read_text())["source"] == str(source.resolve())
        assert yaml.safe_load((copy / "config.yaml").read_text())["name"] == f"encoding=rope__seed{seed}"
        assert not (copy.parent / f"encoding=rope__seed{seed}.partial").exists()
    report = write_report(tmp_path / "other").read_text()
    assert "reused from" in report and str(path.resolve()) in report and "4 of 4 runs finished" in report
    # a copied run is not a source: a third sweep copies from the original
    results = run_sweep(parse_spec({**other, "name": "third"}), tmp_path / "third", workers=2, threads=1,
                        quiet=True, reuse=[path.parent, tmp_path])
    assert sorted(r.name for r in results) == []
    third = json.loads((tmp_path / "third" / "runs" / "encoding=rope__seed0" / "reused.json").read_text())
    assert third["source"] == str((path / "runs" / "encoding=rope__seed0").resolve())
    # a changed knob is a different experiment: nothing is copied
    changed = {**other, "name": "changed", "base": {**SPEC["base"], "train": {**SPEC["base"]["train"], "lr": 5e-4}}}
    plans = expand(parse_spec(changed))
    assert not {fingerprint(p.config) for p in plans} & set(finished_runs([path.parent, tmp_path]))
    code = main(["sweep", str(spec_file(tmp_path, other)), "--dir", str(tmp_path / "cli"), "--reuse",
                 str(tmp_path / "absent")])
    assert code == 2 and "--reuse" in capsys.readouterr().err
    code = main(["sweep", str(spec_file(tmp_path, other)), "--dir", str(tmp_path / "cli"), "--reuse", str(path.parent),
                 "--no-reuse", "--workers", "2"])
    assert code == 0 and len(list((tmp_path / "cli" / "other" / "runs").glob("*/done.json"))) == 4
    assert not list((tmp_path / "cli" / "other" / "runs").glob("*/reused.json"))


@pytest.mark.slow
def test_a_repeated_experiment_in_one_sweep_is_trained_once(tmp_path):
    """The main task alone, named through two groups, is one experiment: one run trains, the other
    is copied from it; a config spelling the same tasks out has the same fingerprint."""
    tree = {**SPEC, "name": "alone", "grid": {}, "seeds": [0],
            "base": {**SPEC["base"], "data": {"group": "arith-nocarry-only", "aux": False, "group_max": [3, 5],
                                               "batch_size": 16}},
            "points": [{"data.group": "arith-nocarry-only"}, {"data.group": "arith-carry-only"}]}
    results = run_sweep(parse_spec(tree), tmp_path / "alone", workers=2, threads=1, quiet=True)
    assert [r.name for r in results] == ["group=arith-nocarry-only__seed0"]
    runs = tmp_path / "alone" / "runs"
    copy = runs / "group=arith-carry-only__seed0"
    assert json.loads((copy / "reused.json").read_text())["source"] == str((runs / results[0].name).resolve())
    assert (copy / "done.json").is_file() and "2 of 2 runs finished" in write_report(tmp_path / "alone").read_text()
    plans = expand(parse_spec(tree))
    spelled = parse_spec({**tree, "points": [], "base": {**tree["base"], "data": {
        "tasks": [{"task": "reverse_add", "lengths": [1, 3]}], "batch_size": 16}}})
    assert fingerprint(plans[0].config) == fingerprint(plans[1].config) == fingerprint(expand(spelled)[0].config)
    with_aux = parse_spec({**tree, "points": [], "base": {**tree["base"],
                                                          "data": {**tree["base"]["data"], "aux": True}}})
    assert fingerprint(expand(with_aux)[0].config) != fingerprint(plans[0].config)


def _progress(runs: Path) -> int:
    """Log lines and finished runs written so far (a resumed run first drops lines, then grows again)."""
    lines = sum(len(p.read_bytes().splitlines()) for p in runs.glob("*/metrics.jsonl"))
    return lines + 10 * len(list(runs.glob("*/done.json")))


@pytest.mark.slow
def test_sweep_killed_three_times_loses_and_duplicates_nothing(finished, tmp_path, monkeypatch):
    """SIGKILL the whole sweep (process group) three times at random moments, then complete it:
    finished runs are never redone, and the table equals the uninterrupted sweep's row for row."""
    path, _ = finished
    spec = spec_file(tmp_path)
    runs = tmp_path / "tiny" / "runs"
    rng = random.Random()
    finished_at = {}  # run -> done.json mtime when first seen finished
    for kill in range(3):
        proc = subprocess.Popen([sys.executable, "-m", "lengthgen.cli", "sweep", str(spec), "--dir", str(tmp_path),
                                 "--workers", "1"], start_new_session=True, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        if kill == 1:  # anywhere from start-up through resuming an interrupted run
            time.sleep(rng.uniform(0.3, 4.0))
        else:  # after a random amount of new training
            target = _progress(runs) + rng.randint(1, 8)
            deadline = time.time() + 120
            while time.time() < deadline and proc.poll() is None and _progress(runs) < target:
                time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL  # killed, not finished
        # The workers hold their runs' locks until the kernel has torn them down, which on a loaded
        # machine can outlast the parent's exit; a rerun started before that is refused the run.
        assert not _live_members(proc.pid, 30)
        for name, mtime in finished_at.items():  # a finished run is never touched again
            assert (runs / name / "done.json").stat().st_mtime_ns == mtime
        finished_at.update({p.parent.name: p.stat().st_mtime_ns for p in runs.glob("*/done.json")
                            if p.parent.name not in finished_at})
    assert len(finished_at) < 4
    # Completed in this process (torch is imported already; spawning workers would add seconds).
    monkeypatch.setitem(EXECUTORS, "inline", lambda jobs, workers, address=None: map(execute_job, jobs))
    threads = torch.get_num_threads()
    try:
        results = run_sweep(load_spec(spec), tmp_path / "tiny", executor="inline", threads=1, quiet=True)
    finally:
        torch.set_num_threads(threads)
    assert all(r.status == "done" for r in results)
    assert {r.name for r in results} == {f"encoding={e}__seed{s}" for e in ("nope", "rope") for s in (0, 1)} - \
        set(finished_at)
    for run in runs.iterdir():  # no row twice in any run's files (the table would hide duplicates)
        evals = pd.read_csv(run / "eval.csv")
        assert not evals.duplicated(["step", "task", "length"]).any()
        steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
        assert steps == list(range(5, 41, 5))
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


# Long enough that the sweep cannot finish before the signal lands, even on a loaded machine (with
# the 40 steps of SPEC it once completed between the first log line and the Ctrl-C).
LONG = {**SPEC, "base": {**SPEC["base"], "train": {**SPEC["base"]["train"], "steps": 400, "eval_every": 100,
                                                    "checkpoint_every": 100}}}


@pytest.mark.slow
def test_sigterm_to_a_sweep_stops_its_workers_and_records_the_session(tmp_path):
    """A scheduler's SIGTERM reaches the sweep process only: it must stop its workers (not leave
    them training unowned), record the interrupted session, and say how to resume."""
    spec = spec_file(tmp_path, LONG)
    proc = subprocess.Popen([sys.executable, "-m", "lengthgen.cli", "sweep", str(spec), "--dir", str(tmp_path),
                             "--workers", "1"], start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    runs = tmp_path / "tiny" / "runs"
    deadline = time.time() + 120
    while time.time() < deadline and not list(runs.glob("*/metrics.jsonl")):
        time.sleep(0.01)
    proc.terminate()  # the parent alone, as `kill PID` or a batch scheduler does
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "stopped by SIGTERM" in err and "resume" in err
    assert not _live_members(proc.pid, within=10)
    (session,) = SweepDir(tmp_path / "tiny").sessions()
    assert not session["completed"]


@pytest.mark.slow
def test_ctrl_c_stops_a_sweep_at_once_and_it_resumes(tmp_path):
    spec = spec_file(tmp_path, LONG)
    # A shell starts background jobs with SIGINT ignored, and children inherit that; a terminal's
    # sweep has the default handler, so the test gives it one whatever launched the test suite.
    proc = subprocess.Popen([sys.executable, "-m", "lengthgen.cli", "sweep", str(spec), "--dir", str(tmp_path),
                             "--workers", "1"], start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
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
    interrupted, resumed = SweepDir(tmp_path / "tiny").sessions()
    assert not interrupted["completed"] and resumed["completed"] and resumed["runs"] == len(results)
    write_report(tmp_path / "tiny")
    uninterrupted = tmp_path / "reference" / "tiny"
    run_sweep(parse_spec(LONG), uninterrupted, workers=2, threads=1, quiet=True)
    write_report(uninterrupted)
    pd.testing.assert_frame_equal(table(tmp_path / "tiny"), table(uninterrupted))


def test_ray_reserves_a_gpu_per_cuda_run():
    """One run per GPU: a CUDA run (or auto on a cluster with GPUs) reserves a whole GPU; CUDA asked
    of a cluster without GPUs fails before anything is queued, instead of waiting forever."""
    def job(device, threads=2):
        return Job("r", {"train": {"device": device}}, "runs/r", threads)

    assert ray_resources(job("cuda"), cluster_gpus=8) == {"num_cpus": 2, "num_gpus": 1}
    assert ray_resources(job("auto", 4), cluster_gpus=8) == {"num_cpus": 4, "num_gpus": 1}
    assert ray_resources(job("auto"), cluster_gpus=0) == {"num_cpus": 2, "num_gpus": 0}
    assert ray_resources(job("cpu"), cluster_gpus=8) == {"num_cpus": 2, "num_gpus": 0}
    with pytest.raises(UserError, match="asks for train.device cuda, but the Ray cluster has no GPU"):
        ray_resources(job("cuda"), cluster_gpus=0)


@pytest.mark.slow
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


def test_long_point_labels_stay_valid_distinct_directory_names(tmp_path):
    # Many varying keys give labels past the file system's 255-byte cap on a name (a-ppc's variable-
    # assignment points did): the label is cut and a hash of the whole keeps each point's name its own.
    long = {"data.batch_size": 512, "data.tasks.0.length_bias": 1.0, "model.token_shift": 2,
            "train.eval_every": 500, "train.checkpoint_every": 250, "eval.lengths": list(range(1, 41)),
            "model.logit_scaling": "log_keys", "positions.train": "random_offset", "model.layers": 1}
    tree = {**SPEC, "points": [{**long, "model.d_model": 32}, {**long, "model.d_model": 64}], "seeds": [0]}
    plans = expand(parse_spec(tree))
    names = [p.name for p in plans]
    assert len(set(names)) == len(names) == 2 * 2  # two points x the grid's two encodings
    assert all(len(f"{n}.partial".encode()) <= 255 for n in names) and all("~" in n for n in names)
    assert names == [p.name for p in expand(parse_spec(tree))]  # stable, so --resume finds the run again
    for name in names:
        (tmp_path / name).mkdir()


@pytest.mark.slow
def test_runs_go_seed_by_seed_after_the_ones_to_resume(tmp_path):
    """A sweep stopped early should have covered every grid point once, not a few points fully."""
    plans = expand(parse_spec(SPEC))
    assert [p.name for p in plans][:2] == ["encoding=nope__seed0", "encoding=nope__seed1"]  # grid order
    status = {p.name: "new" for p in plans} | {"encoding=rope__seed1": "partial"}
    order = [p.name for p in execution_order(plans, SPEC["seeds"], status)]
    assert order == ["encoding=rope__seed1", "encoding=nope__seed0", "encoding=rope__seed0", "encoding=nope__seed1"]
    one_by_one = run_sweep(parse_spec(SPEC | {"name": "order"}), tmp_path / "order", workers=1, quiet=True)
    assert [r.name for r in one_by_one] == ["encoding=nope__seed0", "encoding=rope__seed0",
                                            "encoding=nope__seed1", "encoding=rope__seed1"]


def test_the_costliest_run_of_a_seed_goes_first(tmp_path):
    """Within a seed, a long run listed last in the grid starts first, so no worker ends up waiting
    on it alone; seeds still go one after the other, and a run to resume still goes before all."""
    plans = expand(parse_spec(SPEC))
    cost = {p.name: (10.0 if "rope" in p.name else 1.0) for p in plans}
    status = {p.name: "new" for p in plans} | {"encoding=nope__seed1": "partial"}
    order = [p.name for p in execution_order(plans, SPEC["seeds"], status, cost)]
    assert order == ["encoding=nope__seed1", "encoding=rope__seed0", "encoding=nope__seed0", "encoding=rope__seed1"]
    # In a real sweep the estimate comes from the configs: the point with 3x the steps goes first.
    tree = SPEC | {"name": "costly", "grid": {"train.steps": [10, 30]}, "seeds": [0]}
    ran = run_sweep(parse_spec(tree), tmp_path / "costly", workers=1, quiet=True)
    assert [r.name for r in ran] == ["steps=30__seed0", "steps=10__seed0"]


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
