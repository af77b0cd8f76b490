"""Coupled copy with `<eos>` found by an ID lookup (issue 26 item 1), 3 seeds.

`ppc_controls.py` and `controls_sinusoidal.py` located what fails in coupled copy beyond the
training lengths (experiments/coupling/README.md): with sinusoidal IDs every copied token is right
up to 4x in every seed, and `<eos>` is 0.00 at 2x and 4x in 2 of 3 seeds (1.00 in the third). The
token that predicts `<eos>` sits at an ID no input token has, so it has nothing to look up. The
`marked_end` ID rule puts `=` at the start ID and the last answer token at `=`'s ID, so that
`<eos>` is found like every other answer token. a-ppc's copy controls (three letters, 1-10, 1 layer
+ log(keys), greedy) with that rule, coupling and PPC, on sinusoidal and on learned IDs.

Rule, written 2026-12-07 before the run: if sinusoidal coupling with `marked_end` scores >= 0.9 at
4x in at least 2 of 3 seeds (the `predictor` rule: 1 of 3), `<eos>` was the cause, and the rule is a
candidate for the presets (not moved into them by this probe).

    lengthgen sweep experiments/coupling/copy_marked_end.py --dir sweeps
"""

import runpy
from pathlib import Path


def sweep() -> dict:
    """ppc_controls.py's copy points, learned and sinusoidal, with id_rule marked_end."""
    tree = runpy.run_path(str(Path(__file__).with_name("ppc_controls.py")))["sweep"]()
    copy = [p for p in tree["points"] if p["data.tasks.0.task"] == "copy"]
    points = [{**p, "data.tasks.0.params.id_rule": "marked_end", "model.encoding": encoding}
              for encoding in ("sinusoidal", "learned") for p in copy]
    return {**tree, "name": "coupling-copy-marked-end", "points": points}
