"""Crash safety: exact resume after SIGKILL, checksummed checkpoints and fallback, divergence,
no pickle from outside, disk and permission checks, locks, and time adding up over sessions."""

import errno
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

import lengthgen.store.checkpoint as checkpoint_module
import lengthgen.train as train_module
from lengthgen.cli.main import main
from lengthgen.config import build_config
from lengthgen.errors import UserError
from lengthgen.experiment import build_experiment
from lengthgen.store.checkpoint import (
    CorruptCheckpoint,
    checkpoint_dirs,
    find_checkpoint,
    load_weights,
    read_checkpoint,
    verify_checkpoint,
)
from lengthgen.store.rundir import RunDir
from lengthgen.sweeps.run import SweepDir
from lengthgen.train import run_training

from helpers import tiny_config

ROOT = Path(__file__).resolve().parents[1]

# Small enough that a whole run takes about a second, long enough to be killed in the middle.
# log_every does not divide checkpoint_every, so a resume falls between two log lines.
TRAIN = {"steps": 120, "lr": 3e-3, "warmup": 0.1, "log_every": 3, "eval_every": 40, "checkpoint_every": 20,
         "keep_checkpoints": 3, "precision": "float32", "threads": 1}


def small_tree(**train) -> dict:
    """A tiny one-layer copy model, CPU, float32, one thread."""
    return tiny_config(
        data={"tasks": [{"task": "copy", "lengths": [1, 4]}], "batch_size": 16},
        model={"layers": 1, "heads": 2, "d_model": 16, "d_ff": 32, "encoding": "rope"},
        train={**TRAIN, **train, "device": "cpu"},
        eval={"lengths": "1:5", "n": 16, "batch_size": 16},
    )


def write_config(path: Path, **train) -> Path:
    path.write_text(yaml.safe_dump(small_tree(**train)))
    return path


def cli(capsys, *argv):
    """Run the command line in this process: (exit status, stdout, stderr)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    """The error line; `train` prints one "run <dir> device ..." line before it starts."""
    lines = [line for line in err.strip().splitlines() if not line.startswith("run ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def trainer_tensors(path: Path) -> dict:
    return torch.load(path, weights_only=True)


def assert_same_state(a, b, where="trainer.pt"):
    """Nested dicts/lists of tensors and plain values are equal, tensors bit for bit."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same_state(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_state(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def metrics(run: Path) -> list[tuple]:
    """metrics.jsonl without the wall-clock throughput."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"], r["lr"], r["grad_norm"]) for r in rows]


def assert_same_run(a: Path, b: Path) -> None:
    """Final weights, optimizer/scheduler/RNG state, eval.csv and logged losses are identical."""
    ca, cb = find_checkpoint(a / "checkpoints"), find_checkpoint(b / "checkpoints")
    assert ca.name == cb.name == f"step_{TRAIN['steps']:07d}"
    wa, wb = load_file(str(ca / "model.safetensors")), load_file(str(cb / "model.safetensors"))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert_same_state(trainer_tensors(ca / "trainer.pt"), trainer_tensors(cb / "trainer.pt"))
    assert (a / "eval.csv").read_text() == (b / "eval.csv").read_text()
    assert metrics(a) == metrics(b)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted run: (config file, run directory)."""
    root = tmp_path_factory.mktemp("reference")
    config = write_config(root / "small.yaml")
    assert main(["train", str(config), "--dir", str(root / "runs"), "--quiet"]) == 0
    return config, root / "runs" / "tiny"


@pytest.fixture
def copy_of(reference, tmp_path):
    """A fresh copy of the finished reference run, to damage."""
    config, run = reference
    target = tmp_path / "runs" / "tiny"
    shutil.copytree(run, target)
    (target / ".lock").unlink(missing_ok=True)
    return config, target


# --- 1. resume is exact after SIGKILL ---------------------------------------------------------

