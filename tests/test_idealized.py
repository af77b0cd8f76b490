"""The idealized sparse-attention model (PAPERS.md A0): contract, invariances, training, decoding."""

import json
import math

import pytest
import torch
import yaml
from pydantic import ValidationError

from lengthgen.cli.main import main
from lengthgen.config import build_config
from lengthgen.data import collate, collate_prompts, eval_examples
from lengthgen.decoding import greedy_decode
from lengthgen.errors import UserError
from lengthgen.evaluate import evaluate
from lengthgen.experiment import build_experiment
from lengthgen.model import ARCHITECTURES, Decoder, Hooks, KVCache, ModelConfig, SparseAttentionModel, build_model
from lengthgen.model.hf_export import export_llama
from lengthgen.model.sparse_attention import num_shapes, tuple_shapes
from lengthgen.store.checkpoint import find_checkpoint, load_weights
from lengthgen.store.rundir import RunDir

from helpers import tiny_config

VOCAB = 23


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread here: on a busy two-core machine, two threads spin against each other
    and the small training loop below runs many times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def sparse_cfg(**kw) -> ModelConfig:
    """A tiny sparse-attention config (k = 2, L = 4 unless overridden)."""
    base = dict(arch="sparse_attention", d_model=16, hidden=16, tuple_size=2, window=4)
    return ModelConfig(**{**base, **kw})


def make_model(seed: int = 0, **kw) -> SparseAttentionModel:
    """A random model in float64, so invariances can be checked to tight tolerances."""
    torch.manual_seed(seed)
    return build_model(sparse_cfg(**kw), VOCAB, 64).double().eval()


def logits(model, tokens, mask=None, ids=None):
    ids = torch.arange(tokens.shape[1]).expand_as(tokens) if ids is None else ids
    with torch.no_grad():
        return model(tokens, ids, mask)


# --- tuples and configuration -------------------------------------------------------------------

@pytest.mark.parametrize("k,window", [(1, 1), (1, 5), (2, 4), (3, 6), (4, 4)])
def test_tuple_shapes_enumerate_every_span_below_window_once(k, window):
    shapes = tuple_shapes(k, window)
    assert shapes.shape == (num_shapes(k, window), k) == (math.comb(window - 1, k - 1), k)
    assert len({tuple(r) for r in shapes.tolist()}) == shapes.shape[0]
    assert (shapes[:, -1] == 0).all() and (shapes[:, 0] < window).all()
    assert (shapes[:, :-1] > shapes[:, 1:]).all()  # strictly increasing positions, no repeats


def test_registry_and_config_validation():
    assert ARCHITECTURES["transformer"] is Decoder and ARCHITECTURES["sparse_attention"] is SparseAttentionModel
    assert ModelConfig().arch == "transformer"
    with pytest.raises(UserError, match=f"unknown architecture 'mamba'; valid: {', '.join(sorted(ARCHITECTURES))}$"):
        ModelConfig(arch="mamba")
    with pytest.raises(ValidationError, match="tuple_size must be >= 1"):
        sparse_cfg(tuple_size=0)
    with pytest.raises(ValidationError, match=r"window \(2\) must be >= model.tuple_size \(3\)"):
        sparse_cfg(tuple_size=3, window=2)
    with pytest.raises(ValidationError, match="hidden must be >= 1"):
        sparse_cfg(hidden=0)
    with pytest.raises(ValidationError, match="tuple shapes per position"):
        sparse_cfg(tuple_size=6, window=40)
    # The transformer's attention options would be ignored by the sparse model: refused, each by name.
    for option in ({"attention_window": 4}, {"attention_id_window": 1}, {"logit_scaling": "log_keys"},
                   {"token_shift": 1}):
        with pytest.raises(ValidationError, match=f"model.{next(iter(option))} is read by model.arch transformer only"):
            sparse_cfg(**option)
    # The transformer's head checks do not apply to the sparse model, but still to the transformer.
    assert sparse_cfg(d_model=15, heads=4).d_model == 15
    with pytest.raises(ValidationError, match="divisible"):
        ModelConfig(d_model=15, heads=4)
    # Through the experiment config and build_experiment: the registry picks the class.
    tree = tiny_config(model={"arch": "sparse_attention", "d_model": 16, "hidden": 8, "window": 3})
    assert isinstance(build_experiment(build_config(tree)).model, SparseAttentionModel)
    assert isinstance(build_experiment(build_config(tiny_config())).model, Decoder)


