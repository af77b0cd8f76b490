"""Reading local text corpora: what a corpus name or path stands for, its documents, and the
normalization of their characters onto the project's vocabulary (`lengthgen.tasks.corpus` splits and
caches them).

A corpus is a builtin name (`pydoc`: the English documentation CPython ships in
`pydoc_data.topics`, ~465k characters, one document per topic, present wherever Python is) or a
path: one file, or a directory walked recursively in sorted order (hidden files and directories,
whose names start with '.', are skipped; symlinked directories are not followed). Files:
  .txt .md                        one document per file
  .jsonl .jsonl.gz .json.gz       JSON lines (C4 ships as .json.gz), one document per record,
                                  its text in the field `text`
A path may name environment variables (`$LENGTHGEN_C4/c4-train.00000-of-01024.json.gz`).

Normalization (character level onto the project's fixed vocabulary, which is never extended):
  "\\r\\n" and "\\r"               newline (universal newlines)
  newline                         the `<sep>` token
  printable ASCII (space .. ~)    itself
  any other whitespace            a space (tab, form feed, no-break space, ...)
  anything else                   its NFKD decomposition's printable ASCII characters
                                  ('é' -> 'e', '…' -> '...', 'ﬁ' -> 'fi'), dropped if none
                                  ('’', '—', 'ß', control characters, emoji)
Every character is normalized on its own, so normalizing chunk by chunk equals normalizing the
whole text (`tests/test_language.py` checks it).
"""

from __future__ import annotations

import gzip
import json
import os
import sys
import sysconfig
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from ..errors import UserError
from ..registry import Registry
from ..vocab import SEP, Vocab

TEXT_SUFFIXES = (".txt", ".md")
JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".json.gz")

_VOCAB = Vocab.default()
# Vocabulary id of each ASCII code after normalization (printable ASCII and "\n" only); 255 elsewhere.
_ID_OF_BYTE = np.full(256, 255, dtype=np.uint8)
for _code in range(32, 127):
    _ID_OF_BYTE[_code] = _VOCAB.index[chr(_code)]
_ID_OF_BYTE[ord("\n")] = _VOCAB.index[SEP]
# Token strings by id, for turning id windows into Example tokens quickly.
TOKEN_STRINGS = np.array(_VOCAB.tokens, dtype=object)


def fold(char: str) -> str:
    """The normalized form of one character (see the module docstring): printable ASCII or "\\n"."""
    if char == "\n" or " " <= char <= "~":
        return char
    if char == "\r" or char.isspace():  # "\r" alone only where universal newlines did not apply
        return "\n" if char == "\r" else " "
    return "".join(c for c in unicodedata.normalize("NFKD", char) if " " <= c <= "~")


class _FoldTable(dict):
    """str.translate table that folds each new code point once and remembers it."""

    def __missing__(self, code: int) -> str:
        value = self[code] = fold(chr(code))
        return value


_TABLE = _FoldTable()


def normalize(text: str) -> str:
    """Text in the corpus alphabet: printable ASCII and "\\n" ("\\r\\n" and "\\r" become "\\n")."""
    return text.replace("\r\n", "\n").translate(_TABLE)


def encode(text: str) -> np.ndarray:
    """Vocabulary ids (uint8) of already universal-newline text, normalized character by character."""
    return _ID_OF_BYTE[np.frombuffer(text.translate(_TABLE).encode("ascii"), dtype=np.uint8)]


def decode(ids) -> str:
    """Text of corpus ids, with `<sep>` back to "\\n"."""
    return "".join("\n" if t == SEP else t for t in TOKEN_STRINGS[np.asarray(ids, dtype=np.int64)])


@dataclass(frozen=True)
class Source:
    """A corpus to read: its name, what identifies its content, and its documents.

    documents(chunk_chars) yields (key, chunks): a stable document key and an iterator of its text
    in universal-newline form, at most chunk_chars characters a piece (a JSON-lines record whole).
    """

    name: str
    identity: Callable[[], list]
    documents: Callable[[int], Iterator[tuple[str, Iterator[str]]]]


BUILTINS = Registry("builtin corpus")


@BUILTINS.register("pydoc")
def _pydoc() -> Source:
    """CPython's own documentation topics (`pydoc_data.topics`), one document per topic."""
    try:
        import pydoc_data.topics as topics
    except ImportError:  # some distributions strip it
        raise UserError("the builtin corpus 'pydoc' needs the module pydoc_data.topics, which this Python lacks; "
                        "give a path to a local corpus instead") from None

    def identity():
        stat = os.stat(topics.__file__)
        return ["pydoc", sys.version, stat.st_size, stat.st_mtime_ns]

    def documents(chunk_chars: int):
        for key in sorted(topics.topics):
            text = topics.topics[key].replace("\r\n", "\n").replace("\r", "\n")
            yield key, (text[i : i + chunk_chars] for i in range(0, len(text), chunk_chars))

    return Source("pydoc", identity, documents)


