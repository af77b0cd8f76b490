"""Paper A in natural language (PAPERS.md A6): does the far-context gain beyond the training length
sit on tokens whose dependency on the far context is sparse?

A character-level causal LM (the `text` task) is trained on windows of L characters with plain
consecutive position IDs, and with PoSE (`positions.train: pose`, two chunks, IDs up to 4L + 1,
so training covers every position a 4L window uses); same model, steps and seeds. After the
sweep, every finished run gets the per-token context analysis (`analysis.context`): validation
windows of 4L characters, each token's gain from far context (full context vs the last L - 1
characters) and, for gains above 0.1 nats, k = the fewest far characters that recover 80% of it.
CPU scale: CPython's standard library source (`stdlib`, ships with Python: no download; `cpu-pydoc`:
its documentation instead, the first CPU scale), L = 64, 2 layers, d = 128, RoPE, 1,500 steps of 64
windows, 3 seeds, 8 analysis windows of 256 per run.
Paper scale: the user's local C4 shard (`$LENGTHGEN_C4`: a .json.gz / .jsonl file or a directory
of them, as allenai/c4 ships them), L = 512, 6 layers, d = 384, 20k steps of 256 windows,
5 seeds, 32 analysis windows of 2,048 per run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from ..analysis.context import (
    CONTEXT_DIR,
    analyze_run,
    plot_gain_by_k,
    plot_gain_distribution,
    plot_loss_by_position,
    resolve_settings,
)
from ..analysis.dependency import gain_by_bin
from ..errors import UserError
from ..reports.aggregate import final
from ..reports.tables import markdown_table
from ..store.fileio import atomic_write_text
from ..store.rundir import RunDir
from ..tasks.corpus_sources import resolve
from .base import Preset, Verdict, register_preset

SCALES = {
    # The standard library's source (issue 27): identifiers defined far above their use, so far context
    # can matter. pydoc's prose gave no far-context gain at all (mean -0.01 to -0.02 nats): `cpu-pydoc`.
    "cpu": {"corpus": "stdlib", "length": 64, "block_chars": 4096,
            "model": {"layers": 2, "heads": 4, "d_model": 128, "d_ff": 512, "encoding": "rope"},
            "steps": 1500, "batch": 64, "lr": 2e-3, "n": 64, "seeds": [0, 1, 2], "windows": 8},
    "cpu-pydoc": {"corpus": "pydoc", "length": 64, "block_chars": 4096,
                  "model": {"layers": 2, "heads": 4, "d_model": 128, "d_ff": 512, "encoding": "rope"},
                  "steps": 1500, "batch": 64, "lr": 2e-3, "n": 64, "seeds": [0, 1, 2], "windows": 8},
    "paper": {"corpus": None, "length": 512, "block_chars": 16384,
              "model": {"layers": 6, "heads": 6, "d_model": 384, "d_ff": 1536, "encoding": "rope"},
              "steps": 20000, "batch": 256, "lr": 1e-3, "n": 256, "seeds": [0, 1, 2, 3, 4], "windows": 32},
}
POINTS = {"consecutive": {"positions.train": "consecutive"}, "pose": {"positions.train": "pose"}}
C4_VARIABLE = "LENGTHGEN_C4"

# The rule, fixed before any result was seen (see docs/experiments.md, a-language).
THRESHOLD, FRACTION, SPARSE_K = 0.1, 0.8, 4
MIN_TOKENS, MIN_GROUP, MARGIN = 50, 10, 0.05
RULE = (f"Per run, over the validation tokens beyond the training length L: a token is analysed when its gain "
        f"from far context (loss with the last L - 1 characters minus loss with the full context) exceeds "
        f"{THRESHOLD} nats, and k is the fewest far characters (ranked by occlusion) that recover {FRACTION:.0%} of "
        f"its gain; tokens with k = 0 need no far character and are set apart. Sparse: 1 <= k <= {SPARSE_K}; dense: "
        f"k > {SPARSE_K}. Concentration = (share of the gain of the tokens with k >= 1 carried by the sparse ones) - "
        f"(their share of those tokens). A run counts when it has >= {MIN_TOKENS} tokens with k >= 1, >= "
        f"{MIN_GROUP} of them sparse and >= {MIN_GROUP} dense. INCONCLUSIVE unless at least one PoSE run counts; "
        f"then PASS if the best counted PoSE seed's concentration is >= {MARGIN}, FAIL otherwise. The consecutive "
        "runs are shown with the same numbers and do not enter the verdict.")


def _text_entry(s: dict, corpus: str) -> dict:
    return {"task": "text", "lengths": [s["length"], s["length"]],
            "params": {"corpus": corpus, "block_chars": s["block_chars"], "validation_fraction": 0.1}}


def sweep_tree(scale: str, corpus: str | None = None) -> dict:
    """The sweep at a scale: consecutive and PoSE points on one base config."""
    s = SCALES[scale]
    length = s["length"]
    base = {
        "data": {"tasks": [_text_entry(s, corpus or s["corpus"])], "batch_size": s["batch"]},
        # PoSE's target range: every ID of a 4L window (<bos>, 4L characters, <eos>).
        "positions": {"train": "consecutive", "eval": "consecutive", "max_position": 4 * length + 2, "pose_chunks": 2},
        "model": dict(s["model"]),
        "train": {"steps": s["steps"], "lr": s["lr"], "schedule": "cosine", "warmup": 0.05, "log_every": 50},
        "eval": {"lengths": [length // 4, length // 2, length, 2 * length, 4 * length], "n": s["n"]},
    }
    return {"base": base, "points": list(POINTS.values()), "seeds": s["seeds"]}


def _paper_tree() -> dict:
    """Paper scale reads the user's C4 shard from $LENGTHGEN_C4 (checked when the spec is made)."""
    shard = os.environ.get(C4_VARIABLE)
    if not shard:
        raise UserError(f"a-language at paper scale trains on your local C4 shard: set {C4_VARIABLE} to it (a "
                        ".json.gz or .jsonl file, or a directory of them), e.g. export "
                        f"{C4_VARIABLE}=~/data/c4/en/c4-train.00000-of-01024.json.gz")
    path = str(Path(os.path.expanduser(shard)).resolve())
    resolve(path)  # exists and is a corpus, or a one-line error now rather than in every run
    return sweep_tree("paper", path)


