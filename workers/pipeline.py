"""The data flow for one head: corpus -> tokens + q/k (per layer) -> normalised q/k -> coords, each cached by key.

Key resolution imports no torch, so the dashboard can check the store for finished views itself.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from workers.attention import kv_head_for
from workers.choices import DEFAULT_METHOD, params_of
from workers.choices import METHODS as METHOD_CHOICES
from workers.config import settings
from workers.corpus import DEFAULT_CORPUS, Corpus, ImageCorpus, load_corpus
from workers.fidelity import sink_keys
from workers.fitted import fitted_layout
from workers.layout import attention_layout
from workers.models import BUNDLED_ALIAS, ModelSpec, read_spec
from workers.normalize import DEFAULT_NORMALIZATION, NORMALIZATIONS, normalisation_params, normalize
from workers.project import METHODS, Projector
from workers.registry import model_source
from workers.store import Store, content_key

Progress = Callable[[float, str], None]
STORED_VECTOR_DTYPE = np.float16  # q, k at rest: half the bytes; attention rebuilt from them within ~5e-4
PROJECTION_PARAMS: dict[str, dict[str, Any]] = {c.value: params_of(METHOD_CHOICES, c.value) for c in METHOD_CHOICES}
PREVIEW_PARAMS: dict[str, dict[str, Any]] = {c.value: params_of(METHOD_CHOICES, c.value, preview=True)
                                             for c in METHOD_CHOICES}
METHOD_NAMES = {c.value: c.name for c in METHOD_CHOICES}


def projection_params(method: str, preview: bool) -> dict[str, Any]:
    """Projection parameters: full quality, or the faster preview the matrix draws."""
    return (PREVIEW_PARAMS if preview else PROJECTION_PARAMS)[method]


def estimator_params(method: str, preview: bool) -> dict[str, Any]:
    """The projection parameters the estimator takes: projection_params less the store-only "version"."""
    return {name: value for name, value in projection_params(method, preview).items() if name != "version"}


def _no_progress(fraction: float, message: str) -> None:
    """Default progress sink."""


VECTORS = ("qk", "v")


@dataclass(frozen=True)
class HeadRequest:
    """Everything that determines one head's picture."""

    model: str = BUNDLED_ALIAS
    corpus: str = DEFAULT_CORPUS
    layer: int = 0
    head: int = 0
    norm: str = DEFAULT_NORMALIZATION
    method: str = DEFAULT_METHOD
    dims: int = 2
    preview: bool = False  # faster, coarser UMAP / t-SNE for matrix cells (PCA has no preview)
    vectors: str = "qk"  # "qk": queries and keys embedded together; "v": the head's value vectors on their own

    def __post_init__(self) -> None:
        """PCA previews are full PCA: one picture, one key."""
        if self.preview and self.method == "pca":
            object.__setattr__(self, "preview", False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (what travels to workers)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HeadRequest:
        """Rebuild from `to_dict` output."""
        return cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data})


@dataclass(frozen=True)
class ViewKeys:
    """Store keys of everything one head view reads."""

    tokens: str
    q: str
    k: str
    coords: str
    v: str = ""  # the head's value vectors (of its key head); "" in records written before values were kept

    def extracted(self, store: Store) -> bool:
        """Whether the extraction this view reads (tokens table, its q, k and v) is stored."""
        return all(store.has(key) for key in (self.tokens, self.q, self.k, self.v) if key)

    def complete(self, store: Store) -> bool:
        """Whether everything this view reads is stored (cheap: presence only)."""
        return self.extracted(store) and store.has(self.coords)

    def intact(self, store: Store) -> bool:
        """Whether everything this view reads is stored and passes its checksum (damaged entries are removed)."""
        return all([store.intact(key) for key in (self.tokens, self.q, self.k, self.coords, self.v) if key])


def validate(request: HeadRequest, spec: ModelSpec) -> None:
    """ValueError with a one-line message when the request does not fit the model."""
    if not 0 <= request.layer < spec.n_layers:
        raise ValueError(f"layer {request.layer} out of range 0..{spec.n_layers - 1}")
    if not 0 <= request.head < spec.n_heads:
        raise ValueError(f"head {request.head} out of range 0..{spec.n_heads - 1}")
    if request.norm not in NORMALIZATIONS:
        raise ValueError(f"unknown normalisation {request.norm!r}")
    if request.method not in METHODS:
        raise ValueError(f"unknown projection {request.method!r}")
    if request.dims not in (2, 3):
        raise ValueError(f"dims must be 2 or 3, got {request.dims}")
    if request.vectors not in VECTORS:
        raise ValueError(f"unknown vectors {request.vectors!r}; choose one of {', '.join(VECTORS)}")


