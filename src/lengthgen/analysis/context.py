"""Which tokens gain from far context: a trained `text` run's per-token analysis (PAPERS.md A6).

For `windows` validation windows of `eval_length` tokens (the run's fixed evaluation set at that
length: the text task's validation split, eval seed of the run), every token's loss with full
context and with its context truncated to the training length, the gain, and for tokens beyond
the training length whose gain exceeds `threshold` the sparsity k of their far-context
dependency (`analysis.dependency`: definitions, estimator, assumptions, cost). The training
length L is the longest training window of the run's text task.

`lengthgen context RUN` writes RUN/context/: tokens.csv (window, offset, position, losses, gain,
n_far, k), bins.csv (per sparsity bin: count, shares, mean and total gain), positions.csv (mean
losses per position), summary.json, loss_by_position.png, gain_by_k.png, and settings.json
last; the same settings and checkpoint again read the files back (`--force` recomputes).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..config import MAX_COUNT
from ..data import eval_examples
from ..errors import UserError
from ..experiment import build_experiment
from ..model.hooks import Hooks
from ..optional import pyplot
from ..reports.plots import save_figure
from ..runtime import autocast
from ..store.checkpoint import checkpoint_step, find_checkpoint, load_weights
from ..store.fileio import atomic_write_text
from ..store.rundir import RunDir
from ..vocab import Vocab
from .dependency import RANKINGS, Scorer, analyse_window, gain_by_bin

CONTEXT_DIR = "context"
FORMAT = 1  # of the stored results; older ones are recomputed
SPARSE_K = 4  # summaries count tokens with 1 <= k <= SPARSE_K as sparse


@dataclass(frozen=True)
class ContextSettings:
    """What `analyze_run` does: windows of `eval_length` tokens, the estimator's knobs, the checkpoint."""

    eval_length: int
    windows: int = 8
    threshold: float = 0.1
    fraction: float = 0.8
    ranking: str = "occlusion"
    max_tokens: int = 0
    sparse_k: int = SPARSE_K
    batch_size: int = 64
    step: int | None = None


def train_length(cfg) -> int:
    """L: the longest training window of the run's text task (a UserError for other runs)."""
    entries = [e for e in cfg.data.resolved_tasks() if e.task == "text"]
    if not entries:
        raise UserError("the context analysis needs a run of the text task; this run trains "
                        f"{', '.join(e.task for e in cfg.data.resolved_tasks())}")
    if cfg.data.markers:
        raise UserError("the context analysis reads windows without task markers; this run has data.markers: true")
    return max(e.lengths[1] for e in entries)


def resolve_settings(cfg, eval_length: int | None = None, windows: int = 8, threshold: float = 0.1,
                     fraction: float = 0.8, ranking: str = "occlusion", max_tokens: int = 0, step: int | None = None,
                     sparse_k: int = SPARSE_K) -> ContextSettings:
    """Settings for a run: eval_length defaults to 4 L. Every problem is a one-line UserError."""
    length = train_length(cfg)
    if length < 2:
        raise UserError("the context analysis needs training windows of at least 2 tokens (a near context)")
    eval_length = eval_length or 4 * length
    if eval_length <= length:
        raise UserError(f"--eval-length must exceed the training length {length}, got {eval_length}")
    if not 1 <= windows <= MAX_COUNT or max_tokens < 0:
        raise UserError(f"--windows must be in 1..{MAX_COUNT} and --max-tokens >= 0")
    if not (np.isfinite(threshold) and 0 < fraction <= 1):
        raise UserError(f"--threshold must be finite and --fraction in (0, 1], got {threshold}, {fraction}")
    RANKINGS.lookup(ranking)
    return ContextSettings(eval_length, windows, threshold, fraction, ranking, max_tokens, sparse_k, step=step)


