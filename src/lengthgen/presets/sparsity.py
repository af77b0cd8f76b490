"""Paper A presets on sparse tasks: sparsity and locality (PAPERS.md A1-A3), and the shared
scales and helpers of every Paper A preset (coupling and PPC live in `coupling.py`).

Paper A's model sizes are not known (only its abstract could be read), so "paper scale" here is
Paper B's size (6 layers, d=384, 20k steps, batch 1024, 5 seeds) with Paper A's K_train values;
CPU scale is a 2-layer model that this machine trains in minutes. Every check states its rule
in the report next to every seed's numbers.
"""

from __future__ import annotations

import re

import pandas as pd

from ..analysis.stats import spearman
from ..optional import pyplot
from ..reports.aggregate import final, grid_columns
from ..reports.plots import save_figure
from .base import Preset, Verdict, at_train_max, best_over_seeds, register_preset, verdict_section

FIT = 0.9  # best-seed (or per-run) in-distribution score that counts as "fitted"
L_TRAIN = 20  # sparse tasks: longest training length (PAPERS.md A1)
SPARSE_LENGTHS = [5, 10, 20, 40, 80, 160]  # 20 = L, then 2L, 4L, 8L
FOUR_X = 4 * L_TRAIN
MAX_K = {"cpu": 10, "cpu-v1": 8, "paper": 12}  # evaluation variants k = 1..MAX_K
K_KEY = "data.tasks.0.params.k_max"  # the a-sparsity grid key: K_train
MIN_DROP = 0.15  # a-sparsity: smallest fall of accuracy at 4L from k = 1 to k = K_train that counts

SCALES = {
    "cpu": {"model": {"layers": 2, "heads": 4, "d_model": 64, "d_ff": 256}, "steps": 3000, "batch": 64,
            "lr": 1e-3, "n": 128, "eval_every": 1000, "seeds": [0, 1, 2],
            # Packed rows: the same gradient, 1.1-1.4x faster steps here (docs/performance.md).
            "pack": True},
    "paper": {"model": {"layers": 6, "heads": 6, "d_model": 384, "d_ff": 1536}, "steps": 20000, "batch": 1024,
              "lr": 1e-3, "n": 1024, "eval_every": 2000, "seeds": [0, 1, 2, 3, 4]},
}


def base_config(scale: str, task: dict, lengths: list[int], encoding: str, max_position: int = 256,
                pack: bool | None = None) -> dict:
    """One task trained at one scale; evaluated at `lengths`. Rows are packed where the scale says so,
    unless `pack` is given (a-locality's idealized points cannot take packed rows)."""
    s = SCALES[scale]
    return {
        "data": {"tasks": [task], "batch_size": s["batch"]},
        "positions": {"train": "consecutive", "eval": "consecutive", "max_position": max_position},
        "model": {**s["model"], "encoding": encoding},
        "train": {"steps": s["steps"], "lr": s["lr"], "schedule": "cosine", "warmup": 0.05,
                  "eval_every": s["eval_every"], "checkpoint_every": s["eval_every"], "log_every": 50,
                  "pack": s.get("pack", False) if pack is None else pack},
        "eval": {"lengths": lengths, "n": s["n"]},
    }


def point_sweep(base: dict, points: list[dict], seeds: list[int]) -> dict:
    """A sweep tree over explicit points on one base config."""
    return {"base": base, "points": points, "seeds": seeds}


def with_train_length(last: pd.DataFrame) -> pd.DataFrame:
    """The rows with a column `L`: each row's training length as its run trained it (`train_max`), else
    L_TRAIN. The checks judge l = L and l = 4L per run, so that a rerun at other lengths is judged at its own."""
    known = last["train_max"] if "train_max" in last else pd.Series(float("nan"), index=last.index)
    return last.assign(L=known.fillna(L_TRAIN).astype(int))


