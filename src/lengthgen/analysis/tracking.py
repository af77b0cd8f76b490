"""A run's heads across its checkpoints: ablation maps and attention differences of a main /
auxiliary pair next to the generalization gap, their correlations over checkpoints, and plots
(`lengthgen heads RUN`).

Per checkpoint, over the analysed lengths:
  map of a task    per (layer, head), the exact-match drop when that head alone is ablated
                   (analysis.ablation), averaged over the lengths the task can make
  map_distance     mean over heads of |map_main - map_aux| (PAPERS.md B4's "mean absolute
                   difference between the main and aux maps")
  attention_diff   mean over heads of the attention difference on matched prompts
                   (analysis.attention)
  gap              Paper B's generalization gap (aggregate.generalization_gap): mean over the
                   lengths of |exact match aux - exact match main|, from the unablated scores
  map_distance_in, attention_diff_in   the same over the analysed lengths <= L_main only, where
                   both tasks are trained: beyond L_main a main task that fails has exact match
                   ~0, so no ablation can drop it and map_distance partly restates the gap there
  main_fit, aux_fit  exact match over the analysed lengths <= each task's training maximum
  main_band        the main task's exact match over (L_main, L_aux] (NaN if no such length)
Default lengths: the run's evaluation lengths up to the longer training maximum of the pair.
Correlations (Pearson and Spearman) of map_distance and of attention_diff with the gap are
taken over the analysed checkpoints.

`analyze_run` writes RUN/heads/: settings.json, maps.csv, attention.csv, tracking.csv,
correlations.csv, curves.png, maps.png (the final checkpoint) and maps_steps.png (every
checkpoint). The same settings and checkpoints again read those files instead of recomputing.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from ..config import MAX_COUNT
from ..errors import UserError
from ..experiment import build_experiment
from ..reports.aggregate import generalization_gap
from ..reports.plots import plot_heatmaps, plot_tracking
from ..runtime import in_processes, set_threads
from ..store.checkpoint import checkpoint_dirs, checkpoint_step, find_checkpoint, load_weights
from ..store.fileio import atomic_write_text
from ..store.rundir import RunDir
from ..vocab import Vocab
from .ablation import ABLATIONS, REF_N, EvalSetup, ablation_map, check_hooked, head_map
from .attention import SPANS, attention_difference
from .stats import pearson, spearman

HEADS_DIR = "heads"
FILES = ("maps", "attention", "tracking", "correlations")
METRICS = ("map_distance", "attention_diff", "map_distance_in", "attention_diff_in")
FORMAT = 2  # of the stored results; older ones are recomputed


@dataclass(frozen=True)
class HeadSettings:
    """What `analyze_run` analyses: the pair (main first), lengths, examples per set, ablation, span."""

    main: str
    aux: str
    lengths: tuple[int, ...]
    n: int = REF_N
    kind: str = "mean"
    span: str = "sequence"

    def as_dict(self) -> dict:
        """JSON-ready fields."""
        return {**asdict(self), "lengths": list(self.lengths)}


def resolve_settings(cfg, tasks: list[str] | None = None, lengths: list[int] | None = None, n: int = REF_N,
                     kind: str = "mean", span: str = "sequence") -> HeadSettings:
    """Settings for a run's config: the pair defaults to its first two tasks (main, first
    auxiliary), the lengths to its evaluation lengths up to the pair's longer training maximum.
    Every problem is a one-line UserError."""
    maxima = {entry.task: entry.lengths[1] for entry in cfg.data.resolved_tasks()}
    if tasks is None:
        if len(maxima) < 2:
            raise UserError(f"head tracking compares two tasks, and this run trains one ({', '.join(maxima)})")
        tasks = list(maxima)[:2]
    if len(tasks) != 2 or tasks[0] == tasks[1]:
        raise UserError(f"--tasks needs two different tasks (main, auxiliary), got {' '.join(tasks)}")
    missing = [t for t in tasks if t not in maxima]
    if missing:
        raise UserError(f"task {missing[0]!r} is not in this run; its tasks: {', '.join(maxima)}")
    top = max(maxima[t] for t in tasks)
    lengths = sorted(set(lengths)) if lengths else [n for n in cfg.eval.length_list() if n <= top]
    if not lengths:
        raise UserError(f"no evaluation length of this run is <= {top}; give --lengths")
    if not 1 <= n <= MAX_COUNT:
        raise UserError(f"-n must be in 1..{MAX_COUNT}")
    ABLATIONS.lookup(kind)
    SPANS.lookup(span)
    return HeadSettings(tasks[0], tasks[1], tuple(lengths), n, kind, span)


def select_checkpoints(run: RunDir, which: list[str] | None = None) -> list[int]:
    """The steps to analyse: every saved checkpoint for None or ['all'], else the listed steps."""
    available = [checkpoint_step(p) for p in checkpoint_dirs(run.checkpoint_root)]
    if not available:
        raise UserError(f"no checkpoint in {str(run.checkpoint_root)!r}")
    if not which or which == ["all"]:
        return available
    steps = []
    for item in which:
        if not item.isdigit():
            raise UserError(f"--checkpoints takes 'all' or steps, got {item!r}")
        if int(item) not in available:
            raise UserError(f"no checkpoint at step {item}; available: {', '.join(map(str, available))}")
        steps.append(int(item))
    return sorted(set(steps))


def correlations(tracking: pd.DataFrame) -> pd.DataFrame:
    """Per metric: Pearson and Spearman correlation with the gap over the checkpoints."""
    rows = [{"metric": m, "pearson": pearson(tracking[m], tracking["gap"]),
             "spearman": spearman(tracking[m], tracking["gap"]), "checkpoints": int(tracking[m].notna().sum())}
            for m in METRICS]
    return pd.DataFrame(rows, columns=["metric", "pearson", "spearman", "checkpoints"])


def _band_mean(rows: pd.DataFrame, task: str, lo: int, hi: int) -> float:
    """Mean exact match of `task` over lengths in (lo, hi]; NaN when there is none."""
    sub = rows[(rows["task"] == task) & (rows["length"] > lo) & (rows["length"] <= hi)]
    return float(sub["exact_match"].mean()) if not sub.empty else float("nan")


def _map_distance(maps: pd.DataFrame, main: str, aux: str) -> float:
    """Mean over heads of |map_main - map_aux| (NaN without rows)."""
    if maps.empty:
        return float("nan")
    return float((head_map(maps, main) - head_map(maps, aux)).abs().to_numpy().mean())


def _attention_diff(attention: pd.DataFrame) -> float:
    """Mean over heads of the attention difference (NaN without rows)."""
    return float(attention.groupby(["layer", "head"])["diff"].mean().mean()) if not attention.empty else float("nan")


def tracking_row(step: int, baseline: pd.DataFrame, maps: pd.DataFrame, attention: pd.DataFrame,
                 settings: HeadSettings, maxima: dict[str, int]) -> dict:
    """One checkpoint's line of tracking.csv (see the module docstring for every column)."""
    main, aux = settings.main, settings.aux
    table = baseline.assign(seed=0, run="")[["seed", "run", "step", "task", "length", "exact_match"]]
    try:
        gap = generalization_gap(table, main, aux, list(settings.lengths))["gap"]
        gap = float(gap.iloc[0]) if len(gap) else float("nan")
    except UserError:  # a task made none of the lengths
        gap = float("nan")
    inside = {"map_distance_in": maps[maps["length"] <= maxima[main]],
              "attention_diff_in": attention[attention["length"] <= maxima[main]]}
    return {"step": step, "gap": gap, "map_distance": _map_distance(maps, main, aux),
            "attention_diff": _attention_diff(attention),
            "map_distance_in": _map_distance(inside["map_distance_in"], main, aux),
            "attention_diff_in": _attention_diff(inside["attention_diff_in"]),
            "main_fit": _band_mean(baseline, main, 0, maxima[main]),
            "aux_fit": _band_mean(baseline, aux, 0, maxima[aux]),
            "main_band": _band_mean(baseline, main, maxima[main], maxima[aux])}