class ModelScorer(Scorer):
    """A decoder's log-probabilities for one window of vocabulary ids. Window token i has position ID
    i + 1 (`<bos>` is 0), except in `truncated`, which re-numbers the near context from 0."""

    def __init__(self, model, window: np.ndarray, bos: int, device, precision: str, batch_size: int = 64):
        self.model, self.ids, self.bos = model, np.asarray(window, dtype=np.int64), bos
        self.n = len(self.ids)
        self.device, self.precision, self.batch_size = torch.device(device), precision, batch_size

    @torch.no_grad()
    def _score(self, seqs: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]) -> list[np.ndarray]:
        """seqs: (tokens, position IDs, input indices to read, target ids there) -> log-probs per seq.
        Batched longest first (little padding); right padding needs no mask under causal attention."""
        out: list[np.ndarray] = [np.empty(0)] * len(seqs)
        order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i][0]))
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            width = len(seqs[chunk[0]][0])
            tokens = np.zeros((len(chunk), width), dtype=np.int64)
            positions = np.zeros((len(chunk), width), dtype=np.int64)
            select = np.zeros((len(chunk), width), dtype=bool)
            targets = []
            for row, i in enumerate(chunk):
                seq, ids, reads, wanted = seqs[i]
                tokens[row, : len(seq)], positions[row, : len(seq)] = seq, ids
                select[row, reads] = True
                targets.append(wanted[np.argsort(reads, kind="stable")])
            tokens_t, positions_t, mask = (torch.from_numpy(a).to(self.device) for a in (tokens, positions, select))
            with autocast(self.device, self.precision):
                logits = self.model(tokens_t, positions_t, select=mask)
            logp = torch.log_softmax(logits.float(), dim=-1)
            flat = torch.from_numpy(np.concatenate(targets)).to(self.device)
            values = logp.gather(1, flat[:, None])[:, 0].cpu().numpy()
            cut = np.cumsum([len(t) for t in targets])[:-1]
            for i, part in zip(chunk, np.split(values, cut)):
                reads = seqs[i][2]
                back = np.empty_like(part)
                back[np.argsort(reads, kind="stable")] = part  # the select mask reads in index order
                out[i] = back
        return out

    def _sequence(self, kept: np.ndarray, ids: np.ndarray | None = None):
        kept = np.asarray(kept, dtype=np.int64)
        tokens = np.concatenate([[self.bos], self.ids[kept]])
        return tokens, np.concatenate([[0], kept + 1]) if ids is None else ids

    def log_probs(self, queries):
        seqs = []
        for kept, t in queries:
            tokens, ids = self._sequence(kept)
            seqs.append((tokens, ids, np.array([len(kept)]), self.ids[[t]]))
        return np.array([v[0] for v in self._score(seqs)])

    def full(self):
        tokens, ids = self._sequence(np.arange(self.n - 1))
        return self._score([(tokens, ids, np.arange(self.n), self.ids)])[0]

    def truncated(self, near):
        seqs = []
        for t in range(self.n):
            tokens, _ = self._sequence(np.arange(max(0, t - near), t))
            seqs.append((tokens, np.arange(len(tokens)), np.array([len(tokens) - 1]), self.ids[[t]]))
        return np.array([v[0] for v in self._score(seqs)])

    def occlusion(self, targets, near):
        # One forward per removed far token j serves every target that has j in its far context:
        # without j, the token predicting w[t] (t > j + 1) sits at input index t - 1.
        out = {t: np.empty(t - near) for t in targets}
        seqs, owners = [], []
        for j in range(max(targets) - near):
            mine = [t for t in targets if j < t - near]
            top = max(mine)
            tokens, ids = self._sequence(np.delete(np.arange(top), j))
            seqs.append((tokens, ids, np.array(mine) - 1, self.ids[mine]))
            owners.append((j, mine))
        for (j, mine), values in zip(owners, self._score(seqs)):
            for t, value in zip(mine, values):
                out[t][j] = value
        return out

    @torch.no_grad()
    def attention(self, targets, near):
        layers = len(self.model.blocks)
        names = [f"blocks.{layer}.attn.hook_pattern" for layer in range(layers)]
        hooks = Hooks(capture=names)
        tokens, ids = self._sequence(np.arange(self.n - 1))
        with autocast(self.device, self.precision):
            self.model(torch.from_numpy(tokens)[None].to(self.device), torch.from_numpy(ids)[None].to(self.device),
                       hooks=hooks)
        mean = torch.stack([hooks.cache[name][0].float() for name in names]).mean(dim=(0, 1)).cpu().numpy()
        # The query predicting w[t] is input index t; far token j is key j + 1.
        return {t: mean[t, 1 : t - near + 1] for t in targets}


@dataclass
class ContextResults:
    """The tables `analyze_run` writes, its summary, and the folder they are in."""

    path: Path
    tokens: pd.DataFrame
    bins: pd.DataFrame
    positions: pd.DataFrame
    summary: dict


GAIN_QUANTILES = {"p10": 0.1, "median": 0.5, "p90": 0.9}


