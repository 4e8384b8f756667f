"""Small layout pieces and constants every view uses: graph toolbar, poll interval, labelled controls, options."""

from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import dcc, html

from dashboard.session import browser_id
from dashboard.state import corpus_choices, model_choices
from workers.contracts.choices import METHODS
from workers.contracts.specs import ModelError
from workers.corpora.uploads import list_uploads, owned_by, upload_name
from workers.models.registry import read_spec

POLL_MS = 500  # how often an open page looks at a view that is being computed
METHOD_LABELS = {choice.value: choice.label for choice in METHODS}
GRAPH_CONFIG = {"scrollZoom": True, "displaylogo": False,
                "toImageButtonOptions": {"format": "png", "filename": "qk-atlas", "scale": 2}}


def field(label: str, control, extra=None) -> html.Div:
    """A labelled control."""
    return html.Div([dbc.Label(label, className="small text-muted mb-1"), control, *(extra or [])], className="mb-2")


def dropdown(component_id: str, options: list[dict], value) -> dcc.Dropdown:
    """A non-clearable dropdown."""
    return dcc.Dropdown(id=component_id, options=options, value=value, clearable=False, searchable=False)


def model_options() -> list[dict]:
    """Model dropdown entries with family and layer x head counts."""
    out = []
    for name in model_choices():
        try:
            spec = read_spec(name)
        except (ModelError, OSError, ValueError):
            out.append({"label": f"{name} (unavailable)", "value": name, "disabled": True})
            continue
        out.append({"label": f"{name} ({spec.family}, {spec.n_layers}x{spec.n_heads})", "value": name})
    return out


def corpus_options(modality: str, current: str = "") -> list[dict]:
    """Corpus dropdown entries for a model's modality: the bundled and configured corpora, this browser's uploads
    and the one shown (an upload opened from a shared link), uploads labelled by their file name."""
    uploads = {record["ref"]: record for record in list_uploads()}  # the folder read once per menu
    owner = browser_id()
    mine = {ref for ref, record in uploads.items() if owned_by(record, owner)}
    return [{"label": f"{uploads[name]['name']} (uploaded, {uploads[name]['texts']:,} texts)" if name in uploads
             else name, "value": name} for name in corpus_choices(modality)
            if name not in uploads or name in mine or name == current]


def corpus_label(ref: str) -> str:
    """How headings name a corpus: an upload by the file name it came with, any other by its name."""
    name = upload_name(ref)
    return f"{name} (uploaded)" if name else ref


def range_options(count: int) -> list[dict]:
    """0..count-1 as dropdown options."""
    return [{"label": str(i), "value": i} for i in range(count)]
