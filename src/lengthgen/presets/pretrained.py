"""Paper B, B4 (b-pretrained): the more a model was pretrained, the further it extrapolates after
fine-tuning on a length-generalization task.

Points: the checkpoints of one pretraining run, in order of pretraining steps, each fine-tuned
(`model.arch: pretrained`) on reverse addition trained on lengths <= L and evaluated up to 2L,
plus a random initialisation of the same architecture (`model.init: random`, the control), with
the same fine-tuning, seeds and evaluation. Seeds set both `seed.model` and `seed.data`, since a
pretrained start has no initialisation seed of its own.

CPU scale: the series is made here, before the sweep, by `prepare` (`lengthgen repro` calls it):
a small lengthgen decoder is pretrained as a character-level language model on local English
text (the `text` task: CPython's pydoc documentation, nothing downloaded), a checkpoint is kept
at every series step, and each is exported (`hf.export_llama` + lengthgen_vocab.json) under
`<sweep>/pretraining/export/step_XXXXXXX/`, so the CPU series goes through the very same
`pretrained` path as SmolLM2 does at paper scale. A finished pretraining and finished exports
are reused when the preset runs again.

Paper scale: the user's own checkpoint series, e.g. SmolLM2-360M intermediate checkpoints on
disk, listed one per line as `STEP PATH` (in order of pretraining steps) in the file named by
$LENGTHGEN_PRETRAINED_SERIES; fine-tuned on reverse addition (16 -> 32) and on shortest path
(32 -> 64 maze nodes). Sizes of the fine-tuning are ours: the paper does not give them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pandas as pd

from .. import optional
from ..analysis.stats import spearman
from ..errors import UserError
from ..experiment import build_experiment
from ..model.hf_export import export_llama
from ..model.pretrained import resolve_source
from ..model.pretrained_tokens import LENGTHGEN_VOCAB
from ..optional import pyplot
from ..reports.aggregate import final
from ..reports.plots import save_figure
from ..reports.tables import markdown_table
from ..store.checkpoint import find_checkpoint, load_weights
from ..store.fileio import atomic_write_text
from ..store.rundir import RunDir
from ..sweeps.executors import Job, execute_job
from ..tasks.base import make_task
from ..vocab import Vocab
from .base import Preset, Verdict, best_over_seeds, register_preset

SERIES_ENV = "LENGTHGEN_PRETRAINED_SERIES"
PRETRAIN_DIR = "pretraining"  # inside the sweep directory: run/, export/, series.json
SERIES_FILE = "series.json"

FIT = 0.9  # best seed's mean exact match over lengths <= L that counts as "fits in distribution"
RISE = 0.5  # Spearman(pretraining step, extrapolation) over the series at or above which it "rises"
MARGIN = 0.1  # the last checkpoint's extrapolation must beat random init's by this much
MIN_SERIES = 3  # checkpoints with results needed for a rank correlation worth reading

# CPU-scale pretraining: a 3-layer, d=64 RoPE decoder on 64-character windows of pydoc text,
# WSD schedule (intermediate checkpoints at the stable learning rate, as in SmolLM2's series),
# checkpoints doubling in steps as in the paper's series. Sized from measured speeds (docs/
# experiments.md): ~7.7 pretraining steps/s on 2 threads, ~16 fine-tuning steps/s on 1 thread,
# both on this 2-core machine while another sweep shared it.
CPU_PRETRAIN = {
    "corpus": "pydoc", "window": 64, "steps": 3000, "series": [375, 750, 1500, 3000], "every": 375,
    "batch": 32, "lr": 3e-3,
    "model": {"layers": 3, "heads": 4, "d_model": 64, "d_ff": 256, "encoding": "rope", "rope_theta": 1e5},
}
# Fine-tuning at each scale; tasks: name -> (L, longest evaluated length).
FINETUNE = {
    "cpu": {"tasks": {"reverse_add": (5, 10)}, "steps": 2500, "batch": 32, "lr": 1e-3, "n": 128, "evals": 5,
            "seeds": [0, 1, 2]},
    "paper": {"tasks": {"reverse_add": (16, 32), "maze_shortest_path": (32, 64)}, "steps": 5000, "batch": 64,
              "lr": 1e-4, "n": 1024, "evals": 10, "seeds": [0, 1, 2, 3, 4]},
}

RULE = (f"Per fine-tuning task, with L its longest training length: a point's extrapolation is the best seed's "
        f"mean exact match over lengths in (L, 2L] at the end of fine-tuning, its fit the same over lengths <= L. "
        f"INCONCLUSIVE unless the random-init point and >= {MIN_SERIES} checkpoints have finished runs and at "
        f"least one point fits (fit >= {FIT}). Then PASS if, for every task, Spearman(pretraining step, "
        f"extrapolation) over the checkpoints is >= {RISE} (undefined, i.e. all equal, counts as 0) and the last "
        f"checkpoint's extrapolation exceeds random init's by >= {MARGIN}; FAIL otherwise.")


def _min_length(task: str) -> int:

    return make_task(task).min_length


def _points(scale: str, series: list[tuple[int, str]]) -> list[dict]:
    """Every (task, checkpoint) fine-tune and every task's random-init control."""
    tasks = FINETUNE[scale]["tasks"]
    points = []
    for task, (train_max, top) in tasks.items():
        lo = _min_length(task)
        # One task at CPU scale sits in the base config; several are set per point.
        per_task = {} if len(tasks) == 1 else {"data.tasks.0.task": task, "data.tasks.0.lengths": [lo, train_max],
                                               "eval.lengths": f"{lo}:{top}"}
        for _, path in series:
            points.append({**per_task, "model.path": path, "model.init": "pretrained"})
        points.append({**per_task, "model.path": series[-1][1], "model.init": "random"})
    return points