@pytest.mark.slow
def test_sigkill_at_a_random_step_then_resume_is_bit_identical(reference, tmp_path, capsys):
    config, whole = reference
    runs = tmp_path / "runs"
    target = random.Random().randint(TRAIN["checkpoint_every"] + 1, 90)  # after the first checkpoint
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "lengthgen.cli", "train", str(config), "--dir", str(runs),
                             "--quiet"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    run = runs / "tiny"

    def logged_step() -> int:
        try:
            lines = (run / "metrics.jsonl").read_text().splitlines()
            return json.loads(lines[-1])["step"] if lines else 0
        except (OSError, ValueError):  # not there yet, or a line half written
            return 0

    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not (checkpoint_dirs(run / "checkpoints")
                                                                   and logged_step() >= target):
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read()
    proc.stderr.close()
    assert checkpoint_dirs(run / "checkpoints") and not (run / "done.json").exists()

    code, _, err = cli(capsys, "train", config, "--dir", runs, "--resume", "--quiet")
    assert code == 0, err
    assert_same_run(run, whole)


# --- 2. checksums, corrupt checkpoints, fallback ----------------------------------------------

def truncate(path: Path, keep: int = 100) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:keep])


def flip_byte(path: Path, offset: int = -10) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_checkpoint_records_checksums_of_every_file(reference):
    _, run = reference
    newest = find_checkpoint(run / "checkpoints")
    state = json.loads((newest / "state.json").read_text())
    assert set(state["files"]) == {"model.safetensors", "trainer.pt", "vocab.json"}
    assert all(len(entry["sha256"]) == 64 and entry["bytes"] > 0 for entry in state["files"].values())
    assert verify_checkpoint(newest)["step"] == TRAIN["steps"]
    # The free-space check's estimate covers a real checkpoint.
    exp = build_experiment(RunDir(run).read_config())
    assert sum(e["bytes"] for e in state["files"].values()) <= checkpoint_module.estimate_checkpoint_bytes(exp.model)
    assert [p.name for p in checkpoint_dirs(run / "checkpoints")] == ["step_0000080", "step_0000100",
                                                                       "step_0000120"]


@pytest.mark.parametrize("damage,needle", [
    (lambda p: truncate(p / "model.safetensors"), "model.safetensors' is truncated or damaged: 100 bytes"),
    (lambda p: flip_byte(p / "model.safetensors"), "model.safetensors' is corrupt: its SHA-256 does not match"),
    (lambda p: flip_byte(p / "trainer.pt", 200), "trainer.pt' is corrupt: its SHA-256 does not match"),
    (lambda p: (p / "trainer.pt").unlink(), "trainer.pt' is missing"),
    (lambda p: (p / "state.json").write_text('{"step": 12'), "state.json' is corrupt"),
])
def test_damaged_checkpoint_is_named_in_one_line(copy_of, capsys, damage, needle):
    _, run = copy_of
    newest = find_checkpoint(run / "checkpoints")
    damage(newest)
    with pytest.raises(CorruptCheckpoint, match="step_0000120"):
        read_checkpoint(newest)
    code, _, err = cli(capsys, "eval", run, "--lengths", "2")
    assert code == 2 and needle in one_line(err) and "step_0000120" in err


def test_resume_falls_back_past_damaged_checkpoints(reference, copy_of, capsys):
    config, run = copy_of
    root = run / "checkpoints"
    truncate(root / "step_0000120" / "model.safetensors")
    flip_byte(root / "step_0000100" / "trainer.pt", 300)
    # What a process killed while writing or deleting a checkpoint leaves behind.
    (root / ".tmp-killed").mkdir()
    (root / ".trash-step_0000060").mkdir()
    (run / "metrics.jsonl").write_text((run / "metrics.jsonl").read_text() + '{"step": 121, "lo')
    code, _, err = cli(capsys, "train", config, "--dir", run.parent, "--resume", "--quiet")
    assert code == 0
    warnings = err.strip().splitlines()[-2:]
    assert "step_0000120/model.safetensors' is truncated" in warnings[0] and "corrupt-step_0000120" in warnings[0]
    assert "step_0000100/trainer.pt' is corrupt" in warnings[1] and "previous checkpoint" in warnings[1]
    assert {p.name for p in root.iterdir()} == {"corrupt-step_0000100", "corrupt-step_0000120", "step_0000080",
                                                "step_0000100", "step_0000120"}
    assert_same_run(run, reference[1])