def _scale_of(path: Path) -> str:
    preset = path / "preset.json"
    return json.loads(preset.read_text()).get("scale", "cpu") if preset.is_file() else "cpu"


SUMMARY_COLUMNS = ["point", "seed", "run", "train_length", "tokens_beyond", "mean_gain_beyond", "gain_p10",
                   "gain_median", "gain_p90", "positive_gain_share", "loss_full_beyond",
                   "loss_truncated_beyond", "analysed", "k0", "with_far", "sparse", "dense", "sparse_token_share",
                   "sparse_gain_share", "concentration", "median_k", "seconds"]


def analyze_sweep(df: pd.DataFrame, path) -> pd.DataFrame:
    """Run (or read back) the context analysis of every finished run; one row per run, also written
    to context_summary.csv in the sweep directory."""
    path = Path(path)
    windows = SCALES.get(_scale_of(path), SCALES["cpu"])["windows"]
    rows = []
    for _, row in df[df["status"] == "done"].drop_duplicates("run").iterrows():
        run = RunDir(path / "runs" / row["run"])
        cfg = run.read_config()
        settings = resolve_settings(cfg, windows=windows, threshold=THRESHOLD, fraction=FRACTION, sparse_k=SPARSE_K)
        summary = analyze_run(run, settings, quiet=False).summary
        # From the run's own config: the results table has a column only for keys its grid varies.
        rows.append({"point": cfg.positions.train, "seed": row["seed"], "run": row["run"], **summary})
    table = pd.DataFrame(rows).reindex(columns=SUMMARY_COLUMNS) if rows else pd.DataFrame(columns=SUMMARY_COLUMNS)
    atomic_write_text(path / "context_summary.csv", table.to_csv(index=False))
    return table


