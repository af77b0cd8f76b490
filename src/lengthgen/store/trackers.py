"""Where a run's records go besides its directory: experiment trackers, by name (`train.trackers`).

  tensorboard  (default) event files in `<run>/tb/`: the logged metrics, and exact match (and PPC
               position accuracy) per task and length at every evaluation
  wandb        Weights & Biases: the resolved config, the metrics per step, each evaluation as a
               table, eval.png at the end. Offline unless WANDB_MODE says otherwise (files under
               `<run>/wandb/`, `wandb sync` uploads them); project from WANDB_PROJECT (default
               lengthgen). Needs `pip install 'lengthgen[trackers]'`.
  mlflow       MLflow: the config as flattened parameters, the metrics per step, each evaluation
               as a JSON table, eval.png and eval.csv at the end. Tracking URI from
               MLFLOW_TRACKING_URI, else a local file store in `<run>/mlruns`. Needs
               `pip install 'lengthgen[trackers]'`.

Only the main process of a data-parallel job tracks. A resumed run continues the same tracked
run: TensorBoard drops events logged after the checkpoint; W&B and MLflow runs are reopened by
the ids stored in `<run>/trackers.json`. A tracker records; it never decides anything, so the
trackers are left out of a run's reuse fingerprint.
"""

from __future__ import annotations

import importlib
import json
import os
import secrets
import time
from pathlib import Path

from ..errors import UserError
from ..registry import Registry
from .fileio import atomic_write_text

TRACKERS = Registry("tracker")
STATE_FILE = "trackers.json"  # the W&B and MLflow run ids, so that --resume continues those runs


class Tracker:
    """The interface; every method may be a no-op. Built once per run, on the main process, from the
    run directory's path, the run's ExperimentConfig and the step training starts from."""

    def __init__(self, run_path: Path, cfg, start_step: int):
        self.path, self.cfg, self.start_step = Path(run_path), cfg, start_step

    def metrics(self, step: int, record: dict) -> None:
        """One logged record (loss, lr, grad_norm, tokens_per_s, ...) at a training step."""

    def evaluation(self, step: int, rows: list) -> None:
        """One evaluation's rows (`evaluate.EvalRow`: exact match and token accuracy per task and length)."""

    def files(self, paths: list[Path]) -> None:
        """Files of the finished run (eval.png, eval.csv) to keep beside the tracked run."""

    def close(self) -> None:
        """Flush and end the tracked run."""

    def _state(self) -> dict:
        path = self.path / STATE_FILE
        return json.loads(path.read_text()) if path.is_file() else {}

    def _remember(self, key: str, value: str) -> None:
        atomic_write_text(self.path / STATE_FILE, json.dumps({**self._state(), key: value}))


def _flat(tree: dict, prefix: str = "") -> dict[str, object]:
    """{'model.layers': 2, ...}: a nested config as dotted keys (lists as their text)."""
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flat(value, name + "."))
        else:
            out[name] = value if isinstance(value, (int, float, str, bool)) or value is None else json.dumps(value)
    return out


