"""`report.md` for a sweep: configuration, every run, tables over seeds, plots, verdict."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from ..store.fileio import atomic_write_text
from ..sweeps.reuse import reused_from
from ..sweeps.run import SweepDir
from ..tasks import TASKS
from .aggregate import (
    collect,
    final,
    generalization_gap,
    grid_columns,
    point_label,
    run_errors,
    run_seconds,
    write_tables,
)
from .plots import plot_heatmap, plot_sweep_lengths, plot_sweep_steps
from .reach import reach_section
from .tables import markdown_table


def length_table(df: pd.DataFrame, task: str, metric: str = "exact_match") -> pd.DataFrame:
    """Length x grid point table of 'mean (min-max)' of `metric` over seeds at the final step."""
    keys = grid_columns(df)
    last = final(df)
    last = last[last["task"] == task].copy()
    last["point"] = last.apply(lambda r: point_label(r, keys), axis=1)
    stats = last.groupby(["point", "length"], sort=False)[metric].agg(["mean", "min", "max"]).reset_index()
    stats["cell"] = stats.apply(lambda r: f"{r['mean']:.2f} ({r['min']:.2f}-{r['max']:.2f})", axis=1)
    table = stats.pivot(index="length", columns="point", values="cell").reset_index()
    return table[["length", *dict.fromkeys(stats["point"])]]


def report_metric(label: str) -> str:
    """The column a report tabulates for a results task label (`task` or `task[key=value,...]`)."""
    task = TASKS.get(label.split("[", 1)[0])
    return task.report_metric if task is not None else "exact_match"


def sessions_lines(sessions: list[dict]) -> list[str]:
    """The sweep's own wall time, summed over its invocations (a resumed sweep has several)."""
    if not sessions:
        return []
    wall = sum(x["wall_s"] for x in sessions)
    how = "; ".join(f"{x['started']}: {x['runs']} runs, {x['workers']} workers x {x['threads']} threads, "
                    f"{x['wall_s']:.0f} s{'' if x['completed'] else ' (interrupted)'}" for x in sessions)
    return ["", f"Sweep wall time {wall:.0f} s over {len(sessions)} invocation(s) ({how})."]


def write_report(path: str | Path, gaps: list[tuple[str, str]] = (), preset=None, reaches: list[str] = ()) -> Path:
    """Aggregate the sweep, write tables and plots, and write report.md; returns its path.

    preset: the `presets.Preset` that made the sweep (`presets.preset_of` finds it), whose check
    decides the verdict at the top of the report; None for a plain sweep.
    reaches: main tasks whose reach past their training lengths is tabulated and plotted against
    the sweep's varying grid key (`reports.reach`).
    """
    sweep = SweepDir(path)
    spec = sweep.read_spec()
    df = collect(sweep)
    tables = write_tables(sweep, df)
    seconds = run_seconds(sweep)
    runs = df.drop_duplicates("run")[["run", "status"]].copy()
    runs["seconds"] = runs["run"].map(seconds)
    errors = run_errors(sweep)
    origins = [reused_from(sweep.path / "runs" / r) for r in runs["run"]]
    if any(origins):  # trained by another sweep with the same config (lengthgen.sweeps.reuse)
        runs["reused from"] = origins
    if (runs["status"] == "failed").any():  # say why, so nobody has to dig through run directories
        runs["error"] = [errors.get(r, "") if s == "failed" else "" for r, s in zip(runs["run"], runs["status"])]
    lines = [f"# {spec.name}", ""]
    if preset is not None:
        verdict = None
        if not df.dropna(subset=["step"]).empty:
            verdict = preset.check(preset.analyze(df, sweep.path) if preset.analyze is not None else df)
        lines += [f"**Claim ({preset.claim_id}).** {preset.claim}", ""]
        unfinished = int((runs["status"] != "done").sum())
        if verdict is None:
            lines += ["**Verdict: INCONCLUSIVE** (no results yet)", ""]
        else:
            status = verdict.status
            note = ""
            if unfinished:  # a verdict over a partial grid would hide the missing points
                status, note = "INCONCLUSIVE", f" ({unfinished} runs did not finish; the check saw only the rest)"
            lines += [f"**Verdict: {status}**{note}", "", f"Rule: {verdict.rule}", "",
                      markdown_table(verdict.numbers), ""]
    done = int((runs["status"] == "done").sum())
    total_s = runs["seconds"].sum()
    copied = sum(map(bool, origins))
    copies = f" {copied} of them were copied from finished runs with the same config (their times are the " \
             "originals')." if copied else ""
    lines += ["## Runs", "", f"{done} of {len(runs)} runs finished; run wall time {total_s:.0f} s in total "
              f"(training and evaluation).{copies}",
              *sessions_lines(sweep.sessions()), "", markdown_table(runs, digits=1), ""]
    results = df.dropna(subset=["step"])
    if not results.empty:
        plot_sweep_lengths(df, sweep.path / "lengths.png", title=spec.name)
        lengths = preset.step_lengths if preset is not None and preset.step_lengths else \
            sorted(set(int(x) for x in results["train_max"].dropna()))[:2]
        if callable(lengths):
            lengths = lengths(results)
        lengths = [n for n in lengths if n in set(results["length"])]
        if lengths and results["step"].nunique() > 1:
            plot_sweep_steps(df, lengths, sweep.path / "steps.png", title=spec.name)
        lines += ["## Exact match vs length", "", "![lengths](lengths.png)", ""]
        if (sweep.path / "steps.png").exists():
            lines += ["## Exact match vs training step", "", "![steps](steps.png)", ""]
        if preset is not None and preset.extra_report is not None:
            lines += preset.extra_report(df, sweep.path)
        for task in dict.fromkeys(results["task"]):
            metric = report_metric(task)
            lines += [f"### {task}: {metric}, mean (min-max) over seeds, final step", "",
                      markdown_table(length_table(df, task, metric)), ""]
        for main, aux in gaps:
            gap = generalization_gap(final(df), main, aux)
            lines += [f"## Generalization gap {main} vs {aux}", "", markdown_table(gap), ""]
            keys = grid_columns(df)
            if len(keys) == 2:
                grid = gap.groupby(keys)["gap"].mean().unstack(keys[1])
                name = f"gap_{main}_{aux}.png"
                plot_heatmap(grid, sweep.path / name, f"gap {main} vs {aux} (mean over seeds)")
                lines += [f"![gap]({name})", ""]
        for main in reaches:
            lines += reach_section(df, main, sweep.path)
    lines += ["## Configuration", "", "```yaml", yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False).strip(),
              "```", "", "Tables: " + ", ".join(f"`{p.name}`" for p in tables.values()), ""]
    report = sweep.path / "report.md"
    atomic_write_text(report, "\n".join(lines))
    return report
