"""A sweep as a Python file (zoology's style): Predictive Position Coupling against plain position
coupling and RoPE on reverse, trained on 1-10 letters and decoded greedily up to 40.

    lengthgen sweep configs/sweeps/ppc-vs-coupling.py

A Python spec defines `SWEEP` (a dict) or `sweep()` returning one, so points that are not a
cartesian product (each method sets its own encoding, position policies and head) are a loop.
"""

METHODS = {
    "rope": {"model.encoding": "rope", "positions.train": "consecutive", "positions.eval": "consecutive",
             "model.position_head": False},
    "coupled": {"model.encoding": "learned", "positions.train": "coupled_random_offset", "positions.eval": "coupled",
                "model.position_head": False},
    "ppc": {"model.encoding": "learned", "positions.train": "coupled_random_offset", "positions.eval": "coupled",
            "model.position_head": True},
}


def sweep() -> dict:
    """One point per method on configs/ppc_reverse.yaml (shortened to minutes), two seeds each."""
    return {"name": "ppc-vs-coupling", "base": "../ppc_reverse.yaml", "points": list(METHODS.values()),
            "overrides": ["train.steps=1500", "train.eval_every=500", "train.checkpoint_every=500", "eval.n=64",
                          "eval.lengths=[5,10,15,20,30,40]"],
            "seeds": [0, 1]}
