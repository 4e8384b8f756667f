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


def test_repeated_wrong_passwords_lock_out_that_address_only(tmp_path, monkeypatch):
    from dashboard.auth import FREE_FAILURES

    monkeypatch.setenv("QK_ATLAS_AUTH_USERS", "alice:correct horse")
    client = create_app(cache_dir=tmp_path, start_worker=False).server.test_client()
    attacker, other = {"REMOTE_ADDR": "10.0.0.66"}, {"REMOTE_ADDR": "10.0.0.7"}
    codes = [client.get("/", headers=_auth("alice", f"guess{i}"), environ_base=attacker).status_code
             for i in range(FREE_FAILURES + 3)]
    assert codes[:FREE_FAILURES] == [401] * FREE_FAILURES and set(codes[FREE_FAILURES:]) == {429}
    locked = client.get("/", headers=_auth("alice", "correct horse"), environ_base=attacker)
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) >= 1  # even the right one, until it ends
    assert client.get("/", headers=_auth("alice", "correct horse"), environ_base=other).status_code == 200
    for header in ("Bearer abc", "Basic !!!notbase64", "Basic " + base64.b64encode(b"no-colon").decode(), "Basic"):
        assert client.get("/", headers={"Authorization": header}, environ_base=other).status_code == 401, header


def test_a_placeholder_redis_password_is_refused(monkeypatch):
    from workers.config import settings

    monkeypatch.setenv("QK_ATLAS_REDIS_URL", "redis://:change-me@redis:6379/0")
    with pytest.raises(ValueError, match="placeholder"):
        settings()
    monkeypatch.setenv("QK_ATLAS_REDIS_URL", "redis://:0a9f3c7e61@redis:6379/0")
    assert settings().redis_url.endswith("@redis:6379/0")


def test_the_secret_key_is_shared_by_every_web_process(tmp_path, monkeypatch):
    monkeypatch.setenv("QK_ATLAS_SECRET_KEY", "k" * 64)
    first = create_app(cache_dir=tmp_path, start_worker=False).server.secret_key
    assert first == create_app(cache_dir=tmp_path, start_worker=False).server.secret_key == "k" * 64