def test_resume_with_no_intact_checkpoint_starts_over(reference, copy_of, capsys):
    config, run = copy_of
    for path in checkpoint_dirs(run / "checkpoints"):
        flip_byte(path / "model.safetensors")
    code, _, err = cli(capsys, "train", config, "--dir", run.parent, "--resume", "--quiet")
    assert code == 0 and "no intact checkpoint is left" in err and "starting tiny over from step 0" in err
    assert_same_run(run, reference[1])


def test_checkpoint_without_checksums_still_loads_and_damage_is_caught(copy_of, capsys):
    """Checkpoints written before checksums were recorded: parsed instead of hashed."""
    _, run = copy_of
    newest = find_checkpoint(run / "checkpoints")
    (newest / "state.json").write_text(json.dumps({"step": 120}))
    exp = build_experiment(RunDir(run).read_config())
    assert load_weights(exp.model, newest) == 120
    truncate(newest / "model.safetensors")
    code, _, err = cli(capsys, "eval", run, "--lengths", "2")
    assert code == 2 and "model.safetensors' is corrupt" in one_line(err)


# --- 4. divergence ----------------------------------------------------------------------------

def test_divergence_stops_train_with_the_step_and_keeps_the_last_checkpoint(tmp_path, capsys, monkeypatch):
    config = write_config(tmp_path / "small.yaml", checkpoint_every=5)
    original = train_module.answer_loss
    calls = []

    def loss_that_diverges(model, batch):
        calls.append(1)
        loss = original(model, batch)
        return loss * float("nan") if len(calls) == 13 else loss

    monkeypatch.setattr(train_module, "answer_loss", loss_that_diverges)
    code, _, err = cli(capsys, "train", config, "--dir", tmp_path / "runs", "--quiet")
    run = tmp_path / "runs" / "tiny"
    assert code == 2
    assert one_line(err) == (f"error: training diverged at step 13: the loss became non-finite (nan); the last good "
                             f"checkpoint (step 10) is kept in {str(run / 'checkpoints')!r}")
    assert [p.name for p in checkpoint_dirs(run / "checkpoints")] == ["step_0000005", "step_0000010"]
    verify_checkpoint(run / "checkpoints" / "step_0000010")
    assert not (run / "done.json").exists()


@pytest.mark.slow
def test_diverging_run_is_marked_failed_in_the_sweep_table(tmp_path, capsys):
    """lr=1e6 really diverges (in a spawned sweep worker): the run is failed, the other one done."""
    spec = {"name": "div", "base": small_tree(steps=12, checkpoint_every=1, eval_every=0, log_every=1),
            "grid": {"train.lr": [0.003, 1.0e6]}, "seeds": [0]}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    code, out, err = cli(capsys, "sweep", path, "--dir", tmp_path, "--workers", "1")
    assert code == 0 and "2 runs executed (1 failed)" in out
    table = __import__("pandas").read_csv(tmp_path / "div" / "results.csv")
    status = dict(zip(table["run"], table["status"]))
    assert status == {"lr=0.003__seed0": "done", "lr=1000000.0__seed0": "failed"}
    failed = tmp_path / "div" / "runs" / "lr=1000000.0__seed0"
    error = json.loads((failed / "failed.json").read_text())["error"]
    found = re.fullmatch(r"training diverged at step (\d+): the (loss|gradient norm) became non-finite \((nan|inf)\); "
                         r"the last good checkpoint \(step (\d+)\) is kept in '.*'", error)
    assert found and int(found[4]) == int(found[1]) - 1, error
    newest = checkpoint_dirs(failed / "checkpoints")[-1]
    assert newest.name == f"step_{int(found[4]):07d}"
    assert all(torch.isfinite(t).all() for t in load_file(str(newest / "model.safetensors")).values())
    assert error in (tmp_path / "div" / "report.md").read_text()
    assert f"run lr=1000000.0__seed0 failed: {error}" in out


# --- 5. no pickle from outside ----------------------------------------------------------------

