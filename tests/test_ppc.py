"""Predictive Position Coupling (PAPERS.md A5): position head, targets, loss, decoding, evaluation."""

import csv
import json

import numpy as np
import pytest
import torch
import yaml

from lengthgen.cli.main import main
from lengthgen.config import build_config
from lengthgen.data import Batch, TaskMixture, collate, collate_prompts, eval_examples
from lengthgen.decoding import NO_POSITION, greedy_decode, ppc_greedy_decode
from lengthgen.errors import UserError
from lengthgen.evaluate import EvalRow, check_positions_fit, evaluate, score_ppc_greedy, score_ppc_teacher_forced
from lengthgen.experiment import build_experiment
from lengthgen.model import Decoder, KVCache, ModelConfig
from lengthgen.positions import PolicySettings
from lengthgen.reports.aggregate import collect, summarize
from lengthgen.store.checkpoint import find_checkpoint, load_weights
from lengthgen.store.rundir import EVAL_COLUMNS, RunDir
from lengthgen.sweeps.run import SweepDir
from lengthgen.sweeps.spec import expand, parse_spec
from lengthgen.train import answer_loss, ppc_loss, run_training
from lengthgen.vocab import Vocab

from helpers import tiny_config

MAX_POS = 32
VOCAB = Vocab.default()


def ppc_tree(task="copy", steps=30, **sections) -> dict:
    """A tiny PPC config: learned IDs, position head, coupled_random_offset training."""
    tree = tiny_config(
        data={"tasks": [{"task": task, "lengths": [1, 6]}], "batch_size": 32},
        positions={"max_position": MAX_POS, "train": "coupled_random_offset", "eval": "coupled"},
        train={"steps": steps, "lr": 3e-3, "warmup": 0.1, "log_every": 10, "precision": "float32", "threads": 1},
        eval={"lengths": "1:8", "n": 32, "batch_size": 32},
    )
    tree["model"].update(encoding="learned", position_head=True)
    tree.update(sections)
    return tree


def noisy_model(encoding="learned", seed=0, position_head=True):
    """A random tiny PPC decoder with its weights spread out, so argmaxes are far from ties."""
    torch.manual_seed(seed)
    cfg = ModelConfig(layers=2, heads=2, d_model=32, d_ff=64, encoding=encoding, position_head=position_head)
    model = Decoder(cfg, len(VOCAB), MAX_POS).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model


def examples(task, policy, lengths=(2, 5, 3, 7), seed=0):
    """Real examples of several lengths (so prompts are padded) under a position policy."""
    from lengthgen.data import TaskSpec
    from lengthgen.tasks import make_task

    spec = TaskSpec(make_task(task), (1, 8))
    out = []
    for length in lengths:
        out += eval_examples(spec, length, 2, seed, policy, PolicySettings(MAX_POS))
    return out


# --- data -------------------------------------------------------------------------------------


@pytest.mark.parametrize("task", ["copy", "reverse"])
@pytest.mark.parametrize("policy", ["coupled", "coupled_random_offset"])
def test_position_targets_are_the_next_tokens_ids(task, policy):
    exs = examples(task, policy)
    batch = collate(exs, VOCAB)
    for i, ex in enumerate(exs):
        ids = ex.positions.as_array()
        t = len(ids) - 1
        assert batch.position_ids[i, :t].tolist() == ids[:-1].tolist()
        assert batch.position_targets[i, :t].tolist() == ids[1:].tolist()
        # Same shift as the tokens: on the loss mask, the answer tokens' IDs and then <eos>'s.
        assert batch.position_targets[i][batch.loss_mask[i]].tolist() == [*ex.positions.answer, ex.positions.eos]
        assert batch.position_targets[i, :t - 1].tolist() == batch.position_ids[i, 1:t].tolist()


