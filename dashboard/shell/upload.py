"""Corpus upload: check and keep the file (workers.corpora.uploads), then switch the corpus to it (the URL follows)."""

from __future__ import annotations

import base64
import binascii

import dash_bootstrap_components as dbc
from dash import Dash, Input, Output, State, no_update

from dashboard import ids
from dashboard.session import browser_id
from dashboard.shell.widgets import UPLOAD_TEXT_ONLY
from dashboard.state import parse_query
from workers.corpora.corpus import CorpusError
from workers.corpora.uploads import save_upload
from workers.models.registry import read_spec


def register(app: Dash) -> None:
    """The upload callback."""

    @app.callback(Output(ids.CORPUS, "value", allow_duplicate=True),
                  Output(ids.UPLOAD_NOTICE, "children"),
                  Input(ids.UPLOAD, "contents"), State(ids.UPLOAD, "filename"), State(ids.URL, "search"),
                  prevent_initial_call=True)
    def upload(contents: str | None, filename: str | None, search: str | None):
        """data URL -> stored corpus; a notice either way (errors name the file and the problem). An image model's
        page offers no upload (its box is hidden), and a request that sends one anyway is refused unread."""
        if not contents:
            return no_update, no_update
        name = filename or "upload.txt"
        try:
            if read_spec(parse_query(search)[0].model).modality == "image":
                raise ValueError(UPLOAD_TEXT_ONLY)
            raw = base64.b64decode(contents.partition(",")[2], validate=True)
            ref, texts = save_upload(raw, name, owner=browser_id(create=True))
        except (CorpusError, binascii.Error, ValueError) as exc:
            return no_update, dbc.Alert(f"Upload refused: {str(exc)[:300]}", color="warning", dismissable=True,
                                        className="py-2 small")
        note = dbc.Alert(f"Uploaded {name}: {texts:,} texts, now the corpus of this view (share the link to share "
                         "it).", color="success", dismissable=True, className="py-2 small")
        return ref, note
