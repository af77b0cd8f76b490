"""Hugging Face interop: export a lengthgen Decoder as a LlamaForCausalLM directory and load one back.

An export is a complete Hugging Face model directory: config.json (with bos / eos / pad ids),
generation_config.json (greedy), model.safetensors, and a fast tokenizer built from lengthgen's
fixed vocabulary (`hf_tokenizer`), so `AutoTokenizer`, `AutoModelForCausalLM`, `generate` and
`pipeline("text-generation")` work on it with transformers alone.

transformers is optional (`pip install 'lengthgen[hf]'`): it is imported only inside the functions.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from .. import __version__, optional
from ..errors import UserError
from ..vocab import BOS, EOS, PAD, SEP, SPECIALS, Vocab
from .config import ModelConfig
from .transformer import Decoder

# Linear RoPE scaling divides every frequency by this factor. With rope_theta 1 all frequencies
# are 1e-30, so any realistic position p gives cos = 1.0 exactly and |sin| <= p * 1e-30: below
# float32 resolution, so the rotation is the identity and the exported model is NoPE.
NOPE_FACTOR = 1e30

# Encoding -> the HF rope parameters that reproduce it.
HF_ROPE = {
    "rope": lambda cfg: {"rope_type": "default", "rope_theta": float(cfg.rope_theta)},
    "nope": lambda cfg: {"rope_type": "linear", "factor": NOPE_FACTOR, "rope_theta": 1.0},
}


def _rope_kwargs(config_cls, rope: dict) -> dict:
    # transformers 5 takes one rope_parameters dict; 4.x takes rope_theta plus rope_scaling.
    if "rope_parameters" in getattr(config_cls, "__dataclass_fields__", {}):
        return {"rope_parameters": rope}
    scaling = {k: v for k, v in rope.items() if k != "rope_theta"}
    return {"rope_theta": rope["rope_theta"], "rope_scaling": None if rope["rope_type"] == "default" else scaling}


def _rope_of(config) -> dict:
    rope = getattr(config, "rope_parameters", None)
    if rope:
        return dict(rope)
    scaling = getattr(config, "rope_scaling", None) or {}
    return {**scaling, "rope_type": scaling.get("rope_type", scaling.get("type", "default")),
            "rope_theta": getattr(config, "rope_theta", 10000.0)}


def _layer_keys(i: int) -> dict[str, str]:
    """lengthgen key -> HF key for the weights of layer i that map one to one (both directions)."""
    ours, hf = f"blocks.{i}.", f"model.layers.{i}."
    return {ours + "attn_norm.weight": hf + "input_layernorm.weight",
            ours + "mlp_norm.weight": hf + "post_attention_layernorm.weight",
            ours + "attn.out.weight": hf + "self_attn.o_proj.weight",
            ours + "mlp.down.weight": hf + "mlp.down_proj.weight"}


def hf_tokenizer(vocab: Vocab):
    """A `PreTrainedTokenizerFast` that splits text exactly as `Vocab.tokenize` does and maps to the
    same ids: the vocabulary's atomic tokens (specials, task markers, maze nodes `[k]`) are single
    tokens, every other character is its own; `<bos>` is prepended, decoding joins the tokens
    without spaces. Prompts are padded on the left, as greedy generation wants them."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors

    tf = optional.transformers()
    atomic = sorted((t for t in vocab.tokens if len(t) > 1), key=len, reverse=True)
    pattern = "|".join([*map(re.escape, atomic), "."])
    tokenizer = Tokenizer(models.WordLevel(vocab=dict(vocab.index), unk_token=None))
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(pattern), behavior="isolated")
    tokenizer.add_special_tokens(list(SPECIALS))
    tokenizer.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", special_tokens=[(BOS, vocab.bos_id)])
    tokenizer.decoder = decoders.Fuse()
    return tf.PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=BOS, eos_token=EOS, pad_token=PAD,
                                      sep_token=SEP, padding_side="left", clean_up_tokenization_spaces=False)


