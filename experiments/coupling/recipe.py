"""Coupled copy, round 2: the factors that helped in `factors.py` (1 layer, a tight max_position,
more examples) combined, and embedding tables started at N(0, 1) as in Cho et al.'s code, 3 seeds
each (issue 26). A frozen record of 2026-12-06.

    lengthgen sweep experiments/coupling/recipe.py --dir sweeps

Base: `factors.py`'s base with 1 layer (its best single factor).
"""

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location("factors", Path(__file__).with_name("factors.py"))
factors = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(factors)

TIGHT = {"positions.max_position": 43}
BIG_EMBEDDINGS = {"model.embedding_init_std": 1.0}  # Cho et al.'s N(0, 1) token and position tables
POINTS = [
    TIGHT,
    {**TIGHT, "data.batch_size": 256},
    {**TIGHT, "train.steps": 6000, "train.eval_every": 1000, "train.checkpoint_every": 1000},
    BIG_EMBEDDINGS,
    {**TIGHT, **BIG_EMBEDDINGS},
    {**TIGHT, **BIG_EMBEDDINGS, "data.batch_size": 256},
    {"model.layers": 2, **BIG_EMBEDDINGS},  # the one-factor probe from factors.py's 2-layer base
]


def sweep() -> dict:
    """factors.py's base with one layer; the combinations above; seeds 0-2."""
    tree = factors.sweep()
    tree["base"]["model"]["layers"] = 1
    return {**tree, "name": "coupling-recipe", "points": POINTS}
