"""The decoder, its positional-encoding plug-ins and its configuration."""

from .config import ModelConfig
from .encodings import ENCODINGS
from .hooks import Hooks
from .transformer import Decoder, KVCache
from .architectures import ARCHITECTURES, build_model
from .idealized import SparseAttentionModel

__all__ = ["ARCHITECTURES", "ENCODINGS", "Decoder", "Hooks", "KVCache", "ModelConfig", "SparseAttentionModel",
           "build_model"]
