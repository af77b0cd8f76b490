"""On a CUDA device: the same logits, KV-cache parity, packed batches and a training run as on the CPU.

Every test here is marked `cuda` and needs a GPU; on a machine without one they are skipped, and
`benchmarks/gpu_check.sh` runs them (`pytest -m cuda`) where a GPU is lent.
"""

import json

import pytest
import torch

from lengthgen.cli.main import main
from lengthgen.data import collate, collate_packed
from lengthgen.model import ENCODINGS, Decoder, KVCache, ModelConfig
from lengthgen.tasks import make_task
from lengthgen.train import answer_loss
from lengthgen.vocab import Vocab

from helpers import tiny_config

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

VOCAB = Vocab.default()


def tiny(encoding: str) -> Decoder:
    torch.manual_seed(0)
    cfg = ModelConfig(layers=2, heads=2, d_model=32, d_ff=64, encoding=encoding)
    return Decoder(cfg, len(VOCAB), 64).eval()


def batch():
    import numpy as np

    examples = [ex for n in (3, 7, 11) for ex in make_task("reverse").sample(np.random.default_rng(n), 4, n)]
    return examples, collate(examples, VOCAB)


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_cuda_logits_match_the_cpu(encoding):
    model = tiny(encoding)
    _, b = batch()
    with torch.no_grad():
        cpu = model(b.tokens, b.position_ids, b.attention_mask)
        gpu = model.cuda()(b.tokens.cuda(), b.position_ids.cuda(), b.attention_mask.cuda()).cpu()
    mask = b.attention_mask
    torch.testing.assert_close(gpu[mask], cpu[mask], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_cuda_kv_cache_decoding_matches_the_full_forward(encoding):
    model = tiny(encoding).cuda()
    tokens = torch.randint(4, len(VOCAB), (3, 9), device="cuda")
    positions = torch.arange(9, device="cuda").expand(3, 9)
    with torch.no_grad():
        full = model(tokens, positions)
        cache, steps = KVCache(), []
        for t in range(9):
            steps.append(model(tokens[:, t : t + 1], positions[:, t : t + 1], cache=cache))
    torch.testing.assert_close(torch.cat(steps, 1), full, rtol=1e-4, atol=1e-4)


def test_cuda_packed_batch_gives_the_padded_loss():
    model = tiny("rope").cuda()
    examples, padded = batch()
    packed = collate_packed(examples, VOCAB)
    with torch.no_grad():
        a = answer_loss(model, padded.to("cuda"))
        b = answer_loss(model, packed.to("cuda"))
    torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)


def test_cuda_training_run_learns_and_records_its_device(tmp_path):
    import yaml

    tree = tiny_config(train={**tiny_config()["train"], "steps": 60, "precision": "auto", "pack": True})
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tree))
    assert main(["train", str(config), "--dir", str(tmp_path / "runs"), "--device", "cuda", "--quiet"]) == 0
    run = tmp_path / "runs" / "tiny"
    losses = [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert losses[-1] < losses[0]
    env = json.loads((run / "env.json").read_text())[0]
    assert env["device"].startswith("cuda") and env["precision"] == "bf16"
