"""Model configuration: every architectural knob in one validated place."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..errors import choices_error
from .plugins import ARCHITECTURES, ENCODINGS

# Far beyond any model this bench builds; a mistyped size fails validation instead of asking torch
# for more memory than exists (or for a size it cannot even represent).
MAX_SIZE = 1 << 20
# The transformer's length-robust attention options and token shift; other architectures do not read them.
TRANSFORMER_ATTENTION_OPTIONS = ("attention_window", "attention_id_window", "logit_scaling", "token_shift")


class ModelConfig(BaseModel):
    """Llama-style decoder by default (RMSNorm, SwiGLU, no biases).

    `arch` picks the model class from `model.plugins.ARCHITECTURES`. The knobs from
    `layers` to `init_std` configure the "transformer"; `tuple_size`, `window` and `hidden`
    configure the "sparse_attention" idealized model (which also uses `d_model` as its
    embedding and value width and ignores the rest, position encoding included); `path` and
    `init` configure "pretrained" (a local Hugging Face model, which ignores every other knob).
    """

    # NaN or infinity in a width, scale or epsilon only fails deep inside torch: refuse it here.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    layers: int = Field(2, le=MAX_SIZE)
    heads: int = Field(4, le=MAX_SIZE)
    d_model: int = Field(128, le=MAX_SIZE)
    d_ff: int = Field(512, le=MAX_SIZE)
    encoding: str = "rope"
    rope_theta: float = 1e5
    fire_width: int = Field(32, le=MAX_SIZE)
    norm: Literal["rmsnorm", "layernorm"] = "rmsnorm"
    norm_eps: float = 1e-6
    mlp: Literal["swiglu", "gelu"] = "swiglu"
    tie_embeddings: bool = False
    attention: Literal["auto", "sdpa", "math"] = "auto"
    # Length-robust attention (RECIPES.md 5; both off by default, both with every encoding):
    # attention_window w > 0: each token attends to itself and the w - 1 tokens before it only (a
    # band, as sliding-window attention), so no input is ever longer than a trained window.
    attention_window: int = Field(0, ge=0, le=MAX_SIZE)
    # attention_id_window w > 0: a token attends only to the tokens whose position ID is within w of
    # its own (a band in ID space rather than in token order). With consecutive IDs that is a
    # two-sided window; with coupled IDs (position coupling, PPC) it keeps exactly the tokens that
    # share or neighbour the query's ID, wherever they sit, so a longer input adds no competitors.
    attention_id_window: int = Field(0, ge=0, le=MAX_SIZE)
    # logit_scaling "log_keys": each head's queries are multiplied by exp(a_h) * log(n), n the number
    # of keys the query may attend (scalable softmax, Nakanishi 2025), with a_h learned and started
    # at -log(log 16) (a factor of 1 at 16 keys): attention stays as sharp on long inputs as on short
    # ones instead of spreading over more keys. Position biases (alibi, fire) are not scaled.
    logit_scaling: Literal["none", "log_keys"] = "none"
    # token_shift k > 0: the first block's input at position t also gets W @ [its inputs at t - 1, ...,
    # t - k], zero where a predecessor is outside the example (zoology's short causal convolution,
    # RECIPES.md 2.5): a value token then carries its key, so one attention layer can do a key ->
    # value lookup. k = 1 for `key value` layouts (MQAR), 2 for `name = value` (variable assignment).
    # Applies to every task of the run; W starts N(0, init_std) like every matrix.
    token_shift: int = Field(0, ge=0, le=16)
    init_std: float = 0.02
    # The token and learned-position embedding tables start N(0, embedding_init_std) instead (None:
    # init_std). Cho et al.'s position-coupling code starts both at N(0, 1) (RECIPES.md 1.2): large,
    # nearly orthogonal ID vectors that AdamW's small steps barely move.
    embedding_init_std: float | None = None
    # Predictive Position Coupling (PPC, PAPERS.md A5): a second linear head on the final normed
    # hidden state predicts the position ID of the next token (logits over 0..max_position-1).
    # Off by default; only the transformer has it. Needs a coupled position policy.
    position_head: bool = False
    # Which model class to build; validated against the architecture registry.
    arch: str = "transformer"
    # sparse_attention: k, the number of positions in every attended tuple.
    tuple_size: int = Field(2, le=MAX_SIZE)
    # sparse_attention: L_local, a tuple's span (last minus first position) is < window.
    window: int = Field(8, le=MAX_SIZE)
    # sparse_attention: hidden width of the score and value MLPs and rank of the query match.
    hidden: int = Field(64, le=MAX_SIZE)
    # pretrained: a local Hugging Face causal LM (directory with config.json + weights, or a .gguf
    # file, or an alias such as smollm2); the architecture comes from there (lengthgen.model.pretrained).
    path: str | None = None
    # pretrained: start from the checkpoint's weights, or from a random initialisation of the same
    # architecture (seeded by seed.model): the control for what pretraining contributes.
    init: Literal["pretrained", "random"] = "pretrained"

    @model_validator(mode="after")
    def _check(self) -> "ModelConfig":
        model_cls = ARCHITECTURES.lookup(self.arch)  # UserError naming the valid architectures
        own_check = getattr(model_cls, "check_config", None)
        if own_check is not None:
            # An architecture with its own rules; the transformer checks below do not apply to it,
            # and the transformer's attention options would be silently ignored by it.
            own_check(self)
            for name in TRANSFORMER_ATTENTION_OPTIONS:
                if getattr(self, name) != type(self).model_fields[name].default:
                    raise ValueError(f"model.{name} is read by model.arch transformer only, not {self.arch!r}")
            return self
        if self.path is not None or self.init != "pretrained":
            raise ValueError(f"model.path and model.init are read by model.arch pretrained only, not {self.arch!r}")
        if self.encoding not in ENCODINGS:
            raise choices_error("encoding", self.encoding, ENCODINGS)
        for name in ("layers", "heads", "d_model", "d_ff"):
            if getattr(self, name) < 1:
                raise ValueError(f"model.{name} must be >= 1")
        if self.embedding_init_std is not None and not self.embedding_init_std > 0:
            raise ValueError(f"model.embedding_init_std must be > 0, got {self.embedding_init_std}")
        for name in ("init_std", "norm_eps", "rope_theta"):
            if getattr(self, name) <= 0:
                raise ValueError(f"model.{name} must be > 0, got {getattr(self, name)}")
        if self.fire_width < 1:
            raise ValueError(f"model.fire_width must be >= 1, got {self.fire_width}")
        if self.d_model % self.heads:
            raise ValueError(f"model.d_model ({self.d_model}) must be divisible by model.heads ({self.heads})")
        if self.encoding == "rope" and (self.d_model // self.heads) % 2:
            raise ValueError("rope needs an even head dimension")
        return self

    @property
    def head_dim(self) -> int:
        """Width of one attention head."""
        return self.d_model // self.heads
