"""Sweep results as one tidy table, summaries over seeds, and the generalization gap."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ..data import variant_task
from ..errors import UserError
from ..store.fileio import atomic_path, atomic_write_text
from ..sweeps.run import SweepDir
from ..sweeps.spec import expand

VALUE_COLUMNS = ["step", "task", "length", "n", "exact_match", "token_acc"]
# Kept in the results table only when some run has them (PPC runs), after train_max.
OPTIONAL_VALUE_COLUMNS = ["position_accuracy"]


def _cell(value) -> object:
    """Grid values as table cells: scalars stay, lists and mappings become YAML flow text."""
    if isinstance(value, (list, dict, tuple)):
        return yaml.safe_dump(value, default_flow_style=True).strip()
    return value


def collect(sweep: SweepDir) -> pd.DataFrame:
    """All eval rows of all runs: grid values, seed, run, status, step, task, length, n, metrics."""
    spec = sweep.read_spec()
    plans = expand(spec, sweep.path)
    grid_keys = list(dict.fromkeys(k for p in plans for k in p.point))
    frames = []
    for plan in plans:
        run = sweep.run_dir(plan)
        status = "done" if run.is_done() else "failed" if (run.path / "failed.json").is_file() else \
            "partial" if run.exists() else "new"
        rows = [r.as_dict() for r in run.read_eval()] if run.path.is_dir() else []
        frame = pd.DataFrame(rows, columns=VALUE_COLUMNS + OPTIONAL_VALUE_COLUMNS)
        if frame.empty:
            frame = pd.DataFrame([{c: np.nan for c in VALUE_COLUMNS + OPTIONAL_VALUE_COLUMNS}])
        for key in grid_keys:
            frame[key] = _cell(plan.point.get(key))
        frame["seed"], frame["run"], frame["status"] = plan.seed, plan.name, status
        train_max = {t.task: t.lengths[1] for t in plan.config.data.resolved_tasks()}
        frame["train_max"] = frame["task"].map(
            lambda label: train_max.get(variant_task(label)) if isinstance(label, str) else np.nan)
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    for key in grid_keys:
        # A key that only some points set is None elsewhere: as a number column with NaN there, so
        # that tables grouped by it (whose keys pandas turns numeric) merge back with this one.
        table[key] = table[key].infer_objects()
    optional = [c for c in OPTIONAL_VALUE_COLUMNS if table[c].notna().any()]
    columns = grid_keys + ["seed", "run", "status"] + VALUE_COLUMNS + ["train_max"] + optional
    table = table[columns]
    # `lengthgen eval` may evaluate a step again: the newest row of a (run, step, task, length) wins.
    return table.drop_duplicates(["run", "step", "task", "length"], keep="last").reset_index(drop=True)


def grid_columns(df: pd.DataFrame) -> list[str]:
    """The grid-key columns of a results table."""
    return list(df.columns[: list(df.columns).index("seed")])


def point_label(row, keys: list[str], wrap: int | None = None) -> str:
    """'encoding=rope, lengths=[1, 8]' for a table row; keys a point does not set are left out. `wrap`:
    break it into lines of at most that many characters, between words (a plot legend, where a long value such as a
    task_options dict would otherwise be wider than the panel)."""
    def text(value) -> str:  # a whole number in a column with gaps is stored as a float: 2.0 -> 2
        return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)

    label = ", ".join(f"{k.split('.')[-1]}={text(row[k])}" for k in keys if not pd.isna(row[k])) or "all runs"
    return "\n".join(textwrap.wrap(label, wrap, break_long_words=False, break_on_hyphens=False)) if wrap else label


def final(df: pd.DataFrame, done_only: bool = True) -> pd.DataFrame:
    """Each run's rows at its last evaluated step; by default finished runs only, so a half-trained
    run never sits beside finished ones in a summary."""
    df = df.dropna(subset=["step"]).astype({"step": int, "length": int, "n": int})
    if done_only:
        df = df[df["status"] == "done"]
    last = df.groupby("run")["step"].transform("max")
    return df[df["step"] == last]


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """Exact match over seeds at each run's final step: mean, std, min, max, best seed.

    The best seed of a (grid point, task) is the one with the highest exact match averaged over
    all evaluated lengths; `best` is its exact match at the row's length.
    """
    keys = grid_columns(df)
    last = final(df)
    point_task = keys + ["task"]
    overall = last.groupby(point_task + ["seed"], dropna=False)["exact_match"].mean().reset_index()
    overall = overall.sort_values(["exact_match", "seed"], ascending=[False, True])
    best = overall.drop_duplicates(point_task).rename(columns={"seed": "best_seed"})[point_task + ["best_seed"]]
    grouped = last.groupby(point_task + ["length"], dropna=False)["exact_match"]
    summary = grouped.agg(mean="mean", std="std", min="min", max="max", seeds="count").reset_index()
    summary["std"] = summary["std"].fillna(0.0)
    summary = summary.merge(best, on=point_task, how="left")
    best_rows = last.rename(columns={"seed": "best_seed", "exact_match": "best"})[
        point_task + ["length", "best_seed", "best"]]
    summary = summary.merge(best_rows, on=point_task + ["length", "best_seed"], how="left")
    train_max = last.drop_duplicates(point_task)[point_task + ["train_max"]]
    return summary.merge(train_max, on=point_task, how="left")


def generalization_gap(df: pd.DataFrame, main: str, aux: str, lengths: list[int] | None = None) -> pd.DataFrame:
    """Per run and step: mean over lengths of |acc_aux(l) - acc_main(l)| (PAPERS.md B4).

    Only lengths evaluated for both tasks count; `lengths` restricts them further.
    """
    keys = grid_columns(df) + ["seed", "run", "step"]
    pivot = df.dropna(subset=["step"]).pivot_table(index=keys + ["length"], columns="task", values="exact_match",
                                                   dropna=False)
    if main not in pivot or aux not in pivot:
        evaluated = ", ".join(sorted(set(df["task"].dropna())))
        raise UserError(f"gap {main}:{aux}: both tasks must be evaluated; evaluated: {evaluated}")
    pivot = pivot.dropna(subset=[main, aux]).reset_index()
    if lengths is not None:
        pivot = pivot[pivot["length"].isin(lengths)]
    pivot["abs_diff"] = (pivot[aux] - pivot[main]).abs()
    out = pivot.groupby(keys, dropna=False)["abs_diff"].mean().rename("gap").reset_index()
    return out


def _write_atomic_csv(df: pd.DataFrame, path: Path) -> None:
    atomic_write_text(path, df.to_csv(index=False))


def write_tables(sweep: SweepDir, df: pd.DataFrame) -> dict[str, Path]:
    """results.csv / results.parquet (every row) and summary.csv (over seeds), written atomically."""
    paths = {"results_csv": sweep.path / "results.csv", "results_parquet": sweep.path / "results.parquet",
             "summary_csv": sweep.path / "summary.csv"}
    _write_atomic_csv(df, paths["results_csv"])
    with atomic_path(paths["results_parquet"]) as tmp:  # a unique name: two reports never share it
        df.astype({c: str for c in grid_columns(df) if df[c].dtype == object}).to_parquet(tmp, index=False)
    _write_atomic_csv(summarize(df), paths["summary_csv"])
    return paths


def run_seconds(sweep: SweepDir) -> dict[str, float]:
    """Training wall time of every finished run."""
    out = {}
    for done in sorted((sweep.path / "runs").glob("*/done.json")):
        out[done.parent.name] = json.loads(done.read_text()).get("seconds", float("nan"))
    return out


def run_errors(sweep: SweepDir) -> dict[str, str]:
    """The one-line error of every run whose last attempt failed (its failed.json)."""
    out = {}
    for failed in sorted((sweep.path / "runs").glob("*/failed.json")):
        try:
            out[failed.parent.name] = str(json.loads(failed.read_text()).get("error", ""))
        except (OSError, ValueError):
            out[failed.parent.name] = "(failed.json is unreadable)"
    return out
