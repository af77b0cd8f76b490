"""Reverse subtraction alone with RECIPES.md 4.4's small-model budget (issue 28, item 2).

At b-transfer-arith's CPU scale (3 layers, d 128, batch 64, 7,500 steps, 1-16 digits) the task is
not learned: 1.00 / 0.84-0.98 / <= 0.08 at 1 / 2 / 3 digits (probe-reverse-sub-alone.yaml). Here the
paper's format (operands reversed, not padded; negative results end with `-`) on 1-8 digits, 256
examples a step, 5,000 steps, the same model, seeds 0 and 1. Evaluation scores the two signs apart
(`sign: nonneg`, a >= b; `sign: neg`, a < b), as the issue asks. A frozen record of 2026-12-06.

    lengthgen sweep experiments/probes/reverse_sub_recipe.py --dir sweeps
"""


def sweep() -> dict:
    """One point, two seeds."""
    return {
        "name": "probe-reverse-sub-recipe",
        "base": {
            "data": {"tasks": [{"task": "reverse_sub", "lengths": [1, 8], "eval_grid": {"sign": ["nonneg", "neg"]}}],
                     "batch_size": 256},
            "positions": {"max_position": 1024},
            "model": {"layers": 3, "heads": 4, "d_model": 128, "d_ff": 512, "encoding": "rope", "rope_theta": 100000.0},
            "train": {"steps": 5000, "lr": 1e-3, "schedule": "wsd", "warmup": 0.1, "decay": 0.2, "betas": [0.9, 0.98],
                      "weight_decay": 0.01, "eval_every": 1000, "checkpoint_every": 1000, "log_every": 50,
                      "threads": 1, "pack": True},
            "eval": {"lengths": [1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 16], "n": 128},
        },
        "seeds": [0, 1],
        "points": [{}],
    }