def _tree(scale: str, series: list[tuple[int, str]]) -> dict:
    s = FINETUNE[scale]
    task, (train_max, top) = next(iter(s["tasks"].items()))
    lo = _min_length(task)
    every = s["steps"] // s["evals"]
    base = {
        "data": {"tasks": [{"task": task, "lengths": [lo, train_max]}], "batch_size": s["batch"]},
        "positions": {"max_position": 1024},
        "model": {"arch": "pretrained", "path": series[-1][1]},
        "train": {"steps": s["steps"], "lr": s["lr"], "schedule": "wsd", "warmup": 0.1, "decay": 0.2,
                  "eval_every": every, "checkpoint_every": every, "log_every": 50},
        "eval": {"lengths": f"{lo}:{top}", "n": s["n"]},
    }
    return {"base": base, "points": _points(scale, series), "seeds": s["seeds"],
            "seed_keys": ["seed.model", "seed.data"]}


def cpu_series() -> list[tuple[int, str]]:
    """The CPU series: (step, model path) of each exported pretraining checkpoint, `{sweep_dir}`
    standing for the sweep directory."""
    return [(step, f"{{sweep_dir}}/{PRETRAIN_DIR}/export/step_{step:07d}") for step in CPU_PRETRAIN["series"]]


def cpu_tree() -> dict:
    """The CPU-scale sweep (read when the spec is built, so the sizes above can be changed)."""
    return _tree("cpu", cpu_series())