@dataclass
class HeadResults:
    """The tables `analyze_run` writes, and the folder they are in."""

    path: Path
    maps: pd.DataFrame
    attention: pd.DataFrame
    tracking: pd.DataFrame
    correlations: pd.DataFrame


def _record(settings: HeadSettings, steps: list[int]) -> dict:
    return {**settings.as_dict(), "steps": steps, "format": FORMAT}


def _cached(out: Path, settings: HeadSettings, steps: list[int]) -> HeadResults | None:
    """The stored results when they were made with these settings and checkpoints."""
    try:
        if json.loads((out / "settings.json").read_text()) != _record(settings, steps):
            return None
        tables = [pd.read_csv(out / f"{name}.csv") for name in FILES]
    except (OSError, ValueError):
        return None
    return HeadResults(out, *tables)


def analyze_run(run: RunDir, settings: HeadSettings, steps: list[int], device: str | None = None,
                force: bool = False) -> HeadResults:
    """Analyse the run at every step in `steps` (see the module docstring); reuses stored results
    made with the same settings and checkpoints unless `force`."""
    out = run.path / HEADS_DIR
    cached = None if force else _cached(out, settings, steps)
    if cached is not None:
        return cached
    cfg = run.read_config()
    exp = build_experiment(cfg, vocab=Vocab.load(run.path / "vocab.json"), device=device)
    check_hooked(exp.model)
    specs = {s.task.name: s for s in exp.specs}
    maxima = {name: spec.lengths[1] for name, spec in specs.items()}
    pair = [specs[settings.main], specs[settings.aux]]
    setup = EvalSetup.of(exp, settings.n)
    maps, attention, tracking = [], [], []
    for step in steps:
        load_weights(exp.model, find_checkpoint(run.checkpoint_root, step))
        rows, step_maps = ablation_map(exp.model, pair, list(settings.lengths), setup, settings.kind, step)
        step_attention = attention_difference(exp.model, *pair, list(settings.lengths), setup, settings.span, step)
        baseline = pd.DataFrame([r.as_dict() for r in rows])
        tracking.append(tracking_row(step, baseline, step_maps, step_attention, settings, maxima))
        maps.append(step_maps)
        attention.append(step_attention)
    tracked = pd.DataFrame(tracking)
    results = HeadResults(out, pd.concat(maps, ignore_index=True), pd.concat(attention, ignore_index=True), tracked,
                          correlations(tracked))
    write_results(results, settings, steps, title=cfg.name)
    return results


