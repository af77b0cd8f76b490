"""Plots of sweeps (matplotlib, PNG): length curves over seeds, curves over steps, heatmaps, the overview.

A single run's curve (eval.png) is `store.eval_plot`."""

from __future__ import annotations

from pathlib import Path

from ..optional import pyplot
from ..store.eval_plot import finish_axes, save_figure
from .aggregate import final, grid_columns, point_label

LEGEND_WIDTH = 48  # characters per legend line: a panel is about 5 inches wide


def varying_keys(rows, keys: list[str]) -> list[str]:
    """The grid keys whose value differs between the rows' points: what a legend must name (a key that
    is the same for every line of a panel, such as the task of a per-task panel, only lengthens it)."""
    varying = [k for k in keys if rows[k].astype(str).nunique(dropna=False) > 1]
    return varying or keys


def plot_sweep_lengths(df, path: Path, title: str = "") -> Path:
    """Exact match vs length per task at each run's final step: thin line per seed, thick mean.

    One panel per task, one colour per grid point, dashed verticals at the training maxima.
    """
    plt = pyplot()
    keys = grid_columns(df)
    last = final(df)
    tasks = list(dict.fromkeys(last["task"]))
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.2 * len(tasks), 3.8), dpi=120, squeeze=False)
    for ax, task in zip(axes[0], tasks):
        sub = last[last["task"] == task]
        groups = sub.groupby(keys, dropna=False, sort=False) if keys else [((), sub)]
        shown = varying_keys(sub, keys)
        for i, (_, point) in enumerate(groups):
            color = f"C{i % 10}"
            for _, seed_rows in point.groupby("seed"):
                seed_rows = seed_rows.sort_values("length")
                ax.plot(seed_rows["length"], seed_rows["exact_match"], color=color, alpha=0.35, linewidth=0.8)
            mean = point.groupby("length")["exact_match"].mean()
            label = point_label(point.iloc[0], shown, LEGEND_WIDTH)
            ax.plot(mean.index, mean.values, color=color, linewidth=2, label=label)
            ax.axvline(point["train_max"].iloc[0], color=color, linestyle="--", linewidth=1, alpha=0.7)
        finish_axes(ax, "length", f"{title + ': ' if title else ''}{task}")
        ax.legend(fontsize=7)
    return save_figure(fig, path)


def plot_sweep_steps(df, lengths: list[int], path: Path, title: str = "") -> Path:
    """Exact match vs training step at chosen lengths, one thin line per seed (seed instability)."""
    plt = pyplot()
    keys = grid_columns(df)
    data = df.dropna(subset=["step"])
    tasks = list(dict.fromkeys(data["task"]))
    fig, axes = plt.subplots(len(tasks), len(lengths), figsize=(4.2 * len(lengths), 3.2 * len(tasks)), dpi=110,
                             squeeze=False)
    for r, task in enumerate(tasks):
        for c, length in enumerate(lengths):
            ax = axes[r][c]
            sub = data[(data["task"] == task) & (data["length"] == length)]
            groups = sub.groupby(keys, dropna=False, sort=False) if keys else [((), sub)]
            shown = varying_keys(sub, keys)
            for i, (_, point) in enumerate(groups):
                for j, (_, seed_rows) in enumerate(point.groupby("seed")):
                    seed_rows = seed_rows.sort_values("step")
                    label = point_label(point.iloc[0], shown, LEGEND_WIDTH) if j == 0 else None
                    ax.plot(seed_rows["step"], seed_rows["exact_match"], color=f"C{i % 10}", alpha=0.6,
                            linewidth=1, marker=".", label=label)
            finish_axes(ax, "step", f"{task}, length {length}")
    # One legend, on the first panel with lines: a task may have no rows at the first length (a-ppc).
    labelled = [ax for ax in axes.flat if ax.get_legend_handles_labels()[0]]
    if labelled:
        labelled[0].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def _draw_heatmap(fig, ax, table, fmt: str, cmap: str, vmin: float | None = None, vmax: float | None = None) -> None:
    """One labelled heatmap of a 2-D pandas table on `ax`, values written in the cells."""
    import numpy as np

    values = table.to_numpy(dtype=float)
    if vmin is None:
        vmin = np.nanmin(values) if np.isfinite(values).any() else 0
    image = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    ax.set_xticks(range(values.shape[1]), [str(c) for c in table.columns])
    ax.set_yticks(range(values.shape[0]), [str(i) for i in table.index])
    ax.set_xlabel(str(table.columns.name or ""))
    ax.set_ylabel(str(table.index.name or ""))
    for (i, j), value in np.ndenumerate(values):
        if np.isfinite(value):
            ax.text(j, i, fmt.format(value), ha="center", va="center", fontsize=8, color="white")
    fig.colorbar(image, ax=ax)


