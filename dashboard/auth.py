"""Optional HTTP basic auth (QK_ATLAS_AUTH_USERS / QK_ATLAS_AUTH_FILE) that makes guessing passwords slow.

After FREE_FAILURES wrong passwords from one client address, that address is refused with 429 for a lockout that
doubles with each further failure (1 s, 2 s, 4 s ... up to MAX_LOCKOUT_S); a correct password resets it. Counts
are kept per web process (behind several gunicorn workers an attacker gets FREE_FAILURES per worker).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import threading
import time

import dash_auth
import flask

FREE_FAILURES = 5
BASE_LOCKOUT_S = 1.0
MAX_LOCKOUT_S = 300.0
MAX_TRACKED = 10_000  # client addresses remembered at once (the oldest forgotten first)


def credentials(header: str | None) -> tuple[str, str] | None:
    """(user, password) of a `Basic` Authorization header, or None when absent or malformed."""
    scheme, _, encoded = (header or "").partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        user, sep, password = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return (user, password) if sep else None


class ThrottledBasicAuth(dash_auth.BasicAuth):
    """dash-auth's BasicAuth with a per-address lockout after repeated wrong passwords."""

    def __init__(self, app, users: dict[str, str], secret_key: str):
        super().__init__(app, users, secret_key=secret_key)
        self._users_checked = dict(users)
        self._failures: dict[str, tuple[int, float]] = {}  # address -> (failures, locked until: monotonic s)
        self._lock = threading.Lock()

    def is_authorized(self) -> bool:
        """True for a correct user and password from an address that is not locked out."""
        address, now = flask.request.remote_addr or "?", time.monotonic()
        with self._lock:
            failures, until = self._failures.get(address, (0, 0.0))
        if now < until:
            flask.g.qk_locked_for = until - now
            return False
        given = credentials(flask.request.headers.get("Authorization"))
        if given is None:  # no credentials yet: the browser's first request, not a guess
            return False
        user, password = given
        expected = self._users_checked.get(user, "")
        if user in self._users_checked and hmac.compare_digest(expected.encode(), password.encode()):
            with self._lock:
                self._failures.pop(address, None)
            flask.session["user"] = {"email": user, "groups": []}
            return True
        self._record_failure(address, failures + 1, now)
        return False

    def _record_failure(self, address: str, failures: int, now: float) -> None:
        """Count a wrong password; from the FREE_FAILURES-th on, the address is locked out for a doubling time."""
        lockout = 0.0 if failures < FREE_FAILURES else min(MAX_LOCKOUT_S,
                                                             BASE_LOCKOUT_S * 2 ** (failures - FREE_FAILURES))
        with self._lock:
            if len(self._failures) >= MAX_TRACKED and address not in self._failures:
                self._failures.pop(next(iter(self._failures)))
            self._failures[address] = (failures, now + lockout)

    def login_request(self) -> flask.Response:
        """401 asking for credentials, or 429 while the address is locked out."""
        locked = getattr(flask.g, "qk_locked_for", 0.0)
        if locked > 0:
            seconds = max(1, int(locked + 0.999))
            return flask.Response(f"Too many wrong passwords from this address; try again in {seconds} s.\n",
                                  status=429, headers={"Retry-After": str(seconds)})
        return super().login_request()