def _run_scores(df: pd.DataFrame, band: str, task: str | None = None) -> pd.DataFrame:
    """Per run (grid point + seed) and task label: mean exact match at the final step over the lengths
    l <= L (`band` "fit") or at l = 4L (`band` "at_4x"), L each run's own training length."""
    last = with_train_length(final(df))
    if task is not None:
        last = last[last["task"] == task]
    last = last[last["length"] <= last["L"]] if band == "fit" else last[last["length"] == 4 * last["L"]]
    keys = grid_columns(df)
    return last.groupby([*keys, "seed", "task"], dropna=False)["exact_match"].mean().reset_index()


# ---------------------------------------------------------------------------------- a-sparsity

def _k_of(label: str) -> int | None:
    found = re.search(r"\[k=(\d+)\]", label)
    return int(found.group(1)) if found else None


def sparsity_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per run: K_train, its training length L, in-distribution fit (mean over k <= K_train at L), accuracy
    at 4L for each k <= K_train, and the rank correlation between k and that accuracy (`judged`: 4L was
    evaluated for at least two k)."""
    last = with_train_length(final(df))
    last = last.assign(k=last["task"].map(_k_of))
    rows = []
    for run, sub in last.groupby("run"):
        k_train, top = int(sub[K_KEY].iloc[0]), int(sub["L"].max())
        trained = sub[sub["k"] <= k_train]
        fit = trained.loc[trained["length"] == top, "exact_match"].mean()
        at_4x = trained[trained["length"] == 4 * top].sort_values("k")
        rho = spearman(at_4x["k"].to_numpy(), at_4x["exact_match"].to_numpy()) if len(at_4x) > 1 else float("nan")
        # A rank correlation alone counts noise as a fall (1.00, 1.00, 1.00, 0.94 gives rho -0.77),
        # so the fall from the smallest to the largest k must also be at least MIN_DROP.
        drop = float(at_4x["exact_match"].iloc[0] - at_4x["exact_match"].iloc[-1]) if len(at_4x) > 1 else float("nan")
        rows.append({"K_train": k_train, "seed": int(sub["seed"].iloc[0]), "L": top, "fit": fit,
                     "fitted": bool(fit >= FIT), "judged": len(at_4x) > 1, "acc_at_4L_by_k": ", ".join(
                         f"{int(k)}: {v:.2f}" for k, v in zip(at_4x["k"], at_4x["exact_match"])),
                     "rho_k_vs_acc": rho, "drop": drop, "decreases": bool(rho <= -0.5 and drop >= MIN_DROP)})
    return pd.DataFrame(rows).sort_values(["K_train", "seed"]).reset_index(drop=True) if rows else pd.DataFrame()


def check_sparsity(df: pd.DataFrame) -> Verdict:
    """At 4x the training length, accuracy falls as k grows, in most fitted runs."""
    table = sparsity_table(df)
    rule = (f"L is each run's training length ({L_TRAIN} in the preset). A run is fitted when its accuracy at "
            f"l = L, averaged over k = 1..K_train, is >= {FIT}; unfitted runs are listed, not dropped, and a run "
            f"whose 4L was not evaluated is not judged. INCONCLUSIVE if fewer than 3 judged runs are fitted; then "
            f"PASS if in more than half of them the Spearman correlation between k and accuracy at l = 4L "
            f"(k = 1..K_train) is <= -0.5 and that accuracy drops by >= {MIN_DROP} from k = 1 to k = K_train; "
            "FAIL otherwise.")
    counted = table[table["fitted"] & table["judged"]] if not table.empty else table
    if len(counted) < 3:
        return Verdict("INCONCLUSIVE", rule, table)
    return Verdict("PASS" if counted["decreases"].mean() > 0.5 else "FAIL", rule, table)


def mean_over_seeds_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per K_train: accuracy at 4L for each k <= K_train averaged over every seed (fitted or not; the
    fitted count is shown), its rank correlation with k, and its fall from k = 1 to k = K_train."""
    last = with_train_length(final(df))
    last = last.assign(k=last["task"].map(_k_of))
    fitted = sparsity_table(df)
    rows = []
    for k_train, sub in last.groupby(K_KEY):
        k_train = int(k_train)
        at_4x = sub[(sub["length"] == 4 * sub["L"]) & (sub["k"] <= k_train)].groupby("k")["exact_match"].mean()
        if len(at_4x) < 2:
            continue
        rho = spearman(at_4x.index.to_numpy(), at_4x.to_numpy())
        drop = float(at_4x.iloc[0] - at_4x.iloc[-1])
        runs = fitted[fitted["K_train"] == k_train]
        rows.append({"K_train": k_train, "seeds": len(runs), "fitted": int(runs["fitted"].sum()),
                     "mean_acc_at_4L_by_k": ", ".join(f"{int(k)}: {v:.2f}" for k, v in at_4x.items()),
                     "rho_k_vs_mean_acc": rho, "drop": drop, "decreases": bool(rho <= -0.5 and drop >= MIN_DROP)})
    return pd.DataFrame(rows)