def export_llama(model: Decoder, out_dir, vocab_size: int | None = None, vocab: Vocab | None = None) -> Path:
    """Write `model` to `out_dir` as a transformers LlamaForCausalLM (config.json + model.safetensors).

    Only RMSNorm + SwiGLU models with the "rope" or "nope" encoding can be exported. RoPE maps
    directly (same rotate_half convention and frequencies). HF Llama always rotates, so NoPE is
    exported as linear RoPE scaling with rope_theta 1 and factor NOPE_FACTOR (1e30): every angle is
    position * 1e-30, so cos is exactly 1 and sin is below float32 resolution, i.e. no rotation.
    `vocab_size` (>= the model's) pads the embedding and LM head with zero rows, e.g. to match a
    tokenizer; padded tokens get logit 0. The config's `lengthgen` entry records the encoding,
    max_position, original vocab size, full ModelConfig and version, so `load_llama` is exact.
    With `vocab` (the run's), the tokenizer is written too and config.json and
    generation_config.json name its `<bos>`, `<eos>` and `<pad>` ids (greedy decoding).
    Returns the output directory.
    """
    cfg = model.cfg
    arch = getattr(cfg, "arch", "transformer")
    if arch != "transformer":  # only the decoder has a Llama counterpart
        raise UserError(f"cannot export model.arch {arch!r} to Llama; only the transformer architecture exports")
    if getattr(model, "position_head", None) is not None:
        # LlamaForCausalLM has no place for it; exporting without it would silently drop PPC.
        raise UserError("cannot export a model with a PPC position head (model.position_head) to Llama")
    if cfg.encoding not in HF_ROPE:
        raise UserError(f"cannot export encoding {cfg.encoding!r} to Llama; supported: {', '.join(HF_ROPE)}")
    if cfg.attention_window or cfg.attention_id_window or cfg.logit_scaling != "none" or cfg.token_shift:
        raise UserError("cannot export windowed or length-scaled attention or a token shift (model.attention_window, "
                        "model.attention_id_window, model.logit_scaling, model.token_shift) to Llama")
    if cfg.norm != "rmsnorm" or cfg.mlp != "swiglu":
        raise UserError(f"cannot export norm={cfg.norm!r} mlp={cfg.mlp!r} to Llama; "
                        "it needs norm rmsnorm and mlp swiglu")
    rows = model.vocab_size if vocab_size is None else int(vocab_size)
    if rows < model.vocab_size:
        raise UserError(f"vocab_size {rows} is smaller than the model's vocabulary ({model.vocab_size})")
    tf = optional.transformers()

    rope = HF_ROPE[cfg.encoding](cfg)
    config = tf.LlamaConfig(
        vocab_size=rows, hidden_size=cfg.d_model, intermediate_size=cfg.d_ff, num_hidden_layers=cfg.layers,
        num_attention_heads=cfg.heads, num_key_value_heads=cfg.heads, head_dim=cfg.head_dim,
        hidden_act="silu", max_position_embeddings=model.max_position, rms_norm_eps=cfg.norm_eps,
        tie_word_embeddings=cfg.tie_embeddings, attention_bias=False, mlp_bias=False,
        bos_token_id=vocab.bos_id if vocab is not None else None,
        eos_token_id=vocab.eos_id if vocab is not None else None,
        pad_token_id=vocab.pad_id if vocab is not None else None, **_rope_kwargs(tf.LlamaConfig, rope),
    )
    config.lengthgen = {"version": __version__, "encoding": cfg.encoding, "max_position": model.max_position,
                        "vocab_size": model.vocab_size, "model_config": cfg.model_dump()}

    ours = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    pad = rows - model.vocab_size
    sd = {"model.embed_tokens.weight": torch.nn.functional.pad(ours["embed.weight"], (0, 0, 0, pad)),
          "model.norm.weight": ours["norm.weight"],
          "lm_head.weight": torch.nn.functional.pad(ours["lm_head.weight"], (0, 0, 0, pad))}
    for i in range(cfg.layers):
        for our_key, hf_key in _layer_keys(i).items():
            sd[hf_key] = ours[our_key]
        q, k, v = ours[f"blocks.{i}.attn.qkv.weight"].chunk(3, dim=0)
        gate, up = ours[f"blocks.{i}.mlp.up.weight"].chunk(2, dim=0)
        hf = f"model.layers.{i}."
        sd.update({hf + "self_attn.q_proj.weight": q, hf + "self_attn.k_proj.weight": k,
                   hf + "self_attn.v_proj.weight": v, hf + "mlp.gate_proj.weight": gate,
                   hf + "mlp.up_proj.weight": up})

    hf_model = tf.LlamaForCausalLM(config).to(ours["embed.weight"].dtype)
    missing = hf_model.load_state_dict(sd, strict=False).missing_keys
    if missing:  # a transformers layout change must fail loudly, not export random weights
        raise RuntimeError(f"export_llama left HF weights unset: {sorted(missing)[:5]}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if vocab is not None:
        hf_model.generation_config = tf.GenerationConfig(
            bos_token_id=vocab.bos_id, eos_token_id=vocab.eos_id, pad_token_id=vocab.pad_id, do_sample=False,
            max_length=model.max_position)
        hf_tokenizer(vocab).save_pretrained(out)
    # safetensors is the default format in every supported transformers (4.45+); 5.x has no switch.
    hf_model.save_pretrained(out)
    return out


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    single = path / "model.safetensors"
    if single.is_file():
        return load_file(single)
    index = path / "model.safetensors.index.json"
    if not index.is_file():
        raise UserError(f"no model.safetensors or model.safetensors.index.json in {path}")
    tensors: dict[str, torch.Tensor] = {}
    for shard in sorted(set(json.loads(index.read_text())["weight_map"].values())):
        tensors.update(load_file(path / shard))
    return tensors


def load_llama(path) -> Decoder:
    """Load a LlamaForCausalLM directory (safetensors weights) as a lengthgen Decoder.

    Directories written by `export_llama` come back exactly (encoding, max_position, vocabulary and
    every ModelConfig field). Other Llama checkpoints load as "rope" models, provided they use
    default RoPE, no grouped-query attention, head_dim = hidden_size / heads, silu and no biases.
    """
    path = Path(path)
    if not (path / "config.json").is_file():
        raise UserError(f"no Llama model directory at {path} (config.json not found)")
    hf = optional.transformers().LlamaConfig.from_pretrained(path)
    meta = getattr(hf, "lengthgen", None) or {}
    encoding = meta.get("encoding", "rope")
    rope = _rope_of(hf)
    heads = hf.num_attention_heads
    problems = []
    if (hf.num_key_value_heads or heads) != heads:
        problems.append("grouped-query attention")
    if (getattr(hf, "head_dim", None) or hf.hidden_size // heads) * heads != hf.hidden_size:
        problems.append("head_dim * heads != hidden_size")
    if hf.hidden_act != "silu" or hf.attention_bias or getattr(hf, "mlp_bias", False):
        problems.append("non-silu activation or biases")
    if encoding == "rope" and rope.get("rope_type", "default") != "default":
        problems.append(f"rope_type {rope.get('rope_type')!r}")
    if problems:
        raise UserError(f"cannot load {path} as a lengthgen model: unsupported {', '.join(problems)}")

    fields = {k: v for k, v in meta.get("model_config", {}).items() if k in ModelConfig.model_fields}
    fields.update(layers=hf.num_hidden_layers, heads=heads, d_model=hf.hidden_size, d_ff=hf.intermediate_size,
                  encoding=encoding, norm="rmsnorm", mlp="swiglu", norm_eps=hf.rms_norm_eps,
                  tie_embeddings=bool(hf.tie_word_embeddings))
    if encoding == "rope":  # a NoPE export's HF theta is part of the trick, not the model's
        fields["rope_theta"] = rope["rope_theta"]
    cfg = ModelConfig(**fields)
    vocab = meta.get("vocab_size", hf.vocab_size)
    model = Decoder(cfg, vocab, meta.get("max_position", hf.max_position_embeddings))

    t = _read_safetensors(path)
    embed = t["model.embed_tokens.weight"]
    sd = {"embed.weight": embed[:vocab], "norm.weight": t["model.norm.weight"],
          "lm_head.weight": t.get("lm_head.weight", embed)[:vocab]}
    for i in range(cfg.layers):
        hf_i = f"model.layers.{i}."
        for our_key, hf_key in _layer_keys(i).items():
            sd[our_key] = t[hf_key]
        sd[f"blocks.{i}.attn.qkv.weight"] = torch.cat([t[hf_i + f"self_attn.{p}_proj.weight"] for p in "qkv"])
        sd[f"blocks.{i}.mlp.up.weight"] = torch.cat([t[hf_i + "mlp.gate_proj.weight"], t[hf_i + "mlp.up_proj.weight"]])
    model.to(embed.dtype).load_state_dict(sd, strict=True)
    return model.eval()
