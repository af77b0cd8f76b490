"""Local text corpora (normalization, split, streaming, cache) and the `text` task."""

import json
import os
import re
import string
import sysconfig

import numpy as np
import pytest

from lengthgen.cli.main import main
from lengthgen.data import build_spec, collate, collate_prompts, eval_examples
from lengthgen.errors import UserError
from lengthgen.positions import PolicySettings
from lengthgen.tasks import corpus as corpora
from lengthgen.tasks import corpus_sources as sources
from lengthgen.tasks import make_task
from lengthgen.vocab import Vocab

VOCAB = Vocab.default()
BLOCK = 50


def random_text(rng, n: int) -> str:
    """Letters, spaces and newlines at random: every 50-character stretch is unique."""
    alphabet = np.array(list(string.ascii_letters + "  \n"))
    return "".join(alphabet[rng.integers(0, len(alphabet), n)])


@pytest.fixture
def small_corpus(tmp_path):
    """Files of every kind, a sub-directory, and files the corpus must ignore; returns (root, documents)
    with documents the normalized texts in corpus order."""
    rng = np.random.default_rng(0)
    root = tmp_path / "corpus"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / ".hidden").mkdir()
    texts = {"a.txt": random_text(rng, 900) + "caf\u00e9\u2026\r\n", "b.md": random_text(rng, 40),
             "sub/c.txt": random_text(rng, 1300), "sub/deeper/e.txt": "", "z.txt": random_text(rng, 333)}
    for name, text in texts.items():
        (root / name).write_bytes(text.encode())
    records = [random_text(rng, 400), "short", random_text(rng, 260)]
    with open(root / "sub" / "d.jsonl", "w") as handle:
        for text in records:
            handle.write(json.dumps({"text": text, "url": "x"}) + "\n")
        handle.write("\n")  # blank lines are skipped
    (root / ".hidden" / "x.txt").write_text("never read")
    (root / ".y.txt").write_text("never read")
    (root / "notes.csv").write_text("never read")
    order = ["a.txt", "b.md", "sub/c.txt", "sub/d.jsonl", "sub/deeper/e.txt", "z.txt"]
    documents = []
    for name in order:
        if name.endswith(".jsonl"):
            documents += [(f"{name}#{i}", sources.normalize(t)) for i, t in enumerate(records, 1)]
        elif texts[name]:
            documents.append((name, sources.normalize(texts[name])))
    return root, documents