def _analyze_alone(job: tuple[Path, HeadSettings, list[int]]) -> None:
    """`analyze_run` in a worker process of one thread; the results go to the run's files."""
    set_threads(1)
    path, settings, steps = job
    analyze_run(RunDir(path), settings, steps)


def analyze_runs(jobs: list[tuple[RunDir, HeadSettings, list[int]]], workers: int = 1,
                 progress: bool = True) -> list[HeadResults]:
    """`analyze_run` for each (run, settings, steps), in order. With workers > 1 and more than one
    run not yet analysed, those runs are shared out to up to `workers` one-thread processes, then
    every result is read from its files. Ctrl-C or an error in one run stops the workers: the runs
    they finished are kept (the next call reuses them), the others are redone."""
    todo = [(run.path, settings, steps) for run, settings, steps in jobs
            if _cached(run.path / HEADS_DIR, settings, steps) is None]
    if workers > 1 and len(todo) > 1:
        with tqdm(total=len(todo), desc="head analysis", unit="run", disable=not progress, dynamic_ncols=True) as bar, \
                contextlib.closing(in_processes(_analyze_alone, todo, min(workers, len(todo)))) as finished:
            for _, future in finished:
                future.result()  # a worker's error is raised here
                bar.update()
    return [analyze_run(run, settings, steps) for run, settings, steps in jobs]


def write_results(results: HeadResults, settings: HeadSettings, steps: list[int], title: str = "") -> None:
    """The tables and plots of `analyze_run`; settings.json last, so it vouches for complete files."""
    out = results.path
    out.mkdir(parents=True, exist_ok=True)
    (out / "settings.json").unlink(missing_ok=True)
    for name in FILES:
        atomic_write_text(out / f"{name}.csv", getattr(results, name).to_csv(index=False))
    plot_results(results, settings, title)
    atomic_write_text(out / "settings.json", json.dumps(_record(settings, steps), indent=1))


def final_maps(maps: pd.DataFrame, tasks: list[str]) -> dict[str, pd.DataFrame]:
    """Panel title -> layers x heads map of each task at the last analysed step."""
    last = maps[maps["step"] == maps["step"].max()]
    step = int(last["step"].iloc[0]) if not last.empty else 0
    return {f"{task} (step {step})": head_map(last, task) for task in tasks}


def maps_over_steps(maps: pd.DataFrame, task: str) -> pd.DataFrame:
    """Rows `layer.head`, columns step: a task's map at every analysed checkpoint."""
    sub = maps[maps["task"] == task].groupby(["layer", "head", "step"])["drop"].mean().unstack("step")
    sub.index = [f"{layer}.{head}" for layer, head in sub.index]
    sub.index.name = "layer.head"
    return sub


def plot_results(results: HeadResults, settings: HeadSettings, title: str = "") -> None:
    """curves.png (gap, map distance, attention difference vs step), maps.png, maps_steps.png."""
    out, maps = results.path, results.maps
    plot_tracking({title or "run": results.tracking}, out / "curves.png",
                  f"{settings.main} vs {settings.aux}: gap, map distance, attention difference")
    if maps.empty:
        return
    plot_heatmaps(final_maps(maps, [settings.main, settings.aux]), out / "maps.png",
                  f"exact-match drop per head ({settings.kind} ablation)")
    plot_heatmaps({task: maps_over_steps(maps, task) for task in (settings.main, settings.aux)},
                  out / "maps_steps.png", "exact-match drop per head (rows) at each checkpoint (columns)")


def summary_text(results: HeadResults, settings: HeadSettings) -> str:
    """What `lengthgen heads` prints: the per-checkpoint table, the correlations, where the files are."""
    pd_opts = {"index": False, "float_format": lambda v: f"{v:.3f}"}
    return "\n".join([
        f"{settings.main} (main) vs {settings.aux} (aux), lengths {list(settings.lengths)}, n {settings.n}, "
        f"{settings.kind} ablation, {settings.span} span",
        results.tracking.to_string(**pd_opts), "",
        "correlation with the gap over checkpoints:", results.correlations.to_string(**pd_opts), "",
        f"tables and plots in {results.path}"])