def test_training_mixture_targets_follow_the_random_offset():
    tree = ppc_tree()
    cfg = build_config(tree)
    mixture = TaskMixture(build_experiment(cfg).specs, "coupled_random_offset", cfg.positions.settings())
    exs = mixture.sample(np.random.default_rng(3), 16)
    batch = collate(exs, VOCAB)
    assert len({ex.positions.prompt[0] for ex in exs}) > 1  # the offsets really vary
    for i, ex in enumerate(exs):
        # copy: the token predicting answer j sits at answer j's input ID, so each answer ID
        # (the target at the token before it) is an ID of the prompt or one past it.
        answer_targets = batch.position_targets[i][batch.loss_mask[i]].tolist()[:-1]
        assert answer_targets == list(ex.positions.answer)
        assert set(answer_targets[:-1]) <= set(ex.positions.prompt)


def test_batch_without_position_targets_still_builds_and_moves():
    full = collate(examples("copy", "coupled"), VOCAB)
    five = Batch(full.tokens, full.targets, full.loss_mask, full.position_ids, full.attention_mask)
    assert five.position_targets is None
    moved = five.to("cpu")
    assert moved.position_targets is None and torch.equal(moved.tokens, full.tokens)
    assert torch.equal(full.to("cpu").position_targets, full.position_targets)


# --- model ------------------------------------------------------------------------------------


def test_position_head_outputs_honour_select_and_the_cache():
    model = noisy_model()
    batch = collate_prompts(examples("reverse", "coupled"), VOCAB)
    tokens, ids, mask = batch.tokens, batch.position_ids, batch.attention_mask
    plain = model(tokens, ids, mask)
    logits, positions = model(tokens, ids, mask, return_positions=True)
    assert torch.equal(plain, logits)  # the default return value is unchanged
    assert positions.shape == (*tokens.shape, MAX_POS)
    select = mask.clone()
    sel_logits, sel_positions = model(tokens, ids, mask, select=select, return_positions=True)
    assert sel_positions.shape == (int(select.sum()), MAX_POS)
    torch.testing.assert_close(sel_positions, positions[select])
    torch.testing.assert_close(sel_logits, logits[select])
    cache, outs = KVCache(), []
    outs.append(model(tokens[:, :4], ids[:, :4], mask[:, :4], cache=cache, return_positions=True)[1])
    for i in range(4, tokens.shape[1]):
        outs.append(model(tokens[:, i:i + 1], ids[:, i:i + 1], mask[:, :i + 1], cache=cache, return_positions=True)[1])
    torch.testing.assert_close(torch.cat(outs, dim=1)[mask], positions[mask], atol=1e-4, rtol=1e-4)


def test_models_without_the_head_are_unchanged():
    torch.manual_seed(0)
    plain = Decoder(ModelConfig(layers=1, heads=2, d_model=16, d_ff=32), len(VOCAB), MAX_POS)
    torch.manual_seed(0)
    ppc = Decoder(ModelConfig(layers=1, heads=2, d_model=16, d_ff=32, position_head=True), len(VOCAB), MAX_POS)
    assert plain.position_head is None and "position_head.weight" not in plain.state_dict()
    # The head is created last, so every shared weight is initialised the same.
    for name, value in plain.state_dict().items():
        assert torch.equal(value, ppc.state_dict()[name]), name
    tokens = torch.zeros(1, 3, dtype=torch.long)
    with pytest.raises(ValueError, match="position_head"):
        plain(tokens, torch.arange(3)[None], return_positions=True)


# --- loss -------------------------------------------------------------------------------------


@pytest.mark.parametrize("task,policy", [("copy", "coupled_random_offset"), ("reverse", "coupled")])
def test_loss_adds_the_weighted_position_term(task, policy):
    model = noisy_model()
    batch = collate(examples(task, policy), VOCAB)
    plain = answer_loss(model, batch)
    total0, token0, position0 = ppc_loss(model, batch, 0.0)
    assert torch.equal(total0, plain) and torch.equal(token0, plain)
    total, token, position = ppc_loss(model, batch, 2.5)
    assert position > 0
    torch.testing.assert_close(total, token + 2.5 * position)
    # The position term is the mean CE of the next token's ID over the answer + <eos> targets.
    _, position_logits = model(batch.tokens, batch.position_ids, return_positions=True)
    expected = torch.nn.functional.cross_entropy(position_logits[batch.loss_mask],
                                                 batch.position_targets[batch.loss_mask])
    torch.testing.assert_close(position, expected)
    total.backward()
    assert model.position_head.weight.grad.abs().sum() > 0


