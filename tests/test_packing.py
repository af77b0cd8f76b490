"""Sequence packing (`train.pack`): several examples per row, a block-diagonal causal mask, each
example with its own position IDs. The packed batch must give the padded batch's loss and gradient."""

import numpy as np
import pytest
import torch

from lengthgen.config import build_config
from lengthgen.data import TaskMixture, build_spec, collate, collate_packed, pack_rows
from lengthgen.errors import UserError
from lengthgen.experiment import build_experiment
from lengthgen.model import ENCODINGS, Decoder, ModelConfig
from lengthgen.positions import PolicySettings
from lengthgen.store.rundir import RunDir
from lengthgen.train import answer_loss, ppc_loss, run_training
from lengthgen.vocab import Vocab

from helpers import tiny_config

VOCAB = Vocab.default()


def mixed_examples(policy: str = "consecutive", n: int = 24):
    """Reverse addition (markers on) and copy at mixed lengths: rows of unequal examples."""
    specs = [build_spec({"task": "reverse_add", "lengths": [1, 6]}, 0, markers=True),
             build_spec({"task": "copy", "lengths": [1, 12]}, 1, markers=True)]
    return TaskMixture(specs, policy, PolicySettings(64)).sample(np.random.default_rng(0), n)


def loss_and_grads(model, batch, ppc: bool):
    model.zero_grad(set_to_none=True)
    loss = ppc_loss(model, batch, 0.5)[0] if ppc else answer_loss(model, batch)
    loss.backward()
    return loss.detach(), {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


# The token shift must not reach across a packed boundary (each example's first token has no predecessor),
# and the length-robust attention options must see the same keys in a packed row as in a padded one.
MODEL_OPTIONS = {"plain": {}, "shift1": {"token_shift": 1}, "shift3": {"token_shift": 3},
                 "window": {"attention_window": 3}, "id_window": {"attention_id_window": 1},
                 "log_keys": {"logit_scaling": "log_keys"}}


@pytest.mark.parametrize("options", sorted(MODEL_OPTIONS))
@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_a_packed_batch_gives_the_padded_loss_and_gradient(encoding, options):
    torch.manual_seed(0)
    cfg = ModelConfig(layers=2, heads=2, d_model=32, d_ff=64, encoding=encoding, **MODEL_OPTIONS[options])
    model = Decoder(cfg, len(VOCAB), 64)
    examples = mixed_examples()
    padded, packed = collate(examples, VOCAB), collate_packed(examples, VOCAB)
    assert packed.tokens.shape[0] < padded.tokens.shape[0]  # several examples share rows
    assert int(packed.loss_mask.sum()) == int(padded.loss_mask.sum())
    loss_a, grads_a = loss_and_grads(model, padded, ppc=False)
    loss_b, grads_b = loss_and_grads(model, packed, ppc=False)
    torch.testing.assert_close(loss_b, loss_a, rtol=1e-6, atol=1e-6)
    assert grads_a.keys() == grads_b.keys()
    for name in grads_a:
        torch.testing.assert_close(grads_b[name], grads_a[name], rtol=1e-4, atol=1e-6, msg=name)


def test_a_packed_batch_gives_the_padded_ppc_loss_and_gradient():
    # PPC: the position head's targets are packed alongside, under coupled IDs shifted per example.
    torch.manual_seed(0)
    cfg = ModelConfig(layers=2, heads=2, d_model=32, d_ff=64, encoding="learned", position_head=True)
    model = Decoder(cfg, len(VOCAB), 64)
    examples = [ex for ex in mixed_examples("coupled_random_offset") if ex.task == "copy"]
    loss_a, grads_a = loss_and_grads(model, collate(examples, VOCAB), ppc=True)
    loss_b, grads_b = loss_and_grads(model, collate_packed(examples, VOCAB, width=40), ppc=True)
    torch.testing.assert_close(loss_b, loss_a, rtol=1e-6, atol=1e-6)
    for name in grads_a:
        torch.testing.assert_close(grads_b[name], grads_a[name], rtol=1e-4, atol=1e-6, msg=name)


def test_rows_hold_whole_examples_with_their_own_ids_and_segments():
    examples = mixed_examples()
    batch = collate_packed(examples, VOCAB, width=30)
    assert batch.tokens.shape[1] == 30
    seen = []
    for row in range(batch.tokens.shape[0]):
        segments = batch.segments[row]
        for k in range(1, int(segments.max()) + 1):
            where = (segments == k).nonzero().flatten()
            assert where.tolist() == list(range(int(where[0]), int(where[-1]) + 1))  # contiguous
            seen.append((batch.tokens[row, where].tolist(), batch.position_ids[row, where].tolist()))
        assert not batch.attention_mask[row][segments == 0].any()  # padding only where no example is
    expected = sorted((collate([ex], VOCAB).tokens[0].tolist(), ex.positions.as_array()[:-1].tolist())
                      for ex in examples)
    assert sorted(seen) == expected  # every example exactly once, with its own position IDs


@pytest.mark.parametrize("seed", range(5))
def test_pack_rows_puts_every_item_in_one_row_within_the_width(seed):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 40, size=int(rng.integers(1, 60))).tolist()
    rows = pack_rows(lengths, 40)
    assert sorted(i for row in rows for i in row) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in row) <= 40 for row in rows)
    # first fit, longest first, never needs more rows than twice the ideal
    assert len(rows) <= 2 * -(-sum(lengths) // 40)
    assert rows == pack_rows(lengths, 40)
    with pytest.raises(ValueError, match="does not fit"):
        pack_rows([41], 40)


def losses(run: RunDir) -> list[float]:
    import json

    return [json.loads(line)["loss"] for line in (run.path / "metrics.jsonl").read_text().splitlines()]


def test_training_with_packing_follows_the_padded_curve(tmp_path):
    data = {"tasks": [{"task": "copy", "lengths": [1, 20]}], "batch_size": 32}
    runs = {}
    for name, extra in (("padded", {}), ("packed", {"pack": True}), ("packed-micro", {"pack": True, "pack_length": 24,
                                                                                       "micro_batches": 2})):
        cfg = build_config(tiny_config(name=name, data=data, train={**tiny_config()["train"], "threads": 1, **extra}))
        exp = build_experiment(cfg)
        run = RunDir(tmp_path / name)
        run.prepare(force=False, resume=False)
        run_training(exp, run, quiet=True)
        runs[name] = (exp, run)
    base = losses(runs["padded"][1])
    assert base[-1] < base[0] - 0.5  # it learned, so equal curves say something
    for name in ("packed", "packed-micro"):
        assert losses(runs[name][1]) == pytest.approx(base, rel=1e-4)
        for pa, pb in zip(runs["padded"][0].model.parameters(), runs[name][0].model.parameters()):
            torch.testing.assert_close(pb, pa, rtol=1e-3, atol=1e-4)
    assert runs["packed"][1].read_config().train.pack


def test_packing_is_refused_by_a_model_that_cannot_keep_examples_apart():
    tree = tiny_config(train={**tiny_config()["train"], "pack": True})
    tree["model"] = {"arch": "sparse_attention", "d_model": 16, "hidden": 8, "tuple_size": 1, "window": 4}
    with pytest.raises(UserError, match="train.pack needs a model.arch that takes packed rows \\(transformer\\)"):
        build_config(tree)
