"""Where a reproduction stands: one table over every preset's sweep at a scale.

`lengthgen repro --summary` reads what `lengthgen repro NAME` left in the sweep directories
(the verdict line of report.md, finished runs, seeds, recorded wall time, plots) and writes
`<dir>/repro-<scale>.md` with links to each report. It trains and re-checks nothing: a check can
take minutes (b-heads analyses every checkpoint), so the verdict is the one its report holds, and
a report older than its newest finished run is flagged so that nobody quotes a stale verdict.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from ..errors import UserError, choices_error
from ..presets import PRESETS
from ..store.fileio import atomic_write_text
from ..sweeps.run import SweepDir
from ..sweeps.spec import expand
from .plots import plot_overview
from .tables import markdown_table

_VERDICT = re.compile(r"^\*\*Verdict: (PASS|FAIL|INCONCLUSIVE)\*\*(.*)$", re.MULTILINE)


def report_verdict(report: Path) -> str:
    """The verdict line of a report.md (with its note, e.g. runs that did not finish)."""
    match = _VERDICT.search(report.read_text())
    return (match.group(1) + match.group(2)).strip() if match else "no verdict in report"


def _newest_done(sweep: SweepDir) -> float:
    marks = [p.stat().st_mtime for p in (sweep.path / "runs").glob("*/done.json")]
    return max(marks, default=0.0)


def preset_row(name: str, claim_id: str, sweep: SweepDir, relative_to: Path) -> dict:
    """One preset's line: verdict, runs finished of planned, seeds, sweep wall time, report and plot."""
    row = {"preset": name, "claim": claim_id, "verdict": "not run", "runs": "", "seeds": "", "sweep wall": "",
           "report": ""}
    if not sweep.spec_path.is_file():
        return row
    spec = sweep.read_spec()
    plans = expand(spec, sweep.path)
    done = sum(s == "done" for s in sweep.status(plans).values())
    wall = sum(s["wall_s"] for s in sweep.sessions())
    row.update(runs=f"{done} / {len(plans)}", seeds=", ".join(map(str, spec.seeds)),
               **{"sweep wall": f"{wall:,.0f} s" if wall else ""})
    report = sweep.path / "report.md"
    if not report.is_file():
        row["verdict"] = "no report (run `lengthgen report` on the sweep)"
        return row
    verdict = report_verdict(report)
    if report.stat().st_mtime < _newest_done(sweep):
        verdict += " (report older than its newest run: run `lengthgen report` again)"
    links = [f"[report]({report.relative_to(relative_to).as_posix()})"]
    links += [f"[{p.stem}]({p.relative_to(relative_to).as_posix()})" for p in sorted(sweep.path.glob("*.png"))]
    row.update(verdict=verdict, report=", ".join(links))
    return row


def repro_summary(root: str | Path, scale: str) -> pd.DataFrame:
    """Every registered preset's state at `scale` under the sweeps folder `root`, by preset name."""
    presets = PRESETS
    scales = sorted({s for p in presets.values() for s in p.scales})
    if scale not in scales:
        raise choices_error("scale", scale, scales)
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"sweeps folder {str(root)!r} does not exist")
    rows = []
    for name, preset in sorted(presets.items()):
        if scale not in preset.scales:
            continue
        rows.append(preset_row(name, preset.claim_id, SweepDir(root / f"{name}-{scale}"), root))
        # Replications on other seeds (`lengthgen repro NAME --seeds ...`), each with its own verdict.
        for path in sorted(root.glob(f"{name}-{scale}-seeds-*")):
            if path.is_dir() and re.fullmatch(rf"{re.escape(name)}-{re.escape(scale)}-seeds(-\d+)+", path.name):
                rows.append(preset_row(name, preset.claim_id, SweepDir(path), root) | {"sweep": path.name})
    table = pd.DataFrame(rows)
    if "sweep" in table:
        table["sweep"] = table["sweep"].fillna(table["preset"] + f"-{scale}")
    return table


def overview_panels(root: Path, table: pd.DataFrame, scale: str) -> list[tuple[str, pd.DataFrame | None]]:
    """(title, results table or None) per preset of the summary: its verdict in the title, the rows its
    report wrote to results.csv (None before a report exists)."""
    panels = []
    for row in table.itertuples():
        sweep = getattr(row, "sweep", None) or f"{row.preset}-{scale}"
        results = root / sweep / "results.csv"
        df = pd.read_csv(results) if results.is_file() else None
        seeds = sweep.removeprefix(f"{row.preset}-{scale}-seeds-")
        label = row.preset if seeds == sweep else f"{row.preset} (seeds {seeds.replace('-', ', ')})"
        panels.append((f"{label}: {row.verdict.split(' (')[0]}", df))
    return panels


def write_repro_summary(root: str | Path, scale: str) -> tuple[Path, pd.DataFrame]:
    """Write `<root>/repro-<scale>.md` (the summary table and the verdict counts) and the overview
    figure `<root>/repro-<scale>.png` (each preset's main curve, its verdict in the title); the
    summary's path and table."""
    table = repro_summary(root, scale)
    kinds = ("PASS", "FAIL", "INCONCLUSIVE", "not run")
    counts = table["verdict"].map(lambda v: next((k for k in kinds if v.startswith(k)), "no verdict")).value_counts()
    tally = ", ".join(f"{k}: {counts[k]}" for k in (*kinds, "no verdict") if k in counts)
    presets = table["preset"].nunique()
    count = f"{presets} presets" + (f", {len(table)} sweeps with replications" if len(table) > presets else "")
    figure = plot_overview(overview_panels(Path(root), table, scale), Path(root) / f"repro-{scale}.png")
    lines = [f"# Reproduction at {scale} scale", "",
             "Verdicts as each sweep's report.md states them (`lengthgen repro NAME` writes it); every seed "
             "is in the report.", "", f"{count}. {tally}.", "", markdown_table(table), "",
             "Each preset's main curve (its first task, mean over seeds per grid point; dashed: training maxima):",
             "", f"![overview]({figure.name})", ""]
    replications = sorted(Path(root).glob(f"*-{scale}-replication.md"))
    if replications:  # `lengthgen repro NAME --replication`: every seed set of a preset side by side
        lines += ["Every seed set of a preset side by side (original and fresh seeds):", "",
                  *(f"- [{p.stem}]({p.name})" for p in replications), ""]
    path = Path(root) / f"repro-{scale}.md"
    atomic_write_text(path, "\n".join(lines))
    return path, table
