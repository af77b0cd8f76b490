"""Local text corpora as streams of vocabulary ids, split into train and validation, cached on disk.

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

Split: each document is cut into blocks of `block_chars` normalized characters; block b of the
document with key K (relative path, plus `#line` for a JSON-lines record) goes to validation
when blake2b(K, b) / 2^64 < `validation_fraction`, else to train. Deterministic, independent of
the order and chunking of reading, and never leaking: every character is in exactly one split.
A split is the concatenation of its *segments*, maximal runs of consecutive blocks of one
document in that split; windows (`Split.windows`) never cross a segment boundary, so no
window joins two documents or two stretches of a document the other split separates.

Streaming and cache: documents are read in chunks of `chunk_chars` characters (JSON lines one
record at a time), normalized and appended to one file per split, in one pass with bounded
memory. The files (uint8 vocabulary ids), the segment tables and `meta.json` are built in a
temporary directory and renamed into place, so a crash never leaves half a cache. The cache
lives under `$LENGTHGEN_CACHE/corpus/` (default `~/.cache/lengthgen/corpus/`), in a directory
named by a fingerprint of the corpus (every file's path, size and mtime; for `pydoc` the Python
version and the module file) and of the normalization and split settings: a changed file, a
new file or other split settings make a new cache; old ones are left to be deleted by hand.
Splits are read back as memory maps, so corpora larger than memory work.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import sys
import tempfile
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from .errors import UserError
from .fileio import atomic_write_text, fsync_dir
from .registry import Registry
from .vocab import SEP, Vocab

SPLIT_NAMES = ("train", "validation")
NORMALIZATION = 1  # bump when the normalization or the split rule changes: old caches are then unused
CHUNK_CHARS = 1 << 20
TEXT_SUFFIXES = (".txt", ".md")
JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".json.gz")
MAX_BLOCK_CHARS = 1 << 30

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


# ------------------------------------------------------------------------------------ sources

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


# ------------------------------------------------------------------------------------ splits

def check_split_settings(validation_fraction: float, block_chars: int) -> None:
    """A UserError unless 0 < validation_fraction < 1 and 1 <= block_chars <= MAX_BLOCK_CHARS."""
    if not 0.0 < validation_fraction < 1.0:  # also refuses NaN
        raise UserError(f"validation_fraction must be in (0, 1), got {validation_fraction!r}")
    if not 1 <= block_chars <= MAX_BLOCK_CHARS:
        raise UserError(f"block_chars must be in 1..{MAX_BLOCK_CHARS}, got {block_chars!r}")


def in_validation(key: str, block: int, validation_fraction: float) -> bool:
    """Whether block `block` of document `key` belongs to the validation split."""
    digest = hashlib.blake2b(f"{key}\0{block}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2.0**64 < validation_fraction


def stream(source: Source, validation_fraction: float, block_chars: int,
           chunk_chars: int = CHUNK_CHARS) -> Iterator[tuple[str, int, int, np.ndarray]]:
    """(split, document index, block index, ids) pieces in reading order, bounded by chunk_chars."""
    check_split_settings(validation_fraction, block_chars)
    for index, (key, chunks) in enumerate(source.documents(chunk_chars)):
        offset = 0  # normalized characters of this document so far
        for chunk in chunks:
            ids = encode(chunk)
            pos = 0
            while pos < len(ids):
                block = (offset + pos) // block_chars
                take = min(len(ids) - pos, (block + 1) * block_chars - offset - pos)
                split = "validation" if in_validation(key, block, validation_fraction) else "train"
                yield split, index, block, ids[pos : pos + take]
                pos += take
            offset += len(ids)


@dataclass
class Split:
    """One split: its token ids (a memory map) and its segments (start, length) in the token array."""

    name: str
    tokens: np.ndarray
    segments: np.ndarray
    corpus: str = ""

    def __post_init__(self):
        self._counts: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        # The longest window this split can give (its longest segment); read at every sample.
        self.longest = int(self.segments[:, 1].max()) if len(self.segments) else 0

    def _starts(self, length: int):
        """Segments that fit `length` and the cumulative number of window starts in them."""
        if length not in self._counts:
            fit = self.segments[self.segments[:, 1] >= length]
            counts = fit[:, 1] - length + 1
            self._counts[length] = (fit[:, 0], counts, np.cumsum(counts))
        return self._counts[length]

    def check_length(self, length: int) -> None:
        """A UserError naming the fix if no window of `length` fits in this split."""
        if length > self.longest:
            if not len(self.tokens):
                raise UserError(f"the {self.name} split of corpus {self.corpus!r} is empty; use a larger corpus or "
                                "change validation_fraction")
            raise UserError(f"the {self.name} split of corpus {self.corpus!r} cannot give windows of {length} "
                            f"characters: its longest stretch of one document is {self.longest}; use shorter "
                            "lengths, a larger block_chars or a corpus with longer documents")

    def windows(self, rng: np.random.Generator, n: int, length: int) -> tuple[np.ndarray, np.ndarray]:
        """n windows of `length` ids, uniform over every start that keeps a window inside one segment:
        ([n, length] ids, [n] start offsets in the split)."""
        self.check_length(length)
        starts, counts, cumulative = self._starts(length)
        draw = rng.integers(0, int(cumulative[-1]), size=n)
        which = np.searchsorted(cumulative, draw, side="right")
        offsets = starts[which] + draw - (cumulative[which] - counts[which])
        return np.asarray(self.tokens[offsets[:, None] + np.arange(length)]), offsets


@dataclass
class Corpus:
    """Both splits of a corpus and where their cache lives."""

    train: Split
    validation: Split
    path: Path
    meta: dict

    def split(self, name: str) -> Split:
        """'train' or 'validation'."""
        if name not in SPLIT_NAMES:
            raise UserError(f"unknown split {name!r}; valid: {', '.join(SPLIT_NAMES)}")
        return getattr(self, name)


def cache_root() -> Path:
    """Where corpus caches live: $LENGTHGEN_CACHE/corpus, default ~/.cache/lengthgen/corpus."""
    base = os.environ.get("LENGTHGEN_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "lengthgen")
    return Path(base) / "corpus"


def fingerprint(source: Source, validation_fraction: float, block_chars: int) -> str:
    """Hex digest of what the cache depends on: the source's identity and the split settings."""
    facts = {"source": source.identity(), "normalization": NORMALIZATION,
             "validation_fraction": float(validation_fraction), "block_chars": int(block_chars)}
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:24]


