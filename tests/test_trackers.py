"""Experiment trackers (`train.trackers`): Weights & Biases offline and a local MLflow file store
receive the config, the metrics of every logged step, every evaluation table and the run's plot."""

import glob
import json
import re
from pathlib import Path

import pytest

from lengthgen.config import build_config
from lengthgen.errors import UserError
from lengthgen.experiment import build_experiment
from lengthgen.store import trackers as trackers_module
from lengthgen.store.rundir import RunDir
from lengthgen.train import run_training

from helpers import tiny_config, train_tree

pytestmark = pytest.mark.slow  # each run starts a W&B process and an MLflow store


def tracked_tree(steps: int = 10) -> dict:
    train = {**tiny_config()["train"], "steps": steps, "eval_every": 5, "checkpoint_every": 5,
             "trackers": ["tensorboard", "wandb", "mlflow"]}
    return tiny_config(train=train, eval={"lengths": [2, 4], "n": 8, "batch_size": 8})


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def test_wandb_and_mlflow_get_config_metrics_evaluations_and_the_plot(tmp_path, offline):
    import mlflow

    run = train_tree(tracked_tree(), tmp_path / "run")
    ids = json.loads((run.path / "trackers.json").read_text())
    logged_steps = [json.loads(line)["step"] for line in (run.path / "metrics.jsonl").read_text().splitlines()]
    assert logged_steps == [5, 10]

    # MLflow: the file store inside the run directory.
    client = mlflow.MlflowClient(tracking_uri=(run.path / "mlruns").resolve().as_uri())
    tracked = client.get_run(ids["mlflow"])
    assert tracked.data.params["model.d_model"] == "32" and tracked.data.params["data.tasks"].startswith("[{")
    assert [m.step for m in client.get_metric_history(ids["mlflow"], "loss")] == logged_steps
    assert tracked.info.status == "FINISHED"
    artifacts = {a.path for a in client.list_artifacts(ids["mlflow"])}
    assert {"eval.png", "eval.csv", "eval"} <= artifacts
    tables = sorted(a.path for a in client.list_artifacts(ids["mlflow"], "eval"))
    assert tables == ["eval/step_0000005.json", "eval/step_0000010.json"]

    # W&B offline: tables and the image as files, metrics and config in the run's record log.
    (offline_run,) = glob.glob(str(run.path / "wandb" / f"offline-run-*-{ids['wandb']}"))
    tables = sorted(glob.glob(f"{offline_run}/files/media/table/eval_*.table.json"))
    assert [t.split("/")[-1].split("_")[1] for t in tables] == ["10", "5"]
    table = json.loads(open(tables[0]).read())
    assert "exact_match" in table["columns"] and len(table["data"]) == 2  # lengths 2 and 4 of copy
    assert glob.glob(f"{offline_run}/files/media/images/eval_*.png")
    records = open(glob.glob(f"{offline_run}/run-*.wandb")[0], "rb").read()
    assert records.count(b"grad_norm") >= 2 and b"d_model" in records

    # TensorBoard as before.
    assert glob.glob(str(run.path / "tb" / "events.out.tfevents*"))


def test_a_resumed_run_continues_the_same_tracked_runs(tmp_path, offline):
    import mlflow

    run = train_tree(tracked_tree(), tmp_path / "run")
    ids = json.loads((run.path / "trackers.json").read_text())
    run_training(build_experiment(build_config(tracked_tree())), RunDir(run.path), resume=True, quiet=True)
    assert json.loads((run.path / "trackers.json").read_text()) == ids
    client = mlflow.MlflowClient(tracking_uri=(run.path / "mlruns").resolve().as_uri())
    experiment = client.get_experiment_by_name("lengthgen")
    assert [r.info.run_id for r in client.search_runs([experiment.experiment_id])] == [ids["mlflow"]]
    # Every offline W&B session folder of this run carries the same id: the resume made no new W&B run. (A
    # folder is named by the second its session started, plus "-1", "-2" when that name is taken.)
    sessions = [Path(p).name for p in glob.glob(str(run.path / "wandb" / "offline-run-*"))]
    pattern = rf"offline-run-\d{{8}}_\d{{6}}-{ids['wandb']}(-\d+)?"
    assert sessions and all(re.fullmatch(pattern, name) for name in sessions)


def test_unknown_or_missing_trackers_are_one_line_errors(tmp_path, monkeypatch):
    tree = tracked_tree()
    tree["train"]["trackers"] = ["tensorboard", "comet"]
    with pytest.raises(UserError, match="unknown tracker 'comet'; valid: mlflow, tensorboard, wandb"):
        build_config(tree)
    real = trackers_module.importlib.import_module

    def without_wandb(name, *args):
        if name == "wandb":
            raise ImportError(name)
        return real(name, *args)

    monkeypatch.setattr(trackers_module.importlib, "import_module", without_wandb)
    tree["train"]["trackers"] = ["wandb"]
    with pytest.raises(UserError, match=r"train.trackers wandb: pip install 'lengthgen\[trackers\]'"):
        train_tree(tree, tmp_path / "run")
