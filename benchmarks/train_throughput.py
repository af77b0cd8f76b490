"""Training throughput of lengthgen's Decoder versus Hugging Face LlamaForCausalLM (CPU).

Run (from the repository root, with the venv active):

    python benchmarks/train_throughput.py                       # full run, defaults below
    python benchmarks/train_throughput.py --steps 2 --repeats 1 --sizes small   # quick check
    python benchmarks/train_throughput.py --json results.json   # also write the results
    python benchmarks/train_throughput.py --workload answers    # Paper B's answer-only loss
    python benchmarks/train_throughput.py --compile             # also torch.compile (slow start)
    python benchmarks/train_throughput.py --device cuda --sizes base --batch 256 --seq-len 256   # on a GPU

What it measures, per model size (small: 2 layers, d_model 128, 4 heads, d_ff 512; base: 6
layers, d_model 384, 6 heads, d_ff 1536; vocabulary = len(Vocab.default())) and precision
(float32, and bf16 via torch.autocast("cpu", dtype=torch.bfloat16) around forward + loss):

  * lengthgen Decoder (RoPE, max_position 512). Under float32 with attention="auto" (= SDPA
    there); under bf16 once with attention="sdpa" and once with attention="math" ("auto" picks
    math on CPU under bf16 autocast).
  * transformers LlamaForCausalLM with attn_implementation="sdpa", same sizes, untied head,
    rms_norm_eps 1e-6, num_key_value_heads = heads.

One training step = forward, loss, backward, fused AdamW step (lr 1e-3, betas (0.9, 0.98),
weight decay 0.01; the HF Trainer's default optimizer too), zero_grad, on one of two workloads:

  * `--workload lm` (default): random tokens [batch, seq_len] at position IDs 0..seq_len-1,
    cross entropy (float32 logits) at every position against random targets, computed
    identically for both models;
  * `--workload answers`: a real batch of reverse addition (operands of 1..--max-digits digits,
    right-padded), loss on answer and <eos> targets only, as Paper B trains. Each side does what
    its own training code does: lengthgen feeds only the answer positions to the LM head
    (`select`), HF computes logits everywhere and masks labels with -100 (the HF Trainer's way).
    Same gradient, different work: this measures lengthgen's training path, not only its model.
 After --warmup untimed steps, --repeats timed
windows of --steps steps each are run, with the implementations of one (size, precision)
interleaved window by window so that background load hits them alike. Reported: the median
tokens/s over the windows (tokens = batch * seq_len per step) and the ratio to HF at the same
size and precision (> 1: lengthgen is faster).

MFU. The peak is a timed median of a square 2048x2048 matmul (2*n^3 FLOPs) in float32 and in
bfloat16. Model FLOPs of one training step follow the PaLM convention (Chowdhery et al. 2022,
app. B), causal masking not discounted:

    flops = 6 * N * batch * seq_len  +  12 * layers * batch * seq_len^2 * d_model

with N = parameters of all matmul weights (attention, MLP and LM head; no embedding table, no
norm gains). The second term is forward (2 flops/MAC) of QK^T and PV, times 3 for fwd + bwd.
MFU = flops * steps/s / peak of that precision. Both models share the formula.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch
import torch.nn.functional as F
import transformers
from common import SIZES, build_hf, build_lengthgen, peak_matmul_flops, synchronize

from lengthgen.vocab import Vocab


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--seq-len", type=int, default=100)
    p.add_argument("--steps", type=int, default=5, help="training steps per timed window")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps per implementation")
    p.add_argument("--repeats", type=int, default=3, help="timed windows; the median is reported")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--sizes", default="small,base", help=f"comma-separated subset of {','.join(SIZES)}")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    p.add_argument("--workload", choices=["lm", "answers"], default="lm",
                   help="lm: random tokens, loss at every position; answers: real reverse-addition batches "
                        "(operands up to --max-digits), loss on answer tokens only, as Paper B trains")
    p.add_argument("--max-digits", type=int, default=16, help="answers workload: longest operand")
    p.add_argument("--compile", action="store_true", help="also time lengthgen under torch.compile (attention auto)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where the models train")
    return p.parse_args()


def matmul_params(model) -> int:
    """Parameters of matmul weights: 2-D tensors other than embedding tables."""
    embeds = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    return sum(p.numel() for p in model.parameters() if p.dim() == 2 and id(p) not in embeds)


class Runner:
    """One model + optimizer + fixed batch; `window(n)` times n training steps."""

    def __init__(self, name, model, loss_fn, bf16, data, device="cpu"):
        self.device = device
        model = model.to(device)
        data = tuple(None if t is None else t.to(device) for t in data)
        self.name, self.model, self.loss_fn, self.bf16 = name, model.train(), loss_fn, bf16
        # Fused on both sides: lengthgen's trainer uses it, and so does the HF Trainer by default
        # (optim "adamw_torch_fused" with torch >= 2.8).
        self.opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.98), weight_decay=0.01, fused=True)
        self.tokens, self.targets, self.position_ids, self.loss_mask = data
        self.rates: list[float] = []
        self.n_matmul = matmul_params(model)

    def step(self):
        with torch.autocast(self.device, dtype=torch.bfloat16, enabled=self.bf16):
            loss = self.loss_fn(self.model, self.tokens, self.position_ids, self.targets, self.loss_mask)
        loss.backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return loss

    def window(self, steps):
        synchronize(self.device)
        t0 = time.perf_counter()
        for _ in range(steps):
            self.step()
        synchronize(self.device)
        self.rates.append(steps * self.tokens.numel() / (time.perf_counter() - t0))


def lengthgen_loss(model, tokens, position_ids, targets, mask):
    """lengthgen's training path: with a loss mask only the selected positions reach the LM head."""
    if mask is None:
        return F.cross_entropy(model(tokens, position_ids).float().flatten(0, 1), targets.flatten())
    return F.cross_entropy(model(tokens, position_ids, select=mask).float(), targets[mask])


