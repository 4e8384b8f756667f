"""Uploaded corpora: kept by content hash, validated, limited in size, offered in the dashboard and by URL."""

from __future__ import annotations

import json

import pytest

from dashboard.state import corpus_choices, parse_query
from workers.corpora.corpus import CorpusError
from workers.corpora.uploads import list_uploads, save_upload, upload_path
from workers.pipeline.keys import corpus_for

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


def test_uploads_past_the_quota_evict_the_oldest_first(isolated_cache, monkeypatch):
    import time

    monkeypatch.setenv("QK_ATLAS_UPLOADS_MAX_MB", "1")
    refs = []
    for number in range(3):  # about 0.4 MB each: the third pushes the total past 1 MB
        refs.append(save_upload(f"text {number} of the upload, padded.\n".encode() * 12_000, f"part{number}.txt")[0])
        time.sleep(0.01)
    assert upload_path(refs[0]) is None and upload_path(refs[1]) and upload_path(refs[2])
    assert [r["ref"] for r in list_uploads()] == [refs[2], refs[1]]
    assert sum(r["bytes"] for r in list_uploads()) <= 10**6
    with pytest.raises(CorpusError, match="over the upload limit"):  # one upload bigger than the whole quota
        save_upload(b"x\n" * 600_000, "huge.txt")


def test_uploads_expire_after_the_age_limit(isolated_cache, monkeypatch):
    import time

    monkeypatch.setenv("QK_ATLAS_UPLOADS_MAX_AGE_DAYS", "2")
    old, _ = save_upload(TEXTS, "old.txt")
    sidecar = isolated_cache / "uploads" / f"{old}.json"
    sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), "time": time.time() - 3 * 86400}))
    assert upload_path(old) is None and list_uploads() == [] and old not in corpus_choices("text")
    state, notices = parse_query(f"?corpus={old}")
    assert state.corpus == "default" and "Unknown corpus" in notices[0]
    fresh, _ = save_upload(b"Another text entirely.\n", "new.txt")  # saving evicts what has expired
    assert not sidecar.exists() and not (isolated_cache / "uploads" / old).exists() and upload_path(fresh)


def test_an_upload_is_listed_only_to_the_browser_that_made_it_and_opens_for_anyone_by_link(isolated_cache):
    import base64

    from dashboard import ids
    from dashboard.app import create_app
    from dashboard.state import ViewState
    from tests.support.callbacks import base_values, dependency, post, reading, request_body

    app = create_app(cache_dir=isolated_cache, start_worker=False)
    alice, bob = app.server.test_client(), app.server.test_client()
    upload = dependency(alice, f"..{ids.CORPUS}.value")
    data_url = "data:text/plain;base64," + base64.b64encode(TEXTS).decode()
    values = {**base_values(ViewState()), (ids.UPLOAD, "contents"): data_url, (ids.UPLOAD, "filename"): "notes.txt"}
    answer = post(alice, request_body(upload, values, f"{ids.UPLOAD}.contents"))
    assert answer.status_code == 200, answer.get_data(as_text=True)[-300:]
    ref = answer.get_json()["response"][ids.CORPUS]["value"]
    assert ref.startswith("upload-")

    def offered(client, query: str) -> list[str]:
        sync = reading(client, "url.search")
        response = post(client, request_body(sync, {**base_values(ViewState()), (ids.URL, "search"): query},
                                             "url.search"))
        return [option["value"] for option in response.get_json()["response"][ids.CORPUS]["options"]]

    assert ref in offered(alice, "?corpus=default")
    assert ref not in offered(bob, "?corpus=default")  # another browser does not see it listed
    assert ref in offered(bob, f"?corpus={ref}")  # but a shared link opens it


def test_an_upload_sent_while_an_image_model_is_shown_is_refused_unread(isolated_cache):
    """An image model's page hides the upload box (an upload is a text corpus); a request that sends a file anyway
    is refused with the reason and nothing is kept, while the same file on a text model's page is taken."""
    import base64

    from dashboard import ids
    from dashboard.app import create_app
    from dashboard.shell.widgets import UPLOAD_TEXT_ONLY
    from dashboard.state import ViewState
    from tests.support.callbacks import base_values, dependency, post, request_body

    client = create_app(cache_dir=isolated_cache, start_worker=False).server.test_client()
    upload = dependency(client, f"..{ids.CORPUS}.value")
    data_url = "data:text/plain;base64," + base64.b64encode(TEXTS).decode()
    sent = {(ids.UPLOAD, "contents"): data_url, (ids.UPLOAD, "filename"): "notes.txt"}
    image = ViewState(model="tiny-vit", corpus="images")
    answer = post(client, request_body(upload, {**base_values(image), **sent}, f"{ids.UPLOAD}.contents"))
    assert answer.status_code == 200, answer.get_data(as_text=True)[-300:]
    response = answer.get_json()["response"]
    assert ids.CORPUS not in response and UPLOAD_TEXT_ONLY in json.dumps(response[ids.UPLOAD_NOTICE])
    assert list_uploads() == []
    answer = post(client, request_body(upload, {**base_values(ViewState()), **sent}, f"{ids.UPLOAD}.contents"))
    assert answer.get_json()["response"][ids.CORPUS]["value"].startswith("upload-") and len(list_uploads()) == 1
