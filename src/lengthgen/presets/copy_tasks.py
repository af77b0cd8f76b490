"""Presets on the core tasks: copy with the standard encodings, and reverse with position coupling
against RoPE (the README's main job: one model that generalizes beside one that does not)."""

from __future__ import annotations

import pandas as pd

from ..reports.aggregate import final
from .base import (
    Preset,
    Verdict,
    at_train_max,
    band_scores,
    best_over_seeds,
    evaluated_lengths,
    register_preset,
    train_maxima,
)

TRAIN_MAX = 10  # the presets' training length L; the checks read L from the runs (`train_max`)
EVAL_LENGTHS = list(range(1, 13)) + [16, 20, 24, 28, 32, 36, 40]
FIT = 0.95  # best-seed exact match over lengths <= L that counts as "fitted"


def copy_base(layers: int, d_model: int, heads: int, steps: int, batch: int, lr: float, eval_every: int) -> dict:
    """A copy experiment trained on lengths 1..10 and evaluated up to 40."""
    return {
        "data": {"tasks": [{"task": "copy", "lengths": [1, TRAIN_MAX]}], "batch_size": batch},
        "positions": {"train": "consecutive", "eval": "consecutive", "max_position": 128},
        "model": {"layers": layers, "heads": heads, "d_model": d_model, "d_ff": 4 * d_model, "encoding": "rope"},
        "train": {"steps": steps, "lr": lr, "schedule": "cosine", "warmup": 0.05, "eval_every": eval_every,
                  "checkpoint_every": eval_every, "log_every": 50},
        "eval": {"lengths": EVAL_LENGTHS, "n": 128},
    }


# 3,000 steps since 2026-12-08: at 1,600 (`cpu-v1`) NoPE fitted copy on 1-10 but not when the same preset
# trained 1-12 (0.90 < 0.95: INCONCLUSIVE), so a rerun at another length pair said nothing; at 3,000 it
# fits both (0.98 on 1-10, 0.97 on 1-12) and the verdict is PASS at both pairs (docs/experiments.md).
CPU = copy_base(layers=2, d_model=64, heads=4, steps=3000, batch=64, lr=2e-3, eval_every=400)
CPU_V1 = copy_base(layers=2, d_model=64, heads=4, steps=1600, batch=64, lr=2e-3, eval_every=400)
PAPER = copy_base(layers=6, d_model=384, heads=6, steps=20000, batch=1024, lr=1e-3, eval_every=2000)
PAPER["train"].update(schedule="wsd", warmup=0.1, decay=0.2)


def bands(df: pd.DataFrame, task: str) -> tuple[int, list[int], list[int]]:
    """(L, the evaluated lengths <= L, the evaluated lengths from 2L to 4L) of `task` as the runs trained
    and evaluated it; the long band is empty unless 2L itself was evaluated."""
    top = train_maxima(df, [task], TRAIN_MAX)[task]
    lengths = evaluated_lengths(df, task)
    long = [n for n in lengths if 2 * top <= n <= 4 * top] if 2 * top in lengths else []
    return top, [n for n in lengths if n <= top], long


def _fit_and_long(df: pd.DataFrame, fit_lengths: list[int], long: list[int]) -> pd.DataFrame:
    fit = best_over_seeds(band_scores(df, "copy", fit_lengths)).rename(
        columns={"best": "fit_best", "mean": "fit_mean", "seeds": "fit_seeds"})
    if not long:  # the claim is about 2x-4x; without those lengths it cannot be judged
        return fit.assign(long_best=float("nan"), long_mean=float("nan"), long_seeds="")
    long = best_over_seeds(band_scores(df, "copy", long)).rename(
        columns={"best": "long_best", "mean": "long_mean", "seeds": "long_seeds"})
    keys = [c for c in fit.columns if not c.startswith("fit_")]
    return fit.merge(long, on=keys)


def check_encodings(df: pd.DataFrame) -> Verdict:
    """Standard encodings fit copy but do not extrapolate to 2x-4x."""
    top, fit_lengths, long = bands(df, "copy")
    span = f"{long[0]}-{long[-1]}" if long else f"{2 * top}-{4 * top} (not evaluated)"
    rule = (f"INCONCLUSIVE unless every encoding's best seed fits (mean exact match over the lengths <= L = {top} "
            f">= {FIT}); then PASS if every encoding's best seed stays below 0.5 over the evaluated lengths "
            f"{span} (2x-4x), FAIL otherwise.")
    if final(df[df["task"] == "copy"]).empty or not fit_lengths:
        return Verdict("INCONCLUSIVE", rule, pd.DataFrame())
    numbers = _fit_and_long(df, fit_lengths, long)
    if (numbers["fit_best"] < FIT).any() or numbers["long_best"].isna().any():
        return Verdict("INCONCLUSIVE", rule, numbers)
    return Verdict("PASS" if (numbers["long_best"] < 0.5).all() else "FAIL", rule, numbers)