def summarize(tokens: pd.DataFrame, length: int, sparse_k: int = SPARSE_K) -> dict:
    """Counts and shares of the far-context gain beyond the training length (see docs/experiments.md,
    a-language): sparse = analysed tokens with 1 <= k <= sparse_k, dense = k > sparse_k; tokens with
    k = 0 (no far token needed) are counted apart and belong to neither."""
    beyond = tokens[tokens["position"] > length]
    analysed = beyond[beyond["k"].notna()]
    far = analysed[analysed["k"] >= 1]
    sparse = far[far["k"] <= sparse_k]
    positive = float(beyond["gain"].clip(lower=0).sum())
    far_gain = float(far["gain"].sum())
    share_tokens = len(sparse) / len(far) if len(far) else float("nan")
    share_gain = float(sparse["gain"].sum()) / far_gain if len(far) else float("nan")
    return {"tokens_beyond": len(beyond), "loss_full_beyond": float(beyond["loss_full"].mean()),
            "loss_truncated_beyond": float(beyond["loss_truncated"].mean()),
            "mean_gain_beyond": float(beyond["gain"].mean()), "positive_gain_share": float((beyond["gain"] > 0).mean()),
            # The distribution, not only the mean: a few large gains and many small losses look alike in it.
            **{f"gain_{name}": float(beyond["gain"].quantile(q)) if len(beyond) else float("nan")
               for name, q in GAIN_QUANTILES.items()},
            "analysed": len(analysed), "analysed_share_of_positive_gain": float(analysed["gain"].sum()) / positive
            if positive else float("nan"), "k0": int((analysed["k"] == 0).sum()), "with_far": len(far),
            "sparse": len(sparse), "dense": len(far) - len(sparse), "sparse_token_share": share_tokens,
            "sparse_gain_share": share_gain, "concentration": share_gain - share_tokens,
            "median_k": float(far["k"].median()) if len(far) else float("nan")}


def _record(settings: ContextSettings, step: int, length: int) -> dict:
    return {**asdict(settings), "checkpoint": step, "train_length": length, "format": FORMAT}


def _cached(out: Path, record: dict) -> ContextResults | None:
    try:
        stored = json.loads((out / "settings.json").read_text())
        if {k: v for k, v in stored.items() if k != "seconds"} != record:
            return None
        tables = [pd.read_csv(out / f"{name}.csv") for name in ("tokens", "bins", "positions")]
    except (OSError, ValueError):
        return None
    # Summarized again from the stored tokens, so results made before a summary field existed gain it.
    summary = {**summarize(tables[0], record["train_length"], record["sparse_k"]), "train_length":
               record["train_length"], "checkpoint": record["checkpoint"], "seconds": stored.get("seconds")}
    return ContextResults(out, *tables, summary)


def analyze_run(run: RunDir, settings: ContextSettings, device: str | None = None, force: bool = False,
                quiet: bool = True) -> ContextResults:
    """The per-token analysis of a run's checkpoint (newest unless settings.step); reuses stored
    results made with the same settings and checkpoint unless `force`."""
    from tqdm import tqdm

    cfg = run.read_config()
    length = train_length(cfg)
    checkpoint = find_checkpoint(run.checkpoint_root, settings.step)
    step = checkpoint_step(checkpoint)
    out = run.path / CONTEXT_DIR
    record = _record(settings, step, length)
    cached = None if force else _cached(out, record)
    if cached is not None:
        return cached
    exp = build_experiment(cfg, vocab=Vocab.load(run.path / "vocab.json"), device=device)
    if not hasattr(exp.model, "blocks"):
        raise UserError("the context analysis needs the transformer (model.arch: transformer)")
    load_weights(exp.model, checkpoint)
    exp.model.eval()
    spec = next(s for s in exp.specs if s.task.name == "text")
    examples = eval_examples(spec, settings.eval_length, settings.windows, cfg.seed.eval, "consecutive",
                             cfg.positions.settings())
    start, frames = time.perf_counter(), []
    for index, ex in enumerate(tqdm(examples, desc=f"context {cfg.name}", disable=quiet, dynamic_ncols=True)):
        scorer = ModelScorer(exp.model, np.array(exp.vocab.encode(ex.answer)), exp.vocab.bos_id, exp.device,
                             exp.precision, settings.batch_size)
        table = analyse_window(scorer, length, settings.threshold, settings.fraction, settings.ranking,
                               settings.max_tokens)
        frames.append(table.assign(window=index, offset=ex.meta["offset"]))
    tokens = pd.concat(frames, ignore_index=True)[["window", "offset", "position", "loss_full", "loss_truncated",
                                                   "gain", "n_far", "k"]]
    positions = tokens.groupby("position", as_index=False)[["loss_full", "loss_truncated"]].mean()
    summary = {**summarize(tokens, length, settings.sparse_k), "train_length": length, "checkpoint": step,
               "seconds": round(time.perf_counter() - start, 1)}
    results = ContextResults(out, tokens, gain_by_bin(tokens), positions, summary)
    write_results(results, record, title=f"{cfg.name} (step {step})")
    return results


