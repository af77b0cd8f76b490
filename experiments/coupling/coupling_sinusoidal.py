"""a-coupling's coupled points on a sinusoidal ID table (issue 26 items 1 and 4), 3 seeds.

On a-ppc's controls (`controls_sinusoidal.py`) coupling with sinusoidal IDs scored 0.99-1.00 on
reverse at 4x in every seed, where a-coupling's learned IDs score 0.00 / 0.20 / 0.01, and copied every
token of copy right up to 4x (`<eos>` aside). These are a-coupling's `cpu` coupled points (copy,
reverse, reverse addition; 1 layer + log(keys)) with `model.encoding: sinusoidal`, and copy once more
with the `marked_end` ID rule (`copy_marked_end.py`). a-coupling's plain encodings are its own runs.

Rule, written 2026-12-07 before the run: if sinusoidal coupling's best seed beats the best seed of
every plain encoding in a-coupling's 3-seed run (at most 0.055 at 2x and 0.00 at 4x on every task) by
>= 0.3 at 2x and 4x on copy (either ID rule), reverse and reverse addition, a-coupling's claim holds
at CPU scale with sinusoidal coupled IDs. That is recorded as a probe result: the preset keeps the
learned table that PAPERS.md A4 names.

    lengthgen sweep experiments/coupling/coupling_sinusoidal.py --dir sweeps
"""

from lengthgen.presets import get_preset


def sweep() -> dict:
    """a-coupling's `cpu` coupled points on sinusoidal IDs, plus copy with id_rule marked_end."""
    tree = get_preset("a-coupling").scales["cpu"]
    coupled = [{**p, "model.encoding": "sinusoidal"} for p in tree["points"]
               if p.get("positions.train") == "coupled_random_offset"]
    copy = next(p for p in coupled if p["data.tasks.0.task"] == "copy")
    points = [*coupled, {**copy, "data.tasks.0.params.id_rule": "marked_end"}]
    return {"name": "a-coupling-sinusoidal", "base": tree["base"], "seeds": tree["seeds"], "points": points}
