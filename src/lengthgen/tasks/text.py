"""Language modelling on a local text corpus (PAPERS.md A6), character level.

An example of length n is a window of exactly n consecutive characters of one split of the
corpus (`tasks.corpus`: normalization, split, cache): empty prompt, answer = the window, so
the trainer's answer loss is the language-modelling loss over the window (`<bos>` predicts the
first character). A window has no natural end, so its `<eos>` target is left out of the loss
(`eos_in_loss = False`): otherwise a model trained on windows of one length learns to say
`<eos>` at that position, which would spike the loss exactly where longer contexts begin.
Evaluation sets come from the validation split (`eval_overrides`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..errors import UserError
from .base import Task, register_task
from .corpus import Split, check_split_settings, open_split
from .corpus_sources import TOKEN_STRINGS, resolve


class _SplitLimit:
    """`max_length` of a text task: the longest window its split can give (read lazily, so that
    listing tasks opens no corpus); None on the class."""

    def __get__(self, task, owner):
        if task is None:
            return None
        return task.source().longest


@register_task
@dataclass(frozen=True)
class Text(Task):
    """A window of `length` characters of a corpus split; prompt empty, answer = the window.

    corpus               'pydoc' (CPython's documentation, no download), 'stdlib' (the standard
                         library's own .py files, no download) or a path to a file or a
                         directory of .txt/.md/.jsonl(.gz)/.json.gz files; `$VARS` are expanded
    split                'train' or 'validation' (evaluation sets always use 'validation')
    validation_fraction  share of (document, block) pieces that go to validation
    block_chars          block size of the split, in normalized characters; a window never crosses
                         into a block of the other split, so evaluation lengths must fit in runs of
                         validation blocks
    repeat               share of windows made periodic: the window's first d characters (d uniform
                         in [length // 8, length - 1]) repeat to its end, so copying from d back pays;
                         an induction curriculum for models too small to find copying in natural
                         text. Evaluation sets never repeat (`eval_overrides`)
    meta: {"offset": the window's start in the split}.
    """

    name = "text"
    description = "language modelling: a window of `length` characters of a local corpus (prompt empty)"
    eval_overrides = {"split": "validation", "repeat": 0.0}
    eos_in_loss = False
    report_metric = "token_acc"
    max_length = _SplitLimit()

    corpus: str = "pydoc"
    split: Literal["train", "validation"] = "train"
    validation_fraction: float = 0.1
    block_chars: int = 4096
    repeat: float = 0.0

    def validate(self) -> None:
        """Split settings in range and a corpus that exists (nothing is read yet)."""
        check_split_settings(self.validation_fraction, self.block_chars)
        if not 0.0 <= self.repeat <= 1.0:
            raise UserError(f"task 'text': repeat must be a share in [0, 1], got {self.repeat}")
        resolve(self.corpus)

    def source(self) -> Split:
        """The split this task samples from (its cache is built on first use)."""
        return open_split(self.corpus, self.split, self.validation_fraction, self.block_chars)

    def length_limits_reason(self) -> str:
        return (f"the longest stretch of one document in the {self.split} split of corpus {self.corpus!r}; "
                "a larger block_chars or longer documents allow longer windows")

    def check_length(self, length: int) -> None:
        """The base range check, but an empty split is named as such."""
        split = self.source()
        if length >= self.min_length and not len(split.tokens):
            split.check_length(length)
        super().check_length(length)

    def generate(self, rng: np.random.Generator, n: int, length: int):
        ids, offsets = self.source().windows(rng, n, length)
        if self.repeat > 0 and length > 1:
            ids = periodic(ids, rng, self.repeat)
        tokens = TOKEN_STRINGS[ids.astype(np.int64)]
        for row, offset in zip(tokens, offsets.tolist()):
            yield (), tuple(row), {"offset": offset}


def periodic(ids: np.ndarray, rng: np.random.Generator, share: float) -> np.ndarray:
    """The windows [n, length], a `share` of them made periodic: row i keeps its first d_i characters
    (d_i uniform in [max(1, length // 8), length - 1]) and repeats them to its end."""
    n, length = ids.shape
    rows = np.flatnonzero(rng.random(n) < share)
    if not len(rows):
        return ids
    periods = rng.integers(max(1, length // 8), length, size=len(rows))
    out = ids.copy()
    cols = np.arange(length)
    out[rows] = np.take_along_axis(ids[rows], cols[None, :] % periods[:, None], axis=1)
    return out