def write_results(results: ContextResults, record: dict, title: str = "") -> None:
    """Tables, summary and plots; settings.json last, so it vouches for complete files."""
    out = results.path
    out.mkdir(parents=True, exist_ok=True)
    (out / "settings.json").unlink(missing_ok=True)
    for name in ("tokens", "bins", "positions"):
        atomic_write_text(out / f"{name}.csv", getattr(results, name).to_csv(index=False))
    atomic_write_text(out / "summary.json", json.dumps(results.summary, indent=1))
    length = results.summary["train_length"]
    plot_loss_by_position({title: results.positions}, length, out / "loss_by_position.png")
    plot_gain_by_k({title: results.bins}, out / "gain_by_k.png")
    atomic_write_text(out / "settings.json", json.dumps({**record, "seconds": results.summary["seconds"]}, indent=1))


def plot_loss_by_position(panels: dict[str, pd.DataFrame], length: int, path: Path) -> Path:
    """Mean loss per position with full context (solid) and truncated to L (dashed), one color per panel."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.6, 3.8), dpi=120)
    for i, (name, table) in enumerate(panels.items()):
        ax.plot(table["position"], table["loss_full"], color=f"C{i}", linewidth=1, label=f"{name}: full context")
        beyond = table[table["position"] > length]
        ax.plot(beyond["position"], beyond["loss_truncated"], color=f"C{i}", linestyle="--", linewidth=1,
                label=f"{name}: truncated to L")
    ax.axvline(length, color="grey", linestyle=":", linewidth=1)
    ax.set(xlabel="position in the window", ylabel="loss (nats per character)",
           title=f"loss by position (L = {length}, dotted)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
    return save_figure(fig, path)


def plot_gain_distribution(panels: dict[str, pd.Series], length: int, path: Path, clip: float = 2.0) -> Path:
    """Histogram of the far-context gain of every token beyond L, one color per panel; the mean of each
    as a dashed line. Gains are clipped to [-clip, clip] so the tails stay visible in the end bins."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.6, 3.8), dpi=120)
    edges = np.linspace(-clip, clip, 41)
    for i, (name, gains) in enumerate(panels.items()):
        gains = gains.dropna()
        ax.hist(gains.clip(-clip, clip), bins=edges, histtype="step", color=f"C{i}", linewidth=1.2,
                density=True, label=f"{name}: mean {gains.mean():+.3f}, median {gains.median():+.3f}")
        ax.axvline(gains.mean(), color=f"C{i}", linestyle="--", linewidth=1)
    ax.axvline(0, color="grey", linestyle=":", linewidth=1)
    ax.set(xlabel=f"gain from context beyond L = {length} (nats; clipped to +-{clip:g})", ylabel="density",
           title="far-context gain per token beyond L")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
    return save_figure(fig, path)


def plot_gain_by_k(panels: dict[str, pd.DataFrame], path: Path) -> Path:
    """Per panel: share of analysed tokens and share of their gain in each sparsity bin of k."""
    plt = pyplot()
    ncols = max(1, min(3, len(panels)))
    nrows = -(-max(1, len(panels)) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 3.2 * nrows), dpi=110, squeeze=False)
    for ax, (name, bins) in zip(axes.flat, panels.items()):
        x = np.arange(len(bins))
        ax.bar(x - 0.2, bins["share_of_tokens"], width=0.4, label="share of tokens")
        ax.bar(x + 0.2, bins["share_of_gain"], width=0.4, label="share of gain")
        ax.set_xticks(x, [str(b) for b in bins["bin"]], fontsize=7)
        ax.set(xlabel="k (far tokens needed)", title=str(name))
        ax.title.set_fontsize(8)
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    return save_figure(fig, path)


def summary_text(results: ContextResults, settings: ContextSettings) -> str:
    """What `lengthgen context` prints."""
    s = results.summary
    fmt = {"index": False, "float_format": lambda v: f"{v:.3f}"}
    return "\n".join([
        f"{settings.windows} windows of {settings.eval_length} tokens, training length {s['train_length']}, "
        f"checkpoint {s['checkpoint']}, {settings.ranking} ranking, fraction {settings.fraction}",
        f"beyond L: {s['tokens_beyond']} tokens, loss full {s['loss_full_beyond']:.3f} vs truncated "
        f"{s['loss_truncated_beyond']:.3f} (mean gain {s['mean_gain_beyond']:.3f} nats)",
        f"analysed (gain > {settings.threshold}): {s['analysed']}; k = 0: {s['k0']}; sparse (1 <= k <= "
        f"{settings.sparse_k}): {s['sparse']} tokens = {s['sparse_token_share']:.3f} of those with k >= 1, carrying "
        f"{s['sparse_gain_share']:.3f} of their gain", "",
        results.bins.to_string(**fmt) if not results.bins.empty else "no token gains from far context", "",
        f"tables and plots in {results.path} ({s['seconds']} s)"])