def _require(module: str):
    """Import an optional tracker library, or a one-line UserError naming the install command."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError(f"train.trackers {module}: pip install 'lengthgen[trackers]' (or pip install {module})") \
            from None


@TRACKERS.register("tensorboard")
class TensorBoard(Tracker):
    """TensorBoard event files in `<run>/tb/`."""

    def __init__(self, run_path, cfg, start_step):
        super().__init__(run_path, cfg, start_step)
        self.writer = None

    def _writer(self):
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            # purge_step drops events a resumed run logged after its checkpoint.
            self.writer = SummaryWriter(str(self.path / "tb"), purge_step=self.start_step + 1)
        return self.writer

    def metrics(self, step, record):
        for key, value in record.items():
            if key != "step":
                self._writer().add_scalar(key, value, step)

    def evaluation(self, step, rows):
        if self.writer is None:  # as before: evaluations are added once metrics have opened the log
            return
        for row in rows:
            self.writer.add_scalar(f"eval/{row.task}/{row.length}", row.exact_match, step)
            if row.position_accuracy == row.position_accuracy:  # not NaN: a PPC run
                self.writer.add_scalar(f"eval_position/{row.task}/{row.length}", row.position_accuracy, step)

    def close(self):
        if self.writer is not None:
            self.writer.close()


@TRACKERS.register("wandb")
class WandB(Tracker):
    """A Weights & Biases run, offline unless WANDB_MODE says otherwise."""

    def __init__(self, run_path, cfg, start_step):
        super().__init__(run_path, cfg, start_step)
        wandb = _require("wandb")
        self.wandb = wandb
        run_id = self._state().get("wandb") or secrets.token_hex(4)  # W&B ids: short, lowercase, unique
        self._remember("wandb", run_id)
        self.handle = wandb.init(project=os.environ.get("WANDB_PROJECT", "lengthgen"), name=cfg.name, id=run_id,
                                 resume="allow", dir=str(self.path), config=cfg.model_dump(mode="json"),
                                 mode=os.environ.get("WANDB_MODE", "offline"), settings=wandb.Settings(silent=True))

    def metrics(self, step, record):
        self.handle.log({k: v for k, v in record.items() if k != "step"}, step=step)

    def evaluation(self, step, rows):
        columns = list(rows[0].as_dict()) if rows else []
        table = self.wandb.Table(columns=columns, data=[list(r.as_dict().values()) for r in rows])
        self.handle.log({"eval": table}, step=step)

    def files(self, paths):
        images = {p.stem: self.wandb.Image(str(p)) for p in paths if p.suffix == ".png" and p.is_file()}
        if images:
            self.handle.log(images)

    def close(self):
        self.handle.finish()


@TRACKERS.register("mlflow")
class MLflow(Tracker):
    """An MLflow run; a local file store in `<run>/mlruns` unless MLFLOW_TRACKING_URI names another."""

    def __init__(self, run_path, cfg, start_step):
        super().__init__(run_path, cfg, start_step)
        mlflow = _require("mlflow")
        uri = os.environ.get("MLFLOW_TRACKING_URI") or (self.path / "mlruns").resolve().as_uri()
        if uri.startswith("file:"):  # the local default: MLflow 3 asks file stores to opt in
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = mlflow.MlflowClient(tracking_uri=uri)
        run_id = self._state().get("mlflow")
        if run_id is None:
            experiment = self.client.get_experiment_by_name("lengthgen")
            experiment_id = experiment.experiment_id if experiment else self.client.create_experiment("lengthgen")
            run_id = self.client.create_run(experiment_id, run_name=cfg.name).info.run_id
            self._remember("mlflow", run_id)
            flat = _flat(cfg.model_dump(mode="json"))
            for start in range(0, len(flat), 100):  # MLflow takes at most 100 parameters a call
                batch = list(flat.items())[start : start + 100]
                self.client.log_batch(run_id, params=[mlflow.entities.Param(k, str(v)[:500]) for k, v in batch])
        self.mlflow, self.run_id = mlflow, run_id

    def metrics(self, step, record):
        timestamp = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[self.mlflow.entities.Metric(k, float(v), timestamp, step)
                                                    for k, v in record.items() if k != "step"])

    def evaluation(self, step, rows):
        table = {key: [r.as_dict()[key] for r in rows] for key in (rows[0].as_dict() if rows else {})}
        self.client.log_table(self.run_id, table, f"eval/step_{step:07d}.json")

    def files(self, paths):
        for path in paths:
            if path.is_file():
                self.client.log_artifact(self.run_id, str(path))

    def close(self):
        self.client.set_terminated(self.run_id)


def open_trackers(names: list[str], run_path: Path, cfg, start_step: int) -> list[Tracker]:
    """The run's trackers, each opened (an unknown name is a UserError naming the valid ones)."""
    return [TRACKERS.lookup(name)(run_path, cfg, start_step) for name in names]
