"""Coupled copy, round 3: which kind of ID vector generalizes under coupling. Learned rows moved
less (N(0, 1) starts) helped at 2-3x in `recipe.py`; fixed sinusoidal vectors (whose dot product
depends on the ID difference only) and RoPE over the coupled IDs (a relative rule shared by every
ID pair, PAPERS.md A4's "also try") never need per-ID training at all; and attention logits scaled
by log(keys), against the spreading of attention on longer inputs. 3 seeds each (issue 26).
A frozen record of 2026-12-06.

    lengthgen sweep experiments/coupling/encodings.py --dir sweeps

Base: `factors.py`'s base with 1 layer.
"""

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location("factors", Path(__file__).with_name("factors.py"))
factors = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(factors)

POINTS = [
    {"model.encoding": "sinusoidal"},
    {"model.encoding": "rope"},
    {"model.encoding": "sinusoidal", "model.layers": 2},
    {"model.encoding": "rope", "model.layers": 2},
    {"model.embedding_init_std": 1.0, "train.lr": 3e-4},
    {"model.embedding_init_std": 3.0},
    # Attention that stays sharp on longer inputs (model.logit_scaling, RECIPES.md 5): the source's
    # share fell from 0.9 at 10 to 0.5 at 40 in every earlier probe.
    {"model.logit_scaling": "log_keys"},
    {"model.logit_scaling": "log_keys", "model.embedding_init_std": 1.0},
]


def sweep() -> dict:
    """factors.py's base with one layer; the points above; seeds 0-2."""
    tree = factors.sweep()
    tree["base"]["model"]["layers"] = 1
    return {**tree, "name": "coupling-encodings", "points": POINTS}