def read_series_file(path: str | Path | None = None) -> list[tuple[int, str]]:
    """The paper-scale series: `STEP PATH` per line of the file $LENGTHGEN_PRETRAINED_SERIES names
    (blank lines and `#` comments skipped), steps increasing, every path a loadable model location."""
    path = path or os.environ.get(SERIES_ENV)
    if not path:
        raise UserError(f"b-pretrained at paper scale needs ${SERIES_ENV}: a file listing your checkpoints (e.g. "
                        "SmolLM2 intermediate checkpoints on disk) as 'STEP PATH' per line, "
                        "in order of pretraining steps")
    file = Path(path).expanduser()
    if not file.is_file():
        raise UserError(f"${SERIES_ENV} names {str(file)!r}, which is not a file")
    series = []
    for number, line in enumerate(file.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        found = re.fullmatch(r"(\d+)\s+(.+)", line)
        if not found:
            raise UserError(f"{str(file)!r} line {number}: expected 'STEP PATH', got {line!r}")
        step, model = int(found.group(1)), found.group(2).strip()
        resolve_source(model)  # a one-line error naming the path that is missing or malformed
        series.append((step, model))
    steps = [s for s, _ in series]
    if len(series) < MIN_SERIES or steps != sorted(set(steps)) or len({p for _, p in series}) < len(series):
        raise UserError(f"{str(file)!r} must list >= {MIN_SERIES} distinct checkpoints with increasing steps, "
                        f"got steps {steps}")
    return series


def paper_tree() -> dict:
    """The paper-scale sweep over the series file's checkpoints."""
    return _tree("paper", read_series_file())


def pretraining_config(settings: dict | None = None) -> dict:
    """The CPU pretraining run's config: a character-level LM on `text` windows, a checkpoint kept
    at every `every` steps (so at every series step)."""
    s = settings or CPU_PRETRAIN
    kept = s["steps"] // s["every"]
    return {
        "name": "pretraining",
        "data": {"tasks": [{"task": "text", "lengths": [s["window"], s["window"]], "params": {"corpus": s["corpus"]}}],
                 "batch_size": s["batch"]},
        "positions": {"max_position": 1024},
        "model": dict(s["model"]),
        "train": {"steps": s["steps"], "lr": s["lr"], "schedule": "wsd", "warmup": 0.05, "decay": 0.2,
                  "checkpoint_every": s["every"], "keep_checkpoints": kept, "eval_every": s["every"],
                  "log_every": 50},
        "eval": {"lengths": [s["window"]], "n": 64},
    }


def export_series(run_path: Path, steps: list[int], out: Path) -> None:
    """Export the run's checkpoint at each step as a LlamaForCausalLM directory with
    lengthgen_vocab.json (written under a temporary name, then renamed; existing ones are kept)."""
    run = RunDir(run_path)
    exp = None
    for step in steps:
        target = out / f"step_{step:07d}"
        if (target / LENGTHGEN_VOCAB).is_file():  # written last: the export is complete
            continue
        if exp is None:
            optional.transformers(quiet=True)  # progress bars off
            exp = build_experiment(run.read_config(), vocab=Vocab.load(run.path / "vocab.json"), device="cpu")
        load_weights(exp.model, find_checkpoint(run.checkpoint_root, step))
        tmp = out / f".tmp-step_{step:07d}"
        shutil.rmtree(tmp, ignore_errors=True)
        export_llama(exp.model, tmp)
        exp.vocab.save(tmp / LENGTHGEN_VOCAB)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)


def prepare_cpu(sweep_dir: Path) -> list[tuple[int, str]]:
    """Pretrain (or resume, or reuse) the CPU series and export its checkpoints."""
    root = sweep_dir / PRETRAIN_DIR
    run_path = root / "run"
    if not RunDir(run_path).is_done():
        print(f"pretraining the b-pretrained series in {run_path} ({CPU_PRETRAIN['steps']} steps)", flush=True)
        result = execute_job(Job("pretraining", pretraining_config(), str(run_path), os.cpu_count() or 1))
        if result.status != "done":
            raise UserError(f"the b-pretrained pretraining run failed: {result.error}")
    export_series(run_path, CPU_PRETRAIN["series"], root / "export")
    return cpu_series()


PREPARE = {"cpu": prepare_cpu, "paper": lambda sweep_dir: read_series_file()}


def prepare(scale: str, sweep_dir) -> None:
    """Before the sweep: make (CPU) or check (paper) the series, and record it in series.json."""
    sweep_dir = Path(sweep_dir)
    series = PREPARE[scale](sweep_dir)
    root = sweep_dir / PRETRAIN_DIR
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(root / SERIES_FILE, json.dumps([{"step": s, "path": p} for s, p in series], indent=1))


def analyze(df: pd.DataFrame, path) -> pd.DataFrame:
    """Per finished run: task, init, pretraining step (NaN for random init), seed, fit (mean exact
    match over lengths <= L) and extrapolation (over (L, 2L]) at the final step."""
    columns = ["task", "init", "step", "seed", "run", "fit", "extrapolation", "L"]
    source = Path(path) / PRETRAIN_DIR / SERIES_FILE
    if not source.is_file() or "model.path" not in df:
        return pd.DataFrame(columns=columns)
    step_of = {entry["path"]: entry["step"] for entry in json.loads(source.read_text())}
    rows = []
    for (run, task), sub in final(df).groupby(["run", "task"]):
        first = sub.iloc[0]
        train_max = int(first["train_max"])
        init = first["model.init"] if "model.init" in sub else "pretrained"
        step = float("nan") if init == "random" else step_of.get(first["model.path"], float("nan"))
        fit = sub.loc[sub["length"] <= train_max, "exact_match"].mean()
        band = sub.loc[(sub["length"] > train_max) & (sub["length"] <= 2 * train_max), "exact_match"].mean()
        rows.append({"task": task, "init": init, "step": step, "seed": int(first["seed"]), "run": run, "fit": fit,
                     "extrapolation": band, "L": train_max})
    return pd.DataFrame(rows, columns=columns)


