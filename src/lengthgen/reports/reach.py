"""How far a main task reaches past its training lengths, per run, and how that moves with a knob
of the sweep (`lengthgen sweep|report --reach MAIN`; issue 29's transfer vs budget).

Per grid point and seed, at each finished run's final step:
  band      mean exact match of MAIN over the evaluated lengths in (L_main, L_aux], Paper B's
            transfer band (L_main: MAIN's training maximum; L_aux: the longest training maximum of
            any other task in the sweep, so a run of MAIN alone is scored on the same band)
  furthest  the longest evaluated length up to which every evaluated length of MAIN has exact
            match >= the threshold (0 when the shortest already misses): a reach that one lucky
            long length cannot fake
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..errors import UserError
from ..optional import pyplot
from ..store.eval_plot import save_figure
from ..store.fileio import atomic_write_text
from .aggregate import final, grid_columns, point_label
from .plots import LEGEND_WIDTH, varying_keys
from .tables import markdown_table

REACH = 0.5  # exact match a length must reach to count as reached


def furthest_length(curve: pd.Series, threshold: float = REACH) -> int:
    """The longest length of `curve` (exact match indexed by length) up to which every length is
    at or above `threshold`; 0 if the shortest is below it."""
    reached = 0
    for length, value in curve.sort_index().items():
        if value < threshold:
            break
        reached = int(length)
    return reached


def check_reach_tasks(spec, mains: list[str]) -> None:
    """Before anything trains or is reported: every MAIN is a task of the sweep `spec` and some other
    task of it is trained longer (else there is no band). A one-line UserError otherwise."""
    from ..sweeps.spec import expand  # the sweeps package imports reports; import at call time

    longest: dict[str, int] = {}
    for plan in expand(spec):
        for entry in plan.config.data.resolved_tasks():
            longest[entry.task] = max(longest.get(entry.task, 0), entry.lengths[1])
    for main in mains:
        if main not in longest:
            raise UserError(f"--reach {main!r}: not a task of this sweep (tasks: {', '.join(sorted(longest))})")
        if not any(n > longest[main] for task, n in longest.items() if task != main):
            raise UserError(f"--reach {main!r}: no other task is trained beyond its {longest[main]}, so there is "
                            "no band")


def reach_table(df: pd.DataFrame, main: str, threshold: float = REACH) -> pd.DataFrame:
    """One row per grid point and seed: L_main, L_aux, the band score and the furthest length of
    `main` (module docstring). A one-line UserError when `main` has no results or no longer-trained
    task shares the sweep."""
    last = final(df)
    if not (last["task"] == main).any():
        tasks = ", ".join(sorted(set(last["task"]))) or "none finished"
        raise UserError(f"--reach {main!r}: no finished run evaluates that task (tasks: {tasks})")
    others = last.loc[last["task"] != main, "train_max"]
    l_main = int(last.loc[last["task"] == main, "train_max"].max())
    l_aux = int(others.max()) if not others.empty else l_main
    if l_aux <= l_main:
        raise UserError(f"--reach {main!r}: no other task is trained beyond its {l_main}, so there is no band")
    keys = grid_columns(df)
    rows = []
    for _, run in last[last["task"] == main].groupby("run", sort=False):
        curve = run.groupby("length")["exact_match"].mean()
        band = curve[(curve.index > l_main) & (curve.index <= l_aux)]
        first = run.iloc[0]
        rows.append({**{k: first[k] for k in keys}, "seed": first["seed"], "L_main": l_main, "L_aux": l_aux,
                     "band": float(band.mean()) if not band.empty else float("nan"),
                     "furthest": furthest_length(curve, threshold)})
    return pd.DataFrame(rows).sort_values([*keys, "seed"], kind="stable", ignore_index=True)


def plot_reach(table: pd.DataFrame, x: str, path: Path, title: str = "") -> Path:
    """Band score and furthest length against the grid key `x`: a dot per seed, the mean as a line,
    one colour per combination of the other grid keys that vary; L_main and L_aux as dashed lines."""
    plt = pyplot()
    keys = [k for k in grid_columns(table) if k != x]
    shown = varying_keys(table, keys) if keys else []
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 3.8), dpi=120)
    groups = table.groupby(shown, dropna=False, sort=False) if shown else [((), table)]
    for i, (_, rows) in enumerate(groups):
        color = f"C{i % 10}"
        label = point_label(rows.iloc[0], shown, LEGEND_WIDTH) if shown else "all runs"
        for ax, metric in zip(axes, ("band", "furthest")):
            ax.scatter(rows[x], rows[metric], color=color, alpha=0.45, s=18)
            mean = rows.groupby(x)[metric].mean()
            ax.plot(mean.index, mean.values, color=color, linewidth=2, marker="o", label=label)
    l_main, l_aux = int(table["L_main"].iloc[0]), int(table["L_aux"].iloc[0])
    for line in (l_main, l_aux):
        axes[1].axhline(line, color="grey", linestyle="--", linewidth=1)
    axes[0].set_ylim(-0.02, 1.02)
    axes[0].set_ylabel(f"exact match over ({l_main}, {l_aux}]")
    axes[1].set_ylabel("furthest length reached")
    numeric = (pd.api.types.is_numeric_dtype(table[x]) and not pd.api.types.is_bool_dtype(table[x])
               and table[x].min() > 0)
    for ax, name in zip(axes, ("band score", f"furthest length (exact match >= {REACH} up to it)")):
        if numeric and table[x].max() / table[x].min() >= 4:
            ax.set_xscale("log")
            ax.minorticks_off()  # the swept values themselves label the axis, not 3x10^3
        if numeric:
            values = sorted(table[x].dropna().unique())
            ax.set_xticks(values, [f"{v:g}" for v in values])
        ax.set_xlabel(x)
        ax.set_title(f"{title + ': ' if title else ''}{name}", fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    return save_figure(fig, path)


def reach_x(table: pd.DataFrame) -> str | None:
    """The grid key to put on the x axis: the first numeric key with several values (train.steps in
    a budget sweep), else the first key with several values; None if nothing varies."""
    keys = grid_columns(table)
    several = [k for k in keys if table[k].nunique(dropna=True) > 1]
    numeric = [k for k in several
               if pd.api.types.is_numeric_dtype(table[k]) and not pd.api.types.is_bool_dtype(table[k])]
    return (numeric or several or [None])[0]


def reach_section(df: pd.DataFrame, main: str, sweep_path: Path) -> list[str]:
    """Report lines for `--reach MAIN`: every seed's band score and furthest length, the mean and
    range per grid point, and `reach_<main>.png` (and `reach_<main>.csv`) in the sweep directory."""
    try:
        table = reach_table(df, main)
    except UserError as error:  # a sweep still under way: say so, and keep the rest of the report
        return [f"## How far {main} reaches", "", f"Nothing to score yet: {error}.", ""]
    atomic_write_text(Path(sweep_path) / f"reach_{main}.csv", table.to_csv(index=False))
    keys = grid_columns(table)
    summary = (table.groupby(keys, dropna=False, sort=False)
               .agg(seeds=("seed", "count"), band_mean=("band", "mean"), band_min=("band", "min"),
                    band_max=("band", "max"), furthest_mean=("furthest", "mean"), furthest_min=("furthest", "min"),
                    furthest_max=("furthest", "max")).reset_index()) if keys else table
    lines = [f"## How far {main} reaches", "",
             f"Band: exact match over ({table['L_main'].iloc[0]}, {table['L_aux'].iloc[0]}]; furthest: the longest "
             f"evaluated length up to which every length scores >= {REACH}. Per seed in `reach_{main}.csv`.", "",
             markdown_table(summary), "", markdown_table(table), ""]
    x = reach_x(table)
    if x is not None:
        name = f"reach_{main}.png"
        plot_reach(table, x, Path(sweep_path) / name, title=main)
        lines += [f"![reach]({name})", ""]
    return lines
