"""Coupled reverse addition, round 2: one layer (fit 0.91-0.93, 0.27 at 2x in `addition.py`) with
256 examples a step (2 layers: fit 0.99-1.00), and with N(0, 1) embedding tables. 2 seeds each
(issue 26). A frozen record of 2026-12-06.

    lengthgen sweep experiments/coupling/addition_recipe.py --dir sweeps
"""

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location("addition", Path(__file__).with_name("addition.py"))
addition = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(addition)

POINTS = [
    {"model.layers": 1, "data.batch_size": 256},
    {"model.layers": 1, "data.batch_size": 256, "model.embedding_init_std": 1.0},
]


def sweep() -> dict:
    """addition.py's base; the points above; seeds 0-1."""
    return {**addition.sweep(), "name": "coupling-addition-recipe", "points": POINTS}
