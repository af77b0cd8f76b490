"""Transfer vs budget (issue 29, item 5): does reverse addition's transfer from no-carry + carry-only
reach further with more steps and a wider model, as Paper B's scale suggests?

b-transfer-arith's arith-carry group at its CPU scale (3 layers, 4 heads, RoPE, packed batches of 64,
reverse add trained 1-8, no-carry and carry-only 1-16, evaluated to 20) at 2,500 / 7,500 / 20,000
steps and d_model 128 / 256 (d_ff 4 x d_model), with the auxiliaries, 3 seeds; the main task alone at
the largest budget of each width as the baseline. 24 runs; the 7,500-step, d=128 runs with auxiliaries
are b-transfer-arith's own (`--reuse sweeps` copies them from its sweep). Estimated FLOPs
(`benchmarks/preset_cost.py`'s model, 2 one-thread workers at about 81 GFLOP/s each): about 1,220
TFLOP and 2 hours at d=128, about 4,750 TFLOP and 6-8 hours at d=256; resumable, so it can run over
several sessions where the sweep directory persists:

    lengthgen sweep experiments/transfer/budget.py --dir sweeps --reach reverse_add --reuse sweeps

Each width on its own (`budget_d128.py`, `budget_d256.py`), so that the d=128 grid fits in one
sitting; the whole grid reuses their runs with `--reuse sweeps`.

The report's "How far reverse_add reaches" section has every seed's band score over (8, 16] and its
furthest length (exact match >= 0.5 at every length up to it), plotted against the steps.
"""

from lengthgen.presets.transfer import sweep_tree

STEPS = [2500, 7500, 20000]
WIDTHS = [128, 256]


def grid(widths: list[int], name: str = "transfer-budget") -> dict:
    """Steps x `widths` with the auxiliaries; the main task alone at the largest budget."""
    def point(steps: int, width: int, aux: bool) -> dict:
        return {"data.group": "arith-carry", "data.aux": aux, "train.steps": steps, "model.d_model": width,
                "model.d_ff": 4 * width}

    points = [point(steps, width, True) for steps in STEPS for width in widths]
    points += [point(STEPS[-1], width, False) for width in widths]
    tree = sweep_tree("cpu", points, ["arith-carry"])
    tree["name"] = name
    return tree


def sweep() -> dict:
    """The whole grid, both widths."""
    return grid(WIDTHS)
