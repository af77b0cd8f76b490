"""a-language, round 5 (issue 27): a model whose every attention sees no more keys than in training.

Rounds 1-4 (far_context.py, far_context_log_keys.py, far_context_shift.py, far_context_repeat.py)
never made the PoSE runs gain from context beyond L: read at 4L, the full-context loss rises above the
loss with the context cut to the last L characters, even in a model that copies (round 4). Each of
those models attends over up to 4L keys at 4L, four times what training showed it. Here every
attention layer has a sliding window (`model.attention_window`), so at any length each query sees at
most the keys it saw in training; context from beyond L can still reach a prediction through the
layers (receptive field layers x window, over L here). Two points, PoSE point of the CPU scale,
seed 0: 2 layers with a window of L = 64 (receptive field 128), and 4 layers with a window of 32
(receptive field 128).

The test, written before these runs (2026-12-07, 22:55 UTC), the same as round 4's: the far-context
gain is clearly positive when the mean gain beyond L over the preset's 8 analysis windows is >= +0.02
nats per character and its median >= 0.

    lengthgen sweep experiments/language/far_context_window.py --dir sweeps
    echo '{"name": "a-language", "scale": "cpu"}' > sweeps/language-far-context-window/preset.json
    lengthgen report sweeps/language-far-context-window
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from far_context import pose_base  # noqa: E402


def sweep() -> dict:
    """a-language's CPU-scale PoSE point with sliding-window attention: receptive field 2L, two depths."""
    base = pose_base()
    length = base["data"]["tasks"][0]["lengths"][1]
    points = [{"model.attention_window": length},
              {"model.layers": 4, "model.attention_window": length // 2}]
    return {"name": "language-far-context-window", "base": base, "seeds": [0], "points": points}
