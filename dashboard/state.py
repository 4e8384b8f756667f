"""View state <-> URL query string; bad or unknown values fall back to defaults with a notice.

A view state holds picture A's head (model, corpus, layer, head), the settings both pictures share (projection,
dimensions, normalisation), how they are drawn, and picture B's choices for the side-by-side view. Picture A and
picture B are each a `PictureState` (`ViewState.picture_a()`, `ViewState.picture_b()`); the URL keeps B's choices
as differences from A (`b_model`, `b_corpus`, `b_layer`, `b_head`, `b_vectors`, left out while B follows A).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

from dashboard.figures.single import COLOR_MODES, Style
from workers.config import settings
from workers.contracts.choices import (
    COLOURS,
    DEFAULT_COLOUR,
    DEFAULT_DIMS,
    DEFAULT_METHOD,
    DEFAULT_NORMALISATION,
    DIMS,
    METHODS,
    NORMALISATIONS,
    ROLE_PLURALS,
    find,
    for_modality,
    values,
)
from workers.contracts.requests import DEFAULT_CORPUS, DEFAULT_IMAGE_CORPUS, REPEATED_CORPUS
from workers.contracts.results import SUMMARY_NAMES
from workers.contracts.specs import BUNDLED_ALIAS, ModelError, ModelSpec
from workers.corpora.uploads import list_uploads
from workers.models.registry import read_spec, registry

VIEWS = ("single", "matrix", "sentence", "headmap", "compare")
COLORS = COLOR_MODES
SHOWS = ("both", *ROLE_PLURALS.values())
MAX_SEARCH = 64
COMPUTE_FIELDS = ("model", "corpus", "layer", "head", "norm", "method", "dims")
OPTIONAL = ("search", "text", "pos", "order", "keep", "tint", "weight",  # left out of the URL when unset
            "b_model", "b_corpus", "b_layer", "b_head", "b_vectors")
# matrix cells: layer x head, or ranked
ORDERS = ("grid", *SUMMARY_NAMES, "fidelity", "fidelity_rank", "fidelity_non_sink", "fidelity_baseline")
TINTS = ("none", *ORDERS[1:])  # matrix cells: a background colour by the same per-head values
WEIGHTS = ("attention", "value")  # sentence view: lines by attention, or by attention × value-vector norm
UNSET = ("", -1, "grid", "none", "attention")  # optional fields at these values stay out of the URL
NOTICE_NAMES = {"color": "colour", "pos": "token position", "b_model": "picture B's model",  # in notices
                "b_corpus": "picture B's corpus", "b_layer": "picture B's layer", "b_head": "picture B's head",
                "b_vectors": "picture B's vectors"}
UNSET_MEANS = {"text": "no text selected", "pos": "no token selected",  # what an unset value does, in notices
               **{f"b_{name}": "picture B follows picture A" for name in ("model", "corpus", "layer", "head")},
               "b_vectors": "picture B shows queries and keys"}


@dataclass(frozen=True)
class PictureState:
    """One picture: a head of a model over a corpus, and which vectors it shows ("qk": queries and keys, "v": the
    head's value vectors). As `ViewState.b` it holds picture B's choices, where "" and -1 mean "as picture A"."""

    model: str = ""
    corpus: str = ""
    layer: int = -1
    head: int = -1
    vectors: str = ""


SAME_AS_A = PictureState()  # picture B follows picture A in everything


@dataclass(frozen=True)
class ViewState:
    """Everything the URL holds."""

    view: str = "single"
    model: str = BUNDLED_ALIAS
    corpus: str = DEFAULT_CORPUS
    layer: int = 0
    head: int = 0
    method: str = DEFAULT_METHOD
    dims: int = DEFAULT_DIMS
    norm: str = DEFAULT_NORMALISATION
    color: str = DEFAULT_COLOUR
    show: str = "both"
    labels: int = 0
    search: str = ""
    text: int = -1
    pos: int = -1
    order: str = "grid"
    keep: str = ""  # ranked matrix: only heads whose value is at least this number ("" = all)
    tint: str = "none"  # matrix: cell background coloured by a per-head value
    weight: str = "attention"  # sentence view: "value" weights attention by each token's value-vector norm
    b: PictureState = SAME_AS_A  # side by side: what picture B changes (in the URL as b_model, b_corpus, …)

    def url_fields(self) -> dict[str, Any]:
        """Every URL parameter and its value, in the URL's order (picture B's choices as b_model, b_corpus, …)."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "b"}
        return {**data, **{f"b_{name}": value for name, value in asdict(self.b).items()}}

    def to_query(self) -> str:
        """Canonical query string, starting with '?' (unset optional fields left out)."""
        data = {k: v for k, v in self.url_fields().items() if not (k in OPTIONAL and v in UNSET)}
        return "?" + urlencode(data)

    def record(self) -> dict[str, Any]:
        """The state as the page's style store holds it: its fields (B's nested) and its canonical query."""
        return {**asdict(self), "query": self.to_query()}

    def picture_a(self) -> PictureState:
        """Picture A: the head the main controls choose, queries and keys."""
        return PictureState(model=self.model, corpus=self.corpus, layer=self.layer, head=self.head, vectors="qk")

    def picture_b(self) -> PictureState:
        """Picture B of the side-by-side view: B's choices, A's values where B has none, clamped to B's model."""
        model = self.b.model or self.model
        spec = read_spec(model)
        corpus = self.b.corpus or self.corpus
        if corpus not in corpus_choices(spec.modality):
            corpus = default_corpus(spec.modality)
        layer = self.b.layer if self.b.layer >= 0 else self.layer
        head = self.b.head if self.b.head >= 0 else self.head
        return PictureState(model=model, corpus=corpus, layer=min(layer, spec.n_layers - 1),
                            head=min(head, spec.n_heads - 1), vectors=self.b.vectors or "qk")

    def request(self, picture: PictureState | None = None) -> dict[str, Any]:
        """What a worker computes for a picture (picture A unless told; a HeadRequest dict without `vectors`)."""
        picture = picture or self.picture_a()
        shared = {"norm": self.norm, "method": self.method, "dims": self.dims}
        return {name: shared[name] if name in shared else getattr(picture, name) for name in COMPUTE_FIELDS}

    def request_b(self) -> dict[str, Any]:
        """What a worker computes for picture B (a HeadRequest dict, with the vectors it shows)."""
        picture = self.picture_b()
        return {**self.request(picture), "vectors": picture.vectors}

    def style(self) -> Style:
        """How the computed picture is drawn."""
        return Style(color=self.color, show=self.show, labels=bool(self.labels), search=self.search,
                     text=None if self.text < 0 else self.text, pos=None if self.pos < 0 else self.pos)


