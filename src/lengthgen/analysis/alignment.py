"""Where the tokens that predict an answer attend, and how accurate each answer position is.

In copy and reverse (and their swapcase variants) answer token j copies one input token, its
*source*: input j for copy, input n-1-j for reverse (ALIGNMENTS maps a task to that rule). A task
whose examples name the inputs each answer token reads in meta["answer_sources"] (MQAR: the value
after the queried key) has those; one whose examples name the inputs of its one answer token in
meta["sources"] (offset_parity: the two bits of the XOR) has those, their masses summed. The
query that predicts answer j is the last prompt token for j = 0 and answer token j-1 after it.
For every layer and head, the attention of those queries is split into the mass on the source
token, on `<bos>`, on the other prompt tokens, and on answer tokens (their own and earlier ones),
averaged over the queries and the examples of a length's evaluation set. A coupled model that has
learned the coupled rule puts its mass on the source at every length; one that counts on content
(the previous occurrence of a symbol) or on absolute positions spreads it once the input is
longer than in training. Per answer position, the teacher-forced accuracy of the predicted token
shows where exact match is lost (the first answers, the last one, `<eos>`).

`lengthgen align RUN --lengths 10,20,40` prints both tables and writes `alignment.csv`,
`alignment_positions.csv` and `alignment.png` (the masses of every head as stacked bars, a panel
per length) into the run directory.
"""

from __future__ import annotations

from typing import Callable

import pandas as pd
import torch

from ..data import TaskSpec, collate, eval_examples
from ..errors import UserError
from ..optional import pyplot
from ..registry import Registry
from ..runtime import autocast
from ..store.eval_plot import save_figure
from ..tasks.base import Example
from .ablation import EvalSetup, check_hooked
from .attention import capture_patterns

# task name -> fn(n) -> the 0-based input index that answer j copies, for j = 0..n-1
ALIGNMENTS = Registry("answer alignment")
for _name in ("copy", "swapcase"):
    ALIGNMENTS.register(_name)(lambda n: list(range(n)))
for _name in ("reverse", "swapcase_reverse"):
    ALIGNMENTS.register(_name)(lambda n: list(range(n - 1, -1, -1)))

PARTS = ("source", "bos", "other_prompt", "answer")


def _input_offset(ex: Example) -> int:
    """Prompt tokens before the string: the leading copies of the task marker, if any."""
    marker = ex.meta.get("marker")
    offset = 0
    while marker is not None and offset < len(ex.prompt) and ex.prompt[offset] == marker:
        offset += 1
    return offset


def meta_sources(ex: Example) -> list[list[int]]:
    """For a task whose one answer token reads several input tokens that the example names in
    meta["sources"] (offset_parity: the two bits it XORs): those, for the first answer token."""
    return [list(ex.meta["sources"])] + [[] for _ in ex.answer[1:]]


def sources_of(task: str, example: Example) -> Callable[[Example], list[list[int]]]:
    """Per answer token, the input indices it reads: from ALIGNMENTS (copy-like tasks), else from the
    examples' meta["answer_sources"] or meta["sources"]; a UserError when the task has none of them."""
    if task in ALIGNMENTS:
        rule = ALIGNMENTS.lookup(task)
        return lambda ex: [[src] for src in rule(len(ex.answer))]
    if "answer_sources" in example.meta:
        return lambda ex: [list(keys) for keys in ex.meta["answer_sources"]]
    if "sources" in example.meta:
        return meta_sources
    raise UserError(f"align needs a task whose answers copy input tokens ({', '.join(sorted(ALIGNMENTS))}) or whose "
                    f"examples name their sources (mqar, offset_parity); {task!r} does neither")


def query_source_pairs(ex: Example, sources: Callable[[Example], list[list[int]]]) -> list[tuple[int, list[int]]]:
    """(query index, source key indices) in the `<bos> prompt answer` input, one per answer token."""
    offset = _input_offset(ex)
    return [(len(ex.prompt) + j, [1 + offset + src for src in keys]) for j, keys in enumerate(sources(ex))]


