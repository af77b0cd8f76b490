"""A run's own figure, eval.png: exact match vs length at the latest evaluated step.

Drawn by the trainer when a run ends and by `lengthgen eval`; the sweep-level plots
(`reports.plots`) reuse its helpers. matplotlib is imported on first use (`optional.pyplot`).
"""

from __future__ import annotations

from pathlib import Path

from ..evaluate import EvalRow
from ..optional import pyplot
from .fileio import atomic_path


def plot_length_curve(rows: list[EvalRow], train_max: dict[str, int], path: Path, title: str = "") -> Path:
    """One run: exact match vs length at the latest evaluated step, one line per task."""
    plt = pyplot()
    step = max(r.step for r in rows)
    latest = [r for r in rows if r.step == step]
    fig, ax = plt.subplots(figsize=(6.4, 3.8), dpi=120)
    for i, task in enumerate(dict.fromkeys(r.task for r in latest)):
        points = sorted((r.length, r.exact_match) for r in latest if r.task == task)
        color = f"C{i}"
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", ms=3, color=color, label=task)
        if task in train_max:
            ax.axvline(train_max[task], color=color, linestyle="--", linewidth=1, alpha=0.7)
    finish_axes(ax, "length", f"{title + ': ' if title else ''}step {step} (dashed: max training length)")
    return save_figure(fig, path)


def finish_axes(ax, xlabel: str, title: str, ylim: bool = True) -> None:
    """Axis labels, the 0-1 range, the title and a light grid, as every plot here has them."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel("exact match")
    if ylim:
        ax.set_ylim(-0.02, 1.02)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)


def save_figure(fig, path: Path) -> Path:
    """Write a figure atomically and free it."""
    fig.tight_layout()
    with atomic_path(Path(path)) as tmp:  # a killed report never leaves half a PNG
        fig.savefig(tmp, format=Path(path).suffix.lstrip(".") or "png")
    fig.clear()
    pyplot().close(fig)
    return path
