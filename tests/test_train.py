"""Training and evaluation end to end on tiny models."""

import json

import pytest
import torch

from lengthgen.config import TrainConfig, build_config
from lengthgen.errors import UserError
from lengthgen.evaluate import evaluate
from lengthgen.experiment import build_experiment
from lengthgen.schedules import SCHEDULES
from lengthgen.store.checkpoint import checkpoint_dirs
from lengthgen.store.rundir import EVAL_COLUMNS, RunDir
from lengthgen.train import Trainer, run_training

from helpers import tiny_config


def train(tmp_path, name, **sections):
    cfg = build_config(tiny_config(**sections))
    run = RunDir(tmp_path / name)
    run.prepare(force=False, resume=False)
    exp = build_experiment(cfg)
    rows = run_training(exp, run, quiet=True)
    return exp, run, rows


def losses(run):
    return [json.loads(line)["loss"] for line in (run.path / "metrics.jsonl").read_text().splitlines()]


def test_same_seeds_same_loss_curve(tmp_path):
    _, a, _ = train(tmp_path, "a")
    _, b, _ = train(tmp_path, "b")
    _, c, _ = train(tmp_path, "c", seed={"model": 0, "data": 1, "eval": 0})
    assert len(losses(a)) == 6
    assert losses(a) == losses(b)
    assert losses(a) != losses(c)
    assert losses(a)[-1] < losses(a)[0]


def test_length_sorted_micro_batches_give_the_same_training(tmp_path):
    # Copy lengths 1-20 in a batch of 32: one padded batch against four length-sorted ones. The
    # examples, loss and gradient are the same, so the curves agree up to float rounding.
    data = {"tasks": [{"task": "copy", "lengths": [1, 20]}], "batch_size": 32}
    train_cfg = {**tiny_config()["train"], "threads": 1}
    a, run_a, rows_a = train(tmp_path, "one", data=data, train=train_cfg)
    b, run_b, rows_b = train(tmp_path, "four", data=data, train={**train_cfg, "micro_batches": 4})
    assert b.cfg.train.micro_batches == 4 and run_b.read_config().train.micro_batches == 4
    assert losses(run_b) == pytest.approx(losses(run_a), rel=1e-5)
    assert losses(run_a)[-1] < losses(run_a)[0] - 0.5  # it learned, so equal curves say something
    for pa, pb in zip(a.model.parameters(), b.model.parameters()):
        torch.testing.assert_close(pb, pa, rtol=1e-4, atol=1e-5)
    assert [r.exact_match for r in rows_b] == pytest.approx([r.exact_match for r in rows_a], abs=1 / 32)


def test_length_groups_partition_a_batch_by_length():
    import numpy as np

    from lengthgen.data import length_groups
    from lengthgen.tasks.base import make_task

    rng = np.random.default_rng(0)
    examples = [ex for n in (7, 1, 12, 3, 9) for ex in make_task("reverse").sample(rng, 3, n)]
    groups = length_groups(examples, 4)
    assert [len(g) for g in groups] == [4, 4, 4, 3]
    assert sorted(map(id, (ex for g in groups for ex in g))) == sorted(map(id, examples))
    flat = [ex.seq_len for g in groups for ex in g]
    assert flat == sorted(flat)
    assert length_groups(examples, 1) == [sorted(examples, key=lambda ex: ex.seq_len)]
    for bad in (0, 16):
        with pytest.raises(ValueError, match="cannot cut 15 examples"):
            length_groups(examples, bad)


def test_micro_batches_must_fit_in_a_data_shard():
    tree = tiny_config(train={**tiny_config()["train"], "micro_batches": 33})
    with pytest.raises(UserError, match=r"train.micro_batches \(33\) must not exceed.*= 32"):
        build_config(tree)
    tree["data"]["shards"] = 2
    tree["train"]["micro_batches"] = 17
    with pytest.raises(UserError, match="= 16"):
        build_config(tree)
    tree["train"]["micro_batches"] = 16
    assert build_config(tree).train.micro_batches == 16


