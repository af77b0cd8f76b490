"""The tokenization rule of `model.arch: pretrained`: lengthgen's vocabulary -> a model's ids.

The rule. Every token of lengthgen's fixed vocabulary (`Vocab.default()`: specials, task
markers, printable ASCII characters, maze nodes `[1]`..`[256]`) maps to exactly ONE model id,
and no two tokens share an id:

1. `<eos>`, `<bos>`, `<pad>` map to the tokenizer's own eos / bos / pad token when it has one;
2. a character maps to the single id `tokenizer.encode(char)` gives for it alone (byte-level
   BPE: every printable character), or failing that to the vocabulary entry spelled exactly as
   the character (`convert_tokens_to_ids`, SentencePiece style);
3. everything else (task markers, `<sep>`, maze nodes, characters without a single-token
   form, and any token whose id an earlier token already took) becomes a NEW token: an id after
   the model's existing embedding rows, in vocabulary order; the embedding matrix (and an
   untied output matrix) grows by that many rows, initialised by `pretrained.NEW_ROW_NOISE`'s
   rule (the mean of the existing rows plus a little seeded noise).

Ids are claimed in the order `<eos>`, `<bos>`, characters, `<pad>` (tokenizers often reuse
eos as pad; `<eos>` is a target and must keep the real one, `<pad>` is never a target).

A lengthgen sequence is then the concatenation of its tokens' ids, so digits are digit by digit
at every length by construction. The model's own tokenizer may merge digit runs into one token
(many BPEs do, differently at different lengths), which breaks length generalization; it is
never used to encode sequences, and `digit_report` says whether it would have merged them.

A directory written by `lengthgen export` carries `lengthgen_vocab.json` and maps one to one
(`map_by_lengthgen_vocab`): token i of that file is row i of the model.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..errors import UserError
from ..vocab import BOS, EOS, PAD, Vocab

LENGTHGEN_VOCAB = "lengthgen_vocab.json"  # written beside an exported model by `lengthgen export`

# Special token -> the tokenizer attribute holding its id. <sep> is not here: tokenizers that
# have a sep token use it for sentence pairs, not as a field separator inside one sequence.
SPECIAL_IDS = {EOS: "eos_token_id", BOS: "bos_token_id", PAD: "pad_token_id"}

# Lengths of the random digit strings `digit_report` encodes (up to the longest CPU and paper
# evaluation lengths of the presets, and beyond).
DIGIT_LENGTHS = (1, 2, 3, 4, 5, 6, 8, 12, 16, 20, 24, 32, 40, 48, 64, 128)


@dataclass(frozen=True)
class TokenMap:
    """lengthgen id i -> model id ids[i], and how each was mapped ("special", "char", "vocab",
    "lengthgen" or "new"); base_rows is the model's embedding size before new rows were added."""

    tokens: tuple[str, ...]
    ids: tuple[int, ...]
    how: tuple[str, ...]
    base_rows: int

    @property
    def rows(self) -> int:
        """The embedding size once the new tokens are added."""
        return self.base_rows + len(self.new_tokens)

    @property
    def new_tokens(self) -> list[str]:
        """Tokens that get a new embedding row, in id order."""
        return [t for t, how in zip(self.tokens, self.how) if how == "new"]

    def counts(self) -> dict[str, int]:
        """How many tokens were mapped each way."""
        return dict(Counter(self.how))

    def encode(self, tokens: Sequence[str]) -> list[int]:
        """Model ids of a sequence of lengthgen tokens: one id per token, concatenated."""
        index = {t: i for i, t in enumerate(self.tokens)}
        try:
            return [self.ids[index[t]] for t in tokens]
        except KeyError as err:
            raise UserError(f"token {err.args[0]!r} is not in the vocabulary") from None

    def decode(self, ids: Sequence[int]) -> list[str]:
        """lengthgen tokens of a sequence of model ids (the inverse of `encode`)."""
        back = {model_id: t for t, model_id in zip(self.tokens, self.ids)}
        try:
            return [back[int(i)] for i in ids]
        except KeyError as err:
            raise UserError(f"model id {err.args[0]} is not mapped from lengthgen's vocabulary") from None

    def to_dict(self) -> dict:
        """JSON-ready: sizes, counts and every token with its model id and how it was mapped."""
        return {"base_rows": self.base_rows, "rows": self.rows, "counts": self.counts(),
                "tokens": [[t, i, how] for t, i, how in zip(self.tokens, self.ids, self.how)]}