def model_choices() -> list[str]:
    """Models the dashboard offers: the registry (bundled MiniLM plus configured aliases)."""
    return list(registry())


def corpus_choices(modality: str = "text") -> list[str]:
    """Corpora for a model's modality: the bundled ones plus those named in QK_ATLAS_CORPORA and uploads."""
    configured = settings().corpora
    images = [name for name, path in configured.items() if Path(path).is_dir() or path.endswith(".npz")]
    if modality == "image":
        return [DEFAULT_IMAGE_CORPUS, *images]
    uploaded = [record["ref"] for record in list_uploads()]
    return [DEFAULT_CORPUS, REPEATED_CORPUS, *[name for name in configured if name not in images], *uploaded]


def default_corpus(modality: str) -> str:
    """The bundled corpus of a modality."""
    return DEFAULT_IMAGE_CORPUS if modality == "image" else DEFAULT_CORPUS


def _first(params: dict[str, list[str]], name: str) -> str | None:
    """First value of a query parameter, or None."""
    values = params.get(name)
    return values[0] if values else None


def _shown(value: str) -> str:
    """A value as quoted in a notice (shortened)."""
    return repr(value[:40] + ("…" if len(value) > 40 else ""))


def _noun(name: str, capital: bool = False) -> str:
    """A URL field as a notice names it ('pos' -> 'token position', 'b_head' -> "picture B's head")."""
    noun = NOTICE_NAMES.get(name, name)
    return noun[0].upper() + noun[1:] if capital else noun


