"""Uploaded corpora: kept by content hash, validated, limited in size, offered in the dashboard and by URL."""

from __future__ import annotations

import pytest

from dashboard.state import corpus_choices, parse_query
from workers.corpus import CorpusError
from workers.pipeline import corpus_for
from workers.uploads import list_uploads, save_upload, upload_path

TEXTS = b"The first uploaded text.\nA second one, a little longer than the first.\n"


def test_an_upload_becomes_a_corpus_named_by_its_content(isolated_cache):
    ref, texts = save_upload(TEXTS, "../../etc/my notes.txt")
    assert ref.startswith("upload-") and ref.endswith(".txt") and texts == 2
    assert upload_path(ref).parent == isolated_cache / "uploads"  # never the user's name or path
    assert save_upload(TEXTS, "again.txt")[0] == ref  # the same bytes are the same corpus
    assert corpus_for(ref).texts == ("The first uploaded text.", "A second one, a little longer than the first.")
    assert [(r["ref"], r["texts"]) for r in list_uploads()] == [(ref, 2)]
    assert ref in corpus_choices("text")
    state, notices = parse_query(f"?corpus={ref}")
    assert state.corpus == ref and notices == []  # shareable by URL


@pytest.mark.parametrize(("raw", "name", "expected"), [
    (b"id,body\n1,x\n", "table.csv", "needs a 'text' column"),
    (b"\x00\x01binary", "blob.txt", "looks binary"),
    (b"", "empty.txt", "no non-empty text"),
    (TEXTS, "sheet.xlsx", "unsupported corpus file type"),
])
def test_bad_uploads_are_refused_and_not_kept(isolated_cache, raw, name, expected):
    with pytest.raises(CorpusError) as info:
        save_upload(raw, name)
    assert expected in str(info.value) and name in str(info.value) and "\n" not in str(info.value)
    assert list_uploads() == [] and not list((isolated_cache / "uploads").glob("upload-*"))


def test_uploads_over_the_limit_are_refused(isolated_cache, monkeypatch):
    monkeypatch.setenv("QK_ATLAS_MAX_UPLOAD_BYTES", "1000")
    with pytest.raises(CorpusError, match="over the upload limit of 0 MB"):
        save_upload(b"x\n" * 600, "big.txt")


def test_names_that_are_not_uploads_resolve_to_nothing(isolated_cache):
    for ref in ("upload-../../etc/passwd", "upload-0123456789abcdef.exe", "/etc/passwd", "upload-xyz.txt"):
        assert upload_path(ref) is None
        assert ref not in corpus_choices("text")


def test_requests_bigger_than_an_upload_can_be_are_refused_at_the_door(isolated_cache, monkeypatch):
    from dashboard.app import create_app

    monkeypatch.setenv("QK_ATLAS_MAX_UPLOAD_BYTES", "1000")
    client = create_app(cache_dir=isolated_cache, start_worker=False).server.test_client()
    body = b'{"output": "x.y", "inputs": [], "padding": "' + b"x" * (2 * 2**20) + b'"}'
    answer = client.post("/_dash-update-component", data=body, content_type="application/json")
    assert answer.status_code == 413
