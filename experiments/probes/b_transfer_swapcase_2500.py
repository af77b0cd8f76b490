"""b-transfer-swapcase at its first CPU budget, 2,500 steps (the preset now trains 7,500).

At 2,500 steps every task fits but the effect was 0.27, just under the 0.3 the check asks for
(FAIL); at 7,500, the check unchanged, 0.97 (PASS). This keeps the old budget one command away,
the same config the preset ran before issue 28 (evaluation and checkpoints every 500 steps):

    lengthgen sweep experiments/probes/b_transfer_swapcase_2500.py
    echo '{"name": "b-transfer-swapcase", "scale": "cpu"}' > sweeps/b-transfer-swapcase-cpu-2500/preset.json
    lengthgen report sweeps/b-transfer-swapcase-cpu-2500
"""

from lengthgen.presets.base import get_preset

OLD_BUDGET = ["train.steps=2500", "train.eval_every=500", "train.checkpoint_every=500"]


def sweep() -> dict:
    """The preset's CPU sweep, renamed, with the 2,500-step budget added to its overrides."""
    tree = get_preset("b-transfer-swapcase").spec("cpu").model_dump(mode="json")
    tree["name"] = "b-transfer-swapcase-cpu-2500"
    tree["overrides"] = [*tree["overrides"], *OLD_BUDGET]
    return tree