# --- forward contract ---------------------------------------------------------------------------

def test_shapes_select_and_ignored_position_ids():
    model = make_model(tuple_size=3, window=5)
    tokens = torch.randint(1, VOCAB, (3, 11))
    full = logits(model, tokens)
    assert full.shape == (3, 11, VOCAB) and torch.isfinite(full).all()
    select = torch.rand(3, 11) < 0.4
    select[1] = False  # a row with nothing selected
    select[2, -1] = True
    with torch.no_grad():
        picked = model(tokens, None, select=select)
    assert picked.shape == (int(select.sum()), VOCAB)
    torch.testing.assert_close(picked, full[select])
    with torch.no_grad():
        assert model(tokens, None, select=torch.zeros_like(select)).shape == (0, VOCAB)
    # Position IDs are ignored by design: any IDs (coupled, shifted, huge) give the same logits.
    torch.testing.assert_close(logits(model, tokens, ids=torch.randint(0, 10_000, tokens.shape)), full)
    with pytest.raises(ValueError, match="no KV cache"):
        model(tokens, None, cache=KVCache())


@pytest.mark.parametrize("side", ["right", "left"])
def test_padding_does_not_change_real_positions(side):
    model = make_model(tuple_size=3, window=4)
    row = torch.randint(1, VOCAB, (1, 7))
    other = torch.randint(1, VOCAB, (1, 10))
    pad = torch.zeros(1, 3, dtype=torch.long)
    padded = torch.cat([row, pad], 1) if side == "right" else torch.cat([pad, row], 1)
    mask = torch.ones(2, 10, dtype=torch.bool)
    real = slice(0, 7) if side == "right" else slice(3, 10)
    mask[0] = False
    mask[0, real] = True
    batch = logits(model, torch.cat([padded, other]), mask)
    assert torch.isfinite(batch).all()  # padding queries too: the null candidate is always there
    torch.testing.assert_close(batch[0, real], logits(model, row)[0])
    torch.testing.assert_close(batch[1], logits(model, other)[0])


def test_causal_and_window_locality():
    """What is invariant: the output at t is a function of the bag of (tokens, shape) of the
    span-< L tuples in the prefix and of x_t. So (a) later tokens never matter, (b) blocks kept
    L - 1 background tokens apart can be reordered freely, and (c) a token far from t still
    matters (locality is about a tuple's span, not about distance to the query)."""
    window, z = 4, 1
    model = make_model(tuple_size=3, window=window)
    torch.manual_seed(1)
    x = torch.randint(2, VOCAB, (1, 5))
    y = torch.randint(2, VOCAB, (1, 3))
    q = torch.randint(2, VOCAB, (1, 2))

    def sep(n=window - 1):
        return torch.full((1, n), z)

    xy = torch.cat([sep(), x, sep(), y, sep(), q], 1)
    yx = torch.cat([sep(), y, sep(), x, sep(), q], 1)
    # (b) reorder blocks separated by L - 1 background tokens: the last position does not see it.
    torch.testing.assert_close(logits(model, xy)[0, -1], logits(model, yx)[0, -1])
    # With separators one shorter, a tuple spans both blocks and the order shows.
    close_xy = torch.cat([sep(window - 2), x, sep(window - 2), y, sep(), q], 1)
    close_yx = torch.cat([sep(window - 2), y, sep(window - 2), x, sep(), q], 1)
    assert not torch.allclose(logits(model, close_xy)[0, -1], logits(model, close_yx)[0, -1])
    # (a) changing a later token leaves every earlier position unchanged.
    later = xy.clone()
    later[0, 10] = (later[0, 10] + 1) % VOCAB
    torch.testing.assert_close(logits(model, later)[0, :10], logits(model, xy)[0, :10], rtol=0, atol=1e-12)
    # (c) changing the first block, far from the query, does change the query's output.
    early = xy.clone()
    early[0, window] = (early[0, window] + 1) % VOCAB
    assert not torch.allclose(logits(model, early)[0, -1], logits(model, xy)[0, -1])


