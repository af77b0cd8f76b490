"""Helpers the tests share: a tiny config, and training one through the real trainer.

Plain functions in a module (pytest's fixtures stay in conftest.py, which imports these), so a
test file imports what it uses instead of reaching into conftest.
"""

from __future__ import annotations

from lengthgen.config import build_config
from lengthgen.experiment import build_experiment
from lengthgen.store.rundir import RunDir
from lengthgen.sweeps.run import SweepDir
from lengthgen.sweeps.spec import expand
from lengthgen.train import run_training


def tiny_config(**sections) -> dict:
    """A raw config for a tiny copy model; sections override whole top-level keys."""
    tree = {
        "name": "tiny",
        "data": {"tasks": [{"task": "copy", "lengths": [1, 6]}], "batch_size": 32},
        "model": {"layers": 2, "heads": 2, "d_model": 32, "d_ff": 64, "encoding": "rope"},
        "train": {"steps": 30, "lr": 3e-3, "warmup": 0.1, "log_every": 5, "precision": "float32", "threads": 2},
        "eval": {"lengths": "1:8", "n": 32, "batch_size": 32},
        "positions": {"max_position": 64},
    }
    tree.update(sections)
    return tree


def train_tree(tree: dict, path) -> RunDir:
    """Train a raw config into a new run directory at `path` through the real trainer; the RunDir."""
    run = RunDir(path)
    run.prepare(force=False, resume=False)
    run_training(build_experiment(build_config(tree)), run, quiet=True)
    return run


def finished_sweep(path, spec, rows_of) -> SweepDir:
    """A sweep directory at `path` whose every run is done, its eval.csv holding `rows_of(plan)`."""
    sweep = SweepDir(path)
    sweep.prepare(spec, force=False)
    for plan in expand(spec):
        run = sweep.run_dir(plan)
        run.path.mkdir(parents=True)
        run.write_config(plan.config)
        run.write_eval(rows_of(plan))
        run.mark_done(seconds=1.0)
    return sweep