class _Payload:
    """Runs code when unpickled (what a malicious trainer.pt would carry)."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_trainer_state_with_pickled_objects_is_refused(copy_of, capsys, tmp_path):
    config, run = copy_of
    newest = find_checkpoint(run / "checkpoints")
    marker = tmp_path / "code-ran"
    state = trainer_tensors(newest / "trainer.pt")
    state["optimizer"]["evil"] = _Payload(str(marker))
    torch.save(state, newest / "trainer.pt")
    # Rewrite the checksums too: the refusal must not depend on them.
    record = json.loads((newest / "state.json").read_text())
    data = (newest / "trainer.pt").read_bytes()
    record["files"]["trainer.pt"] = {"bytes": len(data), "sha256": __import__("hashlib").sha256(data).hexdigest()}
    (newest / "state.json").write_text(json.dumps(record))
    code, _, err = cli(capsys, "train", config, "--dir", run.parent, "--resume", "--quiet")
    assert code == 2 and not marker.exists()
    assert one_line(err) == (f"error: refusing to load {str(newest / 'trainer.pt')!r}: it holds pickled objects other "
                             "than tensors and plain containers, and only those are loaded (weights_only=True)")


def test_weights_come_from_safetensors_only(copy_of, monkeypatch):
    _, run = copy_of
    newest = find_checkpoint(run / "checkpoints")

    def no_torch_load(*args, **kwargs):
        raise AssertionError("weights must not be unpickled")

    monkeypatch.setattr(torch, "load", no_torch_load)
    exp = build_experiment(RunDir(run).read_config())
    assert load_weights(exp.model, newest) == 120
    torch.save(exp.model.state_dict(), newest / "model.pt")  # a pickle beside them is never read
    (newest / "model.safetensors").unlink()
    with pytest.raises(UserError, match="model.safetensors' is missing"):
        load_weights(exp.model, newest)


# --- 7. disk and permissions ------------------------------------------------------------------

@pytest.mark.parametrize("parent", ["file", "/proc"])
def test_unwritable_output_directory_fails_before_training(tmp_path, capsys, parent):
    config = write_config(tmp_path / "small.yaml")
    if parent == "file":  # a directory under a regular file cannot be made, not even by root
        (tmp_path / "plain").write_text("")
        target = tmp_path / "plain" / "runs"
    else:
        target = Path("/proc/lengthgen-runs")
    code, _, err = cli(capsys, "train", config, "--dir", target)
    reason = "Not a directory" if parent == "file" else "No such file or directory"
    assert code == 2 and one_line(err) == f"error: cannot write to run directory {str(target / 'tiny')!r}: {reason}"


def test_full_disk_fails_before_training(tmp_path, capsys, monkeypatch):
    config = write_config(tmp_path / "small.yaml")
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda path: real(path)._replace(free=3 * 2**20))
    code, _, err = cli(capsys, "train", config, "--dir", tmp_path / "runs")
    line = one_line(err)
    assert code == 2 and line.startswith(f"error: not enough free space in {str(tmp_path / 'runs' / 'tiny')!r}: "
                                         "3.0 MiB free, about 8.")
    assert re.search(r"needed for 3 checkpoints of about 0\.\d MiB, one more while writing, and logs; free some "
                     r"space or lower train.keep_checkpoints$", line)
    run = tmp_path / "runs" / "tiny"
    assert {p.name for p in run.iterdir()} <= {".lock"}  # nothing trained, nothing written
    monkeypatch.undo()
    code, _, _ = cli(capsys, "train", config, "--dir", tmp_path / "runs", "--quiet")  # no --force needed after
    assert code == 0


def test_disk_full_while_checkpointing_keeps_the_last_good_checkpoint(reference, tmp_path, capsys, monkeypatch):
    config, whole = reference
    original = checkpoint_module._write_file

    # The temporary directory has a random name: fail on the third checkpoint by counting.
    counter = {"n": 0}

    def third_checkpoint_fails(path: Path, data: bytes) -> None:
        if path.name == "model.safetensors":
            counter["n"] += 1
        if counter["n"] == 3 and path.name == "trainer.pt":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        original(path, data)

    monkeypatch.setattr(checkpoint_module, "_write_file", third_checkpoint_fails)
    runs = tmp_path / "runs"
    code, _, err = cli(capsys, "train", config, "--dir", runs, "--quiet")
    run = runs / "tiny"
    line = one_line(err)
    assert code == 2 and line.startswith("error: disk full while training tiny at step 60 (")
    assert line.endswith(f"trainer.pt); the last good checkpoint (step 40) is kept in "
                         f"{str(run / 'checkpoints')!r}; free some space (or fix the directory) and resume")
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_0000020", "step_0000040"]
    verify_checkpoint(run / "checkpoints" / "step_0000040")
    monkeypatch.undo()
    code, _, _ = cli(capsys, "train", config, "--dir", runs, "--resume", "--quiet")
    assert code == 0
    assert_same_run(run, whole)


def test_disk_full_while_logging_is_a_clear_error(tmp_path, monkeypatch):
    cfg = build_config(small_tree())
    run = RunDir(tmp_path / "full")
    run.prepare(force=False, resume=False)

    def full(self, record):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path / "metrics.jsonl"))

    monkeypatch.setattr(RunDir, "append_metrics", full)
    with pytest.raises(UserError) as caught:
        run_training(build_experiment(cfg), run, quiet=True)
    assert str(caught.value) == (f"disk full while training tiny at step 3 ({run.path / 'metrics.jsonl'}); no "
                                 "checkpoint had been written yet; free some space (or fix the directory) and resume")


# --- 8. locks ---------------------------------------------------------------------------------

def hold_lock(path: Path) -> subprocess.Popen:
    """Another process holding lengthgen's lock on `path` until it is killed."""
    code = ("import sys, time; from lengthgen.store.fileio import exclusive_lock\n"
            "with exclusive_lock(__import__('pathlib').Path(sys.argv[1]), 'x'):\n"
            "    print('held', flush=True); time.sleep(120)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_second_sweep_in_the_same_directory_is_refused(tmp_path, capsys):
    spec = {"name": "locked", "base": small_tree(steps=5), "seeds": [0]}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    sweep = SweepDir(tmp_path / "locked")
    sweep.path.mkdir()
    holder = hold_lock(sweep.lock_path)
    try:
        code, _, err = cli(capsys, "sweep", path, "--dir", tmp_path)
    finally:
        holder.kill()
        holder.wait()
    assert code == 2 and one_line(err) == (f"error: sweep directory {str(sweep.path)!r} is in use by another lengthgen "
                                           f"process (PID {holder.pid}); wait for it to finish or stop it")
    assert not (sweep.path / "runs").exists()


def test_a_run_is_trained_by_one_process_at_a_time(tmp_path, capsys):
    config = write_config(tmp_path / "small.yaml")
    run = tmp_path / "runs" / "tiny"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump(small_tree()))
    holder = hold_lock(run / ".lock")
    try:
        code, _, err = cli(capsys, "train", config, "--dir", tmp_path / "runs", "--resume")
        forced, _, forced_err = cli(capsys, "train", config, "--dir", tmp_path / "runs", "--force")
    finally:
        holder.kill()
        holder.wait()
    needle = f"run directory {str(run)!r} is in use by another lengthgen process (PID {holder.pid})"
    assert code == 2 and needle in one_line(err)
    assert forced == 2 and needle in one_line(forced_err) and (run / "config.yaml").is_file()  # not deleted


# --- 9. time adds up over sessions ------------------------------------------------------------

def test_done_seconds_add_up_over_resumed_sessions(copy_of, capsys):
    config, run = copy_of
    root = run / "checkpoints"
    for path in checkpoint_dirs(root)[1:]:  # resume from step 80
        shutil.rmtree(path)
    state_path = root / "step_0000080" / "state.json"
    state = json.loads(state_path.read_text())
    assert 0 < state["seconds"] < 600
    state["seconds"] = 1000.0  # as if the sessions before had trained for 1000 s
    state_path.write_text(json.dumps(state))
    (run / "done.json").unlink()
    started = time.perf_counter()
    assert cli(capsys, "train", config, "--dir", run.parent, "--resume", "--quiet")[0] == 0
    session = time.perf_counter() - started
    seconds = json.loads((run / "done.json").read_text())["seconds"]
    assert 1000.0 < seconds <= 1000.0 + session + 0.01