def counts(row) -> bool:
    """Whether a run has enough analysed tokens on both sides of the sparsity threshold (see RULE)."""
    return bool(row["with_far"] >= MIN_TOKENS and row["sparse"] >= MIN_GROUP and row["dense"] >= MIN_GROUP)


def check_language(table: pd.DataFrame) -> Verdict:
    """PASS / FAIL / INCONCLUSIVE by RULE, from the per-run table of `analyze_sweep`."""
    if table.empty:
        return Verdict("INCONCLUSIVE", RULE, table)
    table = table.assign(counts=table.apply(counts, axis=1))
    pose = table[(table["point"] == "pose") & table["counts"]]
    if pose.empty:
        return Verdict("INCONCLUSIVE", RULE, table)
    return Verdict("PASS" if pose["concentration"].max() >= MARGIN else "FAIL", RULE, table)


def language_report(df: pd.DataFrame, path) -> list[str]:
    """Per point (pooled over seeds): gain by sparsity bin, loss by position; the tables of every run."""
    path = Path(path)
    source = path / "context_summary.csv"
    if not source.is_file():
        return []
    summary = pd.read_csv(source)
    if summary.empty:
        return ["## Far context", "", "No finished run to analyse.", ""]
    tokens, positions = {}, {}
    for point, runs in summary.groupby("point", sort=False):
        folders = [path / "runs" / run / CONTEXT_DIR for run in runs["run"]]
        tokens[point] = pd.concat([pd.read_csv(f / "tokens.csv") for f in folders], ignore_index=True)
        positions[point] = pd.concat([pd.read_csv(f / "positions.csv") for f in folders]).groupby(
            "position", as_index=False).mean()
    length = int(summary["train_length"].iloc[0])
    bins = {point: gain_by_bin(table) for point, table in tokens.items()}
    plot_gain_by_k({f"{p} (all seeds)": b for p, b in bins.items()}, path / "context_gain_by_k.png")
    plot_loss_by_position({f"{p} (mean over seeds)": t for p, t in positions.items()}, length,
                          path / "context_loss_by_position.png")
    plot_gain_distribution({f"{p} (all seeds)": t.loc[t["position"] > length, "gain"] for p, t in tokens.items()},
                           length, path / "context_gain_distribution.png")
    lines = ["## Far context: gain by sparsity of the dependency", "",
             "Per run: `runs/<run>/context/` (tokens.csv, bins.csv, positions.csv, plots); all runs: "
             "`context_summary.csv`.", "", "![gain by k](context_gain_by_k.png)", "",
             "![loss by position](context_loss_by_position.png)", "",
             "![gain distribution](context_gain_distribution.png)", ""]
    for point, table in bins.items():
        lines += [f"### {point}: analysed tokens of all seeds by k", "", markdown_table(table), ""]
    shown = [c for c in ("mean_gain_beyond", "gain_p10", "gain_median", "gain_p90", "positive_gain_share",
                         "sparse_token_share", "sparse_gain_share", "concentration") if c in summary]
    means = summary.groupby("point", sort=False)[shown].mean().reset_index()
    lines += ["### Mean over seeds", "", markdown_table(means), ""]
    # Exact match of a whole window is ~0 for any LM; next-character accuracy is the informative score.
    last = final(df)
    if not last.empty:
        # Per positions rule where the grid varies it (the preset), else per run (a probe of one rule).
        column = "positions.train" if "positions.train" in last else "run"
        accuracy = last.pivot_table(index="length", columns=column, values="token_acc", aggfunc="mean")
        lines += ["### Next-character accuracy (teacher forced, mean over seeds) by window length", "",
                  markdown_table(accuracy.reset_index()), ""]
    return lines


register_preset(Preset(
    "a-language", "A-language",
    "In a character-level LM trained on short windows (L) and evaluated at 4L, the loss gain from context beyond "
    "L concentrates on tokens whose dependency on that far context is sparse (few far characters recover it), "
    "with PoSE (the consecutive-ID model is shown beside it).",
    {"cpu": sweep_tree("cpu"), "cpu-pydoc": sweep_tree("cpu-pydoc"), "paper": _paper_tree}, check_language, [],
    language_report, analyze_sweep))
