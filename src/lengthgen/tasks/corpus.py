"""Local text corpora as streams of vocabulary ids, split into train and validation, cached on disk.

What a corpus can be and how its characters are normalized: `lengthgen.tasks.corpus_sources`.

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

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import UserError
from ..store.fileio import atomic_write_text, fsync_dir
from .corpus_sources import Source, encode, resolve

SPLIT_NAMES = ("train", "validation")
NORMALIZATION = 1  # bump when the normalization or the split rule changes: old caches are then unused
CHUNK_CHARS = 1 << 20
MAX_BLOCK_CHARS = 1 << 30


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
