"""Variable assignment, round 3 (issue 26 item 3): how deep must PPC be?

In round 2 (`va_recipe.py`) NoPE learned variable assignment on 1-4 statements within 1,500
steps, but PPC at a-ppc's coupled model (1 layer) did not: its predicted IDs were right 0.45 of
the time at 4 statements. With the answer tokens coupled to the values they read, the token
prediction is one lookup by ID, but the position head must find the *next* query's statement: the
current ID gives this statement's name (ID - 2), the query list gives the name after it, and that
name's statement gives the ID to predict. That is a chain of lookups, more than one layer does.
So PPC at 2 and 3 layers, otherwise round 2's recipe (512 a step, P(n) ~ 1/n, 1-4 statements,
the two-token shift, 3,000 steps). `token_shift: 2` mixes in the inputs at t - 1 and t - 2: each
value token carries its name, and each query token the query before it, which joins the second
and third lookups. Seed 0 (the preset's rerun gives the chosen depth 3 seeds). A first version of
this probe also had the one-token shift as points; it was stopped after 650 steps as redundant
(the two-token shift already includes t - 1).
A frozen record (written 2026-12-06 before its run).

    lengthgen sweep experiments/coupling/va_depth.py --dir sweeps
"""

import runpy
from pathlib import Path


def sweep() -> dict:
    """va_recipe.py's base under PPC at 2 and 3 layers."""
    here = runpy.run_path(str(Path(__file__).with_name("va_recipe.py")))
    base = here["sweep"]()["base"]
    ppc = {k: v for k, v in here["PPC"].items() if k != "model.layers"}
    points = [{**ppc, "model.layers": layers} for layers in (2, 3)]
    return {"name": "coupling-va-depth", "base": base, "seeds": [0], "points": points}