def _instead(name: str, default: Any) -> str:
    """What a notice says is shown instead of a refused value: the default, or what an unset field means."""
    if name in UNSET_MEANS and default in UNSET:
        return UNSET_MEANS[name]
    return f"showing {default!r}" if isinstance(default, str) else f"showing {_noun(name)} {default}"


def _choice(params: dict[str, list[str]], name: str, allowed, default: str, notices: list[str]) -> str:
    """A value from an allowed set, else the default with a notice."""
    value = _first(params, name)
    if value is None or value in allowed:
        return default if value is None else value
    notices.append(f"Unknown {_noun(name)} {_shown(value)}; {_instead(name, default)}.")
    return default


def _index(params: dict[str, list[str]], name: str, upper: int, notices: list[str], default: int = 0) -> int:
    """An integer in [0, upper), else the default with a notice (-1, an optional field's unset value: unset)."""
    value = _first(params, name)
    if value is None or value == "" or (default == -1 and value.strip() == "-1"):
        return default
    digits = value.strip()
    if digits.isascii() and digits.isdigit() and len(digits) <= 9 and int(digits) < upper:  # not '²', not 10^5000
        return int(digits)
    notices.append(f"{_noun(name, capital=True)} {_shown(value)} is not in 0..{upper - 1}; {_instead(name, default)}.")
    return default


def _colour(params: dict[str, list[str]], modality: str, notices: list[str]) -> str:
    """A colour mode that means something for the model's modality, else the default with a notice."""
    value = _choice(params, "color", values(COLOURS), DEFAULT_COLOUR, notices)
    if value in values(for_modality(COLOURS, modality)):
        return value
    choice = find(COLOURS, value)
    notices.append(f"Colour {choice.label!r} applies to {choice.modality} models only; "
                   f"{_instead('color', DEFAULT_COLOUR)}.")
    return DEFAULT_COLOUR


def _spec(params: dict[str, list[str]], notices: list[str]) -> tuple[str, ModelSpec]:
    """The model named in the URL (registry only) and its spec."""
    model = _choice(params, "model", model_choices(), BUNDLED_ALIAS, notices)
    try:
        return model, read_spec(model)
    except (ModelError, OSError, ValueError) as exc:
        notices.append(f"Model {model!r} is unavailable ({str(exc).splitlines()[0][:120]}); showing {BUNDLED_ALIAS!r}.")
        return BUNDLED_ALIAS, read_spec(BUNDLED_ALIAS)


def _threshold(params: dict[str, list[str]], notices: list[str]) -> str:
    """A finite number as written (kept as text so the URL round-trips), else empty with a notice."""
    value = (_first(params, "keep") or "").strip()
    if not value:
        return ""
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if len(value) > 20 or number != number or abs(number) == float("inf"):
        notices.append(f"Keep {_shown(value)} is not a number; showing every head.")
        return ""
    return value


def _search(params: dict[str, list[str]], notices: list[str]) -> str:
    """The token search, trimmed to MAX_SEARCH characters."""
    value = (_first(params, "search") or "").strip()
    if len(value) > MAX_SEARCH:
        notices.append(f"Search shortened to {MAX_SEARCH} characters.")
    return value[:MAX_SEARCH]


PARSE_CACHE_SECONDS = 2.0  # a parsed query is reused this long (the guard checks every store of every request)
_parsed: dict[tuple, tuple[ViewState, tuple[str, ...]]] = {}


