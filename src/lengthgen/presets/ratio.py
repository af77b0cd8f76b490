"""Paper B's ratio claim (b-ratio, Fig. 10): transfer from no-carry + carry-only to reverse addition
works while L_aux / L_main stays within [0.5, 2], and the generalization gap grows outside it.

The sweep is the transfer presets' (`transfer.sweep_tree`, same model and schedule) over a grid of
(L_main, L_aux); the check and the report read the gap between reverse add and no-carry per point.
"""

from __future__ import annotations

import pandas as pd

from ..reports.aggregate import final, generalization_gap
from ..reports.plots import plot_heatmap
from ..reports.tables import markdown_table
from .base import Preset, Verdict, at_train_max, register_preset
from .transfer import FIT, SCALES, sweep_tree

# Fig. 10 of Paper B: the gap between main (reverse add) and auxiliary (no-carry) over L_main x L_aux.
PAPER_GAPS = {16: {8: 0.03, 16: 0.00, 32: 0.23, 64: 0.67, 128: 0.90}, 32: {16: 0.15, 64: 0.16, 128: 0.34},
              64: {32: 0.09, 128: 0.04}}
RATIO_GRID = {"cpu": {8: [4, 8, 16, 32]}, "paper": {m: sorted(a) for m, a in PAPER_GAPS.items()}}


def ratio_gaps(df: pd.DataFrame) -> pd.DataFrame:
    """Per run: L_main, L_aux, and the gap between reverse_add and no_carry [ours: no-carry stands for
    the auxiliaries] averaged over every evaluated length, at the final step."""
    last = final(df)
    gap = generalization_gap(last, "reverse_add", "no_carry")
    maxima = last.pivot_table(index="run", columns="task", values="train_max", aggfunc="max")
    gap["L_main"] = gap["run"].map(maxima["reverse_add"]).astype(int)
    gap["L_aux"] = gap["run"].map(maxima["no_carry"]).astype(int)
    return gap


def _judgeable(df: pd.DataFrame) -> bool:
    """Whether some finished run has both tasks evaluated (a sweep stopped before any run finished has not)."""
    last = final(df)
    return not last.empty and {"reverse_add", "no_carry"} <= set(last["task"])


def check_ratio(df: pd.DataFrame) -> Verdict:
    """Transfer works inside the window L_aux / L_main in [0.5, 2] and weakens outside it."""
    rule = (f"INCONCLUSIVE unless the best seed of every point fits both tasks in distribution (mean exact match "
            f">= {FIT} up to each task's training maximum) and the grid has points inside and outside the window "
            "0.5 <= L_aux/L_main <= 2; then PASS if the mean gap (over seeds and points) outside the window exceeds "
            "the mean gap inside by >= 0.1; FAIL otherwise.")
    if not _judgeable(df):
        return Verdict("INCONCLUSIVE", rule, pd.DataFrame())
    gap = ratio_gaps(df)
    inside = (gap["L_aux"] / gap["L_main"]).between(0.5, 2.0)
    table = gap.groupby(["L_main", "L_aux"])["gap"].agg(["mean", "min", "max"]).reset_index()
    table["in_window"] = (table["L_aux"] / table["L_main"]).between(0.5, 2.0)
    # A gap of 0 also means "both at 0": the gap only speaks about runs that learned both tasks.
    last = final(df)
    fitted = last[last["length"] <= last["train_max"]].groupby(["run", "task"])["exact_match"].mean()
    fit = fitted.groupby("run").min().rename("fit")
    gap = gap.merge(fit, left_on="run", right_index=True)
    table = table.merge(gap.groupby(["L_main", "L_aux"])["fit"].max().rename("fit_best").reset_index())
    if inside.all() or not inside.any() or (table["fit_best"] < FIT).any():
        return Verdict("INCONCLUSIVE", rule, table)
    ok = gap.loc[~inside, "gap"].mean() - gap.loc[inside, "gap"].mean() >= 0.1
    return Verdict("PASS" if ok else "FAIL", rule, table)


def ratio_report(df: pd.DataFrame, path) -> list[str]:
    """The gap heatmap of this sweep beside the paper's Fig. 10 values."""
    if not _judgeable(df):
        return []
    gap = ratio_gaps(df)
    grid = gap.groupby(["L_main", "L_aux"])["gap"].mean().unstack("L_aux")
    plot_heatmap(grid, path / "gap_ratio.png", "gap reverse_add vs no_carry (mean over seeds)")
    paper = pd.DataFrame(PAPER_GAPS).T.sort_index()
    paper.index.name, paper.columns.name = "L_main", "L_aux"
    paper = paper[sorted(paper.columns)].reset_index()
    return ["## Gap over L_main x L_aux", "", "![gap](gap_ratio.png)", "", "Paper B, Fig. 10 (3 seeds):", "",
            markdown_table(paper, digits=2), ""]


register_preset(Preset(
    "b-ratio", "B-ratio",
    "Transfer from no-carry + carry-only to reverse addition works when L_aux / L_main is within [0.5, 2] "
    "(Fig. 10); the gap grows outside that window.",
    {scale: sweep_tree(scale, [{"data.group_max": [m, a, a]} for m, auxes in RATIO_GRID[scale].items() for a in auxes],
                       ["arith-carry"], longest=max(max(a) for a in RATIO_GRID[scale].values()))
     for scale in SCALES},
    check_ratio, at_train_max(lambda top: [top + 1, top + 4], task="reverse_add"), ratio_report))