def build_cache(source: Source, validation_fraction: float, block_chars: int, target: Path,
                chunk_chars: int = CHUNK_CHARS) -> None:
    """Stream the corpus once into `target` (created atomically: built beside it, then renamed)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-"))
    try:
        sizes = dict.fromkeys(SPLIT_NAMES, 0)
        segments: dict[str, list[list[int]]] = {s: [] for s in SPLIT_NAMES}
        last: dict[str, tuple[int, int] | None] = dict.fromkeys(SPLIT_NAMES)
        documents, last_doc = 0, -1  # documents with at least one character
        files = {s: open(tmp / f"{s}.u8", "wb") for s in SPLIT_NAMES}
        try:
            for split, doc, block, ids in stream(source, validation_fraction, block_chars, chunk_chars):
                documents, last_doc = documents + (doc != last_doc), doc
                # A piece continues the split's last segment if it is the same block or the next one of
                # the same document (then nothing of the document went to the other split in between).
                if last[split] is not None and last[split][0] == doc and block - last[split][1] in (0, 1):
                    segments[split][-1][1] += len(ids)
                else:
                    segments[split].append([sizes[split], len(ids)])
                last[split] = (doc, block)
                files[split].write(ids.tobytes())
                sizes[split] += len(ids)
            for handle in files.values():
                handle.flush()
                os.fsync(handle.fileno())
        finally:
            for handle in files.values():
                handle.close()
        if not sum(sizes.values()):
            raise UserError(f"corpus {source.name!r} holds no text (after normalization)")
        for split in SPLIT_NAMES:
            np.save(tmp / f"{split}.segments.npy", np.asarray(segments[split], dtype=np.int64).reshape(-1, 2))
        meta = {"corpus": source.name, "documents": documents, "characters": sizes,
                "segments": {s: len(segments[s]) for s in SPLIT_NAMES},
                "validation_fraction": validation_fraction, "block_chars": block_chars,
                "normalization": NORMALIZATION}
        atomic_write_text(tmp / "meta.json", json.dumps(meta, indent=1))  # last: marks a whole cache
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / "meta.json").is_file():  # not a concurrent build that finished first
                raise
            shutil.rmtree(tmp, ignore_errors=True)
        fsync_dir(target.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _read_split(folder: Path, name: str, corpus: str) -> Split:
    path = folder / f"{name}.u8"
    size = path.stat().st_size
    tokens = np.memmap(path, dtype=np.uint8, mode="r") if size else np.zeros(0, dtype=np.uint8)
    return Split(name, tokens, np.load(folder / f"{name}.segments.npy"), corpus)


def load(corpus: str, validation_fraction: float = 0.1, block_chars: int = 4096,
         chunk_chars: int = CHUNK_CHARS) -> Corpus:
    """Both splits of a corpus, from its cache; the cache is built first if it is missing or stale."""
    check_split_settings(validation_fraction, block_chars)
    source = resolve(corpus)
    folder = cache_root() / f"{_slug(source.name)}-{fingerprint(source, validation_fraction, block_chars)}"
    if not (folder / "meta.json").is_file():
        try:
            build_cache(source, validation_fraction, block_chars, folder, chunk_chars)
        except PermissionError as err:
            raise UserError(f"cannot write the corpus cache in {str(folder.parent)!r} ({err.strerror}); set "
                            "LENGTHGEN_CACHE to a writable directory") from None
    meta = json.loads((folder / "meta.json").read_text())
    return Corpus(*(_read_split(folder, s, corpus) for s in SPLIT_NAMES), folder, meta)


@lru_cache(maxsize=16)
def open_corpus(corpus: str, validation_fraction: float, block_chars: int, cache: str | None) -> Corpus:
    """`load`, once per process and cache setting (`cache`: $LENGTHGEN_CACHE). Tasks sample from it
    at every step; a corpus that changes while a process runs is not re-read by that process."""
    return load(corpus, validation_fraction, block_chars)


def open_split(corpus: str, split: str, validation_fraction: float = 0.1, block_chars: int = 4096) -> Split:
    """One split of a corpus, cached in this process."""
    corpus_ = open_corpus(corpus, float(validation_fraction), int(block_chars), os.environ.get("LENGTHGEN_CACHE"))
    return corpus_.validation if split == "validation" else corpus_.split(split)


def _slug(name: str) -> str:
    """A short file-name-safe label for a corpus (the fingerprint makes the directory unique)."""
    base = os.path.basename(name.rstrip("/")) or "corpus"
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in base)[:40]
