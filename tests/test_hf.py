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
    for option in ({"attention_window": 4}, {"attention_id_window": 2}, {"logit_scaling": "log_keys"},
                   {"token_shift": 1}):
        with pytest.raises(UserError, match="cannot export windowed or length-scaled attention or a token shift"):
            export_llama(tiny(**option), tmp_path / "option")
    with pytest.raises(UserError, match="no Llama model directory"):
        load_llama(tmp_path / "missing")


def test_missing_transformers_is_a_user_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # makes `import transformers` fail
    with pytest.raises(UserError, match="pip install transformers"):
        export_llama(tiny(), tmp_path / "hf")


def test_the_exported_tokenizer_splits_and_numbers_text_as_lengthgen_does(tmp_path):
    import numpy as np

    from lengthgen.model.hf_export import hf_tokenizer
    from lengthgen.tasks import TASKS, make_task
    from lengthgen.vocab import Vocab

    vocab = Vocab.default()
    hf_tokenizer(vocab).save_pretrained(tmp_path)
    tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path)  # as a user loads it, from files alone
    for name in sorted(TASKS):
        if name == "text":
            continue  # windows of a corpus: covered by the characters below
        for ex in make_task(name).sample(np.random.default_rng(0), 3, 4):
            text = "".join(ex.prompt) + "".join(ex.answer)
            assert tokenizer(text)["input_ids"] == [vocab.bos_id, *vocab.encode(text)], (name, text)
            assert tokenizer.decode(tokenizer(text)["input_ids"], skip_special_tokens=True) == text
    text = "".join(chr(c) for c in range(32, 127)) + "[300]<x>[1]<t15><sep>"  # fallbacks to characters too
    assert tokenizer(text)["input_ids"] == [vocab.bos_id, *vocab.encode(text)]
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id) == \
        (vocab.bos_id, vocab.eos_id, vocab.pad_id)


def test_an_exported_run_generates_lengthgens_greedy_answers_with_transformers_alone(trained_copy, tmp_path):
    from lengthgen.cli.main import main
    from lengthgen.data import collate_prompts, eval_examples
    from lengthgen.decoding import greedy_decode

    exp, run = trained_copy
    out = tmp_path / "hf"
    assert main(["export", str(run.path), str(out)]) == 0
    spec = exp.specs[0]
    settings = exp.cfg.positions.settings()
    examples = [ex for n in (3, 6, 8) for ex in eval_examples(spec, n, 8, 0, "consecutive", settings)]
    batch = collate_prompts(examples, exp.vocab)
    exp.model.eval()
    ours = greedy_decode(exp.model, batch, 12, exp.vocab.eos_id, exp.vocab.pad_id)
    eos = exp.vocab.eos_id
    ends = [int((row == eos).nonzero()[0]) if (row == eos).any() else len(row) for row in ours]
    expected = [exp.vocab.decode(row[:end]) for row, end in zip(ours, ends)]
    assert any(e == "".join(ex.answer) for e, ex in zip(expected, examples))  # the model copies some

    tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    model = transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    prompts = ["".join(ex.prompt) for ex in examples]
    inputs = tokenizer(prompts, return_tensors="pt", padding=True)
    with torch.no_grad():
        generated = model.generate(**inputs, max_new_tokens=12)
    theirs = tokenizer.batch_decode(generated[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    assert theirs == expected
    pipe = transformers.pipeline("text-generation", model=model, tokenizer=tokenizer)
    piped = [out[0]["generated_text"] for out in pipe(prompts[:4], max_new_tokens=12, return_full_text=False)]
    assert piped == expected[:4]
    config = transformers.AutoConfig.from_pretrained(out)
    assert (config.bos_token_id, config.eos_token_id, config.pad_token_id) == (1, 2, 0)
    assert transformers.GenerationConfig.from_pretrained(out).do_sample is False
