"""Data-parallel training: two gloo ranks launched by torchrun on this CPU against one process.

The same config (data.shards=2, so one process draws both shards of every global batch and each
rank one) must give the same loss curve, within float tolerance, and the same exact-match table;
a killed rank must stop the job with a message, and --resume must continue from the last
checkpoint. Every rank runs one thread, so the launches fit on two cores.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from lengthgen import distributed
from lengthgen.cli.main import main
from lengthgen.config import build_config
from lengthgen.data import batch_rng, collate
from lengthgen.errors import UserError
from lengthgen.experiment import build_experiment
from lengthgen.train import answer_loss

from helpers import tiny_config

pytestmark = pytest.mark.slow  # subprocesses: every test here starts Python (or torchrun) anew

STEPS, CHECKPOINT_EVERY = 60, 10


def config_tree() -> dict:
    tree = tiny_config(train={"steps": STEPS, "lr": 3e-3, "warmup": 0.1, "log_every": 5, "precision": "float32",
                              "threads": 1, "device": "cpu", "eval_every": 30, "checkpoint_every": CHECKPOINT_EVERY,
                              "collective_timeout": 60})
    tree["data"]["shards"] = 2
    tree["eval"]["batch_size"] = 16  # two batches per length: both ranks score some of every length
    return tree


@pytest.fixture(scope="module")
def config_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("config") / "tiny.yaml"
    path.write_text(yaml.safe_dump(config_tree()))
    return path


def torchrun(config: Path, runs: Path, *extra: str) -> subprocess.Popen:
    """`lengthgen train` on two gloo ranks, as a user would launch it."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "lengthgen.cli", "train", str(config), "--dir", str(runs), "--quiet", *extra]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def finish(process: subprocess.Popen, timeout: float = 120) -> tuple[int, str]:
    """Wait for a launch; its exit status and stderr. A launch that hangs is killed, with its ranks."""
    try:
        _, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        _, err = process.communicate()
        pytest.fail(f"torchrun did not finish in {timeout}s:\n{err[-3000:]}")
    return process.returncode, err


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def timeless(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "tokens_per_s"} for r in records]


def files(run: Path) -> set[str]:
    return {str(p.relative_to(run)) for p in run.rglob("*") if "tb" not in p.parts}


@pytest.fixture(scope="module")
def one_process(config_file, tmp_path_factory) -> Path:
    """The reference: one process drawing both data shards of every step."""
    runs = tmp_path_factory.mktemp("one")
    threads = torch.get_num_threads()
    try:
        assert main(["train", str(config_file), "--dir", str(runs), "--quiet"]) == 0
    finally:
        torch.set_num_threads(threads)  # the trainer set one thread, as every rank does
    return runs / "tiny"


@pytest.fixture(scope="module")
def two_ranks(config_file, tmp_path_factory) -> Path:
    runs = tmp_path_factory.mktemp("two")
    status, err = finish(torchrun(config_file, runs))
    assert status == 0, err[-3000:]
    return runs / "tiny"


def test_two_ranks_match_one_process(one_process, two_ranks):
    one, two = metrics(one_process), metrics(two_ranks)
    assert [m["step"] for m in one] == [m["step"] for m in two] == list(range(5, STEPS + 1, 5))
    for a, b in zip(one, two):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5, abs=1e-6)
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-4)
        assert b["lr"] == a["lr"]
    assert one[-1]["loss"] < one[0]["loss"] - 1  # it learned something, so the curves say something
    # The exact-match table, at the intermediate and the final evaluation.
    assert (two_ranks / "eval.csv").read_text() == (one_process / "eval.csv").read_text()
    # Rank 1 wrote nothing: the same files, one TensorBoard event file.
    assert files(two_ranks) == files(one_process)
    assert len(list((two_ranks / "tb").iterdir())) == 1
    assert json.loads((two_ranks / "env.json").read_text())[-1]["processes"] == 2


def test_two_ranks_with_micro_batches_match_one_process(one_process, tmp_path):
    # Each rank cuts its shard into two length-sorted micro-batches and synchronizes gradients once
    # per step: the curve is still the one-process, one-batch curve.
    tree = config_tree()
    tree["train"] = {**tree["train"], "micro_batches": 2, "eval_every": 0, "checkpoint_every": 0}
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tree))
    status, err = finish(torchrun(config, tmp_path / "runs"))
    assert status == 0, err[-3000:]
    one, two = metrics(one_process), metrics(tmp_path / "runs" / "tiny")
    assert len(two) == len(one) == STEPS // 5
    for a, b in zip(one, two):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5, abs=1e-6)
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-4)


