"""Reusing finished runs across sweeps: a planned run whose resolved config equals a finished
run's (everything but the run's name) is copied into the sweep instead of being trained again.

Presets share runs: b-rope's RoPE points are b-transfer-arith's arith-carry runs, for example, and
each costs tens of minutes on a CPU. A copied run keeps its own env.json (the code revision and
machine that trained it) and gains `reused.json` naming where it came from; reports list it.
Equal configs are equal experiments, but not always bit-identical results: training with another
code revision or on another device can differ in the last digits, which is why the source is kept.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from ..config import ExperimentConfig
from ..errors import UserError
from ..store.fileio import atomic_write_text
from ..store.rundir import EVAL_LOCK_NAME, LOCK_NAME, RunDir

REUSED_NAME = "reused.json"


def fingerprint(cfg: ExperimentConfig) -> str:
    """A hash of everything in a resolved config that decides what is trained: all but `name`, with
    a task group replaced by the tasks it stands for (the main task alone is the same experiment
    whichever group it was named through)."""
    tree = cfg.model_dump(mode="json")
    tree.pop("name", None)
    # How a run is executed, not what it learns: a sweep sets threads per job (`--threads`), and
    # results differ across thread counts (or micro-batch splits or packing of the same batch) only
    # in the last digits, as across code revisions.
    for key in ("threads", "collective_timeout", "micro_batches", "pack", "pack_length", "trackers"):
        tree["train"].pop(key, None)
    data = tree["data"]
    data["tasks"] = [entry.model_dump(mode="json") for entry in cfg.data.resolved_tasks()]
    for key in ("group", "group_max", "aux", "task_options"):
        data.pop(key, None)
    return hashlib.sha256(json.dumps(tree, sort_keys=True).encode()).hexdigest()


def _sweep_dirs(root: Path) -> list[Path]:
    """`root` itself if it holds runs, else its sub-directories that do."""
    if (root / "runs").is_dir():
        return [root]
    return sorted(p for p in root.iterdir() if (p / "runs").is_dir()) if root.is_dir() else []


def finished_runs(roots: list[str | Path]) -> dict[str, Path]:
    """fingerprint -> directory of a finished run, over sweep directories or folders of them.

    A run whose config no longer validates (written by an older version) is skipped: it cannot be
    shown to equal anything planned now. Roots, then sweeps, then runs are searched in order; the
    first run found for a fingerprint wins.
    """
    found: dict[str, Path] = {}
    for root in roots:
        for sweep in _sweep_dirs(Path(root)):
            for path in sorted((sweep / "runs").iterdir()):
                run = RunDir(path)
                if not run.is_done() or (path / REUSED_NAME).is_file():  # copy from the original only
                    continue
                try:
                    key = fingerprint(run.read_config())
                except (UserError, ValueError):
                    continue
                found.setdefault(key, path)
    return found


def adopt(source: Path, target: RunDir, cfg: ExperimentConfig) -> None:
    """Copy the finished run at `source` to `target` under `cfg`'s name, atomically: the target is
    complete or absent (a crash leaves at most a `.partial` directory, replaced next time)."""
    staging = target.path.with_name(target.path.name + ".partial")
    if staging.exists():
        shutil.rmtree(staging)
    shutil.copytree(source, staging, ignore=shutil.ignore_patterns(LOCK_NAME, EVAL_LOCK_NAME))
    RunDir(staging).write_config(cfg)
    revision = None
    env = staging / "env.json"
    if env.is_file():
        try:
            revision = json.loads(env.read_text())[0].get("git_revision")
        except (ValueError, IndexError, KeyError, AttributeError):
            revision = None
    atomic_write_text(staging / REUSED_NAME, json.dumps({"source": str(source.resolve()), "git_revision": revision}))
    if target.path.exists():  # an empty directory left by a failed pre-flight check
        shutil.rmtree(target.path)
    staging.rename(target.path)


def reused_from(run_path: Path) -> str:
    """Where a run was copied from ('' for a run trained in place)."""
    path = Path(run_path) / REUSED_NAME
    if not path.is_file():
        return ""
    try:
        return json.loads(path.read_text()).get("source", "")
    except ValueError:
        return "?"
