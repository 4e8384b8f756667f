"""The stored results of one head, each got from the store or computed and stored: extraction -> normalised q/k ->
picture -> fidelity, summary, head map, text attention -> position mean, export. Runs in worker processes (local or
Celery), never in the web process.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from workers.config import settings
from workers.contracts.requests import STAGES, HeadRequest, ViewKeys, stage_of, validate
from workers.contracts.results import TextAttention
from workers.core.attention import attention_within_texts, position_mean
from workers.core.fidelity import sink_keys
from workers.core.fitted import fitted_layout
from workers.core.layout import attention_layout
from workers.core.normalize import Transform, transform_for
from workers.core.project import Projector
from workers.models.registry import read_spec
from workers.pipeline.keys import (
    POSITIONS_KEPT,
    STORED_RESULTS,
    corpus_for,
    corpus_template,
    estimator_params,
    extraction_params,
    fidelity_key,
    head_map_key,
    picture_label,
    position_mean_key,
    resolve,
    resolve_heads,
    summary_key,
    text_attention_key,
    transform_key,
    vector_key,
)
from workers.store import Store

Progress = Callable[[float, str], None]
STORED_VECTOR_DTYPE = np.float16  # q, k at rest: half the bytes; attention rebuilt from them within ~5e-4


def _no_progress(fraction: float, message: str) -> None:
    """Default progress sink."""


def loaded_model(ref: str) -> Any:
    """Model loaded once per process and reused, on the configured device and dtype."""
    config = settings()
    return _loaded_model(ref, config.device, config.dtype, config.device_map)


@functools.lru_cache(maxsize=2)
def _loaded_model(ref: str, device: str, dtype: str, device_map: str | None) -> Any:
    """load_model, cached by model and placement settings (a changed QK_ATLAS_DTYPE never reuses another dtype's
    model under its own keys)."""
    from workers.models.loading import load_model

    return load_model(ref)


def ensure_extraction(request: HeadRequest, store: Store, progress: Progress = _no_progress,
                      keys: ViewKeys | None = None) -> ViewKeys:
    """Run the model over the corpus unless its tokens table (written last) is stored; streams heads to the store.
    `keys`: the request's, when the caller resolved them already."""
    keys = keys or resolve(request)
    if keys.extracted(store):
        return keys
    from workers.models.extract import extract_heads

    progress(0.0, "loading model")
    loaded = loaded_model(request.model)
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


_TOKENS_READ: dict[tuple[str, str], dict[str, np.ndarray]] = {}  # the last tokens table read, by store and key


def tokens_table(store: Store, keys: ViewKeys) -> dict[str, np.ndarray]:
    """The stored tokens table of a view: token, text_id, position, is_special … [token] (texts, notes); read once
    while its heads are computed in a row (a key names its content, so the table under it never changes)."""
    if not store.has(keys.tokens):
        raise RuntimeError("the tokens table is missing from the store")
    where = (str(store.directory), keys.tokens)
    if where not in _TOKENS_READ:
        tokens = store.get_arrays(keys.tokens)
        if tokens is None:
            raise RuntimeError("the tokens table is missing from the store")
        _TOKENS_READ.clear()
        _TOKENS_READ[where] = tokens
    return _TOKENS_READ[where]


def text_ids(store: Store, keys: ViewKeys) -> np.ndarray:
    """text_id [token] of the stored tokens table."""
    return tokens_table(store, keys)["text_id"]


def head_qk(request: HeadRequest, store: Store) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw q, k float32 [token, d_head] and text_id [token] of one head, extracting its corpus first if needed."""
    keys = ensure_extraction(request, store)
    q, k = head_vectors(store, keys)
    return q, k, text_ids(store, keys)


def ensure_head_view(request: HeadRequest, store: Store, progress: Progress = _no_progress,
                     keys: ViewKeys | None = None) -> ViewKeys:
    """Compute (or find) the coordinates [N or 2N, dims] of one head's picture; returns its keys."""
    spec = read_spec(request.model)
    validate(request, spec)
    keys = keys or resolve(request, spec=spec)
    if keys.complete(store) and keys.intact(store):
        progress(1.0, "cached")
        return keys
    ensure_extraction(request, store, progress, keys)

    def compute() -> dict[str, np.ndarray]:
        coords = (project_values(request, keys, store, progress) if request.vectors == "v"
                  else project_queries_and_keys(request, keys, store, spec.causal, progress))
        return {"coords": coords.astype(np.float32)}

    get_or_compute(store, keys.coords, compute, arrays=True)
    progress(1.0, "done")
    return keys


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
        sinks = sink_keys(text_id, tokens_table(store, keys)["is_special"], causal)
        return fitted_layout(q, k, text_id, causal, sinks, request.dims, **params)
    q_norm, k_norm = ensure_transform(request, keys, store, causal, (q, k, text_id)).apply(q, k)
    if request.method == "attention":
        return attention_layout(q_norm, k_norm, text_id, causal, request.dims, **params)
    return Projector(request.method, request.dims, **params).fit_transform(np.vstack([q_norm, k_norm]))