# --- decoding ---------------------------------------------------------------------------------


def _decode_both_ways(model, batch, extra=3, **kw):
    args = (batch.answer_targets.shape[1] + extra, VOCAB.eos_id, VOCAB.pad_id)
    cached = ppc_greedy_decode(model, batch, *args, use_cache=True, **kw)
    full = ppc_greedy_decode(model, batch, *args, use_cache=False, **kw)
    return cached, full


@pytest.mark.parametrize("task,policy", [("copy", "coupled"), ("reverse", "coupled"),
                                         ("copy", "coupled_random_offset")])
@pytest.mark.parametrize("seed", [0, 1])
def test_cached_and_uncached_ppc_decoding_agree(task, policy, seed):
    model = noisy_model(seed=seed)
    batch = collate_prompts(examples(task, policy, seed=seed), VOCAB)
    (tokens, ids), (tokens_full, ids_full) = _decode_both_ways(model, batch)
    assert torch.equal(tokens, tokens_full) and torch.equal(ids, ids_full)
    assert tokens.shape == ids.shape == (batch.tokens.shape[0], batch.answer_targets.shape[1] + 3)
    # IDs are predictions in range, or NO_POSITION exactly where the token is padding after <eos>.
    valid = ids != NO_POSITION
    assert ((ids >= 0) & (ids < MAX_POS))[valid].all()
    after_eos = (tokens == VOCAB.eos_id).long().cumsum(1) - (tokens == VOCAB.eos_id).long() > 0
    assert torch.equal(~valid, after_eos)
    # The first step by hand: argmaxes at the last prompt token.
    logits, position_logits = model(batch.tokens, batch.position_ids, batch.attention_mask, return_positions=True)
    assert torch.equal(tokens[:, 0], logits[:, -1].argmax(-1))
    assert torch.equal(ids[:, 0], position_logits[:, -1].argmax(-1))


@pytest.mark.parametrize("task", ["copy", "reverse"])
def test_forced_positions_reduce_to_plain_coupled_decoding(task):
    model = noisy_model(seed=2)
    batch = collate_prompts(examples(task, "coupled", seed=2), VOCAB)
    steps = batch.answer_targets.shape[1]
    plain = greedy_decode(model, batch, steps, VOCAB.eos_id, VOCAB.pad_id)
    (tokens, ids), (tokens_full, ids_full) = _decode_both_ways(model, batch, extra=0, force_positions=True)
    assert torch.equal(tokens, plain) and torch.equal(tokens_full, tokens) and torch.equal(ids_full, ids)
    with pytest.raises(ValueError, match="force_positions"):
        ppc_greedy_decode(model, batch, steps + 2, VOCAB.eos_id, VOCAB.pad_id, force_positions=True)
    free, _ = ppc_greedy_decode(model, batch, steps, VOCAB.eos_id, VOCAB.pad_id)
    assert not torch.equal(free, plain)  # a random model's IDs differ, so the check has teeth


# --- training through the CLI, then evaluation ------------------------------------------------


@pytest.fixture(scope="module")
def ppc_run(tmp_path_factory):
    """`lengthgen train` on a tiny PPC copy config (about 5 s)."""
    root = tmp_path_factory.mktemp("ppc")
    path = root / "ppc.yaml"
    tree = ppc_tree(steps=200, name="ppc")
    tree["model"]["d_model"] = 64
    path.write_text(yaml.safe_dump(tree))
    assert main(["train", str(path), "--dir", str(root / "runs"), "--quiet"]) == 0
    return RunDir(root / "runs" / "ppc")