def whole_split(documents, fraction=0.3, block=BLOCK) -> dict[str, str]:
    """Each split as text, computed from whole documents (the reference for streaming)."""
    out = {"train": [], "validation": []}
    for key, text in documents:
        for b in range(0, len(text), block):
            split = "validation" if corpora.in_validation(key, b // block, fraction) else "train"
            out[split].append(text[b : b + block])
    return {s: "".join(parts) for s, parts in out.items()}


def test_normalization_rule():
    raw = "Tab\there\r\nCR\rNBSP\u00a0caf\u00e9 \u2026 \ufb01 \u2019q\u2019 \u2014 stra\u00dfe \x00\x07 \U0001F600 ~"
    assert sources.normalize(raw) == "Tab here\nCR\nNBSP cafe ... fi q  strae   ~"
    ids = sources.encode(sources.normalize("a\nb"))
    assert ids.dtype == np.uint8 and list(ids) == VOCAB.encode(["a", "<sep>", "b"])
    assert sources.decode(ids) == "a\nb"
    every = "".join(chr(c) for c in range(0x3000))
    assert set(sources.normalize(every)) <= set(string.printable[:95]) | {"\n"}  # printable ASCII and newline
    assert len(VOCAB) == 4 + 16 + 95 + 256  # the vocabulary is not extended


def test_split_has_no_overlap_and_covers_every_character(small_corpus):
    root, documents = small_corpus
    corpus = corpora.load(str(root), 0.3, BLOCK)
    train, validation = (sources.decode(corpus.split(s).tokens) for s in ("train", "validation"))
    assert corpus.meta["documents"] == len(documents) == 7
    assert len(train) + len(validation) == sum(len(t) for _, t in documents)
    assert len(train) > 1000 and len(validation) > 500
    for key, text in documents:
        for b in range(0, len(text), BLOCK):
            block = text[b : b + BLOCK]
            if len(block) < 20:
                continue  # a short tail could occur by chance; full blocks of random text cannot
            in_train, in_validation = block in train, block in validation
            assert in_train != in_validation, (key, b)
    # No stretch of 30 characters of one split occurs in the other.
    for a, b in ((train, validation), (validation, train)):
        assert not any(a[i : i + 30] in b for i in range(0, len(a) - 30, 7))


def test_windows_stay_inside_one_document_and_one_split(small_corpus):
    root, documents = small_corpus
    for name in ("train", "validation"):
        split = corpora.load(str(root), 0.3, BLOCK).split(name)
        reference = whole_split(documents)[name]
        ids, offsets = split.windows(np.random.default_rng(1), 300, 40)
        for row, offset in zip(ids, offsets):
            text = sources.decode(row)
            assert reference[offset : offset + 40] == text
            assert any(text in doc for _, doc in documents)


@pytest.mark.parametrize("chunk", [1, 7, 64])
def test_streaming_gives_the_tokens_of_reading_whole(small_corpus, chunk, tmp_path, monkeypatch):
    root, documents = small_corpus
    expected = whole_split(documents)
    pieces = {"train": [], "validation": []}
    for split, _, _, ids in corpora.stream(sources.resolve(str(root)), 0.3, BLOCK, chunk_chars=chunk):
        assert len(ids) <= max(chunk, 400)  # text files in chunks; a JSON-lines record is read whole
        pieces[split].append(sources.decode(ids))
    assert {s: "".join(p) for s, p in pieces.items()} == expected
    monkeypatch.setenv("LENGTHGEN_CACHE", str(tmp_path / f"cache{chunk}"))
    small = corpora.load(str(root), 0.3, BLOCK, chunk_chars=chunk)
    monkeypatch.setenv("LENGTHGEN_CACHE", str(tmp_path / "whole"))
    whole = corpora.load(str(root), 0.3, BLOCK, chunk_chars=1 << 20)
    for name in ("train", "validation"):
        assert np.array_equal(small.split(name).tokens, whole.split(name).tokens)
        assert np.array_equal(small.split(name).segments, whole.split(name).segments)
        assert sources.decode(whole.split(name).tokens) == expected[name]


def test_cache_is_reused_and_rebuilt_when_a_file_changes(small_corpus, monkeypatch):
    root, _ = small_corpus
    first = corpora.load(str(root), 0.3, BLOCK)
    built = (first.path / "meta.json").stat().st_mtime_ns
    monkeypatch.setattr(corpora, "build_cache", lambda *a, **k: pytest.fail("rebuilt an intact cache"))
    again = corpora.load(str(root), 0.3, BLOCK)
    assert again.path == first.path and (again.path / "meta.json").stat().st_mtime_ns == built
    monkeypatch.undo()
    assert corpora.load(str(root), 0.2, BLOCK).path != first.path  # other split settings, another cache
    target = root / "b.md"
    target.write_text("a different text, long enough to see " * 3)
    os.utime(target, ns=(1, 1))
    changed = corpora.load(str(root), 0.3, BLOCK)
    assert changed.path != first.path
    total = sum(len(changed.split(s).tokens) for s in ("train", "validation"))
    assert total == sum(len(first.split(s).tokens) for s in ("train", "validation")) - 40 + 37 * 3


def test_a_crash_while_building_leaves_no_cache(small_corpus, monkeypatch, tmp_path):
    root, _ = small_corpus
    monkeypatch.setenv("LENGTHGEN_CACHE", str(tmp_path / "cache"))
    calls = []

    def failing(text):
        calls.append(text)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(text)

    real = corpora.encode
    monkeypatch.setattr(corpora, "encode", failing)
    with pytest.raises(KeyboardInterrupt):
        corpora.load(str(root), 0.3, BLOCK)
    assert not any(corpora.cache_root().iterdir())  # neither a cache nor a temporary directory
    monkeypatch.setattr(corpora, "encode", real)
    assert corpora.load(str(root), 0.3, BLOCK).meta["documents"] == 7


def test_the_stdlib_corpus_is_this_pythons_own_source_without_its_tests():
    files = sources._stdlib_files()
    assert len(files) > 100 and all(f.suffix == ".py" for f in files)
    assert not any({"test", "tests", "site-packages"} & set(f.parts) for f in files)
    source = sources.resolve("stdlib")
    assert source.identity() == source.identity() and source.identity()[2] == len(files)
    key, chunks = next(iter(source.documents(200)))
    first = next(chunks)
    assert key.endswith(".py") and 0 < len(first) <= 200
    # Code has what pydoc lacks: a name defined far above its use. Some identifier defined in the
    # file's first 2,000 characters comes back after 20,000 in most long files.
    text = (sources.Path(sysconfig.get_paths()["stdlib"]) / "argparse.py").read_text()
    defined = set(re.findall(r"def (\w+)|class (\w+)", text[:2000])[0]) - {""}
    assert any(name in text[20_000:] for name in defined)


def test_bad_corpora_are_one_line_errors(tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    (tmp_path / "blank").mkdir()
    (tmp_path / "blank" / "x.txt").write_text("")
    (tmp_path / "bad.jsonl").write_text('{"title": "no text"}\n')
    (tmp_path / "broken.jsonl").write_text('{"text": \n')
    (tmp_path / "data.csv").write_text("a,b")
    monkeypatch.delenv("LENGTHGEN_NOT_SET", raising=False)
    cases = {str(tmp_path / "nothere"): "neither a builtin corpus (pydoc, stdlib) nor an existing file",
             str(tmp_path / "empty"): "holds no .txt", str(tmp_path / "blank"): "holds no text",
             str(tmp_path / "bad.jsonl"): "line 1 has no string field 'text'",
             str(tmp_path / "broken.jsonl"): "line 1 is not JSON", str(tmp_path / "data.csv"): "is not one of .txt",
             "$LENGTHGEN_NOT_SET/c4.json.gz": "environment variable LENGTHGEN_NOT_SET, which is not set", "": "builtin"}
    for name, needle in cases.items():
        with pytest.raises(UserError, match=re.escape(needle)) as err:
            corpora.load(name)
        assert "\n" not in str(err.value)
    for fraction, block in ((0.0, 10), (1.0, 10), (float("nan"), 10), (0.5, 0)):
        with pytest.raises(UserError, match="validation_fraction|block_chars"):
            make_task("text", {"validation_fraction": fraction, "block_chars": block})


def test_environment_variables_and_gzip_json_lines(tmp_path, monkeypatch):
    import gzip

    with gzip.open(tmp_path / "c4-train.00000-of-01024.json.gz", "wt") as handle:
        for i in range(20):
            handle.write(json.dumps({"text": f"Document {i}: " + "words " * 30, "timestamp": "x"}) + "\n")
    monkeypatch.setenv("MY_SHARD", str(tmp_path))
    corpus = corpora.load("$MY_SHARD/c4-train.00000-of-01024.json.gz", 0.2, 100)
    assert corpus.meta["documents"] == 20
    text = sources.decode(np.concatenate([corpus.train.tokens, corpus.validation.tokens]))
    assert text.count("Document") == 20 and "words words" in text


# ---------------------------------------------------------------------------------- the task

def text_task(root, **params):
    return make_task("text", {"corpus": str(root), "validation_fraction": 0.3, "block_chars": BLOCK, **params})


def test_text_examples_are_windows_of_the_split(small_corpus):
    root, documents = small_corpus
    task = text_task(root)
    examples = task.sample(np.random.default_rng(3), 50, 30)
    reference = whole_split(documents)
    assert examples == task.sample(np.random.default_rng(3), 50, 30)  # deterministic from the generator
    for ex in examples:
        assert ex.prompt == () and len(ex.answer) == 30 and ex.task == "text" and ex.length == 30
        text = sources.decode(VOCAB.encode(ex.answer))
        assert reference["train"][ex.meta["offset"] : ex.meta["offset"] + 30] == text
    spec = build_spec({"task": "text", "lengths": [5, 30], "params": task.params()})
    assert spec.eval_task.split == "validation"
    for ex in eval_examples(spec, 40, 20, 0, "consecutive", PolicySettings(64)):
        text = sources.decode(VOCAB.encode(ex.answer))
        assert reference["validation"][ex.meta["offset"] : ex.meta["offset"] + 40] == text
    with pytest.raises(UserError, match="cannot make length 100000; valid lengths: 1.."):
        task.sample(np.random.default_rng(0), 1, 100000)


def test_empty_prompts_collate_with_the_window_as_loss_and_no_eos(small_corpus):
    root, _ = small_corpus
    examples = text_task(root).sample(np.random.default_rng(0), 4, 12)
    batch = collate(examples, VOCAB)
    assert batch.tokens.shape == (4, 13) and int(batch.loss_mask.sum()) == 4 * 12
    assert batch.tokens[0, 0] == VOCAB.bos_id and not (batch.targets[batch.loss_mask] == VOCAB.eos_id).any()
    assert batch.targets[0, :12].tolist() == VOCAB.encode(examples[0].answer)
    prompts = collate_prompts(examples, VOCAB)
    assert prompts.tokens.shape == (4, 1) and prompts.answer_targets.shape == (4, 13)
    copy = collate(make_task("copy").sample(np.random.default_rng(0), 2, 3), VOCAB)
    assert int(copy.loss_mask.sum()) == 2 * 4  # other tasks still score <eos>
    marked = build_spec({"task": "text", "lengths": [12, 12], "params": {"corpus": str(root)}}, 2, markers=True)
    ex = marked.sample(np.random.default_rng(0), 1, 12)[0]
    assert ex.prompt == ("<t2>", "<t2>") and int(collate([ex], VOCAB).loss_mask.sum()) == 12


def test_show_and_data_commands_take_text(capsys):
    assert main(["show", "text", "--length", "40", "-n", "2", "--split", "eval"]) == 0
    out = capsys.readouterr().out
    assert out.count("text  length 40") == 2 and "offset" in out
    assert main(["data", "text", "--length", "25", "-n", "3", "--param", "validation_fraction=0.2"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(records) == 3 and all(r["prompt"] == "" and len(r["answer_positions"]) == 25 for r in records)
    assert main(["show", "text", "--length", "5", "--param", "corpus=/no/such/corpus"]) == 2
    assert "neither a builtin corpus" in capsys.readouterr().err


def test_repeat_makes_a_share_of_training_windows_periodic_and_never_evaluation_windows(small_corpus):
    root, documents = small_corpus
    splits = whole_split(documents)
    reference = splits["train"]
    examples = text_task(root, repeat=0.5).sample(np.random.default_rng(5), 400, 40)
    periods = []
    for ex in examples:
        text = sources.decode(VOCAB.encode(ex.answer))
        start = reference[ex.meta["offset"] : ex.meta["offset"] + 40]
        if text == start:
            continue  # random letters: a natural window is never periodic by chance
        period = next(d for d in range(5, 40) if all(text[i] == text[i - d] for i in range(d, 40)))
        assert text[:period] == start[:period]  # the window's own beginning, repeated to its end
        periods.append(period)
    assert 160 < len(periods) < 240 and min(periods) == 5 and max(periods) == 39
    spec = build_spec({"task": "text", "lengths": [5, 40], "params": text_task(root, repeat=1.0).params()})
    assert spec.eval_task.repeat == 0.0
    for ex in eval_examples(spec, 40, 20, 0, "consecutive", PolicySettings(64)):
        text = sources.decode(VOCAB.encode(ex.answer))
        assert splits["validation"][ex.meta["offset"] : ex.meta["offset"] + 40] == text
    with pytest.raises(UserError, match="repeat must be a share"):
        text_task(root, repeat=1.5).validate()