def test_pattern_hook_is_a_distribution_over_existing_past_tuples():
    model = make_model(tuple_size=2, window=3)
    tokens = torch.randint(1, VOCAB, (2, 6))
    hooks = Hooks(capture=["sparse.hook_pattern", "sparse.hook_out"])
    with torch.no_grad():
        model(tokens, None, hooks=hooks)
    pattern = hooks.cache["sparse.hook_pattern"]
    shapes = num_shapes(2, 3)
    assert pattern.shape == (2, 6, 6 * shapes + 1) and hooks.cache["sparse.hook_out"].shape == (2, 6, 16)
    torch.testing.assert_close(pattern.sum(-1), torch.ones(2, 6, dtype=pattern.dtype))
    keys = pattern[..., :-1].view(2, 6, 6, shapes)  # [B, query, anchor, shape]
    offsets = tuple_shapes(2, 3)[:, 0]
    for t in range(6):
        assert (keys[:, t, t + 1:] == 0).all()  # no future anchors
        for s in range(6):
            for c in range(shapes):
                if s - offsets[c] < 0:  # the tuple would start before the sequence
                    assert (keys[:, t, s, c] == 0).all()
    # Position 0 has no 2-tuple at all: only the null candidate.
    assert (pattern[:, 0, -1] == 1).all()


def test_export_refuses_sparse_model(tmp_path):
    with pytest.raises(UserError, match="cannot export model.arch 'sparse_attention'"):
        export_llama(make_model(), tmp_path / "hf")


def local_xor_batch(gen: torch.Generator, n: int, length: int, window: int = 4):
    """Local sparse parity on a 7-token vocabulary: bits 0/1 with two marked (2 = marked 0,
    3 = marked 1) less than `window` apart, then the query 4; the label (5 or 6) is their XOR."""
    bits = torch.randint(0, 2, (n, length), generator=gen)
    first = torch.randint(0, length - window + 1, (n,), generator=gen)
    second = first + torch.randint(1, window, (n,), generator=gen)
    rows = torch.arange(n)
    tokens = bits.clone()
    tokens[rows, first] += 2
    tokens[rows, second] += 2
    tokens = torch.cat([tokens, torch.full((n, 1), 4)], 1)
    return tokens, 5 + (bits[rows, first] ^ bits[rows, second])


