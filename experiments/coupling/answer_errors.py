"""Where a run's answers go wrong: teacher-forced errors counted by answer index, per length.

For tasks that `lengthgen align` cannot read (reverse addition names no source token per answer
digit). Used for `addition_ten.py` in experiments/coupling/README.md:

    python experiments/coupling/answer_errors.py sweeps/coupling-addition-ten/runs/RUN --lengths 2,3,6 -n 128

Index k is the k-th target of the answer (0-based; the last index is `<eos>`). Evaluation examples,
IDs and seed are the run's own (its eval policy and eval seed), as `lengthgen eval` draws them.
`--shift S` adds S to every nonzero position ID (the same examples, their IDs moved up the table):
misses that stay at the same answer index under a shift are not tied to particular IDs. `--show`
prints each wrong example's prompt and answer.

    python experiments/coupling/answer_errors.py sweeps/coupling-addition-budget/runs/RUN --lengths 2,3,4 --shift 10
"""

import argparse
from collections import Counter
from types import SimpleNamespace

import torch

from lengthgen.cli.runs import _load
from lengthgen.data import collate
from lengthgen.evaluate import eval_examples


def evaluation_batches(run: str, lengths: list[int], n: int):
    """(model, length, examples, batch) per length: the run's newest checkpoint in eval mode on CPU, and
    its own evaluation examples (eval policy and eval seed, as `lengthgen eval` draws them)."""
    _, cfg, exp, _ = _load(SimpleNamespace(run=run, checkpoint=None), "cpu")
    exp.model.eval()
    for length in lengths:
        examples = eval_examples(exp.specs[0], length, n, cfg.seed.eval, cfg.positions.eval, cfg.positions.settings())
        yield exp.model, length, examples, collate(examples, exp.vocab)


def teacher_forced_misses(run: str, lengths: list[int], n: int,
                          shift: int = 0) -> dict[int, tuple[list, list[list[int]]]]:
    """length -> (the run's evaluation examples, each example's wrong target indices in answer order),
    teacher-forced on the true answer; `shift` is added to every nonzero position ID."""
    out = {}
    for model, length, examples, batch in evaluation_batches(run, lengths, n):
        with torch.no_grad():
            ids = torch.where(batch.position_ids > 0, batch.position_ids + shift, batch.position_ids)
            logits = model(batch.tokens, ids, select=batch.loss_mask)
        wrong = torch.zeros_like(batch.loss_mask)
        wrong[batch.loss_mask] = logits.argmax(-1) != batch.targets[batch.loss_mask]
        # each example's targets, in answer order
        misses = [torch.nonzero(wrong[row][batch.loss_mask[row]]).flatten().tolist() for row in range(len(examples))]
        out[length] = (examples, misses)
    return out


def errors_by_answer_index(run: str, lengths: list[int], n: int, shift: int = 0) -> dict[int, tuple[list, Counter]]:
    """length -> (the examples with any wrong target, wrong targets counted by answer index); `shift`
    is added to every nonzero position ID."""
    out = {}
    for length, (examples, misses) in teacher_forced_misses(run, lengths, n, shift).items():
        by_index = Counter(index for wrong in misses for index in wrong)
        out[length] = ([ex for ex, wrong in zip(examples, misses) if wrong], by_index)
    return out

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--lengths", default="2,3,6")
    parser.add_argument("-n", type=int, default=128)
    parser.add_argument("--shift", type=int, default=0, help="added to every nonzero position ID")
    parser.add_argument("--show", action="store_true", help="print each wrong example")
    args = parser.parse_args()
    for length, (bad, by_index) in errors_by_answer_index(args.run, [int(x) for x in args.lengths.split(",")],
                                                          args.n, args.shift).items():
        print(f"length {length}: {len(bad)} of {args.n} examples wrong; wrong targets by answer index "
              f"{dict(sorted(by_index.items()))}")
        for example in bad if args.show else []:
            print(f"  {''.join(example.prompt)} -> {''.join(map(str, example.answer))}")