MEAN_RULE = (f"[added after the first CPU run, issue 27] For every K_train, the accuracy at l = 4L averaged "
             f"over all seeds falls with k: Spearman(k, mean accuracy), k = 1..K_train, <= -0.5 and a fall >= "
             f"{MIN_DROP} from k = 1 to k = K_train. INCONCLUSIVE if some K_train has no fitted seed; then PASS if "
             "every K_train falls, FAIL otherwise.")


def check_mean_over_seeds(df: pd.DataFrame) -> Verdict:
    """The second rule of a-sparsity, on the mean over seeds (shown in the report beside the first)."""
    table = mean_over_seeds_table(df)
    if table.empty or (table["fitted"] == 0).any():
        return Verdict("INCONCLUSIVE", MEAN_RULE, table)
    return Verdict("PASS" if table["decreases"].all() else "FAIL", MEAN_RULE, table)


def sparsity_report(df: pd.DataFrame, path) -> list[str]:
    """The mean-over-seeds rule and its verdict; accuracy at 4L against k, one line per K_train (mean
    over seeds, the range of the seeds shaded)."""
    last = with_train_length(final(df))
    last = last.assign(k=last["task"].map(_k_of))
    last = last[last["length"] == 4 * last["L"]]
    if last.empty:
        return []
    second = check_mean_over_seeds(df)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for k_train, sub in last.groupby(K_KEY):
        by_k = sub.groupby("k")["exact_match"]
        mean, low, high = by_k.mean(), by_k.min(), by_k.max()
        line = ax.plot(mean.index, mean.values, marker="o", label=f"K_train={int(k_train)}")[0]
        ax.fill_between(mean.index, low.values, high.values, color=line.get_color(), alpha=0.15, linewidth=0)
        ax.axvline(int(k_train), color=line.get_color(), linestyle=":", linewidth=0.8)
    ax.axhline(0.5, color="grey", linestyle=":", linewidth=1)
    trained = ", ".join(str(n) for n in sorted(last["L"].unique()))
    ax.set(xlabel="k (marked bits; dotted: K_train)", ylabel="accuracy at l = 4L", ylim=(0, 1.05),
           title=f"sparse parity at 4L (L={trained}): mean over seeds, range shaded")
    ax.legend()
    save_figure(fig, path / "accuracy_vs_k.png")
    return [*verdict_section("Mean over seeds (a second rule, added after the first CPU run)", second),
            "## Accuracy at 4x against k", "", "![accuracy vs k](accuracy_vs_k.png)", ""]


