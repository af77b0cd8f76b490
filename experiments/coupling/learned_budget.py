"""Coupled copy (`marked_end`) and reverse on learned IDs at 9,000 steps, 3 seeds (issue 26).

a-coupling's learned-ID coupled model (1 layer + log(keys), trained on 1-10, batch 64) falls short of
the preset's margin at 4x: copy 0.18 / 0.23 / 0.11 and reverse 0.00 / 0.20 / 0.01 (its 3-seed run,
3,000 steps). Two causes were located (experiments/coupling/README.md): the token that predicts
`<eos>` has no input at its ID (fixed by `id_rule: marked_end`, which lifted a-ppc's copy control to
1.00 at 2x and 0.31-0.68 at 4x on learned IDs), and single-token errors at some learned rows, which
sinusoidal IDs do not make (0.98-1.00 at 4x on copy and reverse). Does the learned table lose those
errors with three times the steps (RECIPES.md puts the anchor's budget at 8-10k steps or more)?
a-coupling's coupled copy (with `marked_end`) and reverse points, 9,000 steps, evaluated every
1,500 steps; `addition_budget.py` is the same question for reverse addition.

Rule, written 2026-12-07 before the run. a-coupling's plain encodings score at most 0.055 at 2x and
0.00 at 4x on copy and reverse (its 3-seed run); its margin is 0.3. On each task the learned table
holds at this budget if the best seed fits (>= 0.9 over 1-10) and scores >= 0.355 at 2x and >= 0.3 at
4x. If both hold here and reverse addition holds in `addition_budget.py`, a-coupling's claim holds on
the paper's learned IDs at the anchor's budget; recorded as a probe result (the preset would need a
full 3-seed rerun at that budget, plain encodings included, to change its verdict).

    lengthgen sweep experiments/coupling/learned_budget.py --dir sweeps
"""

from lengthgen.presets import get_preset


def sweep() -> dict:
    """a-coupling's learned coupled copy (`marked_end`) and reverse points at 9,000 steps, seeds 0-2."""
    tree = get_preset("a-coupling").scales["cpu"]
    coupled = {p["data.tasks.0.task"]: p for p in tree["points"] if p.get("positions.train") == "coupled_random_offset"}
    longer = {"train.steps": 9000, "train.eval_every": 1500, "train.checkpoint_every": 1500}
    points = [{**coupled["copy"], **longer, "data.tasks.0.params.id_rule": "marked_end"},
              {**coupled["reverse"], **longer}]
    return {"name": "coupling-learned-budget", "base": tree["base"], "seeds": tree["seeds"], "points": points}
