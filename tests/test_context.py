"""The far-context dependency estimator (oracle corpus), the model scorer's fast paths, and the
context analysis of a trained text run end to end (library and CLI)."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from lengthgen.analysis.context import ModelScorer, analyze_run, resolve_settings, summarize
from lengthgen.analysis.dependency import Scorer, analyse_window, gain_by_bin, k_bin
from lengthgen.cli.main import main
from lengthgen.config import build_config
from lengthgen.errors import UserError
from lengthgen.model import Decoder, ModelConfig
from lengthgen.store.rundir import RunDir
from lengthgen.vocab import Vocab

from helpers import tiny_config, train_tree

V = 7  # the synthetic alphabet


class Oracle(Scorer):
    """Bayes-optimal log-probabilities on a synthetic window: a target token is the sum mod V of its
    known far dependencies, so it is certain when all of them are in the context and uniform
    otherwise; every other token is independent and uniform."""

    def __init__(self, n: int, dependencies: dict[int, list[int]]):
        self.n, self.dependencies = n, dependencies
        self.calls = 0

    def log_probs(self, queries):
        self.calls += 1
        out = []
        for kept, t in queries:
            needed = self.dependencies.get(t)
            out.append(0.0 if needed is not None and set(needed) <= set(kept.tolist()) else -np.log(V))
        return np.array(out)


def synthetic_corpus(rng, n: int, train_length: int, sizes: dict[int, int]):
    """A window whose target t (keys of sizes) is the sum mod V of sizes[t] random far tokens of it."""
    window = rng.integers(0, V, n)
    dependencies = {}
    for t, k in sizes.items():
        # Only independent tokens are dependencies, so the oracle's probabilities are exact.
        free = [j for j in range(t - train_length + 1) if j not in sizes]
        dependencies[t] = sorted(rng.choice(free, size=k, replace=False).tolist())
        window[t] = window[dependencies[t]].sum() % V
    return window, dependencies


def test_the_estimator_finds_each_tokens_dependency_set_size():
    rng = np.random.default_rng(0)
    length, n = 8, 64
    sizes = {20: 1, 31: 2, 40: 3, 47: 5, 63: 5, 55: 2, 12: 1}
    window, dependencies = synthetic_corpus(rng, n, length, sizes)
    for t, needed in dependencies.items():  # the construction the oracle relies on
        assert window[t] == window[needed].sum() % V and max(needed) <= t - length
    oracle = Oracle(n, dependencies)
    table = analyse_window(oracle, length, threshold=0.1, fraction=0.8).set_index("position")
    analysed = table[table["k"].notna()]
    assert {int(p) - 1: int(k) for p, k in analysed["k"].items()} == sizes
    assert np.allclose(analysed["gain"], np.log(V)) and (table.loc[9:, "gain"].drop(analysed.index) == 0).all()
    assert table.loc[: length, "gain"].isna().all()  # no far context up to L
    assert (table["n_far"] == np.maximum(np.arange(n) - length + 1, 0)).all()
    # The search is logarithmic: a few batched calls for all targets, not one per candidate k.
    assert oracle.calls < 30
    bins = gain_by_bin(table.reset_index())
    assert list(bins["bin"]) == ["1", "2", "3-4", "5-8"] and list(bins["count"]) == [2, 2, 1, 2]
    assert bins["share_of_gain"].sum() == pytest.approx(1.0)
    assert [k_bin(k) for k in (0, 1, 2, 3, 4, 5, 8, 9, 100)] == ["0", "1", "2", "3-4", "3-4", "5-8", "5-8", "9-16",
                                                                 "65-128"]


def test_max_tokens_keeps_the_largest_gains_and_a_threshold_above_every_gain_analyses_none():
    rng = np.random.default_rng(1)
    window, dependencies = synthetic_corpus(rng, 40, 6, {20: 2, 30: 1, 39: 3})
    table = analyse_window(Oracle(40, dependencies), 6, threshold=0.1, max_tokens=2)
    assert table["k"].notna().sum() == 2
    assert analyse_window(Oracle(40, dependencies), 6, threshold=5.0)["k"].isna().all()


def random_model(encoding="rope"):
    torch.manual_seed(0)
    return Decoder(ModelConfig(layers=2, heads=2, d_model=32, d_ff=64, encoding=encoding), len(Vocab.default()),
                   max_position=128).eval()


@pytest.mark.parametrize("encoding", ["rope", "learned"])
def test_the_model_scorers_batched_paths_equal_the_generic_ones(encoding):
    vocab = Vocab.default()
    window = np.array(vocab.encode(list("the cat sat on the mat; the cat ran off")))
    scorer = ModelScorer(random_model(encoding), window, vocab.bos_id, "cpu", "float32", batch_size=5)
    near, targets = 7, [9, 20, len(window) - 1]
    assert np.allclose(scorer.full(), Scorer.full(scorer), atol=1e-5)
    truncated = scorer.truncated(near)
    for t in (3, 20):  # by hand: <bos> and the last `near` tokens at IDs 0, 1, ...
        context = window[max(0, t - near) : t]
        tokens = torch.tensor([[vocab.bos_id, *context]])
        with torch.no_grad():
            logits = scorer.model(tokens, torch.arange(tokens.shape[1])[None])[0, -1]
        assert truncated[t] == pytest.approx(float(torch.log_softmax(logits, -1)[window[t]]), abs=1e-5)
    fast, generic = scorer.occlusion(targets, near), Scorer.occlusion(scorer, targets, near)
    for t in targets:
        assert fast[t].shape == (t - near,) and np.allclose(fast[t], generic[t], atol=1e-5)
    attention = scorer.attention(targets, near)
    assert all(a.shape == (t - near,) and (a >= 0).all() for t, a in attention.items())
    assert truncated[3] == pytest.approx(scorer.full()[3], abs=1e-5)  # no far context: the same input


def test_summary_counts_sparse_and_dense_tokens_apart_from_k0():
    tokens = pd.DataFrame({"position": [10, 11, 12, 13, 14, 15], "loss_full": 1.0, "loss_truncated": 2.0,
                           "gain": [1.0, 3.0, 0.5, 0.2, -0.4, 0.05], "k": [1, 2, 9, 0, np.nan, np.nan]})
    s = summarize(tokens, length=8, sparse_k=4)
    assert (s["analysed"], s["k0"], s["with_far"], s["sparse"], s["dense"]) == (4, 1, 3, 2, 1)
    assert s["sparse_token_share"] == pytest.approx(2 / 3) and s["sparse_gain_share"] == pytest.approx(4 / 4.5)
    assert s["concentration"] == pytest.approx(4 / 4.5 - 2 / 3)
    gains = np.array([1.0, 3.0, 0.5, 0.2, -0.4, 0.05])
    assert s["mean_gain_beyond"] == pytest.approx(gains.mean()) and s["positive_gain_share"] == pytest.approx(5 / 6)
    assert (s["gain_p10"], s["gain_median"], s["gain_p90"]) == pytest.approx(tuple(np.quantile(gains, [0.1, 0.5, 0.9])))


def train_text_run(root, name="lm", **overrides):
    tree = tiny_config(
        data={"tasks": [{"task": "text", "lengths": [16, 16]}], "batch_size": 16},
        train={"steps": 12, "lr": 3e-3, "warmup": 0.1, "log_every": 6, "precision": "float32", "threads": 1},
        eval={"lengths": [16, 32], "n": 8, "batch_size": 8}, positions={"max_position": 80, **overrides})
    return train_tree(tree, root / name)


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    return train_text_run(tmp_path_factory.mktemp("context"))


def test_context_analysis_of_a_trained_run_writes_its_tables(text_run):
    eval_rows = (text_run.path / "eval.csv").read_text()
    assert "text,16," in eval_rows and "text,32," in eval_rows
    settings = resolve_settings(text_run.read_config(), windows=2, threshold=0.0, max_tokens=6)
    assert settings.eval_length == 64
    results = analyze_run(text_run, settings)
    tokens = results.tokens
    assert len(tokens) == 2 * 64 and set(tokens["window"]) == {0, 1}
    beyond = tokens[tokens["position"] > 16]
    assert beyond["gain"].notna().all() and tokens.loc[tokens["position"] <= 16, "gain"].isna().all()
    assert np.allclose(beyond["gain"], beyond["loss_truncated"] - beyond["loss_full"])
    analysed = tokens[tokens["k"].notna()]
    assert 0 < len(analysed) <= 12 and (analysed["k"] <= analysed["n_far"]).all()
    assert results.bins["count"].sum() == len(analysed)
    files = {p.name for p in results.path.iterdir()}
    assert {"tokens.csv", "bins.csv", "positions.csv", "summary.json", "settings.json", "loss_by_position.png",
            "gain_by_k.png"} <= files
    assert json.loads((results.path / "summary.json").read_text())["tokens_beyond"] == 2 * 48
    again = analyze_run(text_run, settings)  # read back, not recomputed
    pd.testing.assert_frame_equal(again.tokens, tokens, check_dtype=False)
    assert again.summary == pytest.approx(results.summary, nan_ok=True)
    # A summary.json written before a field existed: the read-back summary is made again from the tokens.
    (results.path / "summary.json").write_text(json.dumps({"tokens_beyond": 96}))
    assert analyze_run(text_run, settings).summary["gain_median"] == pytest.approx(results.summary["gain_median"])


def test_context_command_and_its_errors(text_run, capsys, tmp_path):
    path = str(text_run.path)
    code = main(["context", path, "--windows", "1", "--eval-length", "40", "--ranking", "attention",
                 "--max-tokens", "3", "--threshold", "0"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "1 windows of 40 tokens, training length 16" in out and "attention ranking" in out
    for argv, needle in ((["--eval-length", "10"], "must exceed the training length 16"),
                         (["--ranking", "gradient"],
                          "unknown far-token ranking 'gradient'; valid: attention, occlusion"),
                         (["--eval-length", "100000"], "cannot make length 100000"),
                         (["--checkpoint", "5"], "no checkpoint")):
        assert main(["context", path, *argv]) == 2
        err = capsys.readouterr().err
        assert needle in err and len(err.strip().splitlines()) == 1
    copy_run = RunDir(tmp_path / "copy")
    copy_run.path.mkdir()
    copy_run.write_config(build_config(tiny_config()))
    assert main(["context", str(copy_run.path)]) == 2
    assert "needs a run of the text task" in capsys.readouterr().err


def test_bad_settings_are_user_errors(text_run):
    cfg = text_run.read_config()
    for kwargs in ({"windows": 0}, {"fraction": 0.0}, {"threshold": float("nan")}, {"max_tokens": -1}):
        with pytest.raises(UserError):
            resolve_settings(cfg, **kwargs)


# ---------------------------------------------------------------------------------- a-language

def summary_rows(points: dict) -> pd.DataFrame:
    """points: point -> per-seed (tokens with k >= 1, sparse count, concentration)."""
    rows = []
    for point, seeds in points.items():
        for seed, (far, sparse, concentration) in enumerate(seeds):
            rows.append({"point": point, "seed": seed, "run": f"{point}{seed}", "with_far": far, "sparse": sparse,
                         "dense": far - sparse, "concentration": concentration, "mean_gain_beyond": 0.1})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("pose,verdict", [
    ([(200, 100, 0.08), (200, 100, -0.02)], "PASS"),  # the best counted seed decides
    ([(200, 100, 0.04), (200, 100, -0.02)], "FAIL"),
    ([(40, 20, 0.3), (200, 195, 0.2)], "INCONCLUSIVE"),  # too few tokens; too few dense ones
    ([(40, 20, 0.3), (200, 100, 0.01)], "FAIL"),  # only counted runs enter
])
def test_language_rule_reaches_every_verdict(pose, verdict):
    from lengthgen.presets.language import check_language

    result = check_language(summary_rows({"consecutive": [(200, 100, 0.5)] * 2, "pose": pose}))
    assert result.status == verdict and len(result.numbers) == 4 and "counts" in result.numbers
    assert "best counted PoSE seed" in result.rule
    assert check_language(pd.DataFrame()).status == "INCONCLUSIVE"


def test_paper_scale_needs_the_c4_shard(monkeypatch, tmp_path):
    from lengthgen.presets import get_preset

    preset = get_preset("a-language")
    monkeypatch.delenv("LENGTHGEN_C4", raising=False)
    with pytest.raises(UserError, match="set LENGTHGEN_C4 to it"):
        preset.spec("paper")
    monkeypatch.setenv("LENGTHGEN_C4", str(tmp_path / "missing.json.gz"))
    with pytest.raises(UserError, match="neither a builtin corpus"):
        preset.spec("paper")
    shard = tmp_path / "c4-train.00000-of-01024.json.gz"
    shard.write_bytes(b"")
    monkeypatch.setenv("LENGTHGEN_C4", str(shard))
    spec = preset.spec("paper")
    assert spec.base["data"]["tasks"][0]["params"]["corpus"] == str(shard)
    assert spec.base["positions"]["max_position"] == 4 * 512 + 2 and len(spec.seeds) == 5
    cpu = preset.spec("cpu")
    assert cpu.base["data"]["tasks"][0]["params"]["corpus"] == "stdlib" and cpu.base["eval"]["lengths"][-1] == 256
    assert preset.spec("cpu-pydoc").base["data"]["tasks"][0]["params"]["corpus"] == "pydoc"  # the first CPU scale


TINY_LANGUAGE = ["train.steps=4", "eval.n=4", "eval.lengths=[16,64]", "model.layers=1", "model.d_model=32",
                 "model.d_ff=64", "model.heads=2", "data.batch_size=4", "data.tasks.0.lengths=[16,16]",
                 "positions.max_position=66"]


def run_language_sweep(path, spec) -> str:
    """Train a tiny a-language sweep and write its report with the preset's analysis; the report's text."""
    from lengthgen.presets import get_preset
    from lengthgen.reports.report import write_report
    from lengthgen.sweeps.run import SweepDir, run_sweep

    sweep = SweepDir(path)
    sweep.prepare(spec, force=False)
    (sweep.path / "preset.json").write_text(json.dumps({"name": "a-language", "scale": "cpu"}))
    assert all(r.status == "done" for r in run_sweep(spec, sweep.path, workers=1, threads=1, quiet=True))
    return write_report(sweep.path, preset=get_preset("a-language")).read_text()


@pytest.mark.slow
def test_a_language_preset_runs_end_to_end(tmp_path):
    from lengthgen.presets import get_preset
    from lengthgen.sweeps.run import SweepDir

    spec = get_preset("a-language").spec("cpu", seeds=[0]).model_copy(update={"overrides": TINY_LANGUAGE})
    sweep = SweepDir(tmp_path / "a-language")
    report = run_language_sweep(sweep.path, spec)
    assert "**Verdict:" in report and "## Far context: gain by sparsity of the dependency" in report
    # a text window is never exact, so its length table is token accuracy
    assert "### text: token_acc, mean (min-max)" in report and "### text: exact_match" not in report
    summary = pd.read_csv(sweep.path / "context_summary.csv")
    assert sorted(summary["point"]) == ["consecutive", "pose"] and (summary["tokens_beyond"] == 8 * 48).all()
    assert (sweep.path / "context_gain_by_k.png").is_file() and (sweep.path / "context_loss_by_position.png").is_file()
    assert (sweep.path / "context_gain_distribution.png").is_file() and "gain_median" in report
    assert summary["gain_p10"].le(summary["gain_median"]).all() and summary["gain_median"].le(summary["gain_p90"]).all()


@pytest.mark.slow
def test_a_probe_of_one_positions_rule_is_analysed_per_run(tmp_path):
    # A probe sweep (experiments/language/) keeps PoSE in its base and varies another knob, so its results
    # have no positions.train column: the analysis reads the rule from each run's config, and the
    # accuracy table goes per run.
    from lengthgen.presets import get_preset

    spec = get_preset("a-language").spec("cpu", seeds=[0])
    base = {**spec.base, "positions": {**spec.base["positions"], "train": "pose"}}
    probe = spec.model_copy(update={"name": "probe", "base": base, "overrides": TINY_LANGUAGE,
                                    "points": [{"model.attention_window": 8}, {"model.attention_window": 16}]})
    report = run_language_sweep(tmp_path / "probe", probe)
    summary = pd.read_csv(tmp_path / "probe" / "context_summary.csv")
    assert list(summary["point"]) == ["pose", "pose"] and summary["run"].nunique() == 2
    assert "| length | attention_window=16__seed0 | attention_window=8__seed0 |" in report
