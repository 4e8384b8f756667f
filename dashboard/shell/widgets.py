"""Small layout pieces and constants every view uses: graph toolbar, poll interval, labelled controls, options, and
every control's one-line tooltip."""

from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import dcc, html

from dashboard import ids
from dashboard.figures.single import LABEL_SAMPLE
from dashboard.session import browser_id
from dashboard.state import corpus_choices, model_choices
from workers.contracts.choices import COLOURS, METHODS, Choice, for_modality
from workers.contracts.specs import ModelError
from workers.corpora.uploads import list_uploads, owned_by, upload_name
from workers.models.registry import read_spec, registry

POLL_MS = 500  # how often an open page looks at a view that is being computed
METHOD_LABELS = {choice.value: choice.label for choice in METHODS}
GRAPH_CONFIG = {"scrollZoom": True, "displaylogo": False,
                "toImageButtonOptions": {"format": "png", "filename": "qk-atlas", "scale": 2}}


SEARCH_HINT = "a whole token, any case: e.g. the"  # the search box's placeholder: what a search matches
IMAGE_SEARCH_HINT = "a patch as r3c4 (row 3, column 4), or [CLS]"  # its placeholder for an image model
UPLOAD_TEXT_ONLY = "an uploaded corpus is text, and this model reads images: choose a text model to upload one"
B_FOLLOWS = "picture B follows picture A until this is set"
TIPS = {  # what each control does, in one line (menus backed by a table of choices add each choice's help)
    ids.VIEW_TABS: "Switch view: every head, one head, one text's attention, heads compared, two pictures",
    ids.MODEL: "The model whose attention heads are shown",
    ids.CORPUS: "The texts (or images) run through the model: each token is one query point and one key point",
    ids.UPLOAD: "Use your own texts: a .txt file (one text a line), or a .csv / .jsonl file with a 'text' column",
    ids.LAYER: "The layer of the head shown (0 is the first)",
    ids.HEAD: "The head shown, within its layer",
    ids.PREV_LAYER: "Previous layer (wraps around)",
    ids.NEXT_LAYER: "Next layer (wraps around)",
    ids.PREV_HEAD: "Previous head (wraps around)",
    ids.NEXT_HEAD: "Next head (wraps around)",
    ids.METHOD: "How queries and keys are placed in the picture (each option says how)",
    ids.DIMS: "A flat picture, or one in space to turn",
    ids.NORM: "How queries and keys are scaled and moved before they are placed (attention stays the same)",
    ids.COLOR: "What the points' colour shows (each option says what)",
    ids.SHOW: "Draw the queries, the keys, or both",
    ids.LABELS: f"Write each token beside its points (on a fixed sample of {LABEL_SAMPLE:,} tokens, where the labels "
                "do not meet)",
    ids.SEARCH: "Outline and count every token that reads as this text, as you type (a whole token, any case)",
    ids.CLEAR_SELECTION: "Clear the selected text",
    ids.COPY_LINK: "Copy a link to this exact view",
    ids.DOWNLOAD_CSV: "Download this head's points (text, position, token, role, x, y) as CSV",
    ids.DOWNLOAD_PARQUET: "Download this head's points (text, position, token, role, x, y) as Parquet",
    ids.IMAGE_FORMAT: "What the camera button above each plot saves: PNG or SVG",
    ids.MATRIX_ORDER: "Place the cells by layer and head, or rank the heads by a per-head value, highest first",
    ids.MATRIX_KEEP: "Ranked cells: show only the heads whose value is at least this number (empty: all)",
    ids.MATRIX_TINT: "Colour each cell's background by a per-head value (scale on the left)",
    ids.HIDE_SPECIAL: "Hide [CLS] / [SEP] (and a causal model's first token) and renormalise the other lines",
    ids.SENTENCE_WEIGHT: "Lines by attention, or by attention times the length of each key's value vector",
    ids.B_MODEL: f"Picture B's model ({B_FOLLOWS})",
    ids.B_CORPUS: f"Picture B's corpus ({B_FOLLOWS})",
    ids.B_LAYER: f"Picture B's layer ({B_FOLLOWS})",
    ids.B_HEAD: f"Picture B's head ({B_FOLLOWS})",
    ids.B_VECTORS: "Picture B shows the head's queries and keys, or its value vectors (what it moves)",
}


def field(label: str, control, extra=None, tip: str = "") -> html.Div:
    """A labelled control, its tooltip (one line: what it does) over the label and the control."""
    return html.Div([dbc.Label(label, className="small text-muted mb-1"), control, *(extra or [])], className="mb-2",
                    title=tip)


def choice_options(table: tuple[Choice, ...]) -> list[dict]:
    """Menu entries of a table of choices, each with its help as the option's tooltip."""
    return [{"label": choice.label, "value": choice.value, "title": choice.help} for choice in table]


def colour_options(modality: str) -> list[dict]:
    """The colour modes that mean something for a model of this modality."""
    return choice_options(for_modality(COLOURS, modality))


def dropdown(component_id: str, options: list[dict], value) -> dcc.Dropdown:
    """A non-clearable dropdown."""
    return dcc.Dropdown(id=component_id, options=options, value=value, clearable=False, searchable=False)


def model_options() -> list[dict]:
    """Model dropdown entries with family and layer x head counts."""
    out, sources = [], registry()
    for name in model_choices():
        try:
            spec = read_spec(name)
        except (ModelError, OSError, ValueError):
            out.append({"label": f"{name} (unavailable)", "value": name, "disabled": True})
            continue
        out.append({"label": f"{name} ({spec.family}, {spec.n_layers}x{spec.n_heads})", "value": name,
                    "title": sources[name].description or f"{spec.model_id} at revision {spec.revision}"})
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
