"""Which part of lengthgen's pipeline keeps single-query MQAR on its plateau (docs/experiments.md).

    python experiments/probes/mqar_eos_bisect.py DATA MODEL SEED STEPS

One training loop (AdamW (0.9, 0.98), wd 0.01, constant lr 1e-3, no clipping, float32, batch 64,
one thread) over MQAR with one query, no `=`, 1-4 pairs, loss at the value; only the batches and
the model change:
  DATA   own       hand-built with Python's random (the independent loop's data)
         task      lengthgen's mqar generator, one example at a time
         taskvec   lengthgen's mqar generator, each length's examples drawn together
         lgprompt  the training mixture's examples (TaskMixture.sample), encoded as `own`
         lg        the same examples through lengthgen's collate: loss on value and <eos>
         lgnoeos   the same collated batches with the <eos> target left out of the loss
  MODEL  hf (a random HF Llama, 2 layers, d=128) or lg (lengthgen's model of
         probe-nosep-2l-const.yaml); SEED seeds the model and the data.
Prints step, loss and exact match on 256 fresh examples at 2 and 4 pairs every 250 steps.
"""
import random, string, sys, yaml
import torch, transformers, torch.nn.functional as F
from lengthgen.config import ExperimentConfig
from lengthgen.experiment import build_experiment
from lengthgen.data import batch_rng, collate, eval_examples
DATA, MODEL, SEED, STEPS = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(1)
cfg = ExperimentConfig(**yaml.safe_load(open('experiments/probes/probe-nosep-2l-const.yaml')))
cfg = cfg.model_copy(update={"seed": cfg.seed.model_copy(update={"model": SEED, "data": SEED})})
ex = build_experiment(cfg); vocab = ex.vocab; mix = ex.mixture()
torch.manual_seed(SEED); random.seed(SEED)
keys = string.ascii_letters; vals = string.digits
def own_batch(n, lo, hi):
    rows = []
    for _ in range(n):
        L = random.randint(lo, hi); k = random.sample(keys, L); v = [random.choice(vals) for _ in k]; q = random.randrange(L)
        rows.append(([vocab.bos_id] + vocab.encode([s for kv in zip(k, v) for s in kv] + ["|", k[q]]), vocab.index[v[q]]))
    w = max(len(s) for s, _ in rows)
    x = torch.zeros(n, w, dtype=torch.long); sel = torch.zeros(n, w, dtype=torch.bool)
    for i, (s, _) in enumerate(rows):
        x[i, :len(s)] = torch.tensor(s); sel[i, len(s) - 1] = True
    return x, sel, torch.tensor([a for _, a in rows])
import numpy as np
from lengthgen.tasks.base import make_task
TASK = make_task('mqar', {'num_queries': 1, 'separator': False})
def task_batch(step, n=64):
    rng = np.random.default_rng([SEED, step]); rows = []
    if DATA == "lgprompt":
        rows = [([vocab.bos_id] + vocab.encode(list(e.prompt)), vocab.index[e.answer[0]]) for e in mix.sample(batch_rng(SEED, step), n)]
    if DATA == "taskvec":
        Ls = rng.integers(1, 5, size=n)
        for L in range(1, 5):
            for p, a, _ in TASK.generate(rng, int((Ls == L).sum()), L):
                rows.append(([vocab.bos_id] + vocab.encode(list(p)), vocab.index[a[0]]))
    for _ in range(n - len(rows)):
        L = int(rng.integers(1, 5)); p, a, _ = next(iter(TASK.generate(rng, 1, L)))
        rows.append(([vocab.bos_id] + vocab.encode(list(p)), vocab.index[a[0]]))
    w = max(len(s) for s, _ in rows)
    x = torch.zeros(n, w, dtype=torch.long); sel = torch.zeros(n, w, dtype=torch.bool)
    for i, (s, _) in enumerate(rows):
        x[i, :len(s)] = torch.tensor(s); sel[i, len(s) - 1] = True
    return x, sel, torch.tensor([a for _, a in rows])
def lg_batch(step):
    b = collate(mix.sample(batch_rng(SEED, step), 64), vocab)
    if DATA == "lgnoeos":
        lm = b.loss_mask & (b.targets != vocab.eos_id)
        return b.tokens, lm, b.targets[lm]
    return b.tokens, b.loss_mask, b.targets[b.loss_mask]
if MODEL == "hf":
    hc = transformers.LlamaConfig(vocab_size=len(vocab), hidden_size=128, intermediate_size=512, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256, rope_theta=1e5)
    m = transformers.LlamaForCausalLM(hc)
    fwd = lambda x, sel: m(input_ids=x, attention_mask=(x != 0).long()).logits[sel]
else:
    m = ex.model.float()
    fwd = lambda x, sel: m(x, torch.arange(x.shape[1])[None].expand_as(x), select=sel)
opt = torch.optim.AdamW(m.parameters(), lr=1e-3, betas=(0.9, 0.98), weight_decay=0.01)
for step in range(1, STEPS + 1):
    x, sel, y = own_batch(64, 1, 4) if DATA == "own" else task_batch(step) if DATA in ("task", "lgprompt", "taskvec") else lg_batch(step)
    loss = F.cross_entropy(fwd(x, sel).float(), y)
    opt.zero_grad(); loss.backward(); opt.step()
    if step % 250 == 0:
        st = random.getstate(); accs = []
        with torch.no_grad():
            for L in (2, 4):
                random.seed(1000 + L); x, sel, y = own_batch(256, L, L)
                accs.append((fwd(x, sel).argmax(-1) == y).float().mean().item())
        random.setstate(st)
        print(DATA, MODEL, SEED, step, round(loss.item(), 3), [round(a, 2) for a in accs], flush=True)
