"""a-language, round 3 (issue 27): can a one-layer induction path give the model a far-context skill?

Rounds 1-2 (far_context.py, far_context_log_keys.py): no PoSE run gains from context beyond L
(mean gain -0.013 to -0.043 nats), and a model trained on 128-character windows predicts no
better with 128 characters of context than with 64: at this budget the 2-layer model never
learns to copy from earlier context (an induction head needs two layers: one to see the previous
token, one to match it). `model.token_shift: 1` hands every position its previous token's input,
so one attention layer can match "the token before me there" with "me here" and copy what
followed. Here: the PoSE point with token_shift 1, seeds 0 and 1:

    lengthgen sweep experiments/language/far_context_shift.py --dir sweeps
    echo '{"name": "a-language", "scale": "cpu"}' > sweeps/language-far-context-shift/preset.json
    lengthgen report sweeps/language-far-context-shift
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from far_context import pose_base  # noqa: E402


def sweep() -> dict:
    """a-language's CPU-scale PoSE point with a one-token shift; seeds 0-1."""
    return {"name": "language-far-context-shift", "base": pose_base(), "seeds": [0, 1],
            "points": [{"model.token_shift": 1}]}