def test_run_directory_holds_everything(tmp_path):
    exp, run, rows = train(tmp_path, "r")
    names = {p.name for p in run.path.iterdir()}
    assert {"config.yaml", "env.json", "vocab.json", "metrics.jsonl", "eval.csv", "checkpoints", "tb"} <= names
    assert run.read_config() == exp.cfg
    assert (run.path / "eval.csv").read_text().splitlines()[0] == ",".join(EVAL_COLUMNS)
    assert [(r.task, r.length) for r in rows] == [("copy", n) for n in range(1, 9)]
    ckpt = checkpoint_dirs(run.checkpoint_root)[-1]
    assert {p.name for p in ckpt.iterdir()} == {"model.safetensors", "trainer.pt", "state.json", "vocab.json"}
    env = json.loads((run.path / "env.json").read_text())[-1]
    assert env["torch"] == torch.__version__ and "git_revision" in env
    assert any(p.name.startswith("events.out.tfevents") for p in (run.path / "tb").iterdir())


@pytest.mark.slow
def test_teacher_forced_equals_greedy(trained_copy):
    exp, _ = trained_copy
    kwargs = dict(n=64, eval_seed=7, policy="consecutive", settings=exp.cfg.positions.settings(),
                  vocab=exp.vocab, batch_size=24, step=0)
    tf = evaluate(exp.model, exp.specs, list(range(1, 10)), mode="teacher_forced", **kwargs)
    greedy = evaluate(exp.model, exp.specs, list(range(1, 10)), mode="greedy", **kwargs)
    ems = [r.exact_match for r in tf]
    assert ems == [r.exact_match for r in greedy]
    # The comparison means something only if the model is right on some examples, wrong on others.
    assert max(ems) >= 0.9 and min(ems) <= 0.5 and any(0 < e < 1 for e in ems)


def crash_at(monkeypatch, crash_step: int):
    """Make training raise KeyboardInterrupt when it reaches `crash_step`; returns the undo."""
    original = Trainer._batch

    def batch(self, step):
        if step == crash_step:
            raise KeyboardInterrupt
        return original(self, step)

    monkeypatch.setattr(Trainer, "_batch", batch)
    return lambda: monkeypatch.setattr(Trainer, "_batch", original)


def test_resume_continues_exactly(tmp_path, monkeypatch):
    sections = {"train": {**tiny_config()["train"], "checkpoint_every": 10, "keep_checkpoints": 5}}
    _, whole, _ = train(tmp_path, "whole", **sections)

    cfg = build_config(tiny_config(**sections))
    run = RunDir(tmp_path / "broken")
    run.prepare(force=False, resume=False)
    undo = crash_at(monkeypatch, 17)
    with pytest.raises(KeyboardInterrupt):
        run_training(build_experiment(cfg), run, quiet=True)
    undo()
    assert [p.name for p in checkpoint_dirs(run.checkpoint_root)] == ["step_0000010"]

    exp = build_experiment(cfg)
    run_training(exp, run, resume=True, quiet=True)
    reference = build_experiment(cfg)
    from lengthgen.store.checkpoint import load_weights

    load_weights(reference.model, checkpoint_dirs(whole.checkpoint_root)[-1])
    for (name, p), q in zip(exp.model.named_parameters(), reference.model.parameters()):
        assert torch.equal(p, q), name
    assert losses(run) == losses(whole)
    assert (run.path / "eval.csv").read_text() == (whole.path / "eval.csv").read_text()


def test_snapshot_steps_add_evaluations_and_checkpoints_between_the_regular_ones(tmp_path):
    sections = {"train": {**tiny_config()["train"], "eval_every": 10, "checkpoint_every": 10,
                          "keep_checkpoints": 10, "snapshot_steps": [3, 7]}}
    _, run, _ = train(tmp_path, "snapshots", **sections)
    assert sorted({r.step for r in run.read_eval()}) == [3, 7, 10, 20, 30]
    assert [p.name for p in checkpoint_dirs(run.checkpoint_root)] == [
        "step_0000003", "step_0000007", "step_0000010", "step_0000020", "step_0000030"]


