"""Exact-match evaluation speed: lengthgen's scorers versus Hugging Face `generate` (greedy).

Run (from the repository root, with the venv active):

    python benchmarks/eval_throughput.py                  # defaults below
    python benchmarks/eval_throughput.py --sizes small --repeats 1   # quick check

One random-init RoPE Decoder per size is exported to a LlamaForCausalLM directory with
`lengthgen.model.hf_export.export_llama`, so both sides hold the same weights. The examples are a fixed
evaluation set of reverse addition (`--lengths`, `--n` per length), scored in batches of
`--batch`:

  * lengthgen teacher_forced: one forward pass per batch (the default evaluation mode);
  * lengthgen greedy: batched greedy decoding with the KV cache (`evaluate.score_greedy`);
  * HF generate: `model.generate(do_sample=False, max_new_tokens=answer width)` on the same
    left-padded prompts with an attention mask.

Both greedy decoders generate the full answer width (a random model never emits <eos> early),
so they do the same work. The script reports examples/s (median over --repeats), the ratio to HF
generate, and how often lengthgen's greedy tokens equal HF's (a check that the weights match;
near-ties in argmax may flip a few).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
from common import SIZES, build_lengthgen, machine_line

from lengthgen.data import build_spec, collate_prompts, eval_examples
from lengthgen.evaluate import score_greedy, score_teacher_forced
from lengthgen.model.hf_export import export_llama
from lengthgen.positions import PolicySettings
from lengthgen.runtime import autocast
from lengthgen.vocab import Vocab


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--lengths", default="8,16,32", help="comma-separated operand lengths")
    p.add_argument("--n", type=int, default=128, help="examples per length")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--sizes", default="small,base")
    p.add_argument("--precisions", default="float32,bf16")
    p.add_argument("--threads", type=int, default=None)
    return p.parse_args()


def batches(examples, size):
    """Consecutive slices of one length's examples."""
    return [examples[i : i + size] for i in range(0, len(examples), size)]


def hf_generate(hf_model, examples, vocab: Vocab, precision: str) -> torch.Tensor:
    """Greedy tokens from HF generate for a batch, [B, answer width]."""
    batch = collate_prompts(examples, vocab)
    width = batch.answer_targets.shape[1]
    with autocast(torch.device("cpu"), precision):
        out = hf_model.generate(input_ids=batch.tokens, attention_mask=batch.attention_mask.long(),
                                do_sample=False, max_new_tokens=width, min_new_tokens=width,
                                pad_token_id=vocab.pad_id)
    return out[:, batch.tokens.shape[1]:]


def lengthgen_greedy_tokens(model, examples, vocab: Vocab, precision: str) -> torch.Tensor:
    """Greedy tokens from lengthgen's decoder for the same batch (for the agreement check)."""
    from lengthgen.decoding import greedy_decode

    batch = collate_prompts(examples, vocab)
    with autocast(torch.device("cpu"), precision):
        # eos_id -1: never stop early, as HF is told (min_new_tokens) not to.
        return greedy_decode(model, batch, batch.answer_targets.shape[1], -1, vocab.pad_id)


def timed(fn, groups) -> float:
    """Examples per second of fn over every batch of every group."""
    t0 = time.perf_counter()
    count = 0
    for group in groups:
        for chunk in group:
            fn(chunk)
            count += len(chunk)
    return count / (time.perf_counter() - t0)


def main():
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from transformers import LlamaForCausalLM

    vocab = Vocab.default()
    spec = build_spec({"task": "reverse_add", "lengths": [1, 8]})
    lengths = [int(x) for x in args.lengths.split(",")]
    groups = [batches(eval_examples(spec, n, args.n, 0, "consecutive", PolicySettings()), args.batch) for n in lengths]
    cpu = torch.device("cpu")
    print(machine_line())
    print(f"reverse_add lengths {lengths}, {args.n} examples each, batch {args.batch}, median of {args.repeats}\n")
    header = f"{'size':<6} {'prec':<8} {'scorer':<26} {'examples/s':>11} {'vs HF':>8}"
    print(header + "\n" + "-" * len(header))
    for size_name in args.sizes.split(","):
        torch.manual_seed(0)
        model = build_lengthgen(SIZES[size_name], len(vocab)).eval()
        with tempfile.TemporaryDirectory() as tmp:
            hf = LlamaForCausalLM.from_pretrained(export_llama(model, tmp)).eval()
        for precision in args.precisions.split(","):
            scorers = {
                "lengthgen teacher_forced": lambda ex: score_teacher_forced(model, ex, vocab, cpu, precision),
                "lengthgen greedy (cache)": lambda ex: score_greedy(model, ex, vocab, cpu, precision),
                "HF generate (greedy)": lambda ex: hf_generate(hf, ex, vocab, precision),
            }
            rates = {name: [] for name in scorers}
            with torch.no_grad():
                for fn in scorers.values():  # warm-up: kernels are picked per shape on first use
                    timed(fn, groups)
                for _ in range(args.repeats):
                    for name, fn in scorers.items():
                        rates[name].append(timed(fn, groups))
                same = [(lengthgen_greedy_tokens(model, g[0], vocab, precision)
                         == hf_generate(hf, g[0], vocab, precision))
                        .float().mean().item() for g in groups]
            hf_rate = statistics.median(rates["HF generate (greedy)"])
            for name, r in rates.items():
                rate = statistics.median(r)
                print(f"{size_name:<6} {precision:<8} {name:<26} {rate:>11.0f} {rate / hf_rate:>7.1f}x")
            print(f"{size_name:<6} {precision:<8} greedy tokens equal to HF's: {100 * statistics.mean(same):.1f}%")


if __name__ == "__main__":
    main()
