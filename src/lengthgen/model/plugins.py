"""The model package's two plug-in tables: architectures (`model.arch`) and encodings (`model.encoding`).

Both are filled by the modules that define the classes (`@register_architecture("transformer")`
on `transformer.Decoder`, `@register_encoding("rope")` on `encodings.Rope`, ...), which
`lengthgen.model` imports, so any import from the package fills them. This module imports none
of them: `config.ModelConfig` validates names against these tables, and the model classes in
turn read `ModelConfig`, so the tables sit below both.

An architecture is an nn.Module class built as `cls(model_cfg, vocab_size, max_position)` whose
forward has the Decoder's signature `(tokens, position_ids, attention_mask=None, cache=None,
hooks=None, select=None) -> logits`. A class may define `check_config(cfg)` to validate the
ModelConfig its own way (then the transformer's checks are skipped for it),
`supports_cache = False` when greedy decoding must recompute the prefix instead of passing a KV
cache, and `run_files()` returning {file name: text} to write into the run directory.
An encoding is an `encodings.Encoding` subclass (the three hooks are described there).
"""

from __future__ import annotations

from ..registry import Registry

ARCHITECTURES = Registry("architecture")
register_architecture = ARCHITECTURES.register

ENCODINGS = Registry("encoding")


def register_encoding(name: str):
    """Class decorator: make an encoding available by name (and set the class's `name`)."""

    def wrap(cls):
        cls.name = name
        return ENCODINGS.register(name)(cls)

    return wrap


def build_model(cfg, vocab_size: int, max_position: int):
    """The model `cfg.arch` names, built from its ModelConfig (UserError for an unknown name)."""
    return ARCHITECTURES.lookup(cfg.arch)(cfg, vocab_size, max_position)