def _sparsity_scales() -> dict:
    """cpu: K_train 4, 6, 8, 10 and 5 seeds (issue 27); cpu-v1: the first CPU grid (4, 6, 8; 3 seeds); paper."""
    out = {}
    k_values = {"cpu": [4, 6, 8, 10], "cpu-v1": [4, 6, 8], "paper": [4, 6, 8, 10, 12]}
    seeds = {"cpu": [0, 1, 2, 3, 4], "cpu-v1": SCALES["cpu"]["seeds"], "paper": SCALES["paper"]["seeds"]}
    for scale in k_values:
        size = "paper" if scale == "paper" else "cpu"
        task = {"task": "sparse_parity", "lengths": [4, L_TRAIN], "params": {"k_max": 4},
                "eval_params": {"k_max": 0}, "eval_grid": {"k": list(range(1, MAX_K[scale] + 1))}}
        # [ours] NoPE, as in PAPERS.md A1's probe; every k in 1..MAX_K is evaluated, k > K_train too.
        base = base_config(size, task, SPARSE_LENGTHS, "nope")
        points = [{K_KEY: k, "data.tasks.0.lengths": [k, L_TRAIN]} for k in k_values[scale]]
        out[scale] = point_sweep(base, points, seeds[scale])
    return out


register_preset(Preset(
    "a-sparsity", "A-sparsity",
    "Sparse parity trained on l <= 20 with k ~ U{1..K_train}: at 4x the training length, accuracy falls as "
    "the number k of marked bits grows.",
    _sparsity_scales(), check_sparsity, at_train_max(lambda top: [top, 2 * top]), sparsity_report))


# ---------------------------------------------------------------------------------- a-locality

LOCALITY_POINTS = {
    "local": {"data.tasks.0.params.dependency": "local"},
    "nonlocal": {"data.tasks.0.params.dependency": "nonlocal"},
    # Coupling folds the two halves onto the same IDs: first and middle bit share ID 1 (PAPERS.md A3).
    "nonlocal+coupling": {"data.tasks.0.params.dependency": "nonlocal", "model.encoding": "learned",
                          "positions.train": "coupled_random_offset", "positions.eval": "coupled"},
    # The locality-respecting transformer (issue 27): the same model with banded attention, each token
    # seeing itself and the 3 tokens before it (the idealized model's window), so no input it reads
    # is longer than in training.
    "local+window": {"data.tasks.0.params.dependency": "local", "model.attention_window": 4},
    # The idealized model of A0, beside the transformer: triples of positions within a window of 4.
    # Triples, because a tuple's score never sees its distance to the query: only a tuple that
    # holds the `=` itself can single out the last two bits, and with pairs such a tuple holds
    # one bit, whose averaged values cannot express an XOR (at most 0.75 accuracy).
    "idealized local": {"data.tasks.0.params.dependency": "local", "model.arch": "sparse_attention",
                        "model.tuple_size": 3, "model.window": 4},
    "idealized nonlocal": {"data.tasks.0.params.dependency": "nonlocal", "model.arch": "sparse_attention",
                           "model.tuple_size": 3, "model.window": 4},
}


def same_cell(cell, value) -> bool:
    """A results cell equals a point value (cells of mixed columns come back as floats or text)."""
    if isinstance(value, bool) or isinstance(cell, bool):
        return str(cell) == str(value)
    try:
        return float(cell) == float(value)
    except (TypeError, ValueError):
        return str(cell) == str(value)


def _variant(row) -> str:
    """Which LOCALITY_POINTS entry a results row belongs to (its keys set, every other point key unset)."""
    others = {k for p in LOCALITY_POINTS.values() for k in p}
    for name, point in LOCALITY_POINTS.items():
        if all(same_cell(row.get(k), v) for k, v in point.items()) and \
                all(pd.isna(row.get(k)) for k in others - set(point)):
            return name
    return "?"


def locality_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per variant: best and mean over seeds of accuracy in distribution (l <= L) and at 4L, L each
    run's training length."""
    keys = grid_columns(df)
    fit = _run_scores(df, "fit")
    long = _run_scores(df, "at_4x")
    rows = []
    for label, scores in (("fit", fit), ("at_4x", long)):
        if scores.empty:
            continue
        scores = scores.assign(variant=scores.apply(_variant, axis=1)).drop(columns=[*keys, "task"])
        best = best_over_seeds(scores)
        rows.append(best.rename(columns={"best": f"{label}_best", "mean": f"{label}_mean", "seeds": f"{label}_seeds"}))
    if len(rows) < 2:
        return pd.DataFrame(columns=["variant"])
    return rows[0].merge(rows[1], on="variant", how="outer")


