"""Shared fixtures: tiny configs and one tiny trained model reused across tests."""

from __future__ import annotations

import pytest
import torch

from lengthgen.config import build_config

torch.set_num_threads(2)


@pytest.fixture(scope="session", autouse=True)
def corpus_cache(tmp_path_factory):
    """Corpus caches (text task) in a temporary directory, not in ~/.cache; subprocesses inherit it."""
    import os

    old = os.environ.get("LENGTHGEN_CACHE")
    os.environ["LENGTHGEN_CACHE"] = str(tmp_path_factory.mktemp("lengthgen-cache"))
    yield os.environ["LENGTHGEN_CACHE"]
    if old is None:
        del os.environ["LENGTHGEN_CACHE"]
    else:
        os.environ["LENGTHGEN_CACHE"] = old


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


def train_tree(tree: dict, path):
    """Train a raw config into a new run directory at `path` through the real trainer; the RunDir."""
    from lengthgen.experiment import build_experiment
    from lengthgen.rundir import RunDir
    from lengthgen.train import run_training

    run = RunDir(path)
    run.prepare(force=False, resume=False)
    run_training(build_experiment(build_config(tree)), run, quiet=True)
    return run


@pytest.fixture
def tiny_cfg():
    """A validated tiny ExperimentConfig."""
    return build_config(tiny_config())


@pytest.fixture(scope="session")
def trained_copy(tmp_path_factory):
    """A tiny copy model trained just long enough to be right on some examples and wrong on others."""
    from lengthgen.experiment import build_experiment
    from lengthgen.rundir import RunDir
    from lengthgen.train import run_training

    tree = tiny_config(train={"steps": 400, "lr": 3e-3, "warmup": 0.1, "log_every": 50, "precision": "float32",
                              "threads": 2})
    tree["model"]["d_model"] = 64
    cfg = build_config(tree)
    run = RunDir(tmp_path_factory.mktemp("runs") / "copy")
    run.prepare(force=False, resume=False)
    exp = build_experiment(cfg)
    run_training(exp, run, quiet=True)
    return exp, run
