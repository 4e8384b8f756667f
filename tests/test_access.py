"""Optional access control: HTTP basic auth on every route when users are configured; off by default."""

from __future__ import annotations

import base64

import pytest

from dashboard.app import create_app


def _auth(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_no_access_control_by_default(tmp_path, monkeypatch):
    monkeypatch.delenv("QK_ATLAS_AUTH_USERS", raising=False)
    client = create_app(cache_dir=tmp_path, start_worker=False).server.test_client()
    assert client.get("/").status_code == 200


def test_basic_auth_guards_the_page_and_the_callbacks(tmp_path, monkeypatch):
    users = tmp_path / "users.txt"
    users.write_text("alice:correct horse\n")
    monkeypatch.setenv("QK_ATLAS_AUTH_FILE", str(users))
    monkeypatch.setenv("QK_ATLAS_AUTH_USERS", "bob:battery")
    client = create_app(cache_dir=tmp_path, start_worker=False).server.test_client()
    for route in ("/", "/_dash-layout", "/_dash-dependencies", "/assets/bootstrap.min.css"):
        assert client.get(route).status_code == 401, route
    body = {"output": "hover-panel.children", "outputs": {"id": "hover-panel", "property": "children"},
            "inputs": [{"id": "single-graph", "property": "hoverData", "value": None}], "changedPropIds": []}
    assert client.post("/_dash-update-component", json=body).status_code == 401
    assert client.get("/", headers=_auth("alice", "wrong")).status_code == 401
    assert client.get("/", headers=_auth("alice", "correct horse")).status_code == 200
    assert client.get("/_dash-layout", headers=_auth("bob", "battery")).status_code == 200


def test_a_malformed_user_entry_is_refused_without_echoing_it(monkeypatch):
    from workers.config import settings

    monkeypatch.setenv("QK_ATLAS_AUTH_USERS", "alice-without-password-s3cret")
    with pytest.raises(ValueError) as info:
        settings()
    assert "user:password" in str(info.value) and "s3cret" not in str(info.value)