# Not part of the `stdlib` corpus: test suites (a third of the standard library, mostly generated or
# repetitive cases), site-packages (not the standard library) and vendored or data-like trees.
_STDLIB_SKIP = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__", "lib2to3",
                "ensurepip", "pydoc_data", "encodings"}


def _stdlib_files() -> list[Path]:
    """The standard library's own .py files, sorted, without the trees in _STDLIB_SKIP."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = []
    for path in sorted(root.rglob("*.py")):
        if not any(part in _STDLIB_SKIP or part.startswith(".") for part in path.relative_to(root).parts[:-1]):
            files.append(path)
    return files


@BUILTINS.register("stdlib")
def _stdlib() -> Source:
    """CPython's standard library source (.py files, tests excluded), one document per file: code
    whose identifiers are defined far above their use, so far context really helps (issue 27)."""
    files = _stdlib_files()
    if not files:
        raise UserError("the builtin corpus 'stdlib' found no .py files under this Python's standard library "
                        f"({sysconfig.get_paths()['stdlib']}); give a path to a local corpus instead")
    root = Path(sysconfig.get_paths()["stdlib"])

    def identity():
        return ["stdlib", sys.version, len(files), sum(f.stat().st_size for f in files)]

    def documents(chunk_chars: int):
        for path in files:
            yield path.relative_to(root).as_posix(), _text_chunks(path, chunk_chars)

    return Source("stdlib", identity, documents)


def _suffix(path: Path) -> str | None:
    """The corpus suffix a file name ends with, or None for a file the corpus ignores."""
    name = path.name.lower()
    return next((s for s in (*JSONL_SUFFIXES, *TEXT_SUFFIXES) if name.endswith(s)), None)


def _files(root: Path) -> list[Path]:
    """Corpus files under a directory, recursively, sorted by relative path; hidden entries skipped."""
    found = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(folder) / n for n in names if not n.startswith(".") and _suffix(Path(n))]
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def _open_text(path: Path):
    """A text reader with universal newlines; gzip for .gz; undecodable bytes replaced."""
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


def _text_chunks(path: Path, chunk_chars: int) -> Iterator[str]:
    with _open_text(path) as handle:
        while chunk := handle.read(chunk_chars):
            yield chunk


def _jsonl_documents(path: Path, key: str) -> Iterator[tuple[str, Iterator[str]]]:
    with _open_text(path) as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise UserError(f"corpus file {str(path)!r} line {number} is not JSON ({err.msg}); "
                                "JSON-lines files need one object per line") from None
            text = record.get("text") if isinstance(record, dict) else None
            if not isinstance(text, str):
                raise UserError(f"corpus file {str(path)!r} line {number} has no string field 'text'; every "
                                "JSON-lines record needs one")
            yield f"{key}#{number}", iter([text.replace("\r\n", "\n").replace("\r", "\n")])


def _path_source(text: str) -> Source:
    """A file or directory corpus; a UserError naming the fix for anything that cannot be one."""
    expanded = os.path.expanduser(os.path.expandvars(text))
    if "$" in expanded:
        var = expanded[expanded.index("$"):].split("/")[0].strip("${}")
        raise UserError(f"corpus {text!r} names the environment variable {var}, which is not set; set it to "
                        "the path of your local corpus (a file or a directory)")
    path = Path(expanded)
    if not path.exists():
        raise UserError(f"corpus {text!r} is neither a builtin corpus ({', '.join(sorted(BUILTINS))}) nor an "
                        "existing file or directory")
    if path.is_file():
        if _suffix(path) is None:
            raise UserError(f"corpus file {text!r} is not one of {', '.join(TEXT_SUFFIXES + JSONL_SUFFIXES)}")
        root, files = path.parent, [path]
    elif path.is_dir():
        root, files = path, _files(path)
        if not files:
            raise UserError(f"corpus directory {text!r} holds no {', '.join(TEXT_SUFFIXES + JSONL_SUFFIXES)} file")
    else:
        raise UserError(f"corpus {text!r} is neither a file nor a directory")

    def identity():
        out = [str(path.resolve())]
        for f in files:
            stat = f.stat()
            out.append([f.relative_to(root).as_posix(), stat.st_size, stat.st_mtime_ns])
        return out

    def documents(chunk_chars: int):
        for f in files:
            key = f.relative_to(root).as_posix()
            if _suffix(f) in JSONL_SUFFIXES:
                yield from _jsonl_documents(f, key)
            else:
                yield key, _text_chunks(f, chunk_chars)

    return Source(text, identity, documents)


def resolve(corpus: str) -> Source:
    """The source a corpus name or path stands for (nothing is read yet)."""
    if not isinstance(corpus, str) or not corpus.strip():
        raise UserError(f"corpus {corpus!r} must be a builtin name ({', '.join(sorted(BUILTINS))}) or a path")
    if corpus in BUILTINS:
        return BUILTINS[corpus]()
    return _path_source(corpus)
