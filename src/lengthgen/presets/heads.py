"""Paper B's mechanism (PAPERS.md B4): does the main task come to use the auxiliary task's heads,
and does that track the generalization gap over training?

Two pairs are trained jointly with a checkpoint at every evaluation, same model, steps and seeds:
  related  `string-reverse-only`   swapcase_reverse (main) + reverse (aux)
  control  `control-copy-reverse`  copy (main) + reverse (aux), no transfer expected (B2)
Both share the auxiliary, so the pairs differ only in how the main task relates to it. After the
sweep every finished run is analysed at every checkpoint (`analysis.tracking.analyze_run`, mean
ablation, matched prompts over the whole sequence, the run's evaluation lengths up to L_aux; the
runs shared out to one-thread processes, one per core, on a CPU) and the check correlates the map distance
with the gap over the checkpoints of each seed.
The rule (RULE, written 2026-12-06 before its first run) correlates only over the checkpoints
where both tasks are learned, with the maps measured at lengths <= L_main: over every checkpoint
both quantities grow while the tasks are learned, so any pair "tracks" (RULE_V1, the rule until
then, is still reported beside it).
CPU scale: the transfer presets' CPU model (3 layers, 4 heads, d=128), 5,000 steps, a checkpoint
every 250 and every 125 over the first 1,500, the paper's lengths halved, 3 seeds, 64 examples per
(task, length) in the analysis. `cpu-v1`: the scale until 2026-12-06 (2 layers, d=64, 2,000 steps,
a checkpoint every 250). Paper scale: Paper B's model and steps, a checkpoint every 2,000 steps
(10 of them), 5 seeds, 256 examples per (task, length) in the analysis.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from ..analysis.stats import pearson, spearman
from ..analysis.tracking import HEADS_DIR, analyze_runs, final_maps, resolve_settings, select_checkpoints
from ..reports.plots import plot_heatmaps, plot_tracking
from ..reports.tables import markdown_table
from ..store.fileio import atomic_write_text
from ..store.rundir import RunDir
from .base import Preset, SeedScore, Verdict, register_preset, verdict_section
from .transfer import SCALES as TRANSFER_SCALES
from .transfer import sweep_tree

PAIRS = {"string-reverse-only": "related", "control-copy-reverse": "control"}
FIT = 0.9  # exact match over each task's training lengths at the last checkpoint that counts as learned
MIN_CHECKPOINTS = 4
TRACKS = 0.5  # Spearman(map distance, gap) at or above which a seed's map distance "tracks" the gap

SCALES = {
    # Written 2026-12-06 (issue 29), before its first run: the transfer presets' CPU model, where this
    # pair's transfer was measured (b-single-aux-string, b-transfer-swapcase), and twice their 2,500 steps
    # so that transfer has room to grow after both tasks fit; denser checkpoints while they are learned.
    "cpu": {"model": dict(TRANSFER_SCALES["cpu"]["model"]), "steps": 5000, "batch": 64, "n": 128, "eval_every": 250,
            "snapshot_steps": [125, 375, 625, 875, 1125, 1375], "seeds": [0, 1, 2], "length_factor": 0.5,
            "pack": True},
    # The CPU scale until 2026-12-06 (FAIL by RULE_V1 on 2026-12-05, docs/experiments.md).
    "cpu-v1": {"model": {"layers": 2, "heads": 4, "d_model": 64, "d_ff": 256, "encoding": "rope", "rope_theta": 1e5},
               "steps": 2000, "batch": 64, "n": 64, "eval_every": 250, "seeds": [0, 1, 2], "length_factor": 0.5,
               "pack": True},  # the same gradient, 1.5x faster steps (docs/performance.md)
    # Every 2,000 steps, as in the transfer presets: 11 kept checkpoints of ~0.2 GB (weights and AdamW state).
    "paper": TRANSFER_SCALES["paper"],
}
ANALYSIS_N = {"paper": 256}  # examples per (task, length) in the head analysis; 64 at the CPU scales


@dataclass(frozen=True)
class TrackingRule:
    """How a seed's tracking is measured: which map distance, over which checkpoints, and the rule's text."""

    text: str
    metric: str  # a map-distance column of the tracking table
    fitted_only: bool  # only checkpoints at which both tasks are learned (exact match >= FIT in distribution)


RULE_V1 = TrackingRule(
    f"[the rule until 2026-12-06] A seed counts when its run finished with >= {MIN_CHECKPOINTS} analysed "
    f"checkpoints, both tasks were learned at the last one (exact match >= {FIT} over each task's training "
    f"lengths) and Spearman(map distance, gap) over its checkpoints is defined. INCONCLUSIVE unless more than half "
    f"of each pair's seeds count. A pair tracks when Spearman(map distance, gap) >= {TRACKS} in more than half of "
    "its counted seeds. PASS if the related pair tracks and the control pair does not; FAIL otherwise. The "
    "attention difference is reported beside it and does not enter the rule.",
    "map_distance", fitted_only=False)
RULE_V2 = TrackingRule(
    f"[written 2026-12-06, before its first run; issue 29] Only the checkpoints at which both tasks are learned "
    f"(exact match >= {FIT} over each task's training lengths) enter, and the map distance is measured at the "
    f"lengths <= L_main, where both tasks are trained (`map_distance_in`). A seed counts when it has >= "
    f"{MIN_CHECKPOINTS} such checkpoints and Spearman(map distance, gap) over them is defined. INCONCLUSIVE unless "
    f"more than half of each pair's seeds count. A pair tracks when that Spearman >= {TRACKS} in more than half of "
    "its counted seeds. PASS if the related pair tracks and the control pair does not; FAIL otherwise. Why: over "
    "every checkpoint the gap and the map distance both grow while the tasks are learned, so any pair tracks "
    "(2026-12-05: 0.96 related, 0.89 control); once both tasks fit, the gap moves only as transfer does. The "
    "attention difference is reported beside it and does not enter the rule.",
    "map_distance_in", fitted_only=True)
RULE = RULE_V2.text


def _tree(scale: str) -> dict:
    tree = sweep_tree(scale, [{"data.group": group} for group in PAIRS], list(PAIRS), scales=SCALES)
    s = SCALES[scale]
    train = tree["base"]["train"]
    snapshots = s.get("snapshot_steps", [])
    if snapshots:
        train["snapshot_steps"] = list(snapshots)
    # Every evaluation is a checkpoint, and every checkpoint is kept for the analysis.
    train["keep_checkpoints"] = s["steps"] // s["eval_every"] + 1 + len(snapshots)
    return tree


def analyze_sweep(df: pd.DataFrame, path) -> pd.DataFrame:
    """Run (or read back) the head analysis of every finished run; one row per run and checkpoint
    with its pair, group and seed, also written to heads_tracking.csv in the sweep directory."""
    path = Path(path)
    preset = path / "preset.json"
    scale = json.loads(preset.read_text()).get("scale", "cpu") if preset.is_file() else "cpu"
    done = df[df["status"] == "done"].drop_duplicates("run")
    jobs = []
    for _, row in done.iterrows():
        run = RunDir(path / "runs" / row["run"])
        cfg = run.read_config()
        jobs.append((run, resolve_settings(cfg, n=min(ANALYSIS_N.get(scale, 64), cfg.eval.n)), select_checkpoints(run)))
    # On the CPU one process per core this process may use; one GPU is better used by one process.
    workers = 1 if torch.cuda.is_available() else len(os.sched_getaffinity(0))
    frames = []
    for (_, row), results in zip(done.iterrows(), analyze_runs(jobs, workers)):
        tracking = results.tracking
        frames.append(tracking.assign(pair=PAIRS.get(row["data.group"], row["data.group"]),
                                      **{"data.group": row["data.group"]}, seed=row["seed"], run=row["run"]))
    columns = ["pair", "data.group", "seed", "run", "step", "gap", "map_distance", "attention_diff",
               "map_distance_in", "attention_diff_in", "main_fit", "aux_fit", "main_band"]
    table = pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)
    atomic_write_text(path / "heads_tracking.csv", table.to_csv(index=False))
    return table


def seed_table(tracking: pd.DataFrame, rule: TrackingRule = RULE_V2) -> pd.DataFrame:
    """Per run: checkpoints (all, and those `rule` correlates over), fit at the last one, `rule`'s
    Spearman and the other correlations with the gap, and whether the seed counts and tracks."""
    rows = []
    for (pair, group, seed, run), sub in tracking.groupby(["pair", "data.group", "seed", "run"], sort=False):
        sub = sub.sort_values("step")
        last = sub.iloc[-1]
        fitted = sub[(sub["main_fit"] >= FIT) & (sub["aux_fit"] >= FIT)]
        window = fitted if rule.fitted_only else sub
        # Only checkpoints with both numbers count towards the minimum (spearman drops the others).
        window = window[window[rule.metric].notna() & window["gap"].notna()]
        rho = spearman(window[rule.metric], window["gap"]) if len(window) > 1 else float("nan")
        learned = bool(rule.fitted_only or (last["main_fit"] >= FIT and last["aux_fit"] >= FIT))
        counts = bool(len(window) >= MIN_CHECKPOINTS and learned and pd.notna(rho))
        rows.append({"pair": pair, "data.group": group, "seed": seed, "checkpoints": len(sub),
                     "rule_checkpoints": len(window),
                     "first_fitted_step": fitted["step"].iloc[0] if not fitted.empty else float("nan"),
                     "main_fit": last["main_fit"], "aux_fit": last["aux_fit"], "final_gap": last["gap"],
                     "final_main_band": last["main_band"], "spearman_rule": rho,
                     # Beside the rule, not in it: every checkpoint, both metrics, all lengths and <= L_main.
                     "pearson_map": pearson(sub["map_distance"], sub["gap"]),
                     "spearman_map": spearman(sub["map_distance"], sub["gap"]),
                     "spearman_attention": spearman(sub["attention_diff"], sub["gap"]),
                     "spearman_map_in": spearman(sub["map_distance_in"], sub["gap"]),
                     "spearman_attention_in": spearman(sub["attention_diff_in"], sub["gap"]),
                     "counts": counts, "tracks": bool(counts and rho >= TRACKS)})
    return pd.DataFrame(rows)


def judge(tracking: pd.DataFrame, rule: TrackingRule) -> Verdict:
    """PASS / FAIL / INCONCLUSIVE by `rule`, from the per-checkpoint table of `analyze_sweep`."""
    table = seed_table(tracking, rule) if not tracking.empty else pd.DataFrame()
    verdict = {}
    for pair in ("related", "control"):
        sub = table[table["pair"] == pair] if not table.empty else table
        counted = int(sub["counts"].sum()) if not sub.empty else 0
        if sub.empty or counted * 2 <= len(sub):
            return Verdict("INCONCLUSIVE", rule.text, table)
        verdict[pair] = int(sub["tracks"].sum()) * 2 > counted
    return Verdict("PASS" if verdict["related"] and not verdict["control"] else "FAIL", rule.text, table)


def check_heads(tracking: pd.DataFrame) -> Verdict:
    """The preset's verdict: RULE (RULE_V2) on the per-checkpoint table of `analyze_sweep`."""
    return judge(tracking, RULE_V2)