def point_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per task and point (random init, then checkpoints by step): best, mean and every seed of the
    fit and of the extrapolation."""
    if runs.empty:
        return pd.DataFrame(columns=["task", "init", "step"])
    keyed = runs.assign(step=runs["step"].fillna(-1))
    fit = best_over_seeds(keyed[["task", "init", "step", "seed", "fit"]], "fit")
    band = best_over_seeds(keyed[["task", "init", "step", "seed", "extrapolation"]], "extrapolation")
    table = fit.rename(columns={"best": "fit_best", "mean": "fit_mean", "seeds": "fit_seeds"}).merge(
        band.rename(columns={"best": "extrap_best", "mean": "extrap_mean", "seeds": "extrap_seeds"}),
        on=["task", "init", "step"])
    table = table.sort_values(["task", "step"]).reset_index(drop=True)
    table["step"] = table["step"].where(table["step"] >= 0)
    return table


def check_pretrained(runs: pd.DataFrame) -> Verdict:
    """PASS / FAIL / INCONCLUSIVE by RULE, from `analyze`'s per-run table."""
    table = point_table(runs)
    if table.empty:
        return Verdict("INCONCLUSIVE", RULE, table)
    passed, judged = [], True
    for task, sub in table.groupby("task", sort=False):
        series = sub[sub["init"] == "pretrained"].dropna(subset=["step"]).sort_values("step")
        random = sub[sub["init"] == "random"]
        # Judged only where every point has an extrapolation band: no length in (L, 2L] evaluated is no
        # evidence either way, not a flat series.
        if len(series) < MIN_SERIES or random.empty or sub["fit_best"].max() < FIT \
                or sub["extrap_best"].isna().any():
            judged = False
            continue
        rho = spearman(series["step"], series["extrap_best"])
        rho = 0.0 if pd.isna(rho) else rho
        margin = float(series["extrap_best"].iloc[-1] - random["extrap_best"].iloc[0])
        table.loc[table["task"] == task, ["spearman", "last_minus_random"]] = [rho, margin]
        passed.append(rho >= RISE and margin >= MARGIN)
    if not judged or not passed:
        return Verdict("INCONCLUSIVE", RULE, table)
    return Verdict("PASS" if all(passed) else "FAIL", RULE, table)


def pretrained_report(df: pd.DataFrame, path) -> list[str]:
    """Extrapolation vs pretraining step (every seed, best, mean; random init dashed), and every run."""
    runs = analyze(df, path)
    if runs.empty:
        return []
    plt = pyplot()
    tasks = list(dict.fromkeys(runs["task"]))
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.6 * len(tasks), 3.8), dpi=120, squeeze=False)
    for ax, task in zip(axes[0], tasks):
        sub = runs[runs["task"] == task]
        series = sub[sub["init"] == "pretrained"].dropna(subset=["step"])
        ax.scatter(series["step"], series["extrapolation"], s=12, color="C0", alpha=0.5, label="each seed")
        per_step = series.groupby("step")["extrapolation"].agg(["max", "mean"])
        ax.plot(per_step.index, per_step["max"], marker="o", color="C0", label="best seed")
        ax.plot(per_step.index, per_step["mean"], marker="o", color="C0", linestyle=":", label="mean")
        random = sub[sub["init"] == "random"]["extrapolation"]
        if not random.empty:
            ax.axhline(random.max(), color="C3", linestyle="--", label="random init (best seed)")
        if len(per_step) > 1 and per_step.index.min() > 0:
            ax.set_xscale("log")
        train_max = int(sub["L"].iloc[0])
        ax.set_xlabel("pretraining step")
        ax.set_ylabel(f"exact match over ({train_max}, {2 * train_max}]")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"{task}: extrapolation after fine-tuning", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    save_figure(fig, Path(path) / "pretraining.png")
    return ["## Extrapolation vs pretraining", "", "![pretraining](pretraining.png)", "",
            "Every run (step: pretraining step of the starting checkpoint; empty for random init):", "",
            markdown_table(runs.sort_values(["task", "init", "step", "seed"])), ""]


register_preset(Preset(
    "b-pretrained", "B-pretrained",
    "Fine-tuned on reverse addition (and shortest path at paper scale), later checkpoints of a pretraining run "
    "extrapolate further beyond the training lengths, and the last one beyond a random initialisation of the same "
    "architecture.",
    {"cpu": cpu_tree, "paper": paper_tree}, check_pretrained, [], pretrained_report, analyze, prepare))
