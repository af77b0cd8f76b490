"""a-language, round 1 (issue 27): what makes the far-context gain beyond L clearly positive?

At `--scale cpu` (stdlib source, L = 64, 2 layers, d = 128, 1,500 steps of 64 windows) the PoSE
runs gain nothing from context beyond L: mean gain -0.032 / -0.038 / -0.038 nats at seeds
0 / 1 / 2 (loss 1.36-1.39 nats per character). Three single moves from that PoSE point, seed 0:
3x the steps, 4 layers, and L = 128 (evaluated to 4L = 512). Run, then analyse with the preset's
own analysis and rule (round 2: far_context_log_keys.py; round 3: far_context_shift.py):

    lengthgen sweep experiments/language/far_context.py --dir sweeps
    echo '{"name": "a-language", "scale": "cpu"}' > sweeps/language-far-context/preset.json
    lengthgen report sweeps/language-far-context
"""

from lengthgen.presets import get_preset
from lengthgen.sweeps.spec import expand


def pose_base() -> dict:
    """The config of a-language's CPU-scale PoSE point, without its name."""
    plan = next(p for p in expand(get_preset("a-language").spec("cpu")) if p.config.positions.train == "pose")
    base = plan.config.model_dump(mode="json")
    base.pop("name")
    return base


def sweep() -> dict:
    """The PoSE point of a-language's CPU scale, with one knob moved per point; seed 0."""
    base = pose_base()
    long = 128
    points = [
        {"train.steps": 4500},
        {"model.layers": 4},
        {"data.tasks.0.lengths": [long, long], "positions.max_position": 4 * long + 2,
         "eval.lengths": [long // 4, long // 2, long, 2 * long, 4 * long]},
    ]
    return {"name": "language-far-context", "base": base, "seeds": [0], "points": points}