def check_locality(df: pd.DataFrame) -> Verdict:
    """Local generalizes, non-local does not, coupling makes the non-local one generalize."""
    table = locality_table(df)
    rule = (f"INCONCLUSIVE unless the transformer points local, nonlocal and nonlocal+coupling each fit in "
            f"distribution (best seed's mean accuracy over l <= L >= {FIT}; L the runs' training length, "
            f"{L_TRAIN} in the preset); then PASS if, at l = 4L, the best seed of local reaches >= {FIT}, the best "
            f"seed of nonlocal stays < 0.75 (chance is 0.5) and the best seed of nonlocal+coupling reaches >= {FIT}; "
            "FAIL otherwise. "
            "The idealized-model points are shown beside them and do not enter the verdict.")
    need = ["local", "nonlocal", "nonlocal+coupling"]
    if table.empty or not set(need) <= set(table["variant"]):
        return Verdict("INCONCLUSIVE", rule, table)
    t = table.set_index("variant")
    if (t.loc[need, "fit_best"] < FIT).any() or t.loc[need, "at_4x_best"].isna().any():
        return Verdict("INCONCLUSIVE", rule, table)
    ok = (t.loc["local", "at_4x_best"] >= FIT and t.loc["nonlocal", "at_4x_best"] < 0.75
          and t.loc["nonlocal+coupling", "at_4x_best"] >= FIT)
    return Verdict("PASS" if ok else "FAIL", rule, table)


WINDOW_RULE = (f"[written 2026-12-06, before its first run] The locality-respecting transformer (local+window) "
               f"is INCONCLUSIVE unless its best seed fits (mean accuracy over l <= L >= {FIT}); then PASS "
               f"if its best seed reaches >= {FIT} at l = 4L and at least the plain transformer's local best "
               "there; FAIL otherwise.")


def check_window(df: pd.DataFrame) -> Verdict:
    """The second comparison of a-locality: banded attention against the plain transformer on local parity."""
    table = locality_table(df)
    need = ["local", "local+window"]
    if table.empty or not set(need) <= set(table["variant"]):
        return Verdict("INCONCLUSIVE", WINDOW_RULE, table)
    t = table.set_index("variant")
    if t.loc["local+window", "fit_best"] < FIT or t.loc[need, "at_4x_best"].isna().any():
        return Verdict("INCONCLUSIVE", WINDOW_RULE, table)
    ok = t.loc["local+window", "at_4x_best"] >= max(FIT, t.loc["local", "at_4x_best"])
    return Verdict("PASS" if ok else "FAIL", WINDOW_RULE, table)


def locality_report(df: pd.DataFrame, path) -> list[str]:
    """The plain transformer, the locality-respecting one and the idealized model side by side."""
    return [*verdict_section("The locality-respecting transformer (a second comparison)", check_window(df),
                             with_table=False),
            "The numbers are the table above (variants local, local+window, idealized local).", ""]


def _locality_scales() -> dict:
    out = {}
    for scale in SCALES:
        task = {"task": "offset_parity", "lengths": [4, L_TRAIN], "params": {"dependency": "local"}}
        base = base_config(scale, task, SPARSE_LENGTHS, "rope", pack=False)
        out[scale] = point_sweep(base, list(LOCALITY_POINTS.values()), SCALES[scale]["seeds"])
    return out


register_preset(Preset(
    "a-locality", "A-locality",
    "A parity of two bits at fixed offsets before the query generalizes from l <= 20 to 4x; a parity of "
    "the first and the middle bit does not, unless position coupling makes it local in ID space.",
    _locality_scales(), check_locality, at_train_max(lambda top: [top, 2 * top]), locality_report))
