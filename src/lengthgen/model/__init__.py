"""Models: what turns (tokens, position IDs) into next-token logits.

Reading order:
  config.py            ModelConfig: every architectural knob, validated against the plug-in tables
  plugins.py           ARCHITECTURES and ENCODINGS (the tables), `build_model`
  encodings.py         positional encodings as plug-ins with three hooks (embed, bias, rotate),
                       driven by explicit position IDs: nope, learned, sinusoidal, rope, alibi, fire
  hooks.py             TransformerLens-style hook points (capture and patch by name)
  transformer.py       the Llama-style decoder (`transformer`): attention, KV cache, PPC position head
  backward.py          RMSNorm and attention probabilities with hand-written backward passes (speed)
  sparse_attention.py  Paper A's idealized sparse-attention model (`sparse_attention`)
  pretrained.py        any local Hugging Face causal LM behind the decoder's interface (`pretrained`)
  pretrained_tokens.py the tokenization rule that maps lengthgen's vocabulary into such a model
  hf_export.py         a `rope`/`nope` decoder to and from transformers' LlamaForCausalLM

Importing the package imports every module that registers an architecture or an encoding, so
the tables are full whichever model module is imported first.
"""

from .config import ModelConfig
from .encodings import Encoding
from .hooks import Hooks
from .plugins import ARCHITECTURES, ENCODINGS, build_model
from .pretrained import PretrainedLM
from .sparse_attention import SparseAttentionModel
from .transformer import Decoder, KVCache

__all__ = ["ARCHITECTURES", "ENCODINGS", "Decoder", "Encoding", "Hooks", "KVCache", "ModelConfig", "PretrainedLM",
           "SparseAttentionModel", "build_model"]
