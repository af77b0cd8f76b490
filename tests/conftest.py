"""Shared fixtures: a temporary corpus cache, a tiny config, and one tiny trained model reused across
tests. Plain helpers live in helpers.py."""

from __future__ import annotations

import os

import pytest
import torch

from lengthgen.config import build_config
from lengthgen.experiment import build_experiment
from lengthgen.store.rundir import RunDir
from lengthgen.train import run_training

from helpers import tiny_config

torch.set_num_threads(2)


@pytest.fixture(scope="session", autouse=True)
def corpus_cache(tmp_path_factory):
    """Corpus caches (text task) in a temporary directory, not in ~/.cache; subprocesses inherit it."""
    old = os.environ.get("LENGTHGEN_CACHE")
    os.environ["LENGTHGEN_CACHE"] = str(tmp_path_factory.mktemp("lengthgen-cache"))
    yield os.environ["LENGTHGEN_CACHE"]
    if old is None:
        del os.environ["LENGTHGEN_CACHE"]
    else:
        os.environ["LENGTHGEN_CACHE"] = old


@pytest.fixture
def tiny_cfg():
    """A validated tiny ExperimentConfig."""
    return build_config(tiny_config())


@pytest.fixture(scope="session")
def trained_copy(tmp_path_factory):
    """A tiny copy model trained just long enough to be right on some examples and wrong on others."""
    tree = tiny_config(train={"steps": 400, "lr": 3e-3, "warmup": 0.1, "log_every": 50, "precision": "float32",
                              "threads": 2})
    tree["model"]["d_model"] = 64
    run = RunDir(tmp_path_factory.mktemp("runs") / "copy")
    run.prepare(force=False, resume=False)
    exp = build_experiment(build_config(tree))
    run_training(exp, run, quiet=True)  # the returned experiment holds the trained model
    return exp, run
