"""Which answer digits of coupled reverse addition go wrong, by the column sums around them.

Teacher-forced, like `answer_errors.py`, on the run's own evaluation examples. Each answer digit j
(significance j; j = width is the carry-out digit) is a site; a site is classed by the sum of the
operand digits in its column (s_j, 0 for the carry-out digit), by its carry-in, and by the sum of
the column before it (s_{j-1}), each sum bucketed as <=8, 9, 10, >=11. A carry rule that reads the
previous answer digit (carry-in = [s_{j-1} - c_{j-1} >= 9]) is right at every site; one that looks
back over the operand columns instead is right until a carry chain is longer than its reach, and
is weakest where a sum sits on a threshold (9 or 10).

The last line per length compares exact match with the product of the per-class miss rates
measured at the fit lengths (`--fit`): if the long lengths fail only because they hold more
sites of the weak classes, the two agree; if they fail by length itself, the product is far above.

    python experiments/coupling/carry_sites.py sweeps/coupling-addition-budget/runs/RUN --lengths 8,16
    python experiments/coupling/carry_sites.py RUN --fit 2,4 --lengths 8,12,16 -n 256 --drop-far
    python experiments/coupling/carry_sites.py RUN --fit 4 --lengths 8,16 -n 128 --attention
"""

import argparse
import itertools
import math
from collections import Counter

import torch
from answer_errors import evaluation_batches, teacher_forced_misses

from lengthgen.model.hooks import Hooks


def bucket(column_sum: int) -> str:
    """The four cases a carry rule must tell apart."""
    return "<=8" if column_sum <= 8 else "9" if column_sum == 9 else "10" if column_sum == 10 else ">=11"


def site_classes(prompt: str) -> list[str]:
    """One class per answer digit of `a+b=` (operands reversed, zero-padded to equal width), in
    answer order: 'prev column sum | carry-in | this column sum', 'out' for the carry-out digit."""
    a, b = prompt.rstrip("=").split("+")
    sums = [int(x) + int(y) for x, y in zip(a, b)]
    classes, carry = [], 0
    for j, column in enumerate(sums + [None]):
        before = bucket(sums[j - 1]) if j else "-"
        here = "out" if column is None else bucket(column)
        classes.append(f"{before} | {carry} | {here}")
        carry = int(column is not None and column + carry >= 10)
    return classes


def tally(examples, misses) -> tuple[Counter, Counter, float]:
    """Sites and missed sites per class (the digits only, not `<eos>`), and exact match."""
    sites, missed = Counter(), Counter()
    for example, wrong in zip(examples, misses):
        classes = site_classes("".join(example.prompt))
        sites.update(classes)
        missed.update(classes[j] for j in wrong if j < len(classes))
    exact = sum(not wrong for wrong in misses) / len(misses)
    return sites, missed, exact


def attention_mass(run: str, lengths: list[int], n: int) -> dict[int, torch.Tensor]:
    """length -> [layer, head, 5]: the mean attention mass from each token that predicts an operand
    column's answer digit (answer digit j, j < width) onto the two operand digits of column j (its
    coupled ID), those of column j - 1, those of the next columns out (j - 2 and j + 1), the answer
    so far (`=` included), and the rest (the other columns, `+`, `<bos>`)."""
    out = {}
    for model, length, examples, batch in evaluation_batches(run, lengths, n):
        layers = len(model.blocks)
        names = [f"blocks.{layer}.attn.hook_pattern" for layer in range(layers)]
        hooks = Hooks(capture=names)
        with torch.no_grad():
            model(batch.tokens, batch.position_ids, hooks=hooks)
        patterns = torch.stack([hooks.cache[name].float() for name in names], dim=1)  # [B, L, H, Q, K]
        total = torch.zeros(layers, patterns.shape[2], 5)
        count = 0
        for row in range(len(examples)):
            queries = torch.nonzero(batch.loss_mask[row]).flatten()
            ids = batch.position_ids[row]
            keys = torch.arange(ids.shape[0])
            prompt = (keys < queries[0]) & (ids > 0)
            for j, query in enumerate(queries[:length].tolist()):
                column = prompt & (ids == j + 1) & (keys < queries[0] - 1)  # not '=' (ID 1)
                previous = prompt & (ids == j) & (keys < queries[0] - 1)
                neighbours = prompt & ((ids == j - 1) | (ids == j + 2)) & (keys < queries[0] - 1)
                answer = (keys >= queries[0]) & (keys <= query)
                rest = (keys <= query) & ~column & ~previous & ~neighbours & ~answer
                weights = patterns[row, :, :, query]  # [L, H, K]
                groups = (column, previous, neighbours, answer, rest)
                total += torch.stack([weights[..., m].sum(-1) for m in groups], dim=-1)
                count += 1
        out[length] = total / count
    return out


