"""A preset's verdict across seed sets: the original sweep beside its replications on fresh seeds.

`lengthgen repro NAME --seeds 3,4,5` trains a replication in a sweep of its own
(`<name>-<scale>-seeds-3-4-5`), never mixed into the original. This module reads the original and
every replication in a sweeps folder and writes `<name>-<scale>-replication.md` beside them:
- each seed set's verdict under the preset's own rule, and whether a PASS replicated;
- the same rule over the union of the seed sets (a rule on the best seed then reads the best of all
  seeds, a more lenient reading; a rule on a majority of seeds needs a majority of all; the preset's
  `per_seed.union_note` says which, and the per-seed numbers sit beside it);
- every seed's own score (the preset's `per_seed`, e.g. the transfer effect), as a table and as a
  plot `<name>-<scale>-replication.png`.
It trains nothing.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..errors import UserError
from ..optional import pyplot
from ..store.eval_plot import save_figure
from ..store.fileio import atomic_write_text
from ..sweeps.run import SweepDir
from .aggregate import collect
from .tables import markdown_table


@dataclass(frozen=True)
class SeedSet:
    """One sweep of a preset: its name, seeds, results and verdict under the preset's rule."""

    name: str
    seeds: list[int]
    results: pd.DataFrame
    verdict: str
    unfinished: int

# Presets without a per-seed score: what reading every seed as one set does depends on the rule.
UNION_NOTE = ("Over the union the rule reads every seed as one set: a rule on the best seed becomes more lenient, "
              "a rule on a majority of seeds needs a majority of all; read it with each set's verdict above.")


def replication_sweeps(root: Path, preset: str, scale: str) -> list[Path]:
    """The original sweep `<preset>-<scale>` (if there) and then every replication, by name."""
    root = Path(root)
    pattern = re.compile(rf"{re.escape(preset)}-{re.escape(scale)}-seeds(-\d+)+")
    replications = sorted(p for p in root.glob(f"{preset}-{scale}-seeds-*") if p.is_dir() and pattern.fullmatch(p.name))
    original = root / f"{preset}-{scale}"
    return ([original] if original.is_dir() else []) + replications


def _verdict(preset, judged: pd.DataFrame, unfinished: int):
    """The preset's Verdict on `judged` (None before any result), its status as report.md states it
    (INCONCLUSIVE while runs are unfinished), and the number of unfinished runs."""
    if judged.empty or ("step" in judged and judged.dropna(subset=["step"]).empty):
        return None, "INCONCLUSIVE", unfinished
    verdict = preset.check(judged)
    return verdict, ("INCONCLUSIVE" if unfinished else verdict.status), unfinished


def load_seed_sets(root: Path, preset, scale: str) -> list[SeedSet]:
    """Every seed set of `preset` at `scale` under `root`, judged by the preset's rule; `results` is
    the table its check judges (for b-heads the analysis of every checkpoint, read back from its cache)."""
    sets = []
    for path in replication_sweeps(root, preset.name, scale):
        df = collect(SweepDir(path))
        unfinished = int((df.drop_duplicates("run")["status"] != "done").sum())
        has_results = not df.dropna(subset=["step"]).empty
        judged = df.iloc[0:0] if not has_results else preset.analyze(df, path) if preset.analyze is not None else df
        if has_results and not {"run", "seed"} <= set(judged.columns):
            raise UserError(f"{preset.name} judges a table without runs and seeds (an analysis of its models), so "
                            "seed sets cannot be merged; compare its seed sets' report.md files instead")
        _, verdict, _ = _verdict(preset, judged, unfinished)
        seeds = sorted(int(s) for s in df["seed"].unique())
        sets.append(SeedSet(path.name, seeds, judged, verdict, unfinished))
    if not sets:
        raise UserError(f"no sweep of {preset.name} at scale {scale!r} in {str(root)!r}; run "
                        f"`lengthgen repro {preset.name} --dir {root}` first")
    return sets


def union(sets: list[SeedSet]) -> pd.DataFrame:
    """The results of every seed set in one table; a seed that two sets share counts once (the first)."""
    seen: set[str] = set()
    frames = []
    for seed_set in sets:
        if seed_set.results.empty:
            continue
        df = seed_set.results[~seed_set.results["run"].isin(seen)]
        seen |= set(df["run"])
        frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["run", "seed"])


def replicated(original: str, replication: str) -> str:
    """How a replication's verdict reads against the original's."""
    if original != "PASS":
        return f"nothing to replicate (the original is {original})"
    return "replicated" if replication == "PASS" else f"not replicated ({replication})"


def seed_scores(preset, sets: list[SeedSet]) -> pd.DataFrame:
    """The preset's per-seed score for every seed of every set (columns set, point, seed, value)."""
    if preset.per_seed is None:
        return pd.DataFrame(columns=["set", "point", "seed", "value"])
    frames = [preset.per_seed.score(s.results).assign(set=s.name) for s in sets if not s.results.empty]
    if not frames:
        return pd.DataFrame(columns=["set", "point", "seed", "value"])
    return pd.concat(frames, ignore_index=True)[["set", "point", "seed", "value"]]