def rank_pid(launcher: int, rank: int) -> int | None:
    """The PID of the launcher's worker with RANK=rank, from /proc."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if parent == launcher and f"RANK={rank}".encode() in environ:
            return int(entry.name)
    return None


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the rank's process through /proc")
def test_killed_rank_stops_the_job_and_resume_continues(config_file, two_ranks, tmp_path):
    runs = tmp_path / "runs"
    run = runs / "tiny"
    process = torchrun(config_file, runs)
    try:
        deadline = time.monotonic() + 90
        victim = None
        while victim is None or not list((run / "checkpoints").glob("step_*")):
            assert process.poll() is None and time.monotonic() < deadline, "the job ended before the kill"
            victim = victim or rank_pid(process.pid, 1)
            time.sleep(0.02)
        os.kill(victim, signal.SIGKILL)
    except BaseException:
        os.killpg(process.pid, signal.SIGKILL)
        raise
    status, err = finish(process)
    assert status != 0
    assert not (run / "done.json").exists()
    # Rank 0's one line (lost contact, or stopped by torchrun's SIGTERM), then torchrun's report.
    line = next((x for x in err.splitlines() if x.startswith("error: ")), None)
    assert line is not None, err[-3000:]
    assert line.startswith("error: rank 0 of 2 stopped at step ") and line.endswith("with --resume"), line
    assert "Signal 9 (SIGKILL)" in err
    kept = max(int(p.name[5:]) for p in (run / "checkpoints").glob("step_*"))
    assert kept < STEPS and kept % CHECKPOINT_EVERY == 0

    status, err = finish(torchrun(config_file, runs, "--resume"))
    assert status == 0, err[-3000:]
    assert json.loads((run / "done.json").read_text())["steps"] == STEPS
    assert len(json.loads((run / "env.json").read_text())) == 2  # two sessions
    # Resumed exactly: the same curve and table as the uninterrupted two-rank run.
    assert timeless(metrics(run)) == timeless(metrics(two_ranks))
    assert (run / "eval.csv").read_text() == (two_ranks / "eval.csv").read_text()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_device_cuda_without_cuda_is_one_line_exit_2(config_file, tmp_path, capsys):
    assert main(["train", str(config_file), "--dir", str(tmp_path), "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: device 'cuda' requested but CUDA is not available")
    assert not (tmp_path / "tiny").exists()


def test_ranks_split_the_data_shards(monkeypatch):
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    monkeypatch.setattr(distributed, "rank", lambda: 1)
    assert distributed.shard_range(4) == range(2, 4)
    with pytest.raises(UserError, match=r"data.shards \(3\) must be a multiple of the number of processes \(2\)"):
        distributed.shard_range(3)
    monkeypatch.undo()
    assert distributed.shard_range(3) == range(0, 3)  # one process draws every shard


def test_batch_size_must_split_into_the_shards():
    tree = config_tree()
    tree["data"]["shards"] = 3
    with pytest.raises(UserError, match=r"data.batch_size \(32\) must be divisible by data.shards \(3\)"):
        build_config(tree)


def test_token_weighted_rank_losses_give_the_global_gradient():
    """What the trainer does per rank: each rank's mean loss, times its share of the global
    batch's answer tokens and the world size, averaged over ranks as DDP does, is the gradient
    of the mean over the whole batch, even when the ranks hold different numbers of tokens."""
    tree = config_tree()
    tree["data"]["tasks"][0]["lengths"] = [1, 12]  # uneven answer lengths: unequal token counts per rank
    exp = build_experiment(build_config(tree))
    shards = [exp.mixture().sample(batch_rng(0, 3, k), 16) for k in range(2)]

    def gradient(examples, scale=1.0):
        exp.model.zero_grad()
        (answer_loss(exp.model, collate(examples, exp.vocab)) * scale).backward()
        return [p.grad.clone() for p in exp.model.parameters()]

    whole = gradient(shards[0] + shards[1])
    counts = [int(collate(s, exp.vocab).loss_mask.sum()) for s in shards]
    assert counts[0] != counts[1]
    per_rank = [gradient(s, scale=2 * c / sum(counts)) for s, c in zip(shards, counts)]
    for g, a, b in zip(whole, *per_rank):
        torch.testing.assert_close((a + b) / 2, g, rtol=1e-5, atol=1e-7)
