"""View state <-> URL query string; bad or unknown values fall back to defaults with a notice."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

from workers.config import settings
from workers.corpus import DEFAULT_CORPUS, DEFAULT_IMAGE_CORPUS
from workers.models import BUNDLED_ALIAS, ModelError, ModelSpec, read_spec
from workers.normalize import DEFAULT_NORMALIZATION, NORMALIZATIONS
from workers.project import DEFAULT_METHOD, METHODS
from workers.registry import registry

VIEWS = ("single",)  # matrix and sentence views are planned (issue 4)
COLORS = {"role": "query / key", "position": "normalised position"}


@dataclass(frozen=True)
class ViewState:
    """Everything the URL holds."""

    view: str = "single"
    model: str = BUNDLED_ALIAS
    corpus: str = DEFAULT_CORPUS
    layer: int = 0
    head: int = 0
    method: str = DEFAULT_METHOD
    dims: int = 2
    norm: str = DEFAULT_NORMALIZATION
    color: str = "role"

    def to_query(self) -> str:
        """Canonical query string, starting with '?'."""
        return "?" + urlencode(asdict(self))

    def request(self) -> dict[str, Any]:
        """The compute request (a HeadRequest dict) plus the colouring."""
        data = asdict(self)
        data.pop("view")
        return data


def model_choices() -> list[str]:
    """Models the dashboard offers: the registry (bundled MiniLM plus configured aliases)."""
    return list(registry())


def corpus_choices(modality: str = "text") -> list[str]:
    """Corpora for a model's modality: the bundled one plus those named in QK_ATLAS_CORPORA."""
    configured = settings().corpora
    images = [name for name, path in configured.items() if Path(path).is_dir() or path.endswith(".npz")]
    if modality == "image":
        return [DEFAULT_IMAGE_CORPUS, *images]
    return [DEFAULT_CORPUS, *[name for name in configured if name not in images]]


def default_corpus(modality: str) -> str:
    """The bundled corpus of a modality."""
    return DEFAULT_IMAGE_CORPUS if modality == "image" else DEFAULT_CORPUS


def _first(params: dict[str, list[str]], name: str) -> str | None:
    """First value of a query parameter, or None."""
    values = params.get(name)
    return values[0] if values else None


def _choice(params: dict[str, list[str]], name: str, allowed: list[str] | tuple[str, ...], default: str,
            notices: list[str]) -> str:
    """A value from an allowed set, else the default with a notice."""
    value = _first(params, name)
    if value is None or value in allowed:
        return default if value is None else value
    notices.append(f"Unknown {name} {value[:40]!r}; showing {default!r}.")
    return default


def _index(params: dict[str, list[str]], name: str, upper: int, notices: list[str]) -> int:
    """An integer in [0, upper), else 0 with a notice."""
    value = _first(params, name)
    if value is None:
        return 0
    if value.strip().isdigit() and int(value) < upper:
        return int(value)
    notices.append(f"{name.capitalize()} {value[:40]!r} is not in 0..{upper - 1}; showing {name} 0.")
    return 0


def parse_query(search: str | None) -> tuple[ViewState, list[str]]:
    """URL query string -> (valid state, notices about anything that was replaced by a default)."""
    params = parse_qs((search or "").lstrip("?"), keep_blank_values=True)
    notices: list[str] = []
    view = _choice(params, "view", VIEWS, "single", notices)
    model = _choice(params, "model", model_choices(), BUNDLED_ALIAS, notices)
    try:
        spec: ModelSpec = read_spec(model)
    except (ModelError, OSError, ValueError) as exc:
        notices.append(f"Model {model!r} is unavailable ({str(exc).splitlines()[0][:120]}); showing {BUNDLED_ALIAS!r}.")
        model, spec = BUNDLED_ALIAS, read_spec(BUNDLED_ALIAS)
    state = ViewState(
        view=view,
        model=model,
        corpus=_choice(params, "corpus", corpus_choices(spec.modality), default_corpus(spec.modality), notices),
        layer=_index(params, "layer", spec.n_layers, notices),
        head=_index(params, "head", spec.n_heads, notices),
        method=_choice(params, "method", METHODS, DEFAULT_METHOD, notices),
        dims=int(_choice(params, "dims", ("2", "3"), "2", notices)),
        norm=_choice(params, "norm", NORMALIZATIONS, DEFAULT_NORMALIZATION, notices),
        color=_choice(params, "color", list(COLORS), "role", notices),
    )
    return state, notices


def with_controls(state: ViewState, **values: Any) -> ViewState:
    """State with control values applied (None values ignored), clamped to the model's shape."""
    clean = {k: v for k, v in values.items() if v is not None}
    new = replace(state, **clean)
    spec = read_spec(new.model)
    if new.corpus not in corpus_choices(spec.modality):  # switching between text and image models
        new = replace(new, corpus=default_corpus(spec.modality))
    return replace(new, layer=min(int(new.layer), spec.n_layers - 1), head=min(int(new.head), spec.n_heads - 1),
                   dims=int(new.dims))
