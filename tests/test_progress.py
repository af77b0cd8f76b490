"""The queue's progress bar: it counts the trained share of runs in flight, not only finished runs."""

import io
import json
import os
import time

import pytest
from tqdm import tqdm

from lengthgen.store.rundir import RunDir
from lengthgen.sweeps.progress import WorkBar, trained_fraction


def logged(path, *steps, torn: str = ""):
    """A run directory whose metrics.jsonl logged these steps (and a torn last line, if given)."""
    path.mkdir(parents=True, exist_ok=True)
    run = RunDir(path)
    for step in steps:
        run.append_metrics({"step": step, "loss": 1.0, "note": "x" * 300})  # long lines: the tail read spans several
    if torn:
        with open(path / "metrics.jsonl", "a") as handle:
            handle.write(torn)
    return run


def test_last_logged_step_skips_a_torn_line_and_reads_only_the_end(tmp_path):
    assert RunDir(tmp_path / "empty").last_logged_step() is None
    run = logged(tmp_path / "run", *range(0, 5000, 50), torn='{"step": 99999, "lo')
    assert run.last_logged_step() == 4950
    assert trained_fraction(run.path, 9900) == pytest.approx(0.5)
    assert trained_fraction(tmp_path / "never-started", 100) == 0.0


def checkpointed(path, step):
    """A complete checkpoint directory at `step` (only its state file: what the bar looks for)."""
    checkpoint = path / "checkpoints" / f"step_{step:07d}"
    checkpoint.mkdir(parents=True)
    (checkpoint / "state.json").write_text(json.dumps({"step": step}))


def test_the_bar_moves_while_runs_train_and_a_resumed_run_counts_what_is_left(tmp_path):
    fresh, resumed = tmp_path / "fresh", tmp_path / "resumed"
    # Killed at step 70 with its newest checkpoint at 50: a rerun trains 50-100 again.
    logged(resumed, 0, 25, 50, 70)
    checkpointed(resumed, 25)
    checkpointed(resumed, 50)
    os.utime(resumed / "metrics.jsonl", (time.time() - 600, time.time() - 600))  # the earlier attempt's log
    shown = tqdm(total=300.0, file=io.StringIO(), disable=False)
    with WorkBar(shown, interval=3600) as work:  # polled by hand below, not by the thread
        work.watch(fresh, "fresh", 100, 100e9)
        work.watch(resumed, "resumed", 100, 200e9)
        assert shown.total == pytest.approx(200.0)  # 100 + the 100 GFLOP the resumed run has left
        work.poll()
        assert shown.n == 0  # step 70 is the killed attempt's, not this invocation's work
        RunDir(resumed).truncate_after(50)  # what the trainer does when it resumes
        logged(fresh, 0, 25)
        logged(resumed, 75)
        work.poll()
        assert shown.n == pytest.approx(25 + 50)
        work.poll()  # nothing new logged: nothing counted twice
        assert shown.n == pytest.approx(75)
        work.finish("fresh")
        assert shown.n == pytest.approx(150)
        work.finish("resumed")
        assert shown.n == pytest.approx(shown.total)


def test_a_sweeps_bar_ends_full_with_its_runs_watched_on_the_way(tmp_path, capfd):
    """A real sweep through the CLI with its bar on (the polling thread running): every run counted,
    the bar at 100% at the end, and the command returns (the thread stops)."""
    import yaml

    from lengthgen.cli.main import main

    spec = {"name": "bar", "seeds": [0, 1],
            "base": {"data": {"tasks": [{"task": "copy", "lengths": [1, 4]}], "batch_size": 8},
                     "model": {"layers": 1, "heads": 2, "d_model": 16, "d_ff": 32},
                     "train": {"steps": 20, "eval_every": 10, "checkpoint_every": 10, "log_every": 5,
                               "precision": "float32"},
                     "eval": {"lengths": "1:5", "n": 8}}}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert main(["sweep", str(path), "--dir", str(tmp_path), "--workers", "1"]) == 0
    bars = [line for line in capfd.readouterr().err.replace("\r", "\n").splitlines() if "GFLOP" in line]
    assert bars[-1].startswith("bar 2/2 runs: 100%")


def test_the_bar_never_passes_its_total_when_runs_end_in_another_order(tmp_path):
    """The total and the counted work are the same GFLOP summed in different orders; rounding must
    not push the bar past 100% (tqdm then warns and clamps)."""
    flops = [183584713429046.8, 130137764074453.58, 78339806323458.05, 131865623786565.66, 31529141415353.426,
             138473728816768.72, 92132886525789.66, 16735684058423.29, 148064207085174.3, 109319580032644.8]
    total = sum(f / 1e9 for f in flops)
    assert sum(f / 1e9 for f in reversed(flops)) > total  # the case: the other order rounds above
    shown = tqdm(total=total, file=io.StringIO(), disable=False)
    with WorkBar(shown, interval=3600) as work:
        for i, f in enumerate(flops):
            work.watch(tmp_path / str(i), str(i), 100, f)
        for i in reversed(range(len(flops))):
            work.finish(str(i))
    assert shown.n <= shown.total
    assert shown.n == pytest.approx(total)
