"""Is MQAR in zoology's interleaved layout learned by the CPU model? (docs/experiments.md)

    python experiments/probes/mqar_interleaved_probe.py LAYOUT SEED STEPS [LAYERS [SHIFT]]

Hand-built batches, lengthgen's model of probe-mqar-preset-layout.yaml (3 layers, d=128, RoPE;
LAYERS overrides; SHIFT sets model.token_shift, default 0), one training loop: AdamW (0.9, 0.98), wd 0.01, constant lr 1e-3, no clipping,
float32, batch 64, one thread, 1-16 pairs, every key queried once in random order:
  LAYOUT  interleaved  `<bos> k1 v1 ... kL vL | q1 a1 q2 a2 ... qL aL`: each answer right after
                       its query (zoology); loss at the answers only, the queries are given
          grouped      `<bos> k1 v1 ... kL vL | q1 ... qL = a1 ... aL`: the preset's layout, loss at
                       the answers only
Prints step, loss, and teacher-forced exact match (every answer of an example right) and answer
accuracy on 256 fresh examples at 2, 4, 8 and 16 pairs every 500 steps.
"""
import random, string, sys, yaml
import torch, torch.nn.functional as F
from lengthgen.config import ExperimentConfig
from lengthgen.experiment import build_experiment
LAYOUT, SEED, STEPS = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
LAYERS = int(sys.argv[4]) if len(sys.argv) > 4 else 3
SHIFT = int(sys.argv[5]) if len(sys.argv) > 5 else 0
torch.set_num_threads(1)
tree = yaml.safe_load(open('experiments/probes/probe-mqar-preset-layout.yaml'))
tree["model"]["layers"] = LAYERS
tree["model"]["token_shift"] = SHIFT
tree["seed"] = {"model": SEED, "data": SEED}
ex = build_experiment(ExperimentConfig(**tree)); vocab = ex.vocab
torch.manual_seed(SEED); random.seed(SEED)
keys, vals = string.ascii_letters, string.digits
def batch(n, lo, hi):
    rows = []
    for _ in range(n):
        L = random.randint(lo, hi); k = random.sample(keys, L); v = [random.choice(vals) for _ in k]
        order = random.sample(range(L), L)
        pairs = [s for kv in zip(k, v) for s in kv]
        if LAYOUT == "interleaved":
            seq = pairs + ["|"] + [s for i in order for s in (k[i], v[i])]
            targets = [len(pairs) + 2 + 2 * j for j in range(L)]  # index of answer j in seq (after <bos>)
        else:
            seq = pairs + ["|"] + [k[i] for i in order] + ["="] + [v[i] for i in order]
            targets = [len(pairs) + L + 3 + j for j in range(L)]
        rows.append(([vocab.bos_id] + vocab.encode(seq), targets))
    w = max(len(s) for s, _ in rows)
    x = torch.zeros(n, w, dtype=torch.long); sel = torch.zeros(n, w, dtype=torch.bool)
    for i, (s, t) in enumerate(rows):
        x[i, :len(s)] = torch.tensor(s)
        sel[i, [j - 1 for j in t]] = True  # the answer at index j is predicted at j - 1
    y = torch.cat([x[i, [j for j in t]] for i, (_, t) in enumerate(rows)])
    return x, sel, y
m = ex.model.float()
fwd = lambda x, sel: m(x, torch.arange(x.shape[1])[None].expand_as(x), select=sel)
opt = torch.optim.AdamW(m.parameters(), lr=1e-3, betas=(0.9, 0.98), weight_decay=0.01)
for step in range(1, STEPS + 1):
    x, sel, y = batch(64, 1, 16)
    loss = F.cross_entropy(fwd(x, sel).float(), y)
    opt.zero_grad(); loss.backward(); opt.step()
    if step % 500 == 0:
        state = random.getstate(); scores = []
        with torch.no_grad():
            for L in (2, 4, 8, 16):
                random.seed(1000 + L); x, sel, y = batch(256, L, L)
                right = (fwd(x, sel).argmax(-1) == y).view(256, L)
                scores.append(f"{L}:{right.all(1).float().mean():.2f}/{right.float().mean():.2f}")
        random.setstate(state)
        print(LAYOUT, SEED, f"shift={SHIFT}", step, round(loss.item(), 3), " ".join(scores), flush=True)
