"""Pieces shared by the benchmark scripts: model sizes, the HF baseline, the matmul peak, timing.

The scripts run as `python benchmarks/NAME.py`, so this directory is on sys.path and they import
this module as `common`.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Callable

import torch

from lengthgen.model.config import ModelConfig
from lengthgen.model.transformer import Decoder

# small = Paper B's CPU scale neighbourhood; base = Paper B's paper-scale model.
SIZES = {
    "small": dict(layers=2, d_model=128, heads=4, d_ff=512),
    "base": dict(layers=6, d_model=384, heads=6, d_ff=1536),
}
MAX_POSITION = 512


def build_lengthgen(size: dict, vocab_size: int, attention: str = "auto") -> Decoder:
    """A RoPE Decoder of the given size."""
    cfg = ModelConfig(**size, encoding="rope", attention=attention)
    return Decoder(cfg, vocab_size, max_position=MAX_POSITION)


def build_hf(size: dict, vocab_size: int):
    """transformers LlamaForCausalLM of the same size (SDPA attention, untied head)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=vocab_size, hidden_size=size["d_model"], intermediate_size=size["d_ff"],
        num_hidden_layers=size["layers"], num_attention_heads=size["heads"],
        num_key_value_heads=size["heads"], max_position_embeddings=MAX_POSITION,
        rms_norm_eps=1e-6, tie_word_embeddings=False, use_cache=False, attn_implementation="sdpa",
    )
    model = LlamaForCausalLM(cfg)
    assert model.config._attn_implementation == "sdpa"
    return model


def peak_matmul_flops(dtype: torch.dtype, n: int = 2048, reps: int = 10, device: str = "cpu") -> float:
    """Median FLOP/s of an n x n matmul in the given dtype: this machine's practical peak (on a GPU,
    n = 8192, large enough to fill it)."""
    n = 8192 if device == "cuda" else n
    a, b = torch.randn(n, n, device=device).to(dtype), torch.randn(n, n, device=device).to(dtype)
    for _ in range(3):  # oneDNN/MKL (cuBLAS) pick their kernels on the first calls
        a @ b
    return 2 * n**3 / median_seconds(lambda: a @ b, reps, device)


def synchronize(device: str) -> None:
    """Wait for the device's queued work (GPU kernels run asynchronously; the CPU needs nothing)."""
    if device == "cuda":
        torch.cuda.synchronize()


def median_seconds(fn: Callable[[], object], reps: int, device: str = "cpu") -> float:
    """Median wall time of `reps` calls of fn (the device's queued work included)."""
    times = []
    for _ in range(reps):
        synchronize(device)
        t0 = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def machine_line() -> str:
    """One line naming the software, threads and load: this machine is shared, and load skews timings."""
    import transformers

    return (f"torch {torch.__version__}, transformers {transformers.__version__}, threads {torch.get_num_threads()}, "
            f"CPU capability {torch.backends.cpu.get_cpu_capability()}, load average {os.getloadavg()[0]:.2f}")
