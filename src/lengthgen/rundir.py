"""A run is a directory: resolved config, environment, metrics, eval results, checkpoints.

  config.yaml       the resolved experiment config (rerun with `lengthgen train config.yaml`)
  env.json          versions, git revision, command line, host facts
  vocab.json        the vocabulary the model was trained with
  metrics.jsonl     one JSON object per logged step
  tb/               TensorBoard events
  eval.csv          step, task, length, n, exact_match, token_acc (+ position_accuracy for PPC models)
  eval.png          exact match vs length at the latest evaluated step
  done.json         present once training and the final evaluation finished
  checkpoints/step_XXXXXXX/  model.safetensors, trainer.pt, state.json
"""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import torch
import yaml

from . import __version__
from .config import ExperimentConfig, build_config
from .errors import UserError
from .evaluate import EvalRow

EVAL_COLUMNS = ["step", "task", "length", "n", "exact_match", "token_acc"]
# Written only when some row has a value (PPC models), so other runs' eval.csv is unchanged and
# files without them still read (as NaN).
OPTIONAL_EVAL_COLUMNS = ["position_accuracy"]


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a crash never leaves half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def git_revision() -> str | None:
    """The git commit of the lengthgen source tree, if it is a checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=Path(__file__).parent,
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def environment() -> dict:
    """Facts needed to rerun: versions, revision, command line, host."""
    return {
        "lengthgen": __version__,
        "git_revision": git_revision(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "argv": sys.argv,
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


class RunDir:
    """Reads and writes one run directory."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @property
    def checkpoint_root(self) -> Path:
        return self.path / "checkpoints"

    def exists(self) -> bool:
        """Whether the run has been started (it has a config)."""
        return (self.path / "config.yaml").is_file()

    def require(self) -> "RunDir":
        """Raise a UserError unless this is a run directory."""
        if not self.path.is_dir():
            raise UserError(f"run directory {str(self.path)!r} does not exist")
        if not self.exists():
            raise UserError(f"{str(self.path)!r} is not a run directory (no config.yaml)")
        return self

    def prepare(self, force: bool, resume: bool) -> None:
        """Create the directory; refuse to clobber an existing run unless forced or resuming."""
        if self.path.exists() and any(self.path.iterdir()) and not resume:
            if not force:
                raise UserError(f"run directory {str(self.path)!r} already exists; use --resume to continue "
                                "it or --force to replace it")
            shutil.rmtree(self.path)
        if resume and not self.exists():
            raise UserError(f"cannot resume: {str(self.path)!r} is not a run directory")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            probe = self.path / ".write-test"
            probe.write_text("")
            probe.unlink()
        except OSError as err:
            raise UserError(f"cannot write to run directory {str(self.path)!r}: {err.strerror}") from None

    def is_done(self) -> bool:
        """Whether training finished and its final evaluation was written."""
        return (self.path / "done.json").is_file()

    def mark_done(self, **facts) -> None:
        """Record that the run finished (sweeps skip finished runs)."""
        atomic_write_text(self.path / "done.json", json.dumps(facts))

    def write_config(self, cfg: ExperimentConfig) -> None:
        """Store the resolved config."""
        atomic_write_text(self.path / "config.yaml", cfg.to_yaml())

    def read_config(self) -> ExperimentConfig:
        """The run's resolved config."""
        return build_config(yaml.safe_load((self.path / "config.yaml").read_text()))

    def write_environment(self, **resolved) -> None:
        """Record versions, the command line and resolved choices (device, precision); one entry
        per start, so resumed runs keep their history."""
        env = {**environment(), **resolved}
        path = self.path / "env.json"
        history = json.loads(path.read_text()) if path.exists() else []
        atomic_write_text(path, json.dumps(history + [env], indent=1))

    def append_metrics(self, record: dict) -> None:
        """One JSON line in metrics.jsonl."""
        with open(self.path / "metrics.jsonl", "a") as handle:
            handle.write(json.dumps(record) + "\n")

    def read_eval(self) -> list[EvalRow]:
        """All rows of eval.csv."""
        path = self.path / "eval.csv"
        if not path.exists():
            return []
        with open(path, newline="") as handle:
            return [EvalRow(int(r["step"]), r["task"], int(r["length"]), int(r["n"]), float(r["exact_match"]),
                            float(r["token_acc"]), *(float(r.get(c) or "nan") for c in OPTIONAL_EVAL_COLUMNS))
                    for r in csv.DictReader(handle)]

    def append_eval(self, rows: list[EvalRow]) -> None:
        """Add rows to eval.csv (rewritten whole, atomically)."""
        self.write_eval(self.read_eval() + rows)

    def write_eval(self, rows: list[EvalRow]) -> None:
        """Replace eval.csv with these rows."""
        optional = [c for c in OPTIONAL_EVAL_COLUMNS if any(not math.isnan(getattr(r, c)) for r in rows)]
        columns = EVAL_COLUMNS + optional
        lines = [",".join(columns)]
        lines += [",".join(str(getattr(r, c)) for c in columns) for r in rows]
        atomic_write_text(self.path / "eval.csv", "\n".join(lines) + "\n")

    def truncate_after(self, step: int) -> None:
        """Drop metrics and eval rows logged after `step` (used when resuming from it)."""
        self.write_eval([r for r in self.read_eval() if r.step <= step])
        path = self.path / "metrics.jsonl"
        if path.exists():
            kept = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
            atomic_write_text(path, "".join(line + "\n" for line in kept))