@pytest.mark.slow
def test_fit_at_short_lengths_carries_over_to_long_ones():
    """A0's claim on a task the model can express (k = 2 marked bits inside the window): trained
    on lengths 6..12 only, accuracy at 16x the length matches accuracy in distribution."""
    torch.manual_seed(0)
    model = build_model(sparse_cfg(d_model=32, hidden=32), 7, 512)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    for _ in range(300):
        tokens, labels = local_xor_batch(gen, 64, int(torch.randint(6, 13, (1,), generator=gen)))
        select = torch.zeros_like(tokens, dtype=torch.bool)
        select[:, -1] = True
        loss = torch.nn.functional.cross_entropy(model(tokens, None, select=select), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    accuracy = {}
    for length in (10, 160):
        tokens, labels = local_xor_batch(torch.Generator().manual_seed(1), 512, length)
        accuracy[length] = (logits(model, tokens)[:, -1].argmax(-1) == labels).float().mean().item()
    assert accuracy[10] >= 0.7  # learned (chance is 0.5)
    assert abs(accuracy[160] - accuracy[10]) <= 0.08


# --- training and decoding through the project's own paths --------------------------------------

@pytest.fixture(scope="module")
def trained_sparse(tmp_path_factory):
    """A tiny sparse model trained with `lengthgen train` (copy task, one thread, ~40 steps)."""
    root = tmp_path_factory.mktemp("sparse")
    tree = tiny_config(model={"arch": "sparse_attention", "d_model": 32, "hidden": 32, "tuple_size": 2, "window": 4})
    tree["train"].update(steps=40, log_every=5, threads=1, lr=1e-2)
    tree["eval"] = {"lengths": [2, 6], "n": 16, "batch_size": 16}
    config = root / "sparse.yaml"
    config.write_text(yaml.safe_dump(tree))
    code = main(["train", str(config), "--name", "sp", "--dir", str(root / "runs"), "--quiet"])
    assert code == 0
    return RunDir(root / "runs" / "sp")


def test_trains_with_the_real_trainer_and_loss_decreases(trained_sparse, capsys):
    losses = [json.loads(line)["loss"] for line in (trained_sparse.path / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == 8 and all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.7 * losses[0]
    assert trained_sparse.read_config().model.arch == "sparse_attention"
    assert {r.length for r in trained_sparse.read_eval()} == {2, 6}
    capsys.readouterr()
    code = main(["export", str(trained_sparse.path), str(trained_sparse.path.parent / "hf")])
    assert code == 2 and "cannot export model.arch 'sparse_attention'" in capsys.readouterr().err


def test_greedy_decoding_matches_teacher_forced_argmax(trained_sparse):
    from lengthgen.vocab import Vocab

    vocab = Vocab.load(trained_sparse.path / "vocab.json")
    exp = build_experiment(trained_sparse.read_config(), vocab=vocab, device="cpu")
    load_weights(exp.model, find_checkpoint(trained_sparse.checkpoint_root))
    model = exp.model.eval()
    assert model.supports_cache is False
    spec, settings = exp.specs[0], exp.cfg.positions.settings()
    # Mixed prompt lengths, so the prompt batch is left padded.
    examples = eval_examples(spec, 3, 6, 5, "consecutive", settings) + eval_examples(spec, 6, 6, 5, "consecutive",
                                                                                    settings)
    batch = collate_prompts(examples, vocab)
    steps = batch.answer_targets.shape[1]
    generated = greedy_decode(model, batch, steps, vocab.eos_id, vocab.pad_id)
    # Feed each row's prompt + generated tokens (up to its <eos>) teacher-forced: argmax must agree.
    for i in range(len(examples)):
        prompt = batch.tokens[i, batch.attention_mask[i]]
        out = generated[i].tolist()
        if vocab.eos_id in out:
            out = out[: out.index(vocab.eos_id) + 1]
        seq = torch.tensor([prompt.tolist() + out[:-1]])
        with torch.no_grad():
            argmax = model(seq, torch.arange(seq.shape[1])[None])[0, -len(out):].argmax(-1)
        assert argmax.tolist() == out
    # And the evaluator's two scorers give the same exact match (token accuracy differs by
    # design: greedy continues from its own, possibly wrong, prefix).
    kw = dict(n=16, eval_seed=3, policy="consecutive", settings=settings, vocab=vocab, batch_size=7)
    tf = evaluate(model, exp.specs, [1, 2, 5, 6], mode="teacher_forced", **kw)
    gr = evaluate(model, exp.specs, [1, 2, 5, 6], mode="greedy", **kw)
    assert [r.exact_match for r in tf] == [r.exact_match for r in gr]
    # Teacher-forced logits at answer positions equal the select path the trainer uses.
    tb = collate(examples, vocab)
    with torch.no_grad():
        full = model(tb.tokens, tb.position_ids)
        picked = model(tb.tokens, tb.position_ids, select=tb.loss_mask)
    torch.testing.assert_close(picked, full[tb.loss_mask])


def test_cacheless_greedy_decoding_scores_only_the_last_position():
    """Without a KV cache the prefix is recomputed each step; only its last query is scored (select),
    and the tokens equal those of decoding on full-prefix logits."""
    from lengthgen.data import PromptBatch

    model = make_model(seed=3)
    calls = []

    class Spy(torch.nn.Module):
        supports_cache = False

        def forward(self, tokens, position_ids, attention_mask=None, cache=None, select=None):
            calls.append(select)
            return model(tokens, position_ids, attention_mask, cache=cache, select=select)

    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(3, VOCAB, (3, 7), generator=gen)
    attention = torch.ones(3, 7, dtype=torch.bool)
    attention[0, :2] = False  # left padding
    batch = PromptBatch(tokens, torch.arange(7).expand(3, 7), attention, torch.zeros(3, 5, dtype=torch.long),
                        torch.arange(7, 12).expand(3, 5), torch.ones(3, 5, dtype=torch.bool))
    # eos_id outside the vocabulary: no row stops, so every step is a plain argmax.
    generated = greedy_decode(Spy(), batch, 5, eos_id=VOCAB + 1, pad_id=1)
    assert len(calls) == 5
    for select in calls:  # one selected position per row: the last one
        assert select is not None and select.sum(1).tolist() == [1, 1, 1] and select[:, -1].all()
    # Reference: argmax of the full-prefix logits at the last position, step by step.
    seq, mask = tokens, attention
    for j in range(5):
        with torch.no_grad():
            step = model(seq, None, mask)[:, -1].argmax(-1)
        assert step.tolist() == generated[:, j].tolist()
        seq, mask = torch.cat([seq, step[:, None]], 1), torch.cat([mask, torch.ones(3, 1, dtype=torch.bool)], 1)
