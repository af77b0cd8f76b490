"""One fixed vocabulary shared by every task, so that any model can be trained on any mixture.

Layout (ids are stable; adding tokens only ever appends):
  specials      <pad> <bos> <eos> <sep>
  task markers  <t0> .. <t15>      (disambiguate byte-identical prompts of related tasks)
  characters    printable ASCII, space to tilde
  atomic nodes  [1] .. [256]       (maze nodes and other multi-character symbols)

Encoding is greedy: `<name>` and `[number]` spans that name a vocabulary item become that single
token; every other character is its own token. decode(encode(s)) == s for every string made of
printable ASCII characters.
"""

from __future__ import annotations

import json
import re
from functools import cached_property
from pathlib import Path

from .errors import UserError
from .store.fileio import atomic_write_text

PAD, BOS, EOS, SEP = "<pad>", "<bos>", "<eos>", "<sep>"
SPECIALS = (PAD, BOS, EOS, SEP)
NUM_TASK_MARKERS = 16
NUM_NODES = 256
_ATOMIC = re.compile(r"<[a-z0-9]+>|\[[0-9]+\]")


def task_marker(index: int) -> str:
    """The marker token for task number `index` of a mixture."""
    if not 0 <= index < NUM_TASK_MARKERS:
        raise UserError(f"task marker index {index} out of range 0..{NUM_TASK_MARKERS - 1}")
    return f"<t{index}>"


def node_token(index: int) -> str:
    """The atomic token for node `index` (1-based, as in the paper's [1]..[64])."""
    if not 1 <= index <= NUM_NODES:
        raise UserError(f"node index {index} out of range 1..{NUM_NODES}")
    return f"[{index}]"


class Vocab:
    """Token <-> id mapping with greedy atomic-token encoding."""

    def __init__(self, tokens: list[str]):
        if len(set(tokens)) != len(tokens):
            raise ValueError("vocabulary tokens must be unique")
        self.tokens = list(tokens)
        self.index = {t: i for i, t in enumerate(self.tokens)}

    @classmethod
    def default(cls) -> "Vocab":
        """The project's fixed vocabulary."""
        tokens = list(SPECIALS)
        tokens += [f"<t{i}>" for i in range(NUM_TASK_MARKERS)]
        tokens += [chr(c) for c in range(32, 127)]
        tokens += [f"[{i}]" for i in range(1, NUM_NODES + 1)]
        return cls(tokens)

    def __len__(self) -> int:
        return len(self.tokens)

    @cached_property
    def pad_id(self) -> int:
        return self.index[PAD]

    @cached_property
    def bos_id(self) -> int:
        return self.index[BOS]

    @cached_property
    def eos_id(self) -> int:
        return self.index[EOS]

    def tokenize(self, text: str) -> list[str]:
        """Split text into vocabulary tokens (atomic spans first, then single characters)."""
        out: list[str] = []
        pos = 0
        while pos < len(text):
            match = _ATOMIC.match(text, pos)
            if match and match.group(0) in self.index:
                out.append(match.group(0))
                pos = match.end()
                continue
            char = text[pos]
            if char not in self.index:
                raise UserError(f"character {char!r} is not in the vocabulary")
            out.append(char)
            pos += 1
        return out

    def encode(self, text_or_tokens: str | list[str] | tuple[str, ...]) -> list[int]:
        """Ids of a string (tokenized greedily) or of an already-split token sequence."""
        tokens = self.tokenize(text_or_tokens) if isinstance(text_or_tokens, str) else text_or_tokens
        try:
            return [self.index[t] for t in tokens]
        except KeyError as err:
            raise UserError(f"token {err.args[0]!r} is not in the vocabulary") from None

    def decode(self, ids) -> str:
        """The string spelled by a sequence of ids."""
        return "".join(self.tokens[int(i)] for i in ids)

    def to_json(self) -> str:
        """The token list as JSON text."""
        return json.dumps({"tokens": self.tokens}, indent=0)

    def save(self, path: str | Path) -> None:
        """Write the token list as JSON (stored in the run and in every checkpoint), atomically."""
        atomic_write_text(Path(path), self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> "Vocab":
        """Read a vocabulary written by `save`; a UserError naming the file if it is missing or damaged."""
        try:
            tokens = json.loads(Path(path).read_text())["tokens"]
            if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
                raise ValueError("'tokens' is not a list of strings")
            return cls(tokens)
        except FileNotFoundError:
            raise UserError(f"vocabulary file {str(path)!r} does not exist") from None
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise UserError(f"vocabulary file {str(path)!r} is unreadable: {err}") from None
