"""a-language, round 4 (issue 27): teach the model to copy, then ask again for a far-context gain.

Rounds 1-3 (far_context.py, far_context_log_keys.py, far_context_shift.py) never made the PoSE
runs gain from context beyond L. `copy_diagnostic.py` says why: the preset's PoSE model does not
copy at all, not even within L (a repeated chunk of validation text is predicted no better the
second time: -0.07 to +0.05 nats at distances 16-160). Here the training windows teach copying:
`repeat: 0.25` makes a quarter of them periodic (their first d characters repeat to the end, d
uniform in [L/8, L-1]; evaluation windows never repeat), alone and with `model.token_shift: 1`
(one attention layer can then copy), with log-length logit scaling (also at 3x the steps), and
with NoPE instead of RoPE (copying by content match needs no position). Two points without
periodic windows ask whether anything simpler teaches copying: training windows of 256 (more
repeats inside a window; batch 16, the same characters per step) and the `copy` task mixed in
(weight 0.5, 8-30 letters, 3,000 steps). PoSE point of the CPU scale, seed 0.

The test, written before these runs (2026-12-07, 18:33 UTC): the far-context gain is clearly
positive when the mean gain beyond L over the preset's 8 analysis windows is >= +0.02 nats per
character and its median >= 0; copying is present when the repeat's loss in copy_diagnostic.py is
>= 1 nat below the first copy's at distance 16 (within L), far copying the same at 96-160.

    lengthgen sweep experiments/language/far_context_repeat.py --dir sweeps
    echo '{"name": "a-language", "scale": "cpu"}' > sweeps/language-far-context-repeat/preset.json
    lengthgen report sweeps/language-far-context-repeat
    python experiments/language/copy_diagnostic.py sweeps/language-far-context-repeat/runs/<run>
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from far_context import pose_base  # noqa: E402


def sweep() -> dict:
    """a-language's CPU-scale PoSE point with a quarter of its windows periodic; four model variants."""
    base = pose_base()
    text = base["data"]["tasks"][0]
    natural = {**text, "params": dict(text["params"])}
    text["params"]["repeat"] = 0.25
    shift, long = {"model.token_shift": 1}, 256
    points = [{}, shift, {**shift, "model.logit_scaling": "log_keys"},
              {**shift, "model.logit_scaling": "log_keys", "train.steps": 4500},
              {**shift, "model.encoding": "nope"},
              {"data.tasks.0.params.repeat": 0.0, "data.tasks.0.lengths": [long, long],
               "data.tasks.0.params.block_chars": 8192, "data.batch_size": 16, "positions.max_position": 4 * long + 2,
               "eval.lengths": [long // 4, long, 2 * long], "eval.n": 16},
              {"data.tasks": [natural, {"task": "copy", "lengths": [8, 30], "weight": 0.5}], "train.steps": 3000}]
    return {"name": "language-far-context-repeat", "base": base, "seeds": [0], "points": points}