@pytest.mark.slow
def test_cli_training_lowers_both_losses_and_writes_position_accuracy(ppc_run):
    records = [json.loads(line) for line in (ppc_run.path / "metrics.jsonl").read_text().splitlines()]
    first, last = records[0], records[-1]
    assert last["loss"] < first["loss"]
    assert last["position_loss"] < first["position_loss"] and last["token_loss"] < first["token_loss"]
    for r in records:
        assert r["loss"] == pytest.approx(r["token_loss"] + r["position_loss"], rel=1e-5)
    with open(ppc_run.path / "eval.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == EVAL_COLUMNS + ["position_accuracy"]
    accuracy = [float(r["position_accuracy"]) for r in rows]
    assert all(0 <= a <= 1 for a in accuracy)
    assert np.mean(accuracy[:6]) > 0.5  # the head copies IDs at the training lengths
    stored = yaml.safe_load((ppc_run.path / "config.yaml").read_text())
    assert stored["eval"]["mode"] == "greedy"  # the honest default for PPC, recorded
    assert [r.position_accuracy for r in ppc_run.read_eval()] == accuracy


def test_trainer_with_zero_weight_optimizes_the_token_loss_only(tmp_path):
    tree = ppc_tree(task="reverse", steps=10, train={"steps": 10, "lr": 3e-3, "log_every": 5, "precision": "float32",
                                                     "threads": 1, "position_loss_weight": 0.0})
    tree["eval"] = {"lengths": [2], "n": 8, "batch_size": 8}
    run = RunDir(tmp_path / "zero")
    run.prepare(force=False, resume=False)
    rows = run_training(build_experiment(build_config(tree)), run, quiet=True)
    records = [json.loads(line) for line in (run.path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [5, 10]
    assert all(r["loss"] == r["token_loss"] and r["position_loss"] > 0 for r in records)
    assert len(rows) == 1 and 0 <= rows[0].position_accuracy <= 1


def test_teacher_forced_ppc_exact_never_exceeds_greedy(ppc_run, capsys):
    cfg = ppc_run.read_config()
    exp = build_experiment(cfg, vocab=Vocab.load(ppc_run.path / "vocab.json"))
    load_weights(exp.model, find_checkpoint(ppc_run.checkpoint_root))
    exp.model.eval()
    seen_exact = 0
    for length in (3, 6, 8):
        exs = eval_examples(exp.specs[0], length, 32, 0, "coupled", cfg.positions.settings())
        tf = score_ppc_teacher_forced(exp.model, exs, exp.vocab, exp.device, "float32")
        greedy = score_ppc_greedy(exp.model, exs, exp.vocab, exp.device, "float32")
        assert not (tf[0] & ~greedy[0]).any()  # exact under teacher forcing => exact when decoding
        seen_exact += int(greedy[0].sum())
        assert 0 <= tf[3] <= tf[4] and 0 <= greedy[3] <= greedy[4] == tf[4]
    assert seen_exact > 0
    # `lengthgen eval --mode teacher_forced` (not the run's own greedy) writes PPC rows with position
    # accuracy beside eval.csv, which keeps the run's protocol.
    before = ppc_run.read_eval()
    assert main(["eval", str(ppc_run.path), "--lengths", "2,4", "--mode", "teacher_forced", "-n", "16"]) == 0
    capsys.readouterr()
    assert ppc_run.read_eval() == before
    added = ppc_run.read_eval("eval-teacher_forced.csv")[-2:]
    assert [r.length for r in added] == [2, 4] and all(0 <= r.position_accuracy <= 1 for r in added)


def test_models_without_the_head_report_no_position_accuracy(tmp_path):
    cfg = build_config(tiny_config())
    exp = build_experiment(cfg)
    rows = evaluate(exp.model, exp.specs, [1, 2], n=4, eval_seed=0, policy="consecutive",
                    settings=cfg.positions.settings(), vocab=exp.vocab)
    assert all(np.isnan(r.position_accuracy) for r in rows)
    run = RunDir(tmp_path / "plain")
    run.path.mkdir()
    run.write_eval(rows)
    assert (run.path / "eval.csv").read_text().splitlines()[0] == ",".join(EVAL_COLUMNS)


# --- old eval.csv files and sweep tables ------------------------------------------------------


def test_old_eval_files_read_and_aggregate_beside_ppc_ones(tmp_path):
    base = ppc_tree()
    spec = parse_spec({"name": "mix", "base": base, "grid": {"train.position_loss_weight": [0.5, 1.0]},
                       "seeds": [0]})
    sweep = SweepDir(tmp_path / "mix")
    sweep.prepare(spec, force=False)
    plans = expand(spec)
    for plan, ppc in zip(plans, (False, True)):
        run = sweep.run_dir(plan)
        run.path.mkdir(parents=True)
        run.write_config(plan.config)
        if ppc:
            run.write_eval([EvalRow(10, "copy", n, 8, 0.5, 0.5, 0.75) for n in (1, 2)])
        else:  # an eval.csv written before the column existed
            (run.path / "eval.csv").write_text("step,task,length,n,exact_match,token_acc\n10,copy,1,8,1.0,1.0\n"
                                               "10,copy,2,8,0.25,0.5\n")
        run.mark_done(seconds=1.0)
    old = sweep.run_dir(plans[0]).read_eval()
    assert [r.exact_match for r in old] == [1.0, 0.25] and all(np.isnan(r.position_accuracy) for r in old)
    df = collect(sweep)
    assert list(df.columns[-2:]) == ["train_max", "position_accuracy"]
    assert df["position_accuracy"].isna().sum() == 2 and (df["position_accuracy"] == 0.75).sum() == 2
    assert len(summarize(df)) == 4


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize("change,needle", [
    ({"positions": {"max_position": MAX_POS, "train": "random_offset", "eval": "coupled"}},
     "positions.train must be one of coupled, coupled_random_offset"),
    ({"positions": {"max_position": MAX_POS, "train": "coupled", "eval": "consecutive"}},
     "positions.eval must be one of"),
    ({"train": {"position_loss_weight": -0.5}}, "position_loss_weight"),
    ({"model": {"encoding": "rope", "position_head": True}}, "needs an encoding that embeds position IDs"),
])
def test_config_errors(change, needle):
    with pytest.raises(UserError, match=needle):
        build_config(ppc_tree(**change))


def test_eval_mode_defaults():
    assert build_config(ppc_tree()).eval.mode == "greedy"
    explicit = ppc_tree(eval={"lengths": "1:8", "n": 32, "mode": "teacher_forced"})
    assert build_config(explicit).eval.mode == "teacher_forced"
    assert build_config(tiny_config()).eval.mode == "teacher_forced"  # no head: unchanged
    cfg = build_config(ppc_tree())
    assert build_config(yaml.safe_load(cfg.to_yaml())) == cfg  # the resolved config round-trips


def test_ids_beyond_the_head_fail_at_build_and_before_evaluation():
    small = ppc_tree(positions={"max_position": 8, "train": "coupled", "eval": "coupled"})
    with pytest.raises(UserError, match="PPC.*needs coupled ID 8; raise positions.max_position"):
        build_experiment(build_config(small))
    # The sinusoidal encoding has no bound of its own, but the head does: evaluation IDs are
    # checked against it (training lengths fit: top ID 8 < 12; evaluating length 12 needs 14).
    sinusoidal = ppc_tree(positions={"max_position": 12, "train": "coupled", "eval": "coupled"})
    sinusoidal["model"]["encoding"] = "sinusoidal"
    cfg = build_config(sinusoidal)
    exp = build_experiment(cfg)
    check_positions_fit(exp.model, exp.specs, [9], 0, "coupled", cfg.positions.settings(), 8)
    with pytest.raises(UserError, match="needs position ID 14, but the PPC position head predicts IDs 0..11"):
        check_positions_fit(exp.model, exp.specs, [12], 0, "coupled", cfg.positions.settings(), 8)


def test_tasks_without_coupled_ids_are_refused():
    tree = ppc_tree()
    tree["data"] = {"tasks": [{"task": "mqar", "lengths": [2, 4]}], "batch_size": 8}
    with pytest.raises(UserError, match="task 'mqar' does not define them"):
        build_experiment(build_config(tree))


def test_export_refuses_the_position_head(tmp_path):
    from lengthgen.model.hf_export import export_llama

    with pytest.raises(UserError, match="position head"):
        export_llama(noisy_model(), tmp_path / "hf")
