"""Model classes by name: `model.arch` in a config picks one of these.

Every entry is an nn.Module class built as `cls(model_cfg, vocab_size, max_position)` whose
forward has the Decoder's signature `(tokens, position_ids, attention_mask=None, cache=None,
hooks=None, select=None) -> logits`. A class may define `check_config(cfg)` to validate the
ModelConfig its own way (then the transformer's checks are skipped for it), and
`supports_cache = False` when greedy decoding must recompute the prefix instead of passing a
KV cache, and `run_files()` returning {file name: text} to write into the run directory.
`pretrained` wraps a local Hugging Face causal LM (lengthgen.pretrained).
"""

from __future__ import annotations

from ..pretrained import PretrainedLM
from ..registry import Registry
from .idealized import SparseAttentionModel
from .transformer import Decoder

ARCHITECTURES = Registry("architecture")
register_architecture = ARCHITECTURES.register

register_architecture("transformer")(Decoder)
register_architecture("sparse_attention")(SparseAttentionModel)
register_architecture("pretrained")(PretrainedLM)


def build_model(cfg, vocab_size: int, max_position: int):
    """The model `cfg.arch` names, built from its ModelConfig (UserError for an unknown name)."""
    return ARCHITECTURES.lookup(cfg.arch)(cfg, vocab_size, max_position)
