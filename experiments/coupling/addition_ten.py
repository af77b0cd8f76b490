"""Coupled reverse addition on 1-10 digits, 3 seeds (issue 26 item 2: >= 0.9 over 1-10 digits).

a-coupling's first attempt at its recipe (experiments/coupling/README.md, stopped, seed 0 only) fitted
reverse addition on 1-10 digits at 0.91 with the coupled model (learned IDs, 1 layer + log(keys),
3,000 steps of 256). The preset trains 1-4 digits since, because the plain encodings did not fit
1-10. This is a-coupling's `cpu` coupled reverse-addition point trained on 1-10 digits (2x = 20,
4x = 40), seeds 0-2: item 2 asks whether coupling learns it in distribution, every seed shown.

Rule, written 2026-12-07 before the run: item 2 holds if the best seed's mean exact match over 1-10
digits is >= 0.9; the mean and every seed are reported beside it.

    lengthgen sweep experiments/coupling/addition_ten.py --dir sweeps
"""

from lengthgen.presets import get_preset


def sweep() -> dict:
    """a-coupling's `cpu` coupled reverse-addition point on 1-10 digits, seeds 0-2."""
    tree = get_preset("a-coupling").scales["cpu"]
    point = next(p for p in tree["points"] if p["data.tasks.0.task"] == "reverse_add"
                 and p.get("positions.train") == "coupled_random_offset")
    point = {**point, "data.tasks.0.lengths": [1, 10], "eval.lengths": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 20, 40]}
    return {"name": "coupling-addition-ten", "base": tree["base"], "seeds": tree["seeds"], "points": [point]}
