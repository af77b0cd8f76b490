"""Hugging Face interop: exported Llama models must compute what the lengthgen model computes."""

import sys

import pytest
import torch
import transformers

from lengthgen.errors import UserError
from lengthgen.model.config import ModelConfig
from lengthgen.model.hf_export import export_llama, load_llama
from lengthgen.model.transformer import Decoder

VOCAB, MAX_POS = 50, 64


def tiny(encoding="rope", tie=False, **overrides) -> Decoder:
    torch.manual_seed(0)
    cfg = ModelConfig(layers=2, d_model=32, heads=4, d_ff=64, encoding=encoding, rope_theta=500.0,
                      tie_embeddings=tie, **overrides)
    model = Decoder(cfg, VOCAB, MAX_POS).float().eval()
    # Fresh norm gains are all 1, so a swapped or dropped norm would go unnoticed without noise.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model


def batch(offset=0):
    g = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, VOCAB, (3, 16), generator=g)
    return tokens, (torch.arange(16) + offset).expand(3, -1)


def hf_logits(path, tokens, pos):
    hf = transformers.LlamaForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    with torch.no_grad():
        return hf(input_ids=tokens, position_ids=pos).logits


@pytest.mark.parametrize("encoding,tie", [("rope", False), ("rope", True), ("nope", False), ("nope", True)])
def test_export_matches_lengthgen_and_round_trips(tmp_path, encoding, tie):
    model = tiny(encoding, tie)
    path = export_llama(model, tmp_path / "hf")
    assert (path / "model.safetensors").is_file()
    tokens, pos = batch()
    with torch.no_grad():
        ours = model(tokens, pos)
        assert (hf_logits(path, tokens, pos) - ours).abs().max() <= 1e-4
        back = load_llama(path)
        assert back.cfg == model.cfg and back.max_position == MAX_POS and back.vocab_size == VOCAB
        assert (back(tokens, pos) - ours).abs().max() <= 1e-6


def test_nope_export_ignores_position_ids_and_rope_does_not(tmp_path):
    tokens, pos = batch()
    far = pos * 1000 + 5  # spread out: RoPE is shift-invariant, so a plain offset would not show it
    for encoding in ("nope", "rope"):
        path = export_llama(tiny(encoding), tmp_path / encoding)
        diff = (hf_logits(path, tokens, pos) - hf_logits(path, tokens, far)).abs().max()
        assert (diff == 0) if encoding == "nope" else (diff > 1e-3)


def test_padded_vocab_round_trips(tmp_path):
    model = tiny()
    path = export_llama(model, tmp_path / "hf", vocab_size=64)
    tokens, pos = batch()
    with torch.no_grad():
        ours = model(tokens, pos)
        theirs = hf_logits(path, tokens, pos)
        assert theirs.shape[-1] == 64 and (theirs[..., :VOCAB] - ours).abs().max() <= 1e-4
        assert (load_llama(path)(tokens, pos) - ours).abs().max() <= 1e-6
    with pytest.raises(UserError, match="smaller"):
        export_llama(model, tmp_path / "small", vocab_size=10)


def test_unsupported_models_raise_user_error(tmp_path):
    with pytest.raises(UserError, match="supported: rope, nope"):
        export_llama(tiny("alibi"), tmp_path / "alibi")
    with pytest.raises(UserError, match="swiglu"):
        export_llama(tiny(mlp="gelu"), tmp_path / "gelu")
    with pytest.raises(UserError, match="no Llama model directory"):
        load_llama(tmp_path / "missing")


def test_missing_transformers_is_a_user_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # makes `import transformers` fail
    with pytest.raises(UserError, match="pip install transformers"):
        export_llama(tiny(), tmp_path / "hf")