def score_summary(scores: pd.DataFrame, threshold: float | None) -> pd.DataFrame:
    """Per point and set (and over all seeds): every seed's value, the mean, and how many reach the threshold."""
    rows = []
    for point, by_point in scores.groupby("point", sort=False):
        for label, sub in [*by_point.groupby("set", sort=False), ("all seeds", by_point)]:
            row = {"point": point, "seeds": label, "values": ", ".join(f"{s}: {v:.3f}" for s, v in
                                                                        zip(sub["seed"], sub["value"])),
                   "best": sub["value"].max(), "mean": sub["value"].mean()}
            if threshold is not None:
                row[f"seeds >= {threshold}"] = f"{int((sub['value'] >= threshold).sum())} of {len(sub)}"
            rows.append(row)
    return pd.DataFrame(rows)


def plot_seed_scores(scores: pd.DataFrame, label: str, threshold: float | None, path: Path, title: str) -> Path:
    """One column per point: a dot per seed (coloured by seed set, numbered by seed, spread apart so
    that equal values stay visible), the mean over all seeds as a bar, the threshold as a dashed line."""
    plt = pyplot()
    points = list(dict.fromkeys(scores["point"]))
    sets = list(dict.fromkeys(scores["set"]))
    fig, ax = plt.subplots(figsize=(max(5.0, 2.8 * len(points)), 4.2), dpi=120)
    for i, point in enumerate(points):
        sub = scores[scores["point"] == point]
        ax.hlines(sub["value"].mean(), i - 0.35, i + 0.35, color="black", linewidth=2,
                  label="mean over all seeds" if i == 0 else None)
        for j, name in enumerate(sets):
            mine = sub[sub["set"] == name].reset_index(drop=True)
            centre = i + 0.3 * (j - (len(sets) - 1) / 2)
            xs = [centre + 0.06 * (m - (len(mine) - 1) / 2) for m in range(len(mine))]
            ax.scatter(xs, mine["value"], color=f"C{j}", s=28, zorder=3, label=name if i == 0 else None)
            for x, seed, value in zip(xs, mine["seed"], mine["value"]):
                ax.annotate(str(seed), (x, value), textcoords="offset points", xytext=(0, 5), fontsize=7,
                            ha="center")
    if threshold is not None:
        ax.axhline(threshold, color="grey", linestyle="--", linewidth=1, label=f"threshold {threshold}")
    ax.set_xticks(range(len(points)), [re.sub(r", (?=[\w.]+=)", "\n", p) for p in points], fontsize=7)
    ax.set_ylabel("per-seed score")
    ax.set_ylim(min(-0.05, scores["value"].min() - 0.05), max(1.1, scores["value"].max() + 0.1))
    ax.set_title(f"{title}\n{textwrap.fill(label, 70)}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return save_figure(fig, path)


def write_replication_report(root: str | Path, preset, scale: str) -> Path:
    """Write `<root>/<preset>-<scale>-replication.md` (and its plot); returns the report's path."""
    root = Path(root)
    sets = load_seed_sets(root, preset, scale)
    stem = f"{preset.name}-{scale}-replication"
    original = sets[0] if sets[0].name == f"{preset.name}-{scale}" else None
    table = pd.DataFrame([{
        "sweep": s.name, "seeds": ", ".join(map(str, s.seeds)),
        "verdict": s.verdict + (f" ({s.unfinished} runs unfinished)" if s.unfinished else ""),
        "against the original": "(original)" if s is original else
        replicated(original.verdict, s.verdict) if original is not None else "no original sweep"}
        for s in sets])
    everything = union(sets)
    all_seeds = sorted({seed for s in sets for seed in s.seeds})
    judged, verdict, unfinished = _verdict(preset, everything, sum(s.unfinished for s in sets))
    lines = [f"# {preset.name} at {scale} scale: every seed set", "", f"**Claim ({preset.claim_id}).** {preset.claim}",
             "", "Each seed set is its own sweep, judged by the preset's rule as its report.md does:", "",
             markdown_table(table), "",
             f"**The same rule over all {len(all_seeds)} seeds ({', '.join(map(str, all_seeds))}): {verdict}**"
             + (f" ({unfinished} runs unfinished)" if unfinished else ""), "",
             preset.per_seed.union_note if preset.per_seed is not None else UNION_NOTE, ""]
    if judged is not None:
        lines += [f"Rule: {judged.rule}", "", markdown_table(judged.numbers), ""]
    scores = seed_scores(preset, sets)
    if not scores.empty:
        per_seed = preset.per_seed
        plot = plot_seed_scores(scores, per_seed.label, per_seed.threshold, root / f"{stem}.png",
                                f"{preset.name}: every seed")
        lines += ["## Every seed", "", f"{per_seed.label[0].upper()}{per_seed.label[1:]}.", "",
                  markdown_table(score_summary(scores, per_seed.threshold)), "", f"![every seed]({plot.name})", ""]
    path = root / f"{stem}.md"
    atomic_write_text(path, "\n".join(lines))
    return path
