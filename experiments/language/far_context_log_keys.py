"""a-language, round 2 (issue 27): is attention dilution what makes far context hurt?

Round 1 (far_context.py): with 3x the steps or 4 layers the PoSE model still loses from context
beyond L (mean gain -0.036 nats in both; the loss with full context is above the loss with the
last L - 1 characters). In a-locality the same symptom was attention spread over more keys, and
the learned per-head log-length scaling of the logits is the documented fix. Here: the PoSE point
with `model.logit_scaling: log_keys`, seeds 0 and 1:

    lengthgen sweep experiments/language/far_context_log_keys.py --dir sweeps
    echo '{"name": "a-language", "scale": "cpu"}' > sweeps/language-far-context-log-keys/preset.json
    lengthgen report sweeps/language-far-context-log-keys
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from far_context import pose_base  # noqa: E402


def sweep() -> dict:
    """a-language's CPU-scale PoSE point with log-length logit scaling; seeds 0-1."""
    return {"name": "language-far-context-log-keys", "base": pose_base(), "seeds": [0, 1],
            "points": [{"model.logit_scaling": "log_keys"}]}