def corpus_for(ref: str) -> Corpus | ImageCorpus:
    """The corpus a request names, under the configured limits (cached until its file or folder changes)."""
    from workers.uploads import upload_path

    config = settings()
    uploaded = upload_path(ref)
    named = {**config.corpora, **({ref: str(uploaded)} if uploaded else {})}
    return _cached_corpus(ref, config.max_texts, tuple(sorted(named.items())), _file_stamp(named.get(ref, ref)))


def _file_stamp(location: str) -> tuple:
    """Modification times and sizes of a corpus file or folder (empty for the bundled corpora)."""
    path = Path(location)
    entries = sorted(path.iterdir()) if path.is_dir() else [path] if path.is_file() else []
    return tuple((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in entries)


@functools.lru_cache(maxsize=8)
def _cached_corpus(ref: str, max_texts: int, corpora: tuple, _stamp: tuple) -> Corpus | ImageCorpus:
    """Load a corpus once per content stamp: views resolve keys on every request and poll."""
    return load_corpus(ref, max_texts=max_texts, named=dict(corpora))


def extraction_params(model: str, corpus: Corpus | ImageCorpus) -> dict[str, Any]:
    """What determines the tokens table and q/k: model and revision, corpus content, truncation."""
    source = model_source(model)
    return {"model": source.location if source.kind == "hub" else model, "revision": source.revision,
            "corpus": corpus.content_hash, "max_tokens": settings().max_tokens_per_text,
            "max_total_tokens": settings().max_total_tokens, "roles": "qkv"}


def vector_key(base: dict[str, Any], role: str, layer: int, head: int) -> str:
    """Key of one head's q (role 'q', query head) or k (role 'k', key head)."""
    return content_key(role, {**base, "layer": layer, "head": head})


def resolve(request: HeadRequest, base: dict[str, Any] | None = None) -> ViewKeys:
    """Store keys for a request (cheap: reads the corpus and config files, no model); `base` skips the corpus."""
    spec = read_spec(request.model)
    base = base or extraction_params(request.model, corpus_for(request.corpus))
    view = {**base, "layer": request.layer, "head": request.head, "norm": request.norm,
            "norm_params": normalisation_params(request.norm),
            "method": request.method, "dims": request.dims,
            "params": projection_params(request.method, request.preview)}
    kv_head = kv_head_for(request.head, spec.n_heads, spec.n_kv_heads)
    values = vector_key(base, "v", request.layer, kv_head)
    if request.vectors == "v":  # the value picture: v alone [N, dims], no normalisation
        coords = content_key("vcoords", {**{k: v for k, v in view.items() if k not in ("norm", "norm_params")},
                                         "v": values})
    else:
        coords = content_key("coords", view)
    return ViewKeys(tokens=content_key("tokens", base), q=vector_key(base, "q", request.layer, request.head),
                    k=vector_key(base, "k", request.layer, kv_head), coords=coords, v=values)


def resolve_heads(template: HeadRequest) -> dict[tuple[int, int], ViewKeys]:
    """Keys of every (layer, head) of the template's model, corpus and projection (the corpus read once)."""
    spec = read_spec(template.model)
    base = extraction_params(template.model, corpus_for(template.corpus))
    return {(layer, head): resolve(replace(template, layer=layer, head=head), base)
            for layer in range(spec.n_layers) for head in range(spec.n_heads)}


@functools.lru_cache(maxsize=2)
def _loaded_model(ref: str) -> Any:
    """Model loaded once per process and reused."""
    from workers.models import load_model

    return load_model(ref)


def ensure_extraction(request: HeadRequest, store: Store, progress: Progress = _no_progress) -> ViewKeys:
    """Run the model over the corpus unless its tokens table (written last) is stored; streams heads to the store."""
    keys = resolve(request)
    if keys.extracted(store):
        return keys
    from workers.extract import extract_heads

    progress(0.0, "loading model")
    loaded = _loaded_model(request.model)
    corpus = corpus_for(request.corpus)
    config = settings()
    tokens, heads = extract_heads(loaded, corpus, config.batch_size, config.max_tokens_per_text,
                                  progress=lambda f, m: progress(0.05 + 0.7 * f, m),
                                  max_total_tokens=config.max_total_tokens)
    base = extraction_params(request.model, corpus)
    for role, layer, head, vectors in heads:
        store.put_arrays(vector_key(base, role, layer, head), {"v": vectors.astype(STORED_VECTOR_DTYPE, copy=False)})
    progress(0.8, "storing the tokens table")
    # The tokens table goes last: its presence marks a complete extraction.
    kept = int(tokens["text_id"].max()) + 1
    notes = list(getattr(corpus, "notes", ()))
    if kept < len(corpus.texts):
        notes.append(f"extracted the first {kept:,} of {len(corpus.texts):,} texts: {len(tokens['text_id']):,} "
                     f"tokens, within the limit of {config.max_total_tokens:,} (QK_ATLAS_MAX_TOKENS)")
    store.put_arrays(keys.tokens, {**tokens, "texts": np.array(corpus.texts[:kept], dtype=str),
                                   "notes": np.array(notes, dtype=str)}, compress=True)
    return keys


def head_vectors(store: Store, keys: ViewKeys) -> tuple[np.ndarray, np.ndarray]:
    """Raw q, k float32 [token, d_head] of the requested head (k of its key head under grouped-query attention)."""
    q, k = store.get_arrays(keys.q), store.get_arrays(keys.k)
    if q is None or k is None:
        raise RuntimeError("q/k of this head are missing from the store")
    return q["v"].astype(np.float32), k["v"].astype(np.float32)


def text_ids(store: Store, keys: ViewKeys) -> np.ndarray:
    """text_id [token] of the stored tokens table."""
    tokens = store.get_arrays(keys.tokens)
    if tokens is None:
        raise RuntimeError("the tokens table is missing from the store")
    return tokens["text_id"]


def head_qk(request: HeadRequest, store: Store) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw q, k float32 [token, d_head] and text_id [token] of one head, extracting its corpus first if needed."""
    keys = ensure_extraction(request, store)
    q, k = head_vectors(store, keys)
    return q, k, text_ids(store, keys)


def ensure_head_view(request: HeadRequest, store: Store, progress: Progress = _no_progress) -> ViewKeys:
    """Compute (or find) the coordinates of one head's joint q/k projection; returns its keys."""
    spec = read_spec(request.model)
    validate(request, spec)
    keys = resolve(request)
    if keys.complete(store) and keys.intact(store):
        progress(1.0, "cached")
        return keys
    keys = ensure_extraction(request, store, progress)
    coords = (project_values(request, keys, store, progress) if request.vectors == "v"
              else project_queries_and_keys(request, keys, store, spec.causal, progress))
    store.put_arrays(keys.coords, {"coords": coords.astype(np.float32)})
    progress(1.0, "done")
    return keys


def picture_label(method: str, preview: bool) -> str:
    """The method's name in progress messages, e.g. "UMAP preview"."""
    return METHOD_NAMES[method] + (" preview" if preview else "")


VALUE_STAND_INS = {"attention": "umap", "fitted": "pca"}  # values attend to nothing: the pictures from attention


def project_values(request: HeadRequest, keys: ViewKeys, store: Store, progress: Progress) -> np.ndarray:
    """Picture of the head's stored value vectors [n, d] -> [n, dims]; the pictures from attention stand in as
    VALUE_STAND_INS says (values attend to nothing)."""
    method = VALUE_STAND_INS.get(request.method, request.method)
    values = store.get_arrays(keys.v)
    if values is None:
        raise RuntimeError("the value vectors of this head are missing from the store")
    progress(0.85, f"{picture_label(method, request.preview)} of {len(values['v']):,} value vectors")
    projector = Projector(method, request.dims, **estimator_params(method, request.preview))
    return projector.fit_transform(values["v"].astype(np.float32))


def project_queries_and_keys(request: HeadRequest, keys: ViewKeys, store: Store, causal: bool,
                             progress: Progress) -> np.ndarray:
    """Joint picture of the head's normalised queries [n, d] and keys [n, d] -> [2n, dims], queries first."""
    q, k = head_vectors(store, keys)
    text_id = text_ids(store, keys)
    params = estimator_params(request.method, request.preview)
    progress(0.85, f"{picture_label(request.method, request.preview)} of {2 * len(q):,} points")
    if request.method == "fitted":  # from attention, which no normalisation changes: skip it
        sinks = sink_keys(text_id, store.get_arrays(keys.tokens)["is_special"], causal)
        return fitted_layout(q, k, text_id, causal, sinks, request.dims, **params)
    q_norm, k_norm = normalize(q, k, request.norm, text_id, causal)
    if request.method == "attention":
        return attention_layout(q_norm, k_norm, text_id, causal, request.dims, **params)
    return Projector(request.method, request.dims, **params).fit_transform(np.vstack([q_norm, k_norm]))


def fidelity_key(keys: ViewKeys) -> str:
    """Store key of a view's fidelity (it depends on its picture, hence on everything behind it)."""
    return content_key("fidelity", {"coords": keys.coords, "version": 4})


def ensure_view_fidelity(request: HeadRequest, store: Store) -> dict[str, dict]:
    """Fidelity of a stored view (raw vectors, normalised vectors, picture), computed once and stored."""
    from workers.fidelity import sink_keys, view_fidelity

    if request.vectors != "qk":
        raise ValueError("fidelity measures pictures of queries and keys, not of value vectors")
    keys = resolve(request)
    key = fidelity_key(keys)
    found = store.get_json(key)
    if found is not None:
        return found
    q, k = head_vectors(store, keys)
    tokens, coords = store.get_arrays(keys.tokens), store.get_arrays(keys.coords)
    if tokens is None or coords is None:
        raise RuntimeError("this view is not stored yet")
    causal = read_spec(request.model).causal
    result = view_fidelity(q, k, coords["coords"], tokens["text_id"], causal, request.norm,
                           sink_keys(tokens["text_id"], tokens["is_special"], causal))
    store.put_json(key, result)
    return result


def summary_key(keys: ViewKeys) -> str:
    """Store key of a head's summary (it depends on its q, k and tokens table only)."""
    return content_key("summary", {"q": keys.q, "k": keys.k, "tokens": keys.tokens, "version": 2})


def ensure_head_summary(request: HeadRequest, store: Store) -> dict[str, float]:
    """The head's summary numbers (workers.summaries), from its stored vectors, computed once and stored."""
    from workers.summaries import summarise_head

    keys = ensure_extraction(request, store)
    key = summary_key(keys)
    found = store.get_json(key)
    if found is not None:
        return found
    q, k = head_vectors(store, keys)
    tokens = store.get_arrays(keys.tokens)
    if tokens is None:
        raise RuntimeError("the tokens of this head are missing from the store")
    spec = read_spec(request.model)
    summary = summarise_head(q, k, tokens["text_id"], tokens["is_special"], spec.causal,
                             tokens=tokens["token"] if spec.modality == "text" else None)
    store.put_json(key, summary.to_dict())
    return summary.to_dict()


def export_metrics(request: HeadRequest, store: Store, notes: list[str]) -> dict[str, Any]:
    """What `qk-atlas export` writes beside the arrays: the request, head summary, the view's fidelity, and the
    notes `export_arrays` returned."""
    return {"request": request.to_dict(), "summary": ensure_head_summary(request, store),
            "fidelity": ensure_view_fidelity(request, store), "notes": notes}


def export_arrays(request: HeadRequest, store: Store, progress: Progress = _no_progress) -> dict[str, np.ndarray]:
    """The export contract: q, k, v, q_norm, k_norm, coords, text_id, position, token (+ row, col for images)."""
    keys = ensure_head_view(request, store, progress)
    q, k = head_vectors(store, keys)
    tokens = store.get_arrays(keys.tokens)
    coords = store.get_arrays(keys.coords)
    assert tokens is not None and coords is not None
    q_norm, k_norm = normalize(q, k, request.norm, tokens["text_id"], read_spec(request.model).causal)
    out = {"q": q.astype(np.float32), "k": k.astype(np.float32), "q_norm": q_norm, "k_norm": k_norm,
           "coords": coords["coords"], "text_id": tokens["text_id"].astype(np.int64),
           "position": tokens["position"].astype(np.int64), "token": tokens["token"]}
    values = store.get_arrays(keys.v) if keys.v else None
    if values is not None:  # the head's value vectors (of its key head), float32 [N, d_head]
        out["v"] = values["v"].astype(np.float32)
    for extra in ("row", "col"):
        if extra in tokens:
            out[extra] = tokens[extra].astype(np.int64)
    out["notes"] = tokens.get("notes", np.array([], dtype=str))  # what the corpus limits cut (not per token)
    return out


def head_map_key(keys: ViewKeys) -> str:
    """Store key of a model's head map over a corpus (it depends on the extraction only)."""
    from workers.headmap import SAMPLE_TEXTS

    return content_key("headmap", {"tokens": keys.tokens, "sample_texts": SAMPLE_TEXTS, "version": 1})


def stored_head_map(template: HeadRequest, store: Store) -> dict[str, Any] | None:
    """The stored head map of the template's model and corpus, or None (cheap: no computation)."""
    return store.get_json(head_map_key(resolve(template)))


def ensure_head_map(template: HeadRequest, store: Store, progress: Progress = _no_progress) -> dict[str, Any]:
    """The head map (workers.headmap) of the template's model and corpus, computed once from the stored
    extraction (which must exist: see ensure_extraction) and stored."""
    from workers.headmap import head_map

    every = resolve_heads(template)
    first = next(iter(every.values()))
    key = head_map_key(first)
    found = store.get_json(key)
    if found is not None:
        return found
    if not first.extracted(store):
        raise RuntimeError("this model has not been run over this corpus yet")
    spec = read_spec(template.model)
    vectors = ((cell, *head_vectors(store, keys)) for cell, keys in every.items())
    result = head_map(vectors, text_ids(store, first), spec.causal,
                      progress=lambda done: progress(done / len(every), f"compared {done} of {len(every)} heads"))
    store.put_json(key, result.to_dict())
    return result.to_dict()