def test_a_run_resumed_from_a_snapshot_matches_an_uninterrupted_one(tmp_path, monkeypatch):
    sections = {"train": {**tiny_config()["train"], "eval_every": 10, "checkpoint_every": 10,
                          "keep_checkpoints": 10, "snapshot_steps": [3, 7]}}
    _, whole, _ = train(tmp_path, "whole", **sections)
    cfg = build_config(tiny_config(**sections))
    run = RunDir(tmp_path / "broken")
    run.prepare(force=False, resume=False)
    undo = crash_at(monkeypatch, 8)  # after the snapshot at 7, before the regular checkpoint at 10
    with pytest.raises(KeyboardInterrupt):
        run_training(build_experiment(cfg), run, quiet=True)
    undo()
    assert [p.name for p in checkpoint_dirs(run.checkpoint_root)] == ["step_0000003", "step_0000007"]
    run_training(build_experiment(cfg), run, resume=True, quiet=True)
    assert losses(run) == losses(whole)
    assert (run.path / "eval.csv").read_text() == (whole.path / "eval.csv").read_text()


@pytest.mark.parametrize("steps", [[0], [30], [5, 5], [-1]])
def test_snapshot_steps_outside_training_are_rejected(steps):
    with pytest.raises(ValueError, match="snapshot_steps"):
        TrainConfig(steps=30, snapshot_steps=steps)


def test_resume_without_a_checkpoint_starts_over_cleanly(tmp_path, monkeypatch):
    cfg = build_config(tiny_config())
    run = RunDir(tmp_path / "early")
    run.prepare(force=False, resume=False)
    undo = crash_at(monkeypatch, 12)
    with pytest.raises(KeyboardInterrupt):
        run_training(build_experiment(cfg), run, quiet=True)
    undo()
    assert len(losses(run)) == 2 and not checkpoint_dirs(run.checkpoint_root)
    run_training(build_experiment(cfg), run, resume=True, quiet=True)
    steps = [json.loads(line)["step"] for line in (run.path / "metrics.jsonl").read_text().splitlines()]
    assert steps == [5, 10, 15, 20, 25, 30]


def test_schedules():
    cfg = TrainConfig(steps=100, warmup=10, decay=0.2, min_lr_ratio=0.1)
    assert SCHEDULES["constant"](0, cfg) == pytest.approx(0.1)
    assert SCHEDULES["constant"](50, cfg) == 1.0
    assert SCHEDULES["cosine"](9, cfg) == pytest.approx(1.0)
    assert SCHEDULES["cosine"](55, cfg) == pytest.approx(0.1 + 0.9 * 0.5)
    assert SCHEDULES["cosine"](100, cfg) == pytest.approx(0.1)
    assert SCHEDULES["wsd"](79, cfg) == 1.0
    assert SCHEDULES["wsd"](90, cfg) == pytest.approx(0.55)
    assert SCHEDULES["wsd"](100, cfg) == pytest.approx(0.1)


def test_task_mixture_and_other_policies_train(tmp_path):
    sections = {
        "data": {"tasks": [{"task": "copy", "lengths": [1, 4]},
                           {"task": "reverse_add", "lengths": [1, 3], "weight": 2}],
                 "batch_size": 16},
        "positions": {"train": "random_offset", "eval": "consecutive", "max_position": 64},
        "model": {"layers": 1, "heads": 2, "d_model": 16, "d_ff": 32, "encoding": "learned"},
        "train": {**tiny_config()["train"], "steps": 6, "eval_every": 3},
        "eval": {"lengths": "2,4", "n": 8, "mode": "greedy"},
    }
    _, run, rows = train(tmp_path, "mix", **sections)
    assert {(r.task, r.length) for r in rows} == {("copy", 2), ("copy", 4), ("reverse_add", 2), ("reverse_add", 4)}
    assert sorted({r.step for r in run.read_eval()}) == [3, 6]
