"""Independent check of single-query MQAR learnability: HF LlamaForCausalLM, hand-built data, no lengthgen code.

    python experiments/probes/mqar_independent_loop.py LAYERS LR STEPS [noeq]

Keys a-zA-Z, values 0-9, 1-4 pairs, one query; the sequence is `<bos> k1 v1 ... | q =` (`noeq`: no
`=`, the query is last), loss on the value predicted at the last token only; d_model 128, 4 heads,
AdamW (0.9, 0.98), wd 0.01, constant lr, batch 64, one thread. Prints step, loss and exact match
on 256 fresh examples at 2 and 4 pairs every 250 steps (docs/experiments.md, MQAR probes).
"""
import random, string, sys
import torch, transformers
EQ = len(sys.argv) < 5
torch.set_num_threads(1); torch.manual_seed(0); random.seed(0)
keys = string.ascii_letters; vals = string.digits
vocab = ["<pad>", "<bos>", "|", "="] + list(keys) + list(vals); idx = {t: i for i, t in enumerate(vocab)}
def example(L):
    k = random.sample(keys, L); v = [random.choice(vals) for _ in k]; q = random.randrange(L)
    seq = ["<bos>"] + [s for kv in zip(k, v) for s in kv] + ["|", k[q]] + (["="] if EQ else [])
    return [idx[s] for s in seq], idx[v[q]]
def batch(n, lo, hi):
    ex = [example(random.randint(lo, hi)) for _ in range(n)]
    w = max(len(s) for s, _ in ex)
    x = torch.zeros(n, w, dtype=torch.long); last = torch.zeros(n, dtype=torch.long); y = torch.tensor([a for _, a in ex])
    for i, (s, _) in enumerate(ex):
        x[i, :len(s)] = torch.tensor(s); last[i] = len(s) - 1
    return x, last, y
cfg = transformers.LlamaConfig(vocab_size=len(vocab), hidden_size=128, intermediate_size=512, num_hidden_layers=int(sys.argv[1]),
                               num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256, rope_theta=1e5)
m = transformers.LlamaForCausalLM(cfg)
opt = torch.optim.AdamW(m.parameters(), lr=float(sys.argv[2]), betas=(0.9, 0.98), weight_decay=0.01)
for step in range(1, int(sys.argv[3]) + 1):
    x, last, y = batch(64, 1, 4)
    logits = m(input_ids=x, attention_mask=(x != 0).long()).logits
    loss = torch.nn.functional.cross_entropy(logits[torch.arange(64), last], y)
    opt.zero_grad(); loss.backward(); opt.step()
    if step % 250 == 0:
        with torch.no_grad():
            accs = []
            for L in (2, 4):
                random.seed(1000 + L); x, last, y = batch(256, L, L)
                accs.append((m(input_ids=x, attention_mask=(x != 0).long()).logits[torch.arange(256), last].argmax(-1) == y).float().mean().item())
            random.seed(step)
        print(step, round(loss.item(), 3), [round(a, 2) for a in accs], flush=True)
