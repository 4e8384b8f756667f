"""This browser's id: a random value kept in Flask's signed session cookie (the owner of its uploads)."""

from __future__ import annotations

import secrets

import flask

SESSION_FIELD = "qk_browser"


def browser_id(create: bool = False) -> str:
    """The id of the browser making the current request ("" outside a request, or none yet unless `create`)."""
    if not flask.has_request_context():
        return ""
    found = flask.session.get(SESSION_FIELD)
    if isinstance(found, str) and found:
        return found
    if not create:
        return ""
    flask.session[SESSION_FIELD] = new = secrets.token_hex(16)
    flask.session.permanent = True
    return new
