"""Plots (matplotlib, PNG): length curves of a run or a sweep, curves over steps, heatmaps."""

from __future__ import annotations

from pathlib import Path

from .evaluate import EvalRow


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_length_curve(rows: list[EvalRow], train_max: dict[str, int], path: Path, title: str = "") -> Path:
    """One run: exact match vs length at the latest evaluated step, one line per task."""
    plt = _pyplot()
    step = max(r.step for r in rows)
    latest = [r for r in rows if r.step == step]
    fig, ax = plt.subplots(figsize=(6.4, 3.8), dpi=120)
    for i, task in enumerate(dict.fromkeys(r.task for r in latest)):
        points = sorted((r.length, r.exact_match) for r in latest if r.task == task)
        color = f"C{i}"
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", ms=3, color=color, label=task)
        if task in train_max:
            ax.axvline(train_max[task], color=color, linestyle="--", linewidth=1, alpha=0.7)
    _finish(ax, "length", f"{title + ': ' if title else ''}step {step} (dashed: max training length)")
    return save_figure(fig, path)


def _finish(ax, xlabel: str, title: str, ylim: bool = True) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel("exact match")
    if ylim:
        ax.set_ylim(-0.02, 1.02)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)


def save_figure(fig, path: Path) -> Path:
    """Write a figure atomically and free it."""
    from .fileio import atomic_path

    fig.tight_layout()
    with atomic_path(Path(path)) as tmp:  # a killed report never leaves half a PNG
        fig.savefig(tmp, format=Path(path).suffix.lstrip(".") or "png")
    fig.clear()
    _pyplot().close(fig)
    return path


def plot_sweep_lengths(df, path: Path, title: str = "") -> Path:
    """Exact match vs length per task at each run's final step: thin line per seed, thick mean.

    One panel per task, one colour per grid point, dashed verticals at the training maxima.
    """
    from .aggregate import final, grid_columns, point_label

    plt = _pyplot()
    keys = grid_columns(df)
    last = final(df)
    tasks = list(dict.fromkeys(last["task"]))
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.2 * len(tasks), 3.8), dpi=120, squeeze=False)
    for ax, task in zip(axes[0], tasks):
        sub = last[last["task"] == task]
        groups = sub.groupby(keys, dropna=False, sort=False) if keys else [((), sub)]
        for i, (_, point) in enumerate(groups):
            color = f"C{i % 10}"
            for _, seed_rows in point.groupby("seed"):
                seed_rows = seed_rows.sort_values("length")
                ax.plot(seed_rows["length"], seed_rows["exact_match"], color=color, alpha=0.35, linewidth=0.8)
            mean = point.groupby("length")["exact_match"].mean()
            ax.plot(mean.index, mean.values, color=color, linewidth=2, label=point_label(point.iloc[0], keys))
            ax.axvline(point["train_max"].iloc[0], color=color, linestyle="--", linewidth=1, alpha=0.7)
        _finish(ax, "length", f"{title + ': ' if title else ''}{task}")
        ax.legend(fontsize=7)
    return save_figure(fig, path)


def plot_sweep_steps(df, lengths: list[int], path: Path, title: str = "") -> Path:
    """Exact match vs training step at chosen lengths, one thin line per seed (seed instability)."""
    from .aggregate import grid_columns, point_label

    plt = _pyplot()
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
            for i, (_, point) in enumerate(groups):
                for j, (_, seed_rows) in enumerate(point.groupby("seed")):
                    seed_rows = seed_rows.sort_values("step")
                    label = point_label(point.iloc[0], keys) if j == 0 else None
                    ax.plot(seed_rows["step"], seed_rows["exact_match"], color=f"C{i % 10}", alpha=0.6,
                            linewidth=1, marker=".", label=label)
            _finish(ax, "step", f"{task}, length {length}")
            if r == 0 and c == 0:
                ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def plot_heatmap(table, path: Path, title: str, fmt: str = "{:.2f}", cmap: str = "viridis_r") -> Path:
    """A labelled heatmap of a 2-D pandas table (rows x columns), values written in the cells."""
    import numpy as np

    plt = _pyplot()
    values = table.to_numpy(dtype=float)
    fig, ax = plt.subplots(figsize=(1.1 * values.shape[1] + 2.5, 0.8 * values.shape[0] + 1.8), dpi=120)
    image = ax.imshow(values, cmap=cmap, vmin=np.nanmin(values) if np.isfinite(values).any() else 0, aspect="auto")
    ax.set_xticks(range(values.shape[1]), [str(c) for c in table.columns])
    ax.set_yticks(range(values.shape[0]), [str(i) for i in table.index])
    ax.set_xlabel(str(table.columns.name or ""))
    ax.set_ylabel(str(table.index.name or ""))
    for (i, j), value in np.ndenumerate(values):
        if np.isfinite(value):
            ax.text(j, i, fmt.format(value), ha="center", va="center", fontsize=8, color="white")
    fig.colorbar(image, ax=ax)
    ax.set_title(title, fontsize=10)
    return save_figure(fig, path)