def hf_loss(model, tokens, position_ids, targets, mask):
    """What the HF Trainer does: logits everywhere, masked labels set to -100."""
    logits = model(input_ids=tokens, position_ids=position_ids, use_cache=False).logits
    labels = targets if mask is None else targets.masked_fill(~mask, -100)
    return F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=-100)


def make_data(args, vocab):
    """(tokens, targets, position_ids, loss_mask or None) of the chosen workload."""
    if args.workload == "lm":
        gen = torch.Generator().manual_seed(0)
        tokens = torch.randint(len(vocab), (args.batch, args.seq_len), generator=gen)
        targets = torch.randint(len(vocab), (args.batch, args.seq_len), generator=gen)
        return tokens, targets, torch.arange(args.seq_len).expand(args.batch, args.seq_len), None
    import numpy as np

    from lengthgen.data import TaskMixture, build_spec, collate
    from lengthgen.positions import PolicySettings

    mixture = TaskMixture([build_spec({"task": "reverse_add", "lengths": [1, args.max_digits]})], "consecutive",
                          PolicySettings())
    b = collate(mixture.sample(np.random.default_rng(0), args.batch), vocab)
    return b.tokens, b.targets, b.position_ids, b.loss_mask


def compiled(model):
    """The model's forward under torch.compile, as `train.compile: true` does it."""
    model.forward = torch.compile(model.forward, dynamic=True)
    return model


def runners_for(size, precision, data, vocab_size, with_compile=False, device="cpu"):
    bf16 = precision == "bf16"
    specs = [(f"lengthgen ({a})", lambda a=a: build_lengthgen(size, vocab_size, a), lengthgen_loss)
             for a in (["sdpa", "math"] if bf16 else ["auto"])]
    if with_compile:
        specs.append(("lengthgen compiled", lambda: compiled(build_lengthgen(size, vocab_size)), lengthgen_loss))
    specs.append(("HF Llama (sdpa)", lambda: build_hf(size, vocab_size), hf_loss))
    runners = []
    for name, build, loss_fn in specs:
        torch.manual_seed(0)
        runners.append(Runner(name, build(), loss_fn, bf16, data, device))
    return runners


def main():
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]  # 1-minute; this machine is shared, and other load skews everything
    vocab = Vocab.default()
    vocab_size = len(vocab)
    peaks = {k: peak_matmul_flops(dtype, device=args.device) for k, dtype in (("fp32", torch.float32),
                                                                                ("bf16", torch.bfloat16))}
    data = make_data(args, vocab)
    batch, seq_len = data[0].shape
    tokens = batch * seq_len
    where = torch.cuda.get_device_name(0) if args.device == "cuda" else \
        f"CPU capability {torch.backends.cpu.get_cpu_capability()}"
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, "
          f"threads {torch.get_num_threads()}, {where}, load average before start {load:.2f}")
    what = "random tokens, loss everywhere" if data[3] is None else f"{int(data[3].sum())} answer targets"
    print(f"workload {args.workload} ({what}), batch {batch}, seq_len {seq_len}, vocab {vocab_size}, "
          f"warmup {args.warmup}, "
          f"{args.repeats} windows x {args.steps} steps (median reported)")
    print("peak matmul 2048^2: " + ", ".join(f"{k} {v / 1e9:.1f} GFLOP/s" for k, v in peaks.items()))
    auto = "math" if args.device == "cpu" else "sdpa"
    print(f"HF attention implementation: sdpa; lengthgen fp32 'auto' = sdpa, bf16 'auto' = {auto}\n")
    header = f"{'size':<6} {'prec':<5} {'implementation':<19} {'tokens/s':>10} {'vs HF':>7} {'GFLOP/s':>8} {'MFU':>6}"
    print(header)
    print("-" * len(header))
    rows = []
    for size_name in args.sizes.split(","):
        size = SIZES[size_name]
        for precision in ("fp32", "bf16"):
            runners = runners_for(size, precision, data, vocab_size, args.compile, args.device)
            for r in runners:
                for _ in range(args.warmup):
                    r.step()
            for _ in range(args.repeats):
                for r in runners:
                    r.window(args.steps)
            hf_rate = statistics.median(runners[-1].rates)
            for r in runners:
                rate = statistics.median(r.rates)
                flops_per_step = (6 * r.n_matmul * tokens
                                  + 12 * size["layers"] * batch * seq_len**2 * size["d_model"])
                flops = flops_per_step * rate / tokens
                row = dict(size=size_name, **size, precision=precision, implementation=r.name,
                           tokens_per_s=rate, windows_tokens_per_s=r.rates, ratio_vs_hf=rate / hf_rate,
                           matmul_params=r.n_matmul, model_flops_per_s=flops, mfu=flops / peaks[precision])
                rows.append(row)
                print(f"{size_name:<6} {precision:<5} {r.name:<19} {rate:>10.0f} {rate / hf_rate:>6.2f}x "
                      f"{flops / 1e9:>8.1f} {100 * row['mfu']:>5.1f}%", flush=True)
            del runners
    if args.json:
        meta = dict(torch=torch.__version__, transformers=transformers.__version__,
                    threads=torch.get_num_threads(), workload=args.workload, batch=batch, seq_len=seq_len,
                    steps=args.steps, warmup=args.warmup, repeats=args.repeats, vocab_size=vocab_size,
                    peak_flops=peaks, hf_attention="sdpa", load_average_start=load)
        with open(args.json, "w") as f:
            json.dump(dict(meta=meta, rows=rows), f, indent=2)
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