def get_or_compute(store: Store, key: str, compute: Callable[[], dict[str, Any]], arrays: bool = False
                   ) -> dict[str, Any]:
    """The result stored under `key` (a JSON record, or named arrays), or `compute()`'s, stored there first: the one
    get-or-compute path of every result derived from an extraction (keys and versions:
    workers.pipeline.keys.STORED_RESULTS). A damaged entry reads as absent, so it is computed again."""
    get, put = (store.get_arrays, store.put_arrays) if arrays else (store.get_json, store.put_json)
    found = get(key)
    if found is None:
        found = compute()
        put(key, found)
    return found


def ensure_transform(request: HeadRequest, keys: ViewKeys, store: Store, causal: bool,
                     read: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> Transform:
    """The head's normalisation (the fitted one searches 12 candidates): computed once, then read by the picture,
    its fidelity and the export. `read`: the head's q, k [token, d_head] and text_id [token] when already read."""
    def compute() -> dict[str, Any]:
        q, k, text_id = read or (*head_vectors(store, keys), text_ids(store, keys))
        return transform_for(q, k, request.norm, text_id, causal).to_dict()

    return Transform.from_dict(get_or_compute(store, transform_key(keys, request.norm), compute))


def ensure_view_fidelity(request: HeadRequest, store: Store, keys: ViewKeys | None = None) -> dict[str, dict]:
    """Fidelity of a stored view (raw vectors, normalised vectors, picture), computed once and stored."""
    from workers.core.stage_fidelity import view_fidelity

    if request.vectors != "qk":
        raise ValueError("fidelity measures pictures of queries and keys, not of value vectors")
    keys = keys or resolve(request)

    def compute() -> dict[str, Any]:
        q, k = head_vectors(store, keys)
        tokens, coords = tokens_table(store, keys), store.get_arrays(keys.coords)
        if coords is None:
            raise RuntimeError("this view is not stored yet")
        causal = read_spec(request.model).causal
        return view_fidelity(q, k, coords["coords"], tokens["text_id"], causal,
                             ensure_transform(request, keys, store, causal, (q, k, tokens["text_id"])),
                             sink_keys(tokens["text_id"], tokens["is_special"], causal))

    return get_or_compute(store, fidelity_key(keys), compute)


def ensure_head_summary(request: HeadRequest, store: Store, keys: ViewKeys | None = None) -> dict[str, float]:
    """The head's summary numbers (workers.core.summaries), from its stored vectors, computed once and stored."""
    from workers.core.summaries import summarise_head

    keys = ensure_extraction(request, store, keys=keys)

    def compute() -> dict[str, Any]:
        q, k = head_vectors(store, keys)
        tokens = tokens_table(store, keys)
        spec = read_spec(request.model)
        return summarise_head(q, k, tokens["text_id"], tokens["is_special"], spec.causal,
                              tokens=tokens["token"] if spec.modality == "text" else None).to_dict()

    return get_or_compute(store, summary_key(keys), compute)


def export_metrics(request: HeadRequest, store: Store, notes: list[str]) -> dict[str, Any]:
    """What `qk-atlas export` writes beside the arrays: the request, head summary, the view's fidelity, and the
    notes `export_arrays` returned."""
    keys = resolve(request)
    return {"request": request.to_dict(), "summary": ensure_head_summary(request, store, keys),
            "fidelity": ensure_view_fidelity(request, store, keys), "notes": notes}


def export_arrays(request: HeadRequest, store: Store, progress: Progress = _no_progress) -> dict[str, np.ndarray]:
    """The export contract: q, k, v, q_norm, k_norm, coords, text_id, position, token (+ row, col for images)."""
    keys = ensure_head_view(request, store, progress)
    q, k = head_vectors(store, keys)
    tokens = store.get_arrays(keys.tokens)
    coords = store.get_arrays(keys.coords)
    assert tokens is not None and coords is not None
    q_norm, k_norm = ensure_transform(request, keys, store, read_spec(request.model).causal).apply(q, k)
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


def ensure_head_map(template: HeadRequest, store: Store, progress: Progress = _no_progress) -> dict[str, Any]:
    """The head map (workers.core.headmap) of the template's model and corpus, computed once from the stored
    extraction (which must exist: see ensure_extraction) and stored."""
    from workers.core.headmap import head_map

    every = resolve_heads(template)
    first = next(iter(every.values()))

    def compute() -> dict[str, Any]:
        if not first.extracted(store):
            raise RuntimeError("this model has not been run over this corpus yet")
        spec = read_spec(template.model)
        vectors = ((cell, *head_vectors(store, keys)) for cell, keys in every.items())
        return head_map(vectors, text_ids(store, first), spec.causal,
                        progress=lambda done: progress(done / len(every), f"compared {done} of {len(every)} heads")
                        ).to_dict()

    return get_or_compute(store, head_map_key(first), compute)


def ensure_head_summaries(template: HeadRequest, store: Store, progress: Progress = _no_progress) -> int:
    """Every head's summary (ensure_head_summary) of the template's model and corpus; returns how many heads."""
    every = resolve_heads(template)
    ensure_extraction(template, store, progress, next(iter(every.values())))
    for done, ((layer, head), keys) in enumerate(every.items()):
        progress(done / len(every), f"summarised {done} of {len(every)} heads")
        ensure_head_summary(replace(template, layer=layer, head=head), store, keys)
    return len(every)


def ensure_text_attention(request: HeadRequest, store: Store, keys: ViewKeys | None = None) -> TextAttention:
    """The head's attention within every text (workers.core.attention.attention_within_texts) and the norm of each
    token's value vector, from its stored q, k, v (which must exist: see ensure_extraction), computed once and
    stored; what the views draw a selected text's lines from."""
    keys = keys or resolve(request)
    causal = read_spec(request.model).causal

    def compute() -> dict[str, np.ndarray]:
        q, k = head_vectors(store, keys)
        values = store.get_arrays(keys.v) if keys.v else None
        norms = None if values is None else np.linalg.norm(values["v"].astype(np.float32), axis=1)
        return TextAttention(*attention_within_texts(q, k, text_ids(store, keys), causal), norms).to_arrays()

    return TextAttention.from_arrays(get_or_compute(store, text_attention_key(keys, causal), compute, arrays=True))


def ensure_position_mean(request: HeadRequest, store: Store, keys: ViewKeys | None = None) -> dict[str, np.ndarray]:
    """The head's mean attention by (query, key) position over every text, mean and count [P, P] (P by the
    model's modality: POSITIONS_KEPT; workers.core.attention.position_mean of the stored text attention), computed
    once and stored."""
    keys, spec = keys or resolve(request), read_spec(request.model)

    def compute() -> dict[str, np.ndarray]:
        within = ensure_text_attention(request, store, keys)
        mean, count = position_mean(within.attention, within.offsets, POSITIONS_KEPT[spec.modality])
        return {"mean": mean.astype(np.float32), "count": count.astype(np.int32)}

    return get_or_compute(store, position_mean_key(keys, spec.causal), compute, arrays=True)


def _view_stage(request: HeadRequest, keys: ViewKeys, store: Store, progress: Progress) -> dict[str, Any]:
    """The picture: its keys."""
    return {"keys": ensure_head_view(request, store, progress, keys).__dict__}


def _fidelity_stage(request: HeadRequest, keys: ViewKeys, store: Store, progress: Progress) -> dict[str, Any]:
    """The picture, then its fidelity: the picture's keys."""
    ensure_head_view(request, store, progress, keys)
    progress(0.95, "measuring how faithful the picture is")
    ensure_view_fidelity(request, store, keys)
    return {"keys": keys.__dict__}


def _summaries_stage(request: HeadRequest, keys: ViewKeys, store: Store, progress: Progress) -> dict[str, Any]:
    """Every head's summary of the request's model and corpus."""
    return {"heads": ensure_head_summaries(corpus_template(request), store, progress)}


def _head_map_stage(request: HeadRequest, keys: ViewKeys, store: Store, progress: Progress) -> dict[str, Any]:
    """The model's head map over the corpus (after its extraction)."""
    ensure_extraction(request, store, progress, keys)
    return {"heads": len(ensure_head_map(request, store, progress)["cells"])}


def _attention_stage(request: HeadRequest, keys: ViewKeys, store: Store, progress: Progress) -> dict[str, Any]:
    """The head's attention within every text, then its mean by position (after its extraction)."""
    ensure_extraction(request, store, progress, keys)
    progress(0.9, "computing this head's attention within each text")
    texts = len(ensure_text_attention(request, store, keys).offsets) - 1
    ensure_position_mean(request, store, keys)
    return {"texts": texts}


StageRunner = Callable[[HeadRequest, ViewKeys, Store, Progress], dict[str, Any]]
STAGE_RUNNERS: dict[str, StageRunner] = {"view": _view_stage, "fidelity": _fidelity_stage,
                                         "summaries": _summaries_stage, "headmap": _head_map_stage,
                                         "attention": _attention_stage}


def job_keys(job: dict[str, Any]) -> tuple[HeadRequest, ViewKeys]:
    """A job's request, checked against its model (ValueError when it does not fit), and its store keys: resolved
    once per job, then handed to everything the job runs."""
    request = HeadRequest.from_dict(job)
    spec = read_spec(request.model)
    validate(request, spec)
    return request, resolve(request, spec=spec)


def run_stage(job: dict[str, Any], store: Store, progress: Progress = _no_progress,
              keys: ViewKeys | None = None) -> dict[str, Any]:
    """Compute what a job names (workers.contracts.requests.job_request) and store it; returns what the job record
    keeps (a picture's keys, or how many heads or texts were measured). `keys`: job_keys' own, when the caller
    resolved them already."""
    request, keys = (HeadRequest.from_dict(job), keys) if keys is not None else job_keys(job)
    return STAGE_RUNNERS[stage_of(job)](request, keys, store, progress)


assert set(STAGE_RUNNERS) == set(STAGES), "every stage a job may name has a runner"
assert all(callable(globals().get(result.computed_by)) for result in STORED_RESULTS), "each result has its function"