def _scales(grid: dict | None = None, points: list | None = None, cpu_seeds=(0, 1), paper_seeds=(0, 1, 2, 3, 4)):
    def spec(base, seeds):
        out = {"base": base, "seeds": list(seeds)}
        if grid:
            out["grid"] = grid
        if points:
            out["points"] = points
        return out

    return {"cpu": spec(CPU, cpu_seeds), "cpu-v1": spec(CPU_V1, cpu_seeds), "paper": spec(PAPER, paper_seeds)}


register_preset(Preset(
    name="copy-encodings",
    claim_id="core",
    claim="Copy trained on lengths 1-10 is fitted by every standard encoding (NoPE, RoPE, learned absolute, "
          "ALiBi) but none extrapolates to 2x-4x the training length.",
    scales=_scales(grid={"model.encoding": ["nope", "rope", "learned", "alibi"]}),
    check=check_encodings,
    step_lengths=at_train_max(lambda top: [top, top + 2]),
))


# ------------------------------------------------------------------------------ coupling-vs-rope

DEMO_LENGTHS = list(range(1, TRAIN_MAX + 1)) + [15, 20, 25, 30, 40]
DEMO_2X = 2 * TRAIN_MAX
DEMO_POINTS = {
    # Cho et al.'s recipe where CPU probes found it decisive (experiments/coupling/): one layer,
    # learned coupled IDs trained at random offsets, evaluated from ID 1.
    "coupling": {"model.encoding": "learned", "model.layers": 1, "positions.train": "coupled_random_offset",
                 "positions.eval": "coupled"},
    "rope": {"model.encoding": "rope"},
}


def demo_base(layers: int, d_model: int, heads: int, steps: int, batch: int, n: int) -> dict:
    """Reverse trained on lengths 1-10, evaluated up to 40 (coupled IDs reach 41 there)."""
    return {
        "data": {"tasks": [{"task": "reverse", "lengths": [1, TRAIN_MAX]}], "batch_size": batch},
        "positions": {"train": "consecutive", "eval": "consecutive", "max_position": 64},
        "model": {"layers": layers, "heads": heads, "d_model": d_model, "d_ff": 4 * d_model, "encoding": "rope"},
        "train": {"steps": steps, "lr": 1e-3, "schedule": "cosine", "warmup": 0.05, "eval_every": steps // 3,
                  "checkpoint_every": steps // 3, "log_every": 50, "pack": True},
        "eval": {"lengths": DEMO_LENGTHS, "n": n},
    }


def check_coupling_vs_rope(df: pd.DataFrame) -> Verdict:
    """Coupling extrapolates reverse to 2x; RoPE does not."""
    top, fit_lengths, _ = bands(df, "reverse")
    rule = (f"INCONCLUSIVE unless both points' best seed fits (mean exact match over the lengths <= L = {top} >= "
            f"{FIT}); then PASS if coupling's best seed reaches >= 0.5 exact match at length {2 * top} (2x) and "
            f"RoPE's best seed stays < 0.1 there; FAIL otherwise.")
    if final(df[df["task"] == "reverse"]).empty or not fit_lengths:
        return Verdict("INCONCLUSIVE", rule, pd.DataFrame())
    fit = best_over_seeds(band_scores(df, "reverse", fit_lengths)).rename(
        columns={"best": "fit_best", "mean": "fit_mean", "seeds": "fit_seeds"})
    if 2 * top not in evaluated_lengths(df, "reverse"):
        return Verdict("INCONCLUSIVE", rule, fit)
    at_2x = best_over_seeds(band_scores(df, "reverse", [2 * top])).rename(
        columns={"best": "at_2x_best", "mean": "at_2x_mean", "seeds": "at_2x_seeds"})
    keys = [c for c in fit.columns if not c.startswith("fit_")]
    table = fit.merge(at_2x, on=keys)
    table.insert(0, "method", ["coupling" if enc == "learned" else "rope" for enc in table["model.encoding"]])
    if len(table) != 2 or (table["fit_best"] < FIT).any():
        return Verdict("INCONCLUSIVE", rule, table)
    best = table.set_index("method")["at_2x_best"]
    return Verdict("PASS" if best["coupling"] >= 0.5 and best["rope"] < 0.1 else "FAIL", rule, table)


register_preset(Preset(
    name="coupling-vs-rope",
    claim_id="A-coupling",
    claim=f"Reverse trained on lengths 1-{TRAIN_MAX}: position coupling (one layer, learned coupled IDs) "
          f"extrapolates to 2x ({DEMO_2X}), where RoPE (two layers) does not. The README's main job: minutes.",
    scales={"cpu": {"base": demo_base(2, 128, 4, 1500, 64, 128), "points": list(DEMO_POINTS.values()),
                    "seeds": [0, 1]},
            "paper": {"base": demo_base(6, 384, 6, 20000, 1024, 1024), "points": list(DEMO_POINTS.values()),
                      "seeds": [0, 1, 2, 3, 4]}},
    check=check_coupling_vs_rope,
    step_lengths=at_train_max(lambda top: [top, 2 * top]),
))
