"""Corpora: the bundled default and user files, with one-line errors for bad files."""

from __future__ import annotations

import json

import pytest

from workers.corpora.corpus import CorpusError, load_corpus, load_corpus_file, make_corpus


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


def test_a_million_lines_keep_the_first_texts_with_a_note(tmp_path):
    path = tmp_path / "million.txt"
    path.write_text("\n".join(f"line number {i}" for i in range(1_000_000)))
    corpus = load_corpus_file(path, max_texts=5000)
    assert len(corpus.texts) == 5000 and corpus.texts[-1] == "line number 4999"
    assert any("first 5,000 texts" in note and "QK_ATLAS_MAX_TEXTS" in note for note in corpus.notes)


def test_a_100_mb_file_reads_only_what_it_keeps(tmp_path):
    path = tmp_path / "big.csv"
    row = "x" * 1000
    with path.open("w") as handle:
        handle.write("text\n")
        for i in range(100_000):
            handle.write(f"{i} {row}\n")
    assert path.stat().st_size > 100 * 10**6
    corpus = load_corpus_file(path, max_texts=300)
    assert len(corpus.texts) == 300 and corpus.texts[0].startswith("0 x")
    assert corpus.notes


def test_very_long_lines_are_cut_with_a_note(tmp_path):
    from workers.corpora.corpus import MAX_LINE_BYTES

    path = tmp_path / "long.txt"
    path.write_text("short one\n" + "é" * (3 * MAX_LINE_BYTES) + "\nlast one\n")  # two bytes a character
    corpus = load_corpus_file(path)
    assert corpus.texts[0] == "short one" and corpus.texts[2] == "last one"
    assert 0 < len(corpus.texts[1].encode()) <= MAX_LINE_BYTES and set(corpus.texts[1]) == {"é"}
    assert any("1 line" in note and "cut" in note for note in corpus.notes)


def test_invalid_utf8_after_the_first_block_names_the_line(tmp_path):
    path = tmp_path / "late.txt"
    path.write_bytes(b"fine text\n" * 2000 + "caf\u00e9".encode("latin-1") + b"\n")
    with pytest.raises(CorpusError, match="line 2001 is not valid UTF-8"):
        load_corpus_file(path)


def test_notes_do_not_change_the_hash_of_the_same_texts(tmp_path):
    (tmp_path / "a.txt").write_text("\n".join(f"t {i}" for i in range(10)))
    (tmp_path / "b.txt").write_text("\n".join(f"t {i}" for i in range(3)))
    cut = load_corpus_file(tmp_path / "a.txt", max_texts=3)
    assert cut.content_hash == load_corpus_file(tmp_path / "b.txt").content_hash and cut.notes