def config_stamp() -> tuple:
    """What parsing depends on besides the query: every QK_ATLAS_* setting and the uploads folder's last change."""
    try:
        uploads = (settings().cache_dir / "uploads").stat().st_mtime_ns
    except OSError:
        uploads = 0
    return tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("QK_ATLAS_"))), uploads


def parse_query(search: str | None) -> tuple[ViewState, list[str]]:
    """URL query string -> (valid state, notices about anything that was replaced by a default); the same query
    under the same settings within PARSE_CACHE_SECONDS is answered from memory (reading the registry and the
    uploads takes milliseconds, and every callback request checks several stores)."""
    key = (search or "", config_stamp(), int(time.monotonic() // PARSE_CACHE_SECONDS))
    found = _parsed.get(key)
    if found is None:
        state, notices = _parse_query(search)
        if len(_parsed) >= 4096:
            _parsed.clear()
        _parsed[key] = found = (state, tuple(notices))
    return found[0], list(found[1])


def _parse_query(search: str | None) -> tuple[ViewState, list[str]]:
    """URL query string -> (valid state, notices about anything that was replaced by a default)."""
    params = parse_qs((search or "").lstrip("?"), keep_blank_values=True)
    notices: list[str] = []
    view = _choice(params, "view", VIEWS, "single", notices)
    model, spec = _spec(params, notices)
    state = ViewState(
        view=view,
        model=model,
        corpus=_choice(params, "corpus", corpus_choices(spec.modality), default_corpus(spec.modality), notices),
        layer=_index(params, "layer", spec.n_layers, notices),
        head=_index(params, "head", spec.n_heads, notices),
        method=_choice(params, "method", values(METHODS), DEFAULT_METHOD, notices),
        dims=int(_choice(params, "dims", values(DIMS), str(DEFAULT_DIMS), notices)),
        norm=_choice(params, "norm", values(NORMALISATIONS), DEFAULT_NORMALISATION, notices),
        color=_colour(params, spec.modality, notices),
        show=_choice(params, "show", SHOWS, "both", notices),
        labels=int(_choice(params, "labels", ("0", "1"), "0", notices)),
        search=_search(params, notices),
        text=_index(params, "text", settings().max_texts, notices, default=-1),
        pos=_index(params, "pos", settings().max_tokens_per_text, notices, default=-1),
        order=_choice(params, "order", ORDERS, "grid", notices),
        keep=_threshold(params, notices),
        tint=_choice(params, "tint", TINTS, "none", notices),
        weight=_choice(params, "weight", WEIGHTS, "attention", notices),
    )
    return _with_picture_b(state, params, notices), notices


def request_problem(data: Any) -> str | None:
    """What is wrong with a head request's fields (model, corpus, layer, head, norm, method, dims) by the URL's own
    rules, or None: a model from the registry, a corpus the server offers (or an upload), never a path."""
    if not isinstance(data, dict):
        return "expected a record"
    for name in COMPUTE_FIELDS:
        expected = int if name in ("layer", "head", "dims") else str
        if type(data.get(name)) is not expected:
            return f"{name} must be {'an integer' if expected is int else 'text'}"
    fields_ = {name: data[name] for name in COMPUTE_FIELDS}
    state, notices = parse_query(urlencode(fields_))
    if notices:
        return notices[0]
    return None if state.request() == fields_ else "the request is not in its canonical form"


def _with_picture_b(state: ViewState, params: dict[str, list[str]], notices: list[str]) -> ViewState:
    """The side-by-side fields (b_model, b_corpus, b_layer, b_head), checked against B's model."""
    b_model = _choice(params, "b_model", ["", *model_choices()], "", notices)
    try:
        spec = read_spec(b_model or state.model)
    except (ModelError, OSError, ValueError) as exc:
        notices.append(f"Picture B's model {b_model!r} is unavailable ({str(exc).splitlines()[0][:120]}); "
                       f"{UNSET_MEANS['b_model']}.")
        b_model, spec = "", read_spec(state.model)
    return replace(state, b=PictureState(
        model=b_model, corpus=_choice(params, "b_corpus", ["", *corpus_choices(spec.modality)], "", notices),
        layer=_index(params, "b_layer", spec.n_layers, notices, default=-1),
        head=_index(params, "b_head", spec.n_heads, notices, default=-1),
        vectors=_choice(params, "b_vectors", ["", "v"], "", notices)))


INT_CONTROLS = ("layer", "head", "dims", "labels", "b_layer", "b_head")  # every other control holds text


def _typed_controls(values: dict[str, Any], notices: list[str]) -> dict[str, Any]:
    """Control values of the right type (None values ignored); anything else is dropped with a notice.

    Control values come from the browser (a callback is a plain POST anyone can replay): a list where a number is
    expected, a number where a name is expected, or an unknown model never reaches the rest of the server.
    """
    known = set(ViewState().url_fields())
    clean: dict[str, Any] = {}
    for name, value in values.items():
        if value is None or name not in known:
            continue
        if name in INT_CONTROLS:
            value = _as_int(value)
        if not isinstance(value, int if name in INT_CONTROLS else str):
            notices.append(f"{_noun(name, capital=True)} {_shown(repr(value))} is not a valid value; left as it was.")
            continue
        offered = model_choices() + ([""] if name == "b_model" else [])
        if name in ("model", "b_model") and value not in offered:
            notices.append(f"Unknown {_noun(name)} {_shown(value)}; left as it was.")
            continue
        clean[name] = value
    return clean


def _as_int(value: Any) -> Any:
    """A control's integer (booleans of switches as 0 / 1, digit strings as numbers); other values unchanged."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit() and value.isascii() and len(value) <= 9:
        return int(value)
    return value


def with_controls(state: ViewState, notices: list[str] | None = None, **values: Any) -> ViewState:
    """State with control values applied (None values ignored), clamped to the model's shape, then made canonical
    by the URL's own rules; what was refused or replaced is appended to `notices`."""
    notices = [] if notices is None else notices
    clean = _typed_controls(values, notices)
    b_choices = {name.removeprefix("b_"): clean.pop(name) for name in list(clean) if name.startswith("b_")}
    new = replace(state, **clean, b=replace(state.b, **b_choices))
    spec = read_spec(new.model)
    if new.corpus not in corpus_choices(spec.modality):
        if new.model == state.model:  # not a switch between text and image models: a corpus nobody offered
            notices.append(f"Unknown corpus {_shown(new.corpus)}; showing {default_corpus(spec.modality)!r}.")
        new = replace(new, corpus=default_corpus(spec.modality))
    if new.corpus != state.corpus or new.model != state.model:
        new = replace(new, text=-1, pos=-1)  # a selection belongs to one corpus
    keep = _threshold({"keep": [str(new.keep or "")]}, [])
    new = replace(new, layer=min(new.layer, spec.n_layers - 1), head=min(new.head, spec.n_heads - 1),
                  search=new.search[:MAX_SEARCH], keep=keep)
    canonical, replaced = parse_query(_picture_b_controls(new).to_query())
    notices.extend(replaced)
    return canonical


def _picture_b_controls(state: ViewState) -> ViewState:
    """B's choices as differences from A ("" / -1 where B shows the same as A), clamped to B's model."""
    b = state.b
    model = "" if b.model in ("", state.model) else b.model
    spec = read_spec(model or state.model)
    corpus = "" if b.corpus in ("", state.corpus) else b.corpus
    if corpus and corpus not in corpus_choices(spec.modality):
        corpus = ""
    layer = -1 if b.layer in (-1, state.layer) else min(b.layer, spec.n_layers - 1)
    head = -1 if b.head in (-1, state.head) else min(b.head, spec.n_heads - 1)
    return replace(state, b=PictureState(model=model, corpus=corpus, layer=layer, head=head,
                                         vectors="v" if b.vectors == "v" else ""))
