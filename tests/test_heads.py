"""Head analysis: ablation (hand-built model), matched prompts, attention differences, tracking over
checkpoints, the CLI, and the b-heads rule."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from lengthgen.analysis.ablation import EvalSetup, ablation_map, ablator, head_map, head_means, parse_heads
from lengthgen.analysis.attention import attention_difference, capture_patterns
from lengthgen.analysis.stats import pearson, spearman
from lengthgen.analysis.tracking import (
    HEADS_DIR,
    analyze_run,
    analyze_runs,
    correlations,
    resolve_settings,
    select_checkpoints,
)
from lengthgen.cli.main import main
from lengthgen.data import build_spec, eval_examples, matched_eval_examples
from lengthgen.errors import UserError
from lengthgen.model import Decoder, Hooks, KVCache, ModelConfig
from lengthgen.model.hooks import replace_head_output, replace_heads_output_by_row
from lengthgen.model.transformer import Attention
from lengthgen.positions import PolicySettings
from lengthgen.presets.heads import RULE_V1, check_heads, judge, seed_table
from lengthgen.store.rundir import RunDir
from lengthgen.tasks import make_task
from lengthgen.tasks.base import relabel
from lengthgen.vocab import Vocab

from helpers import tiny_config, train_tree

VOCAB = Vocab.default()
LETTERS = "abcd"
SETTINGS = PolicySettings(64)


def handbuilt(layers: int = 1) -> Decoder:
    """1 layer, 2 heads of width 8, NoPE, no MLP, for copy of one letter (`a=` -> `a`); with
    `layers` > 1 the later blocks are all zeros, so they pass the residual through unchanged.

    Residual dims: 0..5 one-hot current token (<bos>, =, a..d); 6..9 the letter head 0 found;
    10 a dim nothing reads. Head 0 attends from `=` to the letter (query "I am =", key "I am a
    letter") and writes which letter into 6..9, which the LM head reads as that letter: it alone
    carries the answer. After a letter the LM head says <eos> from the current token. Head 1
    attends uniformly and writes the <bos> share into dim 10, which nothing reads.
    """
    model = Decoder(ModelConfig(layers=layers, heads=2, d_model=16, d_ff=4, encoding="nope", attention="math"),
                    len(VOCAB), max_position=64).eval()
    d, hd, answer, spare = 16, 8, 6, 10
    dims = {t: i for i, t in enumerate(["<bos>", "="] + list(LETTERS))}
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        for norm in (model.norm, model.blocks[0].attn_norm, model.blocks[0].mlp_norm):
            norm.weight.fill_(1.0)
        for token, i in dims.items():
            model.embed.weight[VOCAB.encode([token])[0], i] = 1.0
        qkv, out = model.blocks[0].attn.qkv.weight, model.blocks[0].attn.out.weight
        qkv[0, dims["="]] = 10.0
        for j, letter in enumerate(LETTERS):
            qkv[d, dims[letter]] = 1.0
            qkv[2 * d + j, dims[letter]] = 1.0
            out[answer + j, j] = d**-0.5
            model.lm_head.weight[VOCAB.encode([letter])[0], answer + j] = 1.0
            model.lm_head.weight[VOCAB.eos_id, dims[letter]] = 2.0
        qkv[2 * d + hd, dims["<bos>"]] = 1.0
        out[spare, hd] = 1.0
    return model


def random_model(layers=2) -> Decoder:
    torch.manual_seed(0)
    return Decoder(ModelConfig(layers=layers, heads=2, d_model=16, d_ff=32), len(VOCAB), max_position=64).eval()


def letter_spec():
    return build_spec({"task": "copy", "lengths": [1, 1], "params": {"alphabet": LETTERS}})


def setup(n=64, mode="teacher_forced") -> EvalSetup:
    return EvalSetup(VOCAB, n, 0, "consecutive", SETTINGS, mode=mode)


@pytest.mark.parametrize("mode", ["teacher_forced", "greedy"])
def test_ablating_the_answer_head_destroys_exact_match_and_no_other_head_matters(mode):
    model = handbuilt()
    baseline, zero = ablation_map(model, [letter_spec()], [1], setup(mode=mode), "zero")
    assert baseline[0].exact_match == 1.0
    assert head_map(zero, "copy").to_numpy().tolist() == [[1.0, 0.0]]
    _, mean = ablation_map(model, [letter_spec()], [1], setup(mode=mode), "mean")
    drops = head_map(mean, "copy").to_numpy()[0]
    # The mean of head 0 is the average letter: right for about a quarter of the examples.
    assert 0.5 < drops[0] < 1.0 and drops[1] == 0.0


def test_ablation_changes_exactly_that_heads_contribution():
    torch.manual_seed(0)
    model = Decoder(ModelConfig(layers=1, heads=4, d_model=32, d_ff=64, encoding="rope"), 40, 64).eval()
    with torch.no_grad():
        model.blocks[0].mlp.down.weight.zero_()  # residual after the block = embedding + attention output
    tokens = torch.randint(0, 40, (3, 10))
    positions = torch.arange(10).expand(3, 10)
    names = ["blocks.0.attn.hook_z", "blocks.0.hook_resid_post"]
    with torch.no_grad():
        clean = Hooks(capture=names)
        model(tokens, positions, hooks=clean)
        value = torch.randn(8)
        ablated = Hooks(capture=names, replace=replace_head_output(0, 2, value))
        model(tokens, positions, hooks=ablated)
    z = clean.cache[names[0]]
    assert torch.equal(ablated.cache[names[0]][:, :, [0, 1, 3]], z[:, :, [0, 1, 3]])
    w = model.blocks[0].attn.out.weight[:, 16:24]  # the output projection's columns of head 2
    expected = (value - z[:, :, 2]) @ w.T
    change = ablated.cache[names[1]] - clean.cache[names[1]]
    assert torch.allclose(change, expected, atol=1e-5)


def test_head_means_and_patterns_capture_only_the_asked_layers(monkeypatch):
    model = random_model(layers=2)
    stored = []
    original = Hooks.__call__

    def spy(self, name, tensor):
        out = original(self, name, tensor)
        stored.extend(n for n in self.cache if n not in stored)
        return out

    monkeypatch.setattr(Hooks, "__call__", spy)
    examples = eval_examples(letter_spec(), 1, 8, 0, "consecutive", SETTINGS)
    means = head_means(model, examples, setup(), [1])
    assert set(means) == {1} and means[1].shape == (2, 8) and stored == ["blocks.1.attn.hook_z"]
    stored.clear()
    patterns = capture_patterns(model, examples, setup(), [0])
    assert set(patterns) == {0} and patterns[0].shape == (8, 2, 4, 4) and stored == ["blocks.0.attn.hook_pattern"]


def test_unused_hooks_keep_the_fused_attention_path(monkeypatch):
    torch.manual_seed(0)
    model = Decoder(ModelConfig(layers=2, heads=2, d_model=16, d_ff=32, attention="sdpa"), 40, 64).eval()
    calls = []
    original = Attention._math_attention
    monkeypatch.setattr(Attention, "_math_attention", lambda self, *a: calls.append(self.prefix) or original(self, *a))
    tokens, positions = torch.randint(0, 40, (2, 6)), torch.arange(6).expand(2, 6)
    with torch.no_grad():
        plain = model(tokens, positions)
        empty = model(tokens, positions, hooks=Hooks())
        assert calls == [] and torch.equal(plain, empty)
        model(tokens, positions, hooks=Hooks(capture=["blocks.1.attn.hook_pattern"]))
    assert calls == ["blocks.1.attn."]  # only the layer whose pattern was asked for


@pytest.mark.parametrize("text,needle", [("1", "not LAYER.HEAD"), ("0.x", "not LAYER.HEAD"), ("2.0", "does not exist"),
                                         ("0.7", "does not exist"), ("0.1,0.1", "listed twice"), ("", "not LAYER")])
def test_bad_head_specs_are_one_line_errors(text, needle):
    with pytest.raises(UserError, match=needle):
        parse_heads(text, layers=2, heads=4)
    assert parse_heads("1.3, 0.0", 2, 4) == [(1, 3), (0, 0)]


def test_matched_prompts_share_inputs_and_differ_only_in_markers():
    add = build_spec({"task": "reverse_add", "lengths": [1, 8]}, 0, markers=True)
    carry = build_spec({"task": "no_carry", "lengths": [1, 16]}, 1, markers=True)
    first, second = matched_eval_examples(add, carry, 5, 16, 3, "consecutive", SETTINGS)
    assert first == eval_examples(add, 5, 16, 3, "consecutive", SETTINGS)
    for a, b in zip(first, second):
        assert a.meta["a"] == b.meta["a"] and a.meta["b"] == b.meta["b"] and b.task == "no_carry"
        differ = [i for i, (x, y) in enumerate(zip(a.prompt, b.prompt)) if x != y]
        assert len(a.prompt) == len(b.prompt) and differ == [0, len(a.prompt) - 1]  # the two markers
        assert b.answer == make_task("no_carry").build((a.meta["a"], a.meta["b"]))[1]
    strings = relabel(make_task("copy").sample(np.random.default_rng(0), 4, 6), make_task("copy"), make_task("reverse"))
    assert all(ex.answer == ex.prompt[:-1][::-1] for ex in strings)
    with pytest.raises(UserError, match="do not take the same inputs"):
        relabel(strings, make_task("reverse"), make_task("mqar"))


def test_attention_difference_is_zero_for_identical_prompts_and_grows_with_the_span():
    model = random_model()
    copy = build_spec({"task": "copy", "lengths": [1, 4]}, 0, markers=True)
    same = attention_difference(model, copy, copy, [3, 4], setup(8))
    assert (same["diff"] == 0).all() and len(same) == 2 * 2 * 2  # lengths x layers x heads
    reverse = build_spec({"task": "reverse", "lengths": [1, 8]}, 1, markers=True)
    whole = attention_difference(model, copy, reverse, [3], setup(8))
    prompt = attention_difference(model, copy, reverse, [3], setup(8), span="prompt")
    assert (whole["diff"] > 0).all() and (prompt["diff"] > 0).all()  # the markers differ
    assert (prompt["diff"] <= whole["diff"] + 1e-6).all()  # a sub-matrix of the same patterns


def test_correlations():
    assert pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [1, 8, 9, 100]) == pytest.approx(1.0)
    assert spearman([1, 2, 3], [3, 1, 2]) == pytest.approx(-0.5)
    assert np.isnan(pearson([1, 2, 3], [5, 5, 5])) and np.isnan(spearman([1, np.nan], [2, 3]))
    table = pd.DataFrame({"step": [1, 2, 3], "gap": [0.1, 0.5, 0.2], "map_distance": [0.1, 0.6, 0.3],
                          "attention_diff": [3.0, 2.0, 1.0], "map_distance_in": [0.3, 0.2, 0.1],
                          "attention_diff_in": [1.0, 1.0, 1.0]})
    corr = correlations(table).set_index("metric")
    assert corr.loc["map_distance", "spearman"] == pytest.approx(1.0) and corr.loc["map_distance", "checkpoints"] == 3
    assert corr.loc["map_distance_in", "spearman"] == pytest.approx(-0.5)


def train_pair(root, name):
    tree = tiny_config(
        data={"group": "control-copy-reverse", "group_max": [3, 6], "markers": True, "batch_size": 16},
        train={"steps": 40, "lr": 3e-3, "warmup": 0.1, "log_every": 20, "precision": "float32", "threads": 1,
               "eval_every": 10, "checkpoint_every": 10, "keep_checkpoints": 10},
        eval={"lengths": "1:8", "n": 8, "batch_size": 32})
    return train_tree(tree, root / name)


@pytest.fixture(scope="module")
def pair_run(tmp_path_factory):
    return train_pair(tmp_path_factory.mktemp("heads"), "pair")


@pytest.mark.slow
def test_tracking_over_checkpoints_is_reproducible(pair_run, tmp_path):
    settings = resolve_settings(pair_run.read_config(), n=8)
    assert (settings.main, settings.aux, settings.lengths) == ("copy", "reverse", (1, 2, 3, 4, 5, 6))
    steps = select_checkpoints(pair_run)
    assert steps == [10, 20, 30, 40]
    first = analyze_run(pair_run, settings, steps)
    assert list(first.tracking["step"]) == steps and len(first.correlations) == 4
    assert {"curves.png", "maps.png", "maps_steps.png", "settings.json"} <= {p.name for p in first.path.iterdir()}
    twin = analyze_run(train_pair(tmp_path, "twin"), settings, steps)  # same seeds, another directory
    for name in ("maps", "attention", "tracking", "correlations"):
        pd.testing.assert_frame_equal(getattr(first, name), getattr(twin, name))
    again = analyze_run(pair_run, settings, steps)  # read back from the files
    pd.testing.assert_frame_equal(again.tracking, first.tracking, check_dtype=False)


@pytest.mark.parametrize("kind,mode", [("mean", "teacher_forced"), ("zero", "greedy"), ("mean", "greedy")])
def test_ablation_map_scores_each_head_as_ablating_it_alone(kind, mode):
    model = handbuilt(layers=2)
    setup_ = setup(n=24, mode=mode)
    # Two sets (at one letter reverse is copy, with its own examples and ablation means); 5 rows a
    # pass, so a head's 24 copies are split across passes and passes mix heads and layers.
    specs = [letter_spec(), build_spec({"task": "reverse", "lengths": [1, 1], "params": {"alphabet": LETTERS}})]
    baseline, batched = ablation_map(model, specs, [1], setup_, kind, rows=5)
    alone = [r.exact_match for layer in range(2) for head in range(2)
             for r in setup_.evaluate(model, specs, [1], adapt=ablator(kind, [(layer, head)], setup_))]
    assert batched["exact_match"].tolist() == alone
    assert batched[["layer", "head", "task"]].values.tolist() == [
        [layer, head, task] for layer in range(2) for head in range(2) for task in ("copy", "reverse")]
    assert max(alone[:2]) < 1.0 and alone[2:] == [1.0] * 6  # only the answer head matters
    assert batched["baseline"].tolist() == [r.exact_match for r in baseline] * 4 == [1.0] * 8


@pytest.mark.parametrize("with_cache", [False, True])
def test_heads_ablated_by_row_match_each_row_ablated_alone(with_cache):
    """Every row of one batch with its own head ablated (or none) gives the logits of that row run
    alone with only that head ablated: no row sees another row's ablation, in a full pass and in
    KV-cached decoding steps."""
    model = random_model(layers=2)
    torch.manual_seed(1)
    tokens, positions = torch.randint(0, len(VOCAB), (5, 9)), torch.arange(9).expand(5, 9)
    values = {layer: torch.randn(2, 8) for layer in range(2)}
    assigned = [(0, 0), (0, 1), (1, 0), (1, 1), None]  # row 4 ablates nothing
    replace = {}
    for layer in range(2):
        ablate = torch.tensor([[a == (layer, h) for h in range(2)] for a in assigned])
        replace.update(replace_heads_output_by_row(layer, ablate, values[layer]))

    def logits(model_tokens, hooks):
        if not with_cache:
            return model(model_tokens, positions[: len(model_tokens)], hooks=hooks)
        cache = KVCache()  # the prefix, then one token at a time
        out = [model(model_tokens[:, :6], positions[: len(model_tokens), :6], cache=cache, hooks=hooks)]
        for t in range(6, 9):
            out.append(model(model_tokens[:, t : t + 1], positions[: len(model_tokens), t : t + 1], cache=cache,
                             hooks=hooks))
        return torch.cat(out, dim=1)

    with torch.no_grad():
        together = logits(tokens, Hooks(replace=replace))
        for row, head in enumerate(assigned):
            hooks = Hooks(replace=replace_head_output(head[0], head[1], values[head[0]][head[1]])) if head else None
            alone = logits(tokens[row : row + 1], hooks)
            assert torch.allclose(together[row], alone[0], atol=1e-5), (row, head)
        assert not torch.allclose(together[0], model(tokens, positions)[0], atol=1e-3)  # the ablation bites


@pytest.mark.slow
def test_runs_analysed_in_worker_processes_match_one_process(pair_run, tmp_path):
    settings = resolve_settings(pair_run.read_config(), lengths=[2, 5], n=8)
    steps = [20, 40]
    copies = []
    for name in ("a", "b"):
        shutil.copytree(pair_run.path, tmp_path / name, ignore=shutil.ignore_patterns(HEADS_DIR))
        copies.append(RunDir(tmp_path / name))
    parallel = analyze_runs([(run, settings, steps) for run in copies], workers=2, progress=False)
    serial = analyze_run(copies[0], settings, steps, force=True)  # recomputed here, in this process
    for results in parallel:
        for name in ("maps", "attention", "tracking"):
            pd.testing.assert_frame_equal(getattr(results, name), getattr(serial, name), check_dtype=False)
    assert [r.path for r in parallel] == [run.path / HEADS_DIR for run in copies]


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_heads_and_ablated_eval_commands(pair_run, capsys):
    path = str(pair_run.path)
    code, out, _ = run_cli(capsys, "heads", path, "--checkpoints", "20", "40", "-n", "8", "--lengths", "2,5",
                           "--ablation", "zero", "--span", "prompt")
    assert code == 0 and "copy (main) vs reverse (aux)" in out and "spearman" in out
    assert json.loads((pair_run.path / "heads" / "settings.json").read_text())["steps"] == [20, 40]
    before = (pair_run.path / "eval.csv").read_text()
    code, out, _ = run_cli(capsys, "eval", path, "--ablate", "1.0,0.1", "--ablation", "zero", "--lengths", "2,3",
                           "-n", "8")
    assert code == 0 and "heads 1.0, 0.1 ablated (zero)" in out and "copy" in out
    assert (pair_run.path / "eval.csv").read_text() == before  # ablated scores never enter eval.csv


@pytest.mark.parametrize("argv,needle", [
    (["heads", "{run}", "--tasks", "copy", "maze_dfs_trace"], "not in this run"),
    (["heads", "{run}", "--tasks", "copy", "copy"], "two different tasks"),
    (["heads", "{run}", "--tasks", "copy"], "expected 2 arguments"),
    (["heads", "{run}", "--checkpoints", "15"], "no checkpoint at step 15; available: 10, 20, 30, 40"),
    (["heads", "{run}", "--checkpoints", "last"], "'all' or steps"),
    (["heads", "{run}", "--ablation", "half"], "unknown ablation 'half'; valid: mean, zero"),
    (["heads", "{run}", "--span", "answer"], "unknown attention span"),
    (["heads", "{run}", "-n", "0"], "-n must be in"),
    (["eval", "{run}", "--ablate", "3.0"], "does not exist"),
    (["eval", "{run}", "--ablate", "0,1"], "not LAYER.HEAD"),
    (["eval", "{run}", "--ablation", "zero"], "--ablation needs --ablate"),
    (["eval", "{run}", "--ablate", "0.1", "--ablation", "max"], "unknown ablation"),
])
def test_cli_errors_are_one_line(pair_run, capsys, argv, needle):
    code, _, err = run_cli(capsys, *[a.format(run=pair_run.path) for a in argv])
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1


def tracking_table(pairs: dict, steps=(1, 2, 3, 4, 5), fit=1.0) -> pd.DataFrame:
    """pairs: pair -> per-seed list of (gap curve, map distance curve) over `steps`."""
    rows = []
    for pair, seeds in pairs.items():
        for seed, (gaps, distances) in enumerate(seeds):
            for step, gap, distance in zip(steps, gaps, distances):
                rows.append({"pair": pair, "data.group": f"{pair}-group", "seed": seed, "run": f"{pair}{seed}",
                             "step": step, "gap": gap, "map_distance": distance, "attention_diff": distance * 3,
                             "map_distance_in": distance / 2, "attention_diff_in": distance,
                             "main_fit": fit, "aux_fit": 1.0, "main_band": 0.0})
    return pd.DataFrame(rows)


UP = [0.1, 0.3, 0.5, 0.4, 0.2]
SAME = [0.05, 0.25, 0.6, 0.45, 0.15]  # the ranks of UP: Spearman 1
OPPOSITE = [0.6, 0.4, 0.1, 0.2, 0.5]  # reversed ranks: Spearman -1


@pytest.mark.parametrize("related,control,fit,verdict", [
    ([SAME, SAME, OPPOSITE], [OPPOSITE, OPPOSITE, SAME], 1.0, "PASS"),
    ([SAME, OPPOSITE, OPPOSITE], [OPPOSITE] * 3, 1.0, "FAIL"),  # the related pair does not track
    ([SAME] * 3, [SAME, SAME, OPPOSITE], 1.0, "FAIL"),  # the control tracks too
    ([SAME] * 3, [OPPOSITE] * 3, 0.5, "INCONCLUSIVE"),  # the main task was never learned
])
def test_heads_rule_reaches_every_verdict(related, control, fit, verdict):
    table = tracking_table({"related": [(UP, d) for d in related], "control": [(UP, d) for d in control]}, fit=fit)
    result = check_heads(table)
    assert result.status == verdict
    assert len(result.numbers) == 6  # every seed is reported
    row = result.numbers.set_index(["pair", "seed"]).loc[("related", 0)]
    assert row["spearman_map"] == pytest.approx(1.0) and row["checkpoints"] == 5


def test_heads_rule_needs_enough_checkpoints_and_seeds():
    few = tracking_table({"related": [(UP[:3], SAME[:3])] * 3, "control": [(UP[:3], OPPOSITE[:3])] * 3},
                         steps=(1, 2, 3))
    assert check_heads(few).status == "INCONCLUSIVE"
    flat = tracking_table({"related": [([0.2] * 5, SAME)] * 3, "control": [(UP, OPPOSITE)] * 3})
    assert not seed_table(flat)["counts"].iloc[0]  # a constant gap has no rank correlation
    assert check_heads(flat).status == "INCONCLUSIVE"
    assert check_heads(tracking_table({"related": [(UP, SAME)] * 3})).status == "INCONCLUSIVE"  # no control
    assert check_heads(pd.DataFrame()).status == "INCONCLUSIVE"


def test_heads_rule_correlates_only_after_both_tasks_fit():
    """While the tasks are learned both curves rise together in every pair; the rule looks only past that."""
    # Gap and distance rising together below every later value while the main task is not fitted yet.
    learning = ([0.01, 0.02, 0.03, 0.04], [0.001, 0.002, 0.003, 0.004])
    table = tracking_table({"related": [(learning[0] + UP, learning[1] + SAME)] * 3,
                            "control": [(learning[0] + UP, learning[1] + OPPOSITE)] * 3},
                           steps=tuple(range(1, 10)))
    table.loc[table["step"] <= 4, "main_fit"] = 0.2
    rows = seed_table(table).set_index(["pair", "seed"])
    assert rows.loc[("related", 0), "rule_checkpoints"] == 5 and rows.loc[("related", 0), "first_fitted_step"] == 5
    assert rows.loc[("related", 0), "spearman_rule"] == pytest.approx(1.0)
    assert rows.loc[("control", 0), "spearman_rule"] == pytest.approx(-1.0)
    assert check_heads(table).status == "PASS"
    # Over every checkpoint the control's shared rise outweighs its opposite ranks after the fit: the old rule
    # (kept in the report) cannot tell the pairs apart.
    old = judge(table, RULE_V1)
    assert old.status == "FAIL" and old.numbers.set_index(["pair", "seed"]).loc[("control", 0), "tracks"]


@pytest.mark.slow
def test_b_heads_preset_runs_end_to_end(tmp_path):
    from lengthgen.presets import get_preset
    from lengthgen.reports.report import write_report
    from lengthgen.sweeps.run import SweepDir, run_sweep

    preset = get_preset("b-heads")
    for scale in ("cpu", "cpu-v1"):
        train = preset.spec(scale).base["train"]
        assert train["checkpoint_every"] == train["eval_every"] == 250
        saved = train["steps"] // 250 + len(train.get("snapshot_steps", []))
        assert train["keep_checkpoints"] > saved  # every checkpoint is kept
    assert preset.spec("cpu").base["train"]["snapshot_steps"][0] < 250  # denser early
    spec = preset.spec("cpu", seeds=[0]).model_copy(update={"overrides": [
        "train.steps=8", "train.eval_every=2", "train.checkpoint_every=2", "train.snapshot_steps=[1]", "eval.n=4",
        "eval.lengths=[2,5,9,17]", "model.layers=1", "model.d_model=32", "model.d_ff=64", "model.heads=2",
        "data.batch_size=8"]})
    sweep = SweepDir(tmp_path / "b-heads")
    sweep.prepare(spec, force=False)
    (sweep.path / "preset.json").write_text(json.dumps({"name": "b-heads", "scale": "cpu"}))
    assert all(r.status == "done" for r in run_sweep(spec, sweep.path, workers=1, threads=1, quiet=True))
    report = write_report(sweep.path, preset=preset).read_text()
    assert "**Verdict: INCONCLUSIVE**" in report and "## Heads: maps, curves and correlations" in report
    assert "## The rule until 2026-12-06" in report  # the old rule's result stays beside the new one
    tracking = pd.read_csv(sweep.path / "heads_tracking.csv")
    assert sorted(tracking["pair"].unique()) == ["control", "related"] and set(tracking["step"]) == {1, 2, 4, 6, 8}
    assert (sweep.path / "heads_curves.png").is_file() and (sweep.path / "heads_maps.png").is_file()