def seed_correlations(tracking: pd.DataFrame) -> pd.DataFrame:
    """Every seed's correlation under RULE, for the replication report (columns point, seed, value)."""
    table = seed_table(tracking)
    if table.empty:
        return pd.DataFrame(columns=["point", "seed", "value"])
    return pd.DataFrame({"point": table["pair"] + " (" + table["data.group"] + ")", "seed": table["seed"],
                         "value": table["spearman_rule"]})


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
                  "gap, map distance and attention difference over checkpoints (shaded: where the rule looks)",
                  fit=FIT)
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
        spearman_rule_mean=("spearman_rule", "mean"), spearman_map_mean=("spearman_map", "mean"),
        spearman_attention_mean=("spearman_attention", "mean"), spearman_map_in_mean=("spearman_map_in", "mean"),
        spearman_attention_in_mean=("spearman_attention_in", "mean"))
    return ["## Heads: maps, curves and correlations", "",
            "Per run and checkpoint (`heads_tracking.csv`); "
            "per run also `runs/<run>/heads/` (tables, `maps_steps.png`). `spearman_rule`: the rule's correlation "
            "(checkpoints where both tasks fit, maps at lengths <= L_main).",
            "", markdown_table(summary.reset_index()), "", "![curves](heads_curves.png)", "",
            "![maps](heads_maps.png)", "", markdown_table(tracking.drop(columns=["run"])), "",
            *verdict_section("The rule until 2026-12-06 (every checkpoint, maps over every length)",
                             judge(tracking, RULE_V1))]


register_preset(Preset(
    "b-heads", "B-heads",
    "The distance between the main and auxiliary task's head-ablation maps tracks the generalization gap over "
    "training for a related pair (swapcase-reverse + reverse) and not for a control pair (copy + reverse).",
    {scale: _tree(scale) for scale in SCALES}, check_heads, [], heads_report, analyze_sweep,
    per_seed=SeedScore("Spearman(map distance at lengths <= L_main, gap) over the checkpoints where both tasks fit",
                       seed_correlations, TRACKS,
                       union_note="Over the union the rule still asks each pair for a majority of its counted "
                                  "seeds, now of every seed; read it with the per-seed numbers below.")))
