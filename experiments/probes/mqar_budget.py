"""b-transfer-string's MQAR at zoology's budget (issue 28, item 1): is MQAR's plateau a matter of updates?

Every layout, depth and learning rate tried at 1-16 pairs stayed on the bag-of-values plateau
within 2,500-4,000 steps of 64 examples (docs/experiments.md, "Why MQAR is not learned"), that
is at most about 130,000 MQAR examples. zoology's 2-layer cell binds after about 2,900 updates
of 512 sequences and solves its task at about 3,900 (RECIPES.md 2.3), some 2M sequences. Here the
preset's with-auxiliary run (copy 1-8 + MQAR 1-16, the CPU model, the preset's layout with every
key queried) with zoology's ingredients at once: the previous-token shift (`model.token_shift: 1`,
standing in for the short convolution), pairs weighted toward few (`length_bias: 1`,
P(n) ~ 1/n), 512 examples a step (half of them MQAR) and 5,000 steps (2.56M examples, 1.28M of
them MQAR), the learning rate constant between warm-up and the last 20% (WSD). Seeds 0 and 1,
one worker each. A frozen record of 2026-12-06.

    lengthgen sweep experiments/probes/mqar_budget.py --dir sweeps
"""

import runpy
from pathlib import Path


def sweep() -> dict:
    """mqar_length_bias.py's run with the shift on, at batch 512 for 5,000 steps."""
    tree = runpy.run_path(str(Path(__file__).with_name("mqar_length_bias.py")))["sweep"]()
    base = tree["base"]
    base["data"]["batch_size"] = 512
    base["model"]["token_shift"] = 1
    base["train"].update(steps=5000, eval_every=500, checkpoint_every=250)
    return {"name": "probe-mqar-budget", "base": base, "seeds": [0, 1], "points": [{}]}
