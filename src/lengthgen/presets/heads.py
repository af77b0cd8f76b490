"""Paper B's mechanism (PAPERS.md B4): does the main task come to use the auxiliary task's heads,
and does that track the generalization gap over training?

Two pairs are trained jointly with a checkpoint at every evaluation, same model, steps and seeds:
  related  `string-reverse-only`   swapcase_reverse (main) + reverse (aux)
  control  `control-copy-reverse`  copy (main) + reverse (aux), no transfer expected (B2)
Both share the auxiliary, so the pairs differ only in how the main task relates to it. After the
sweep every finished run is analysed at every checkpoint (`analysis.tracking.analyze_run`, mean
ablation, matched prompts over the whole sequence, the run's evaluation lengths up to L_aux)
and the check correlates the map distance with the gap over the checkpoints of each seed.
CPU scale: 2 layers, 4 heads, d=64, 2,000 steps, a checkpoint every 250, the paper's lengths
halved, 3 seeds, 64 examples per (task, length). Paper scale: Paper B's model and steps, a
checkpoint every 2,000 steps (10 of them), 5 seeds, 256 examples per (task, length) in the analysis.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..analysis.stats import pearson, spearman
from ..analysis.tracking import HEADS_DIR, analyze_run, final_maps, resolve_settings, select_checkpoints
from ..reports.plots import plot_heatmaps, plot_tracking
from ..reports.tables import markdown_table
from ..store.fileio import atomic_write_text
from ..store.rundir import RunDir
from .base import Preset, Verdict, register_preset
from .transfer import SCALES as TRANSFER_SCALES
from .transfer import sweep_tree

PAIRS = {"string-reverse-only": "related", "control-copy-reverse": "control"}
FIT = 0.9  # exact match over each task's training lengths at the last checkpoint that counts as learned
MIN_CHECKPOINTS = 4
TRACKS = 0.5  # Spearman(map distance, gap) at or above which a seed's map distance "tracks" the gap

SCALES = {
    "cpu": {"model": {"layers": 2, "heads": 4, "d_model": 64, "d_ff": 256, "encoding": "rope", "rope_theta": 1e5},
            "steps": 2000, "batch": 64, "n": 64, "eval_every": 250, "seeds": [0, 1, 2], "length_factor": 0.5,
            "pack": True},  # the same gradient, 1.5x faster steps (docs/performance.md)
    # Every 2,000 steps, as in the transfer presets: 11 kept checkpoints of ~0.2 GB (weights and AdamW state).
    "paper": TRANSFER_SCALES["paper"],
}
ANALYSIS_N = {"cpu": 64, "paper": 256}  # examples per (task, length) in the head analysis

RULE = (f"A seed counts when its run finished with >= {MIN_CHECKPOINTS} analysed checkpoints, both tasks were "
        f"learned at the last one (exact match >= {FIT} over each task's training lengths) and Spearman(map "
        f"distance, gap) over its checkpoints is defined. INCONCLUSIVE unless more than half of each pair's seeds "
        f"count. A pair tracks when Spearman(map distance, gap) >= {TRACKS} in more than half of its counted seeds. "
        "PASS if the related pair tracks and the control pair does not; FAIL otherwise. The attention difference is "
        "reported beside it and does not enter the rule.")


def _tree(scale: str) -> dict:
    tree = sweep_tree(scale, [{"data.group": group} for group in PAIRS], list(PAIRS), scales=SCALES)
    s = SCALES[scale]
    # Every evaluation is a checkpoint, and every checkpoint is kept for the analysis.
    tree["base"]["train"]["keep_checkpoints"] = s["steps"] // s["eval_every"] + 1
    return tree


def analyze_sweep(df: pd.DataFrame, path) -> pd.DataFrame:
    """Run (or read back) the head analysis of every finished run; one row per run and checkpoint
    with its pair, group and seed, also written to heads_tracking.csv in the sweep directory."""
    path = Path(path)
    preset = path / "preset.json"
    scale = json.loads(preset.read_text()).get("scale", "cpu") if preset.is_file() else "cpu"
    frames = []
    done = df[df["status"] == "done"].drop_duplicates("run")
    for _, row in done.iterrows():
        run = RunDir(path / "runs" / row["run"])
        cfg = run.read_config()
        settings = resolve_settings(cfg, n=min(ANALYSIS_N.get(scale, 64), cfg.eval.n))
        tracking = analyze_run(run, settings, select_checkpoints(run)).tracking
        frames.append(tracking.assign(pair=PAIRS.get(row["data.group"], row["data.group"]),
                                      **{"data.group": row["data.group"]}, seed=row["seed"], run=row["run"]))
    columns = ["pair", "data.group", "seed", "run", "step", "gap", "map_distance", "attention_diff",
               "map_distance_in", "attention_diff_in", "main_fit", "aux_fit", "main_band"]
    table = pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)
    atomic_write_text(path / "heads_tracking.csv", table.to_csv(index=False))
    return table


def seed_table(tracking: pd.DataFrame) -> pd.DataFrame:
    """Per run: checkpoints, fit at the last one, correlations of both metrics with the gap, and
    whether the seed counts and tracks (see RULE)."""
    rows = []
    for (pair, group, seed, run), sub in tracking.groupby(["pair", "data.group", "seed", "run"], sort=False):
        sub = sub.sort_values("step")
        last = sub.iloc[-1]
        rho = spearman(sub["map_distance"], sub["gap"])
        counts = bool(len(sub) >= MIN_CHECKPOINTS and last["main_fit"] >= FIT and last["aux_fit"] >= FIT
                      and pd.notna(rho))
        rows.append({"pair": pair, "data.group": group, "seed": seed, "checkpoints": len(sub),
                     "main_fit": last["main_fit"], "aux_fit": last["aux_fit"], "final_gap": last["gap"],
                     "pearson_map": pearson(sub["map_distance"], sub["gap"]), "spearman_map": rho,
                     "pearson_attention": pearson(sub["attention_diff"], sub["gap"]),
                     "spearman_attention": spearman(sub["attention_diff"], sub["gap"]),
                     # Beside the rule, not in it: maps measured only where both tasks are trained.
                     "spearman_map_in": spearman(sub["map_distance_in"], sub["gap"]),
                     "spearman_attention_in": spearman(sub["attention_diff_in"], sub["gap"]),
                     "counts": counts, "tracks": bool(counts and rho >= TRACKS)})
    return pd.DataFrame(rows)


def check_heads(tracking: pd.DataFrame) -> Verdict:
    """PASS / FAIL / INCONCLUSIVE by RULE, from the per-checkpoint table of `analyze_sweep`."""
    table = seed_table(tracking) if not tracking.empty else pd.DataFrame()
    verdict = {}
    for pair in ("related", "control"):
        sub = table[table["pair"] == pair] if not table.empty else table
        counted = int(sub["counts"].sum()) if not sub.empty else 0
        if sub.empty or counted * 2 <= len(sub):
            return Verdict("INCONCLUSIVE", RULE, table)
        verdict[pair] = int(sub["tracks"].sum()) * 2 > counted
    return Verdict("PASS" if verdict["related"] and not verdict["control"] else "FAIL", RULE, table)


def heads_report(df: pd.DataFrame, path) -> list[str]:
    """Curves and maps of every seed of both pairs, and each pair's correlations."""
    path = Path(path)
    source = path / "heads_tracking.csv"
    if not source.is_file():
        return []
    tracking = pd.read_csv(source)
    if tracking.empty:
        return ["## Heads", "", "No finished run to analyse.", ""]
    label = {run: f"{pair} seed {seed}" for pair, seed, run in tracking[["pair", "seed", "run"]].drop_duplicates()
             .itertuples(index=False)}
    plot_tracking({label[run]: sub for run, sub in tracking.groupby("run", sort=False)}, path / "heads_curves.png",
                  "gap, map distance and attention difference over checkpoints")
    panels = {}
    for run in label:
        folder = path / "runs" / run / HEADS_DIR
        pair = json.loads((folder / "settings.json").read_text())
        maps = pd.read_csv(folder / "maps.csv")
        panels.update({f"{label[run]}: {name}": table
                       for name, table in final_maps(maps, [pair["main"], pair["aux"]]).items()})
    plot_heatmaps(panels, path / "heads_maps.png", "exact-match drop per head at the last checkpoint (mean ablation)")
    summary = seed_table(tracking).groupby("pair", sort=False).agg(
        seeds=("seed", "count"), counted=("counts", "sum"), tracking=("tracks", "sum"),
        spearman_map_mean=("spearman_map", "mean"), spearman_attention_mean=("spearman_attention", "mean"),
        spearman_map_in_mean=("spearman_map_in", "mean"), spearman_attention_in_mean=("spearman_attention_in", "mean"))
    return ["## Heads: maps, curves and correlations", "",
            "Per run and checkpoint (`heads_tracking.csv`); "
            "per run also `runs/<run>/heads/` (tables, `maps_steps.png`).",
            "", markdown_table(summary.reset_index()), "", "![curves](heads_curves.png)", "",
            "![maps](heads_maps.png)", "", markdown_table(tracking.drop(columns=["run"])), ""]


register_preset(Preset(
    "b-heads", "B-heads",
    "The distance between the main and auxiliary task's head-ablation maps tracks the generalization gap over "
    "training for a related pair (swapcase-reverse + reverse) and not for a control pair (copy + reverse).",
    {scale: _tree(scale) for scale in SCALES}, check_heads, [], heads_report, analyze_sweep))