def far_keys(batch, answer_too: bool) -> torch.Tensor:
    """[B, 1, T, T]: for each answer-region query (the token predicting answer digit j), the prompt
    tokens more than one column away from the columns it needs (IDs other than j - 1 .. j + 2), `+`
    included when it is, and with `answer_too` the answer tokens outside those IDs as well (all but
    the last three); `<bos>` and every other query's keys are kept."""
    b, t = batch.tokens.shape
    ids = batch.position_ids
    far = torch.zeros(b, 1, t, t, dtype=torch.bool)
    for row in range(b):
        queries = torch.nonzero(batch.loss_mask[row]).flatten()
        candidates = (torch.arange(t) < (t if answer_too else queries[0])) & (ids[row] > 0)
        for j, query in enumerate(queries.tolist()):
            far[row, 0, query] = candidates & ((ids[row] < j - 1) | (ids[row] > j + 2))
    return far


def exact_match_without_far_columns(run: str, lengths: list[int], n: int) -> dict[int, tuple[float, float, float]]:
    """length -> teacher-forced exact match (every target right, `<eos>` included) as the run is, with
    the far prompt tokens (`far_keys`) removed from every attention pattern and the rest renormalised,
    and with the far answer tokens removed too: if the long inputs fail because attention leaks onto
    tokens it does not need, the last two recover."""
    out = {}
    for model, length, _, batch in evaluation_batches(run, lengths, n):
        scores = []
        for drop in (None, far_keys(batch, answer_too=False), far_keys(batch, answer_too=True)):
            def drop_far(pattern, far=drop):
                kept = pattern.masked_fill(far, 0.0)
                return kept / kept.sum(-1, keepdim=True).clamp_min(1e-9)

            replace = {} if drop is None else {f"blocks.{layer}.attn.hook_pattern": drop_far
                                               for layer in range(len(model.blocks))}
            with torch.no_grad():
                logits = model(batch.tokens, batch.position_ids, hooks=Hooks(replace=replace))
            wrong = (logits.argmax(-1) != batch.targets) & batch.loss_mask
            scores.append(1.0 - wrong.any(dim=1).float().mean().item())
        out[length] = tuple(scores)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--fit", default="1,2,3,4", help="lengths whose miss rates predict the others")
    parser.add_argument("--lengths", default="8,16")
    parser.add_argument("-n", type=int, default=512)
    parser.add_argument("--attention", action="store_true",
                        help="instead: where the digit predictors attend, per head and length")
    parser.add_argument("--drop-far", action="store_true",
                        help="instead: exact match with the far columns removed from attention")
    args = parser.parse_args()
    fit = [int(x) for x in args.fit.split(",")]
    lengths = [int(x) for x in args.lengths.split(",")]
    if args.drop_far:
        for length, (plain, prompt, both) in exact_match_without_far_columns(args.run, fit + lengths, args.n).items():
            print(f"length {length:>2}: exact match {plain:.2f} as trained, {prompt:.2f} without the far "
                  f"columns, {both:.2f} without the far answer tokens too")
        raise SystemExit
    if args.attention:
        print("attention mass from the digit predictors: "
              "column j / column j-1 / columns j-2, j+1 / answer so far / rest")
        for length, mass in attention_mass(args.run, fit + lengths, min(args.n, 128)).items():
            for layer, head in itertools.product(range(mass.shape[0]), range(mass.shape[1])):
                shares = " / ".join(f"{x:.2f}" for x in mass[layer, head].tolist())
                print(f"  length {length:>2} L{layer}H{head}: {shares}")
        raise SystemExit
    results = teacher_forced_misses(args.run, fit + lengths, args.n)
    fit_sites, fit_missed = Counter(), Counter()
    for length in fit:
        sites, missed, _ = tally(*results[length])
        fit_sites.update(sites)
        fit_missed.update(missed)
    print("class (s_{j-1} | carry-in | s_j): missed / sites at the fit lengths, then at each other length")
    table = {length: tally(*results[length]) for length in lengths}
    for name in sorted(set(fit_sites) | {c for s, _, _ in table.values() for c in s}):
        cells = [f"{fit_missed[name]}/{fit_sites[name]}"] + [f"{m[name]}/{s[name]}" for s, m, _ in table.values()]
        if any(not cell.startswith("0/") for cell in cells):
            print(f"  {name:<16} " + "  ".join(f"{cell:>9}" for cell in cells))
    for length, (sites, missed, exact) in table.items():
        # a class never seen at the fit lengths counts as never missed there
        survive = sum(count * math.log1p(-min(fit_missed[c] / fit_sites[c], 1 - 1e-9)) if fit_sites[c] else 0.0
                      for c, count in sites.items())
        print(f"length {length}: exact match {exact:.2f}; predicted from the fit lengths' class rates "
              f"{math.exp(survive / args.n):.2f}; missed sites {sum(missed.values())} of {sum(sites.values())}")