@torch.no_grad()
def alignment_of(model, examples: list[Example], setup: EvalSetup, sources: Callable[[Example], list[list[int]]]
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(mass [layers, heads, 4] summed over queries, correct [answer positions + 1] summed, counts
    [answer positions + 1]) for one batch of examples; the mass parts are PARTS, the last accuracy
    slot is the `<eos>` target."""
    layers, heads = check_hooked(model)
    patterns = capture_patterns(model, examples, setup, list(range(layers)))
    mass = torch.zeros(layers, heads, len(PARTS))
    width = max(len(ex.answer) for ex in examples) + 1
    correct, counts = torch.zeros(width), torch.zeros(width)
    batch = collate(examples, setup.vocab).to(setup.device)
    with autocast(setup.device, setup.precision):
        logits = model(batch.tokens, batch.position_ids, batch.attention_mask)
    hits = (logits.argmax(-1) == batch.targets).cpu()
    for i, ex in enumerate(examples):
        prompt_end = 1 + len(ex.prompt)  # keys before it: <bos> and the prompt
        for j, (query, keys) in enumerate(query_source_pairs(ex, sources)):
            for layer in range(layers):
                row = patterns[layer][i, :, query, : query + 1].cpu()  # [heads, keys]
                bos, src = row[:, 0], row[:, keys].sum(-1)
                prompt = row[:, 1:prompt_end].sum(-1)
                mass[layer, :, 0] += src
                mass[layer, :, 1] += bos
                mass[layer, :, 2] += prompt - src
                mass[layer, :, 3] += row[:, prompt_end:].sum(-1)
            correct[j] += float(hits[i, query])
            counts[j] += 1
        eos_query = len(ex.prompt) + len(ex.answer)
        if ex.scores_eos:
            correct[-1] += float(hits[i, eos_query])
            counts[-1] += 1
    return mass, correct, counts


def answer_alignment(model, spec: TaskSpec, lengths: list[int], setup: EvalSetup, step: int = 0
                     ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per length, layer and head: the mean attention mass of the answer-predicting queries on the
    source, `<bos>`, other prompt tokens and answers; per length and answer position: accuracy.
    The examples are the run's evaluation sets (`setup`), so exact match elsewhere is comparable."""
    was_training = model.training
    model.eval()
    mass_rows, position_rows = [], []
    for length in lengths:
        examples = eval_examples(spec, length, setup.n, setup.eval_seed, setup.policy, setup.settings)
        sources = sources_of(spec.task.name, examples[0])
        total_mass, queries, correct, counts = None, 0, None, None
        for start in range(0, len(examples), setup.batch_size):
            part = examples[start : start + setup.batch_size]
            mass, hit, count = alignment_of(model, part, setup, sources)
            total_mass = mass if total_mass is None else total_mass + mass
            correct = hit if correct is None else correct + hit  # answers of one length: one layout
            counts = count if counts is None else counts + count
            queries += sum(len(ex.answer) for ex in part)
        layers, heads, _ = total_mass.shape
        for layer in range(layers):
            for head in range(heads):
                shares = (total_mass[layer, head] / queries).tolist()
                mass_rows.append({"step": step, "length": length, "layer": layer, "head": head,
                                  **dict(zip(PARTS, shares))})
        for j in range(len(counts)):
            if counts[j]:
                label = "eos" if j == len(counts) - 1 else str(j + 1)
                position_rows.append({"step": step, "length": length, "position": label,
                                      "accuracy": float(correct[j] / counts[j]), "n": int(counts[j])})
    model.train(was_training)
    return pd.DataFrame(mass_rows), pd.DataFrame(position_rows)


def plot_alignment(mass: pd.DataFrame, path, title: str = ""):
    """Stacked bars of the attention mass (source, `<bos>`, other prompt, answer) of every head, one
    panel per length: where a head's attention goes as the input grows. Written to `path`."""
    plt = pyplot()
    lengths = list(dict.fromkeys(mass["length"]))
    fig, axes = plt.subplots(1, len(lengths), figsize=(2.2 + 1.6 * len(lengths) + 0.25 * len(mass) / len(lengths), 3.6),
                             sharey=True, squeeze=False)
    colors = {"source": "tab:green", "bos": "tab:gray", "other_prompt": "tab:orange", "answer": "tab:blue"}
    for ax, length in zip(axes[0], lengths):
        sub = mass[mass["length"] == length]
        labels = [f"{layer}.{head}" for layer, head in zip(sub["layer"], sub["head"])]
        bottom = [0.0] * len(sub)
        for part in PARTS:
            ax.bar(labels, sub[part], bottom=bottom, color=colors[part], label=part, width=0.8)
            bottom = [b + v for b, v in zip(bottom, sub[part])]
        ax.set(title=f"length {length}", xlabel="layer.head", ylim=(0, 1.0))
        ax.tick_params(axis="x", labelsize=7, rotation=90)
    axes[0][0].set_ylabel("attention mass of the answer queries")
    axes[0][-1].legend(fontsize=7, loc="upper right")
    if title:
        fig.suptitle(title, fontsize=9)
    return save_figure(fig, path)


def summary_text(mass: pd.DataFrame, positions: pd.DataFrame) -> str:
    """The tables as text: mass per length, layer and head; accuracy per length and answer position."""
    lines = ["attention of the answer-predicting tokens (mean mass; source = the input token the answer copies)",
             f"{'length':>6} {'layer':>5} {'head':>4} " + " ".join(f"{p:>12}" for p in PARTS)]
    for row in mass.itertuples():
        lines.append(f"{row.length:>6} {row.layer:>5} {row.head:>4} "
                     + " ".join(f"{getattr(row, p):>12.3f}" for p in PARTS))
    lines.append("")
    lines.append("teacher-forced accuracy by answer position (eos: the <eos> after the answer)")
    for length, sub in positions.groupby("length", sort=False):
        cells = " ".join(f"{p}:{a:.2f}" for p, a in zip(sub["position"], sub["accuracy"]))
        lines.append(f"{length:>6}  {cells}")
    return "\n".join(lines)
