"""What every preset is made of: the Preset and Verdict records, the registry, shared scoring.

A preset module builds `Preset` objects and registers them with `register_preset`; the package
imports every preset module, so `PRESETS` is full once `lengthgen.presets` is imported.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd

from ..errors import UserError, choices_error
from ..registry import Registry
from ..reports.aggregate import final, grid_columns
from ..reports.tables import markdown_table
from ..sweeps.spec import SweepSpec, parse_spec


@dataclass(frozen=True)
class Verdict:
    """PASS, FAIL or INCONCLUSIVE, the rule that decided it, and the numbers behind it."""

    status: str
    rule: str
    numbers: pd.DataFrame

    def __post_init__(self):
        if self.status not in ("PASS", "FAIL", "INCONCLUSIVE"):
            raise ValueError(f"bad verdict {self.status!r}")


@dataclass(frozen=True)
class SeedScore:
    """What one seed contributes to a preset's verdict, for the replication report's per-seed plot."""

    label: str  # what the number is, e.g. "transfer effect over (L_main, L_aux]"
    # fn(results table) -> one row per (point, seed): columns point (a label), seed, value.
    score: Callable[[pd.DataFrame], pd.DataFrame]
    threshold: float | None = None  # the value a seed must reach to count (drawn as a line)
    # How the preset's rule reads over the union of seed sets (a sentence of the replication report).
    union_note: str = ("Over the union the rule's best seed is the best of every seed, which is more lenient than "
                       "any one set; read it with the per-seed numbers below.")


@dataclass(frozen=True)
class Preset:
    """A claim, its sweeps by scale, and its check."""

    name: str
    claim_id: str
    claim: str
    scales: dict[str, dict]
    check: Callable[[pd.DataFrame], Verdict]
    # Lengths of the steps plot: fixed, or a function of the results table (say, just past the main task's
    # training length as the runs trained it, so that a rerun at other lengths, `repro --set`, is plotted
    # at its own).
    step_lengths: list[int] | Callable[[pd.DataFrame], list[int]] = field(default_factory=list)
    # Optional extra report sections: fn(results table, sweep directory) -> markdown lines.
    extra_report: Callable[[pd.DataFrame, object], list[str]] | None = None
    # Optional analysis of the finished runs (b-heads: head maps at every checkpoint):
    # fn(results table, sweep directory) -> the table `check` judges instead of the results.
    analyze: Callable[[pd.DataFrame, object], pd.DataFrame] | None = None
    # Optional step run by `lengthgen repro` before the sweep, under the sweep's lock:
    # fn(scale, sweep directory). b-pretrained pretrains and exports the models its points name
    # through `{sweep_dir}` (see lengthgen.sweeps.spec); it must reuse what an earlier call finished.
    prepare: Callable[[str, Path], None] | None = None
    # Optional per-seed score shown by the replication report (`lengthgen repro NAME --replication`).
    per_seed: SeedScore | None = None

    def spec(self, scale: str, seeds: list[int] | None = None, overrides: list[str] | None = None) -> SweepSpec:
        """The sweep spec at a scale, optionally with other seeds (a seed set other than the scale's own is
        a replication named by `replication_name`) and with dotted overrides `KEY=VALUE` applied to every
        run (a variant: a sweep of its own, named `variant_name`). An override wins over the grid points:
        a point or grid key equal to an override's key is dropped. A scale may be given as a
        function returning its tree, for sweeps that depend on files outside the repository
        (b-pretrained at paper scale: a list of checkpoints on disk); it is called here."""
        if scale not in self.scales:
            raise choices_error("scale", scale, self.scales)
        tree = self.scales[scale]
        tree = copy.deepcopy(tree() if callable(tree) else tree)
        tree["name"] = f"{self.name}-{scale}"
        if seeds is not None and sorted(seeds) != sorted(tree.get("seeds", [])):
            # Any other seed set (fresh seeds, or some of the preset's own) is a sweep of its own beside the
            # original, never mixed into it: the original's directory holds exactly the preset's seeds, so a
            # rerun on a subset can neither clash with it nor, with --force, replace it. Runs the two share
            # are copied, not trained again (repro reuses the sweeps beside its own).
            tree["name"] = replication_name(self.name, scale, seeds)
            tree["seeds"] = list(seeds)
        if overrides:
            keys = {override_key(o) for o in overrides}
            if "points" in tree:
                tree["points"] = [{k: v for k, v in point.items() if k not in keys} for point in tree["points"]]
            if "grid" in tree:
                tree["grid"] = {k: v for k, v in tree["grid"].items() if k not in keys}
            tree["overrides"] = [*tree.get("overrides", []), *overrides]
            tree["name"] = variant_name(tree["name"], overrides)
        return parse_spec(tree)


def replication_name(preset: str, scale: str, seeds: list[int]) -> str:
    """The sweep name of a preset rerun on other seeds than its own: `<preset>-<scale>-seeds-3-4-5`."""
    return f"{preset}-{scale}-seeds-" + "-".join(str(s) for s in seeds)


def override_key(override: str) -> str:
    """The dotted key of a `KEY=VALUE` override (a UserError for anything else)."""
    key, sep, _ = override.partition("=")
    if not sep or not key.strip():
        raise UserError(f"override {override!r} must be KEY=VALUE, e.g. data.tasks.0.lengths=[1,12]")
    return key.strip()


def variant_name(sweep: str, overrides: list[str]) -> str:
    """The sweep name of a preset run with overrides: `<sweep>-set-<first 8 hex digits of their hash>`
    (the overrides themselves are in its sweep.yaml)."""
    return f"{sweep}-set-" + hashlib.sha256("\n".join(overrides).encode()).hexdigest()[:8]


def verdict_section(title: str, verdict: Verdict, with_table: bool = True) -> list[str]:
    """Markdown lines for a preset's second rule or comparison, shown in its report beside the main
    verdict (which it never changes): title, its own verdict, its rule, its numbers."""
    lines = [f"## {title}", "", f"**Verdict of this rule: {verdict.status}**", "", f"Rule: {verdict.rule}", ""]
    if with_table:
        lines += [markdown_table(verdict.numbers) if not verdict.numbers.empty else "(no numbers)", ""]
    return lines


PRESETS = Registry("preset")


def register_preset(preset: Preset) -> Preset:
    """Make a preset available to `lengthgen repro` (under its `name`)."""
    return PRESETS.register(preset.name)(preset)


def get_preset(name: str) -> Preset:
    """The preset registered under `name` (a UserError naming the valid ones otherwise)."""
    return PRESETS.lookup(name)


def preset_of(sweep_path: str | Path) -> Preset | None:
    """The preset a sweep directory was made by (`lengthgen repro` writes `preset.json`), or None."""
    path = Path(sweep_path) / "preset.json"
    if not path.is_file():
        return None
    return get_preset(json.loads(path.read_text())["name"])


def band_scores(df: pd.DataFrame, task: str, lengths: list[int]) -> pd.DataFrame:
    """Per grid point and seed: mean exact match of `task` over `lengths` at the final step."""
    keys = grid_columns(df)
    last = final(df)
    sub = last[(last["task"] == task) & (last["length"].isin(lengths))]
    if sub.empty:
        raise UserError(f"no results for task {task!r} at lengths {lengths}")
    return sub.groupby(keys + ["seed"], dropna=False)["exact_match"].mean().reset_index()


def train_maxima(df: pd.DataFrame, tasks, defaults: dict[str, int] | int) -> dict[str, int]:
    """Each task's longest training length L as the runs trained it (the results table's `train_max`),
    else `defaults` (a number for every task, or one per task) where the table does not say. Checks
    read L here rather than restating their config, so that they judge a rerun at other lengths."""
    out = {}
    for task in tasks:
        known = df.loc[df["task"] == task, "train_max"].dropna() if "train_max" in df else pd.Series(dtype=float)
        fallback = defaults if isinstance(defaults, int) else defaults[task]
        out[task] = int(known.max()) if not known.empty else fallback
    return out


def _train_max_of(df: pd.DataFrame, task: str | None) -> int | None:
    """The training length of `task` in the results (the shortest there when no task is named), or None."""
    rows = df if task is None or "task" not in df else df[df["task"] == task]
    known = rows["train_max"].dropna() if "train_max" in rows else pd.Series(dtype=float)
    return None if known.empty else int(known.min())


def at_train_max(lengths_of: Callable[[int], list[int]],
                 task: str | None = None) -> Callable[[pd.DataFrame], list[int]]:
    """Steps-plot lengths as a function of L, the training length of `task` as the runs trained it (the
    shortest training length in the results when no task is named); none when L is unknown."""
    def lengths(df: pd.DataFrame) -> list[int]:
        top = _train_max_of(df, task)
        return [] if top is None else lengths_of(top)

    return lengths


def evaluated_lengths(df: pd.DataFrame, task: str) -> list[int]:
    """The lengths at which `task` was evaluated, sorted."""
    return sorted(set(df.loc[df["task"] == task, "length"].dropna().astype(int)))


def best_over_seeds(scores: pd.DataFrame, column: str = "exact_match") -> pd.DataFrame:
    """Per grid point: best, mean and every seed's score (the report shows all of them)."""
    keys = [c for c in scores.columns if c not in ("seed", column)]
    rows = []
    for point, group in scores.groupby(keys, dropna=False, sort=False) if keys else [((), scores)]:
        point = point if isinstance(point, tuple) else (point,)
        seeds = ", ".join(f"{s}: {v:.3f}" for s, v in zip(group["seed"], group[column]))
        rows.append({**dict(zip(keys, point)), "best": group[column].max(), "mean": group[column].mean(),
                     "seeds": seeds})
    return pd.DataFrame(rows)
