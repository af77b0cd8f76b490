"""a-language, round 4 (issue 27): does a trained text run copy from earlier context, and how far?

A far-context gain beyond L needs a model that predicts from what it saw earlier (copying a name
defined far above, as an induction head does). This measures that skill directly, on the run's
own validation text: a chunk of min(24, distance) characters, other validation text, and the same
chunk again, the repeat starting `distance` characters after the first copy. It prints the mean
loss (nats per character) over each copy but its first 4 characters (which no model can know to
copy yet). A model that copies predicts the repeat better than the first copy; one that does not
scores both alike. 16 chunks per distance, one forward each, consecutive position IDs.

    python experiments/language/copy_diagnostic.py sweeps/<sweep>/runs/<run> [--distances 16 32 48 96 160]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from lengthgen.data import eval_examples
from lengthgen.experiment import build_experiment
from lengthgen.store.checkpoint import find_checkpoint, load_weights
from lengthgen.store.rundir import RunDir
from lengthgen.vocab import Vocab

CHUNK, SKIPPED, SAMPLES = 24, 4, 16


def repeat_losses(run_path: str, distances: list[int]) -> dict[int, tuple[float, float]]:
    """distance -> (mean loss on the first copy, on the repeat), on the run's newest checkpoint."""
    run = RunDir(run_path)
    cfg = run.read_config()
    vocab = Vocab.load(run.path / "vocab.json")
    exp = build_experiment(cfg, vocab=vocab, device="cpu")
    load_weights(exp.model, find_checkpoint(run.checkpoint_root, None))
    exp.model.eval()
    spec = next(s for s in exp.specs if s.task.name == "text")
    longest = max(distances) + CHUNK
    texts = [vocab.encode(ex.answer) for ex in
             eval_examples(spec, longest, 2 * SAMPLES, cfg.seed.eval, "consecutive", cfg.positions.settings())]

    def losses(ids: list[int]) -> np.ndarray:
        tokens = torch.tensor([[vocab.bos_id, *ids]])
        with torch.no_grad():
            logits = exp.model(tokens, torch.arange(tokens.shape[1])[None]).float()
        return -torch.log_softmax(logits[0, :-1], -1).gather(1, tokens[0, 1:, None])[:, 0].numpy()

    out = {}
    for distance in distances:
        first, again = [], []
        size = min(CHUNK, distance)
        for i in range(SAMPLES):
            chunk = texts[i][:size]
            scored = losses(chunk + texts[SAMPLES + i][: distance - size] + chunk)
            first.append(scored[SKIPPED:size].mean())
            again.append(scored[distance + SKIPPED : distance + size].mean())
        out[distance] = (float(np.mean(first)), float(np.mean(again)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run")
    parser.add_argument("--distances", type=int, nargs="+", default=[16, 32, 48, 96, 160])
    args = parser.parse_args()
    if min(args.distances) <= SKIPPED:
        parser.error(f"--distances must exceed {SKIPPED} (the unscored start of each copy)")
    for distance, (first, again) in repeat_losses(args.run, args.distances).items():
        print(f"distance {distance:4d}: first copy {first:.2f}, repeat {again:.2f} nats/char "
              f"(gain {first - again:+.2f})")


if __name__ == "__main__":
    main()