def _claim_order(vocab: Vocab) -> list[int]:
    """Vocabulary indices in the order tokens claim model ids: <eos>, <bos>, characters, <pad>, rest."""
    first = [vocab.index[t] for t in (EOS, BOS) if t in vocab.index]
    chars = [i for i, t in enumerate(vocab.tokens) if len(t) == 1]
    late = [vocab.index[PAD]] if PAD in vocab.index else []
    taken = set(first + chars + late)
    return first + chars + late + [i for i in range(len(vocab)) if i not in taken]


def assign_ids(vocab: Vocab, candidate: Callable[[str], tuple[int, str] | None], rows: int) -> TokenMap:
    """Apply the rule: each token takes candidate(token) = (model id, how) if that id is a valid
    row (< rows) not taken yet; every other token gets a new id from `rows` on, in vocabulary order."""
    ids: list[int | None] = [None] * len(vocab)
    how = ["new"] * len(vocab)
    taken: set[int] = set()
    for i in _claim_order(vocab):
        found = candidate(vocab.tokens[i])
        if found is not None and 0 <= found[0] < rows and found[0] not in taken:
            ids[i], how[i] = found
            taken.add(found[0])
    fresh = iter(range(rows, rows + len(vocab)))
    ids = [i if i is not None else next(fresh) for i in ids]
    return TokenMap(tuple(vocab.tokens), tuple(int(i) for i in ids), tuple(how), rows)


def tokenizer_candidate(tokenizer) -> Callable[[str], tuple[int, str] | None]:
    """Rules 1 and 2 for one tokenizer (anything with transformers' tokenizer interface)."""
    unk = getattr(tokenizer, "unk_token_id", None)

    def candidate(token: str) -> tuple[int, str] | None:
        if token in SPECIAL_IDS:
            special = getattr(tokenizer, SPECIAL_IDS[token], None)
            return (int(special), "special") if isinstance(special, int) else None
        if len(token) != 1:  # markers, <sep>, maze nodes: always new
            return None
        alone = tokenizer.encode(token, add_special_tokens=False)
        if len(alone) == 1 and alone[0] != unk:
            return int(alone[0]), "char"
        entry = tokenizer.convert_tokens_to_ids(token)
        if isinstance(entry, int) and entry != unk:
            return entry, "vocab"
        return None

    return candidate


def map_by_tokenizer(vocab: Vocab, tokenizer, rows: int) -> TokenMap:
    """The rule through a model's tokenizer; `rows` is the model's embedding size."""
    return assign_ids(vocab, tokenizer_candidate(tokenizer), rows)


def map_by_lengthgen_vocab(vocab: Vocab, stored: Vocab, rows: int) -> TokenMap:
    """One to one through an exported model's lengthgen_vocab.json: token t is row stored[t]."""
    return assign_ids(vocab, lambda t: (stored.index[t], "lengthgen") if t in stored.index else None, rows)


def _digit_pieces(tokenizer, ids: list[int]) -> list[str]:
    return [tokenizer.decode([i]) for i in ids]


def digit_report(tokenizer, token_map: TokenMap, lengths: Sequence[int] = DIGIT_LENGTHS, seed: int = 0) -> dict:
    """Whether the model's own tokenizer keeps digits one per token: for a random digit string at
    each length, `tokenizer.encode(digits)` against the rule's ids (one per digit). merges_digits
    is true when some tokenizer token spells more than one digit."""
    rng = np.random.default_rng(seed)
    rows, merges = [], False
    for n in lengths:
        digits = "".join(str(d) for d in rng.integers(0, 10, size=int(n)))
        raw = tokenizer.encode(digits, add_special_tokens=False)
        rule = token_map.encode(list(digits))
        merged = any(sum(c.isdigit() for c in piece) > 1 for piece in _digit_pieces(tokenizer, raw))
        merges = merges or merged
        rows.append({"length": int(n), "tokenizer_tokens": len(raw), "rule_tokens": len(rule), "same": raw == rule,
                     "merged": merged})
    return {"merges_digits": merges, "lengths": rows}
