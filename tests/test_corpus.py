"""Corpora: the bundled default and user files, with one-line errors for bad files."""

from __future__ import annotations

import json

import pytest

from workers.corpus import CorpusError, load_corpus, load_corpus_file, make_corpus


def test_default_corpus_has_at_least_500_distinct_varied_sentences():
    corpus = load_corpus("default")
    assert len(corpus.texts) >= 500
    assert len(set(corpus.texts)) == len(corpus.texts)
    lengths = [len(t.split()) for t in corpus.texts]
    assert min(lengths) <= 6 and max(lengths) >= 25  # short and long sentences
    assert len(corpus.content_hash) == 64


def test_hash_depends_on_content_only():
    assert make_corpus("a", ["x y", "z"]).content_hash == make_corpus("b", ["x  y ", "", "z"]).content_hash
    assert make_corpus("a", ["x y", "z"]).content_hash != make_corpus("a", ["z", "x y"]).content_hash


def test_txt_csv_jsonl_give_the_same_texts(tmp_path):
    texts = ["First text, with a comma.", "Second text: \"quoted\"."]
    (tmp_path / "c.txt").write_text("\n".join(texts) + "\n\n")
    (tmp_path / "c.csv").write_text('id,text\n1,"First text, with a comma."\n2,"Second text: ""quoted""."\n')
    (tmp_path / "c.jsonl").write_text("\n".join(json.dumps({"text": t, "n": i}) for i, t in enumerate(texts)))
    loaded = [load_corpus_file(tmp_path / name).texts for name in ("c.txt", "c.csv", "c.jsonl")]
    assert loaded[0] == loaded[1] == loaded[2] == tuple(texts)


def test_max_texts_truncates(tmp_path):
    (tmp_path / "c.txt").write_text("\n".join(f"text {i}" for i in range(10)))
    assert len(load_corpus_file(tmp_path / "c.txt", max_texts=3).texts) == 3


@pytest.mark.parametrize(("name", "content", "expected"), [
    ("empty.txt", b"", "no non-empty text"),
    ("blank.txt", b"\n  \n\t\n", "no non-empty text"),
    ("binary.txt", b"\x00\x01\x02PNG\x00", "looks binary"),
    ("latin1.txt", "caf\u00e9 cr\u00e8me".encode("latin-1"), "not valid UTF-8"),
    ("nocol.csv", b"id,body\n1,hello\n", "needs a 'text' column"),
    ("bad.jsonl", b'{"text": "ok"}\n{not json}\n', "line 2 is not valid JSON"),
    ("notext.jsonl", b'{"body": "ok"}\n', "line 1 has no string 'text' field"),
    ("data.xlsx", b"whatever", "unsupported corpus file type"),
])
def test_bad_files_give_one_line_errors(tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(CorpusError) as info:
        load_corpus_file(path)
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(CorpusError, match="not found"):
        load_corpus_file(tmp_path / "nope.txt")
    (tmp_path / "dir.txt").mkdir()
    with pytest.raises(CorpusError, match="not a file"):
        load_corpus_file(tmp_path / "dir.txt")