def plot_overview(panels: list[tuple[str, object]], path: Path, ncols: int = 4) -> Path:
    """Small multiples, one panel per (title, results table): the table's first task's exact match vs
    length at the final step, mean over seeds per grid point (at most 6 lines), training maxima
    dashed. Tables without results leave an empty panel with the title."""
    plt = pyplot()
    nrows = max(1, -(-len(panels) // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.0 * ncols, 2.9 * nrows), dpi=100, squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    for ax, (title, df) in zip(axes.flat, panels):
        last = final(df) if df is not None and not df.dropna(subset=["step"]).empty else None
        if last is None or last.empty:
            ax.text(0.5, 0.5, "no finished runs", ha="center", va="center", transform=ax.transAxes, fontsize=8)
            finish_axes(ax, "length", title)
            continue
        task = last["task"].iloc[0]
        sub, keys = last[last["task"] == task], grid_columns(df)
        groups = list(sub.groupby(keys, dropna=False, sort=False)) if keys else [((), sub)]
        for i, (point, group) in enumerate(groups[:6]):
            curve = group.groupby("length")["exact_match"].mean()
            label = point_label(group.iloc[0], keys, LEGEND_WIDTH) if keys else "all runs"
            ax.plot(curve.index, curve.values, marker="o", ms=2, lw=1.2, color=f"C{i}", label=label[:40])
        for top in sorted(set(sub["train_max"].dropna())):
            ax.axvline(top, color="grey", linestyle="--", linewidth=1)
        finish_axes(ax, f"length ({task})", title)
        ax.title.set_fontsize(8)
        ax.legend(fontsize=5, loc="best")
    return save_figure(fig, path)


def plot_heatmap(table, path: Path, title: str, fmt: str = "{:.2f}", cmap: str = "viridis_r") -> Path:
    """A labelled heatmap of a 2-D pandas table (rows x columns), values written in the cells."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(1.1 * table.shape[1] + 2.5, 0.8 * table.shape[0] + 1.8), dpi=120)
    _draw_heatmap(fig, ax, table, fmt, cmap)
    ax.set_title(title, fontsize=10)
    return save_figure(fig, path)


def plot_heatmaps(panels: dict, path: Path, title: str, ncols: int = 2, fmt: str = "{:.2f}",
                  cmap: str = "viridis") -> Path:
    """Several heatmaps (panel title -> 2-D table) on one shared colour scale, `ncols` per row."""
    import numpy as np

    plt = pyplot()
    tables = list(panels.values())
    finite = [t.to_numpy(dtype=float) for t in tables if t.size and np.isfinite(t.to_numpy(dtype=float)).any()]
    lo = min((float(np.nanmin(v)) for v in finite), default=0.0)
    hi = max((float(np.nanmax(v)) for v in finite), default=1.0)
    ncols = max(1, min(ncols, len(tables)))
    nrows = -(-len(tables) // ncols)
    rows = max((t.shape[0] for t in tables), default=1)
    cols = max((t.shape[1] for t in tables), default=1)
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * (0.7 * cols + 2.8), nrows * (0.45 * rows + 1.6)),
                             dpi=110, squeeze=False)
    for ax, (name, table) in zip(axes.flat, panels.items()):
        if table.size:
            _draw_heatmap(fig, ax, table, fmt, cmap, lo, max(hi, lo + 1e-9))
        ax.set_title(str(name), fontsize=8)
    for ax in list(axes.flat)[len(tables):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def plot_tracking(panels: dict, path: Path, title: str, ncols: int = 3, fit: float | None = None) -> Path:
    """Per panel (title -> a table with step, gap, map_distance, attention_diff): the gap and the map
    distance against the left axis, the attention difference against the right one. With `fit`, the
    checkpoints where main_fit and aux_fit are both >= fit are shaded (b-heads' rule looks only there)."""
    plt = pyplot()
    ncols = max(1, min(ncols, len(panels)))
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 3.2 * nrows), dpi=110, squeeze=False)
    for ax, (name, table) in zip(axes.flat, panels.items()):
        table = table.sort_values("step")
        ax.plot(table["step"], table["gap"], marker="o", ms=3, color="C0", label="gap")
        ax.plot(table["step"], table["map_distance"], marker="s", ms=3, color="C1", label="map distance")
        if "map_distance_in" in table:
            ax.plot(table["step"], table["map_distance_in"], marker="s", ms=3, color="C3", linestyle=":",
                    label="map distance, lengths <= L_main")
        if fit is not None and {"main_fit", "aux_fit"} <= set(table.columns):
            steps = table["step"].tolist()
            fitted = ((table["main_fit"] >= fit) & (table["aux_fit"] >= fit)).tolist()
            # Each fitted checkpoint shaded on its own, half-way to its neighbours: a dip is visible as a gap.
            for i, (step, inside) in enumerate(zip(steps, fitted)):
                if inside:
                    left = (steps[i - 1] + step) / 2 if i else step - (steps[1] - step if len(steps) > 1 else 1) / 2
                    right = (step + steps[i + 1]) / 2 if i + 1 < len(steps) else step + (step - left)
                    ax.axvspan(left, right, color="grey", alpha=0.12, linewidth=0,
                               label=f"both tasks fit (>= {fit})" if not ax.patches else None)
        ax.set_xlabel("step")
        ax.set_ylabel("gap, map distance")
        ax.grid(alpha=0.3)
        right = ax.twinx()
        right.plot(table["step"], table["attention_diff"], marker="^", ms=3, color="C2", linestyle="--",
                   label="attention difference")
        right.set_ylabel("attention difference")
        ax.set_title(str(name), fontsize=8)
        handles = ax.get_lines() + ax.patches[:1] + right.get_lines()
        ax.legend(handles, [handle.get_label() for handle in handles], fontsize=6, loc="best")
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)
