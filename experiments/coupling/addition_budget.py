"""Coupled reverse addition at the anchor's budget, learned and sinusoidal IDs, 3 seeds (issue 26).

a-coupling's `cpu` coupled reverse-addition point (1 layer + log(keys), zero-padded operands, 1-4
digits, batch 256) trains 3,000 steps. RECIPES.md ("Addition (coupled)") gives the anchor's budget
for this model as 8-10k steps of 256 at lr 1e-3. At 3,000 steps the learned-ID point scores
0.55-0.77 at 2x (8 digits) and 0.00-0.07 at 4x (16); on sinusoidal IDs it does not fit (0.31-0.47,
`coupling_sinusoidal.py`), the one task that kept sinusoidal coupling from the claim there (copy
with `marked_end` and reverse reach 0.98-1.00 at 4x in every seed). Here the same point for 9,000
steps, on the learned table (the paper's arm) and on the sinusoidal one; evaluated every 1,500 steps.

Rule, written 2026-12-07 before the run. a-coupling's plain encodings score 0.00 at 2x and 4x on
reverse addition in every seed (its 3-seed run), and the preset's margin is 0.3. For each ID table:
  - fitted: best seed >= 0.9 mean exact match over 1-4 digits (the preset's fit threshold);
  - reverse addition holds at the anchor's budget if, fitted, its best seed is >= 0.3 at 8 and at 16.
On learned IDs this cannot change a-coupling's verdict by itself (copy and reverse are under the
margin at 4x there). On sinusoidal IDs, if it holds, all three tasks of `coupling_sinusoidal.py`'s
rule hold (copy with `marked_end`, reverse, and this), which is recorded as a probe result; the
preset keeps the learned table that PAPERS.md A4 names.

    lengthgen sweep experiments/coupling/addition_budget.py --dir sweeps
"""

from lengthgen.presets import get_preset


def sweep() -> dict:
    """a-coupling's `cpu` coupled reverse-addition point at 9,000 steps, learned and sinusoidal IDs."""
    tree = get_preset("a-coupling").scales["cpu"]
    point = next(p for p in tree["points"] if p["data.tasks.0.task"] == "reverse_add"
                 and p.get("positions.train") == "coupled_random_offset")
    point = {**point, "train.steps": 9000, "train.eval_every": 1500, "train.checkpoint_every": 1500}
    return {"name": "coupling-addition-budget", "base": tree["base"], "seeds": tree["seeds"],
            "points": [point, {**point, "model.encoding": "sinusoidal"}]}
