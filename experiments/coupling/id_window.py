"""a-coupling's coupled points with attention banded in ID space, 3 seeds (issue 26).

`carry_sites.py` found why coupled reverse addition fails at 4x here: the digit predictors' attention
leaks onto columns they do not need, more so the longer the input (the share of the three reading
heads outside the needed columns goes from 0.12-0.16 at 4 digits to 0.25-0.33 at 16), and removing
those keys at test time lifts 4x from 0.00-0.09 to 0.45-0.74 in all six runs of
`addition_budget.py`. `model.attention_id_window: 1` removes them by construction, in training and
at test: a token attends only to tokens whose coupled ID is within 1 of its own (for the token that
predicts answer digit j: columns j - 1, j and j + 1 and the answer tokens beside it), so a longer
input adds no competing keys. Here a-coupling's three coupled `cpu` points (learned IDs, random
offset, 1 layer + log(keys), 3,000 steps; copy and reverse on 1-10 at batch 64, reverse addition on
1-4 digits at batch 256) with the band, seeds 0-2.

Rule, written 2026-12-07 before the run, on the same terms as a-coupling's (fit >= 0.9 mean exact
match over the training lengths; margin 0.3 over the best seed of every plain encoding, which in
a-coupling's 3-seed run score at most 0.055 at 2x and 0.00 at 4x on every task):
  - dilution is the cause on reverse addition if the banded point fits and its best seed is >= 0.3
    at 16 digits (4x), where without the band it is 0.00 / 0.07 / 0.04;
  - coupling with the band meets a-coupling's rule if, on copy, reverse and reverse addition, the
    banded point fits and its best seed is >= 0.355 at 2x and at 4x.
The plain encodings are not rerun with the band: with their consecutive IDs it is a three-token
sliding window, which cannot reach the operands at all, so the comparison would say nothing. This
is a probe of coupling plus a length-robust attention, not the paper's method; a-coupling's FAIL
stands for the method as PAPERS.md A4 states it.

    lengthgen sweep experiments/coupling/id_window.py --dir sweeps
"""

from lengthgen.presets import get_preset


def sweep() -> dict:
    """a-coupling's three coupled `cpu` points with `model.attention_id_window: 1`."""
    tree = get_preset("a-coupling").scales["cpu"]
    coupled = [p for p in tree["points"] if p.get("positions.train") == "coupled_random_offset"]
    return {"name": "coupling-id-window", "base": tree["base"], "seeds": tree["seeds"],
            "points": [{**p, "model.attention_id_window": 1} for p in coupled]}
