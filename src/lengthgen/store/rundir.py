"""A run is a directory: resolved config, environment, metrics, eval results, checkpoints.

  config.yaml       the resolved experiment config (rerun with `lengthgen train config.yaml`)
  env.json          versions, git revision, command line, host facts
  vocab.json        the vocabulary the model was trained with
  metrics.jsonl     one JSON object per logged step
  tb/               TensorBoard events
  eval.csv          step, task, length, n, exact_match, token_acc (+ position_accuracy for PPC models)
  eval.png          exact match vs length at the latest evaluated step
  done.json         present once training and the final evaluation finished (steps, seconds)
  failed.json       why the last attempt failed (sweeps; removed when the run is retried)
  checkpoints/step_XXXXXXX/  model.safetensors, trainer.pt, vocab.json, state.json (step, checksums)
  .lock             held by the process training the run (.eval.lock: while eval.csv is rewritten)

Every file except metrics.jsonl (one append per log line; a torn last line from a killed
process is ignored when read) is written to a temporary file and renamed into place.
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
from datetime import datetime, timezone
from pathlib import Path

import torch
import yaml

from .. import __version__
from ..config import ExperimentConfig, build_config, yaml_problem
from ..errors import UserError
from ..evaluate import EvalRow
from .fileio import atomic_write_text, exclusive_lock, waiting_lock  # atomic_write_text is also re-exported

EVAL_COLUMNS = ["step", "task", "length", "n", "exact_match", "token_acc"]
# Written only when some row has a value (PPC models), so other runs' eval.csv is unchanged and
# files without them still read (as NaN).
OPTIONAL_EVAL_COLUMNS = ["position_accuracy"]


# The lock file a training process holds in its run directory (see train.run_training).
LOCK_NAME = ".lock"
# A short lock around rewriting eval.csv, which `lengthgen eval` may do while the run trains.
EVAL_LOCK_NAME = ".eval.lock"


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
        # A directory holding only a lock file was never started (a pre-flight check failed).
        if self.path.exists() and any(p.name not in (LOCK_NAME, EVAL_LOCK_NAME) for p in self.path.iterdir()) \
                and not resume:
            if not force:
                raise UserError(f"run directory {str(self.path)!r} already exists; use --resume to continue "
                                "it or --force to replace it")
            if (self.path / LOCK_NAME).exists():
                with exclusive_lock(self.path / LOCK_NAME, f"run directory {str(self.path)!r}"):
                    pass  # not being trained right now: safe to delete
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
        """The run's resolved config (a UserError naming the file if it is unreadable)."""
        path = self.path / "config.yaml"
        try:
            tree = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError, UnicodeDecodeError) as err:
            reason = yaml_problem(err) if isinstance(err, yaml.YAMLError) else str(err).strip().splitlines()[0]
            raise UserError(f"cannot read {str(path)!r}: {reason}") from None
        if not isinstance(tree, dict):
            raise UserError(f"{str(path)!r} does not hold a config mapping")
        return build_config(tree)

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

    def last_logged_step(self) -> int | None:
        """The step of the newest whole line of metrics.jsonl (None before the first): how far a run
        in flight has got, read from the file's end, so it stays cheap on a long run."""
        path = self.path / "metrics.jsonl"
        try:
            with open(path, "rb") as handle:
                handle.seek(max(0, handle.seek(0, os.SEEK_END) - 4096))
                tail = handle.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return None
        # The first line of the tail may be cut, and the last torn by a killed process: skip either.
        steps = [step for line in tail.splitlines()[::-1] if (step := _step_of(line)) is not None]
        return steps[0] if steps else None

    def read_eval(self, name: str = "eval.csv") -> list[EvalRow]:
        """All rows of eval.csv (or of `name`, a table written beside it)."""
        path = self.path / name
        if not path.exists():
            return []
        try:
            with open(path, newline="") as handle:
                return [EvalRow(int(r["step"]), r["task"], int(r["length"]), int(r["n"]), float(r["exact_match"]),
                                float(r["token_acc"]), *(float(r.get(c) or "nan") for c in OPTIONAL_EVAL_COLUMNS))
                        for r in csv.DictReader(handle)]
        except (KeyError, ValueError, TypeError, csv.Error, UnicodeDecodeError) as err:
            # Only an outside edit can do this: the file is always replaced whole.
            raise UserError(f"{str(path)!r} is damaged ({type(err).__name__}: {err}); restore it or remove the "
                            "bad rows") from None

    def append_eval(self, rows: list[EvalRow], name: str = "eval.csv") -> None:
        """Add rows to eval.csv, or to `name` (rewritten whole, atomically; locked, so concurrent appends
        all land)."""
        with waiting_lock(self.path / EVAL_LOCK_NAME):
            self.write_eval(self.read_eval(name) + rows, name)

    def write_eval(self, rows: list[EvalRow], name: str = "eval.csv") -> None:
        """Replace eval.csv (or `name`) with these rows."""
        optional = [c for c in OPTIONAL_EVAL_COLUMNS if any(not math.isnan(getattr(r, c)) for r in rows)]
        columns = EVAL_COLUMNS + optional
        lines = [",".join(columns)]
        lines += [",".join(str(getattr(r, c)) for c in columns) for r in rows]
        atomic_write_text(self.path / name, "\n".join(lines) + "\n")

    def truncate_after(self, step: int) -> None:
        """Drop metrics and eval rows logged after `step` (used when resuming from it)."""
        with waiting_lock(self.path / EVAL_LOCK_NAME):
            self.write_eval([r for r in self.read_eval() if r.step <= step])
        path = self.path / "metrics.jsonl"
        if path.exists():
            kept = [line for line in path.read_text().splitlines()
                    if (logged := _step_of(line)) is not None and logged <= step]
            atomic_write_text(path, "".join(line + "\n" for line in kept))


def _step_of(line: str) -> int | None:
    """The step of a metrics.jsonl line, or None for a torn line (a process killed mid-append)."""
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None
