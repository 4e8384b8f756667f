"""From a request to the store keys of everything it reads; cheap (config and corpus files, no model, no scipy),
so the web process resolves keys itself."""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from workers.config import settings
from workers.contracts.choices import HEAD_MAP_SAMPLE_TEXTS, NORMALISATIONS, params_of
from workers.contracts.choices import METHODS as METHOD_CHOICES
from workers.contracts.requests import HeadRequest, ViewKeys, stage_of
from workers.contracts.specs import ModelSpec
from workers.core.attention import kv_head_for
from workers.corpora.corpus import Corpus, ImageCorpus, load_corpus
from workers.corpora.uploads import upload_path
from workers.models.registry import model_source, read_spec
from workers.store import Store, content_key

PROJECTION_PARAMS: dict[str, dict[str, Any]] = {c.value: params_of(METHOD_CHOICES, c.value) for c in METHOD_CHOICES}
PREVIEW_PARAMS: dict[str, dict[str, Any]] = {c.value: params_of(METHOD_CHOICES, c.value, preview=True)
                                             for c in METHOD_CHOICES}
METHOD_NAMES = {c.value: c.name for c in METHOD_CHOICES}


@dataclass(frozen=True)
class StoredResult:
    """One kind of stored result: what its key names, its version (raised whenever its computation changes, so
    results of the old computation are never read again) and the function of workers.pipeline.stages that gets or
    computes it."""

    name: str
    inputs: str
    version: int
    computed_by: str


STORED_RESULTS: tuple[StoredResult, ...] = (
    StoredResult("extraction", "model source and revision, model dtype (QK_ATLAS_DTYPE, unless float32), corpus "
                 "content, token limits (tokens table; q, k, v of every head)", 1, "ensure_extraction"),
    StoredResult("transform", "q, k and tokens table of the head, normalisation and its parameters", 1,
                 "ensure_transform"),
    StoredResult("picture", "extraction, layer, head, normalisation, projection and its parameters, dims", 1,
                 "ensure_head_view"),
    StoredResult("fidelity", "picture", 4, "ensure_view_fidelity"),
    StoredResult("summary", "q, k and tokens table of the head", 2, "ensure_head_summary"),
    StoredResult("headmap", "tokens table and every head's q, k; texts sampled", 1, "ensure_head_map"),
    StoredResult("text attention", "q, k, v and tokens table of the head, causal (every text's attention; value "
                 "norms)", 1, "ensure_text_attention"),
    StoredResult("position mean", "text attention, positions kept", 1, "ensure_position_mean"),
)
VERSIONS: dict[str, int] = {result.name: result.version for result in STORED_RESULTS}


def stored_results_table() -> str:
    """docs/architecture.md's table of stored results (tests/unit/test_docs.py checks the doc holds exactly this)."""
    lines = ["| result | its key names | version | got or computed by |", "|---|---|---|---|"]
    lines += [f"| {r.name} | {r.inputs} | {r.version} | `{r.computed_by}` |" for r in STORED_RESULTS]
    return "\n".join(lines)


def projection_params(method: str, preview: bool) -> dict[str, Any]:
    """Projection parameters: full quality, or the faster preview the matrix draws."""
    return (PREVIEW_PARAMS if preview else PROJECTION_PARAMS)[method]


def estimator_params(method: str, preview: bool) -> dict[str, Any]:
    """The projection parameters the estimator takes: projection_params less the store-only "version"."""
    return {name: value for name, value in projection_params(method, preview).items() if name != "version"}


def picture_label(method: str, preview: bool) -> str:
    """The method's name in progress messages, e.g. "UMAP preview"."""
    return METHOD_NAMES[method] + (" preview" if preview else "")


def normalisation_params(method: str) -> dict:
    """What, beside its name, determines a normalisation's output (part of the picture's store key)."""
    return params_of(NORMALISATIONS, method)


def corpus_for(ref: str) -> Corpus | ImageCorpus:
    """The corpus a request names, under the configured limits (cached until its file or folder changes)."""
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
    """What determines the tokens table and q/k: model and revision, the dtype it runs in, corpus content,
    truncation. The device is not named: float32 is true float32 on every device (no TF32), so a CPU and a GPU
    worker store the same numbers (to float32 rounding, below the float16 the vectors are stored in), and the web
    process, which resolves keys, cannot know where a job will run."""
    source = model_source(model)
    config = settings()
    params = {"model": source.location if source.kind == "hub" else model, "revision": source.revision,
              "corpus": corpus.content_hash, "max_tokens": config.max_tokens_per_text,
              "max_total_tokens": config.max_total_tokens, "roles": "qkv", "version": VERSIONS["extraction"]}
    if config.dtype != "float32":  # float32, the default, keeps the keys that stores written before it hold
        params["dtype"] = config.dtype
    return params


def vector_key(base: dict[str, Any], role: str, layer: int, head: int) -> str:
    """Key of one head's q (role 'q', query head) or k (role 'k', key head)."""
    return content_key(role, {**base, "layer": layer, "head": head})


def resolve(request: HeadRequest, base: dict[str, Any] | None = None, spec: ModelSpec | None = None) -> ViewKeys:
    """Store keys for a request (cheap: reads the corpus and config files, no model); `base` and `spec` skip them
    (resolve_heads reads them once for every head)."""
    spec = spec or read_spec(request.model)
    base = base or extraction_params(request.model, corpus_for(request.corpus))
    view = {**base, "layer": request.layer, "head": request.head, "norm": request.norm,
            "norm_params": normalisation_params(request.norm),
            "method": request.method, "dims": request.dims,
            "params": projection_params(request.method, request.preview), "version": VERSIONS["picture"]}
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
    """Keys of every (layer, head) of the template's model, corpus and projection (spec and corpus read once)."""
    spec = read_spec(template.model)
    base = extraction_params(template.model, corpus_for(template.corpus))
    return {(layer, head): resolve(replace(template, layer=layer, head=head), base, spec)
            for layer in range(spec.n_layers) for head in range(spec.n_heads)}




def transform_key(keys: ViewKeys, norm: str) -> str:
    """Store key of a head's normalisation (from its q, k and tokens table, and the normalisation's parameters)."""
    return content_key("transform", {"q": keys.q, "k": keys.k, "tokens": keys.tokens, "norm": norm,
                                     "norm_params": normalisation_params(norm),
                                     "version": VERSIONS["transform"]})


def fidelity_key(keys: ViewKeys) -> str:
    """Store key of a view's fidelity (it depends on its picture, hence on everything behind it)."""
    return content_key("fidelity", {"coords": keys.coords, "version": VERSIONS["fidelity"]})


def summary_key(keys: ViewKeys) -> str:
    """Store key of a head's summary (it depends on its q, k and tokens table only)."""
    return content_key("summary", {"q": keys.q, "k": keys.k, "tokens": keys.tokens,
                                   "version": VERSIONS["summary"]})


def text_attention_key(keys: ViewKeys, causal: bool) -> str:
    """Store key of a head's attention within every text and its value norms (from its q, k, v and tokens
    table)."""
    return content_key("textattention", {"q": keys.q, "k": keys.k, "v": keys.v, "tokens": keys.tokens,
                                         "causal": causal, "version": VERSIONS["text attention"]})


# the position mean covers query and key positions 0..P-1: a text's first 48, an image's CLS and up to 16 x 16 patches
POSITIONS_KEPT = {"text": 48, "image": 257}


def position_mean_key(keys: ViewKeys, causal: bool) -> str:
    """Store key of a head's mean attention by position (from its text attention)."""
    return content_key("positionmean", {"text_attention": text_attention_key(keys, causal),
                                        "positions": POSITIONS_KEPT, "version": VERSIONS["position mean"]})


def head_map_key(keys: ViewKeys) -> str:
    """Store key of a model's head map over a corpus (it depends on the extraction only)."""
    return content_key("headmap", {"tokens": keys.tokens, "sample_texts": HEAD_MAP_SAMPLE_TEXTS,
                                   "version": VERSIONS["headmap"]})


def stored_head_map(template: HeadRequest, store: Store) -> dict[str, Any] | None:
    """The stored head map of the template's model and corpus, or None (cheap: no computation)."""
    return store.get_json(head_map_key(resolve(template)))


def corpus_template(request: HeadRequest) -> HeadRequest:
    """The one request that stands for a model and corpus (summaries, head map): head and picture settings at
    their defaults."""
    return HeadRequest(model=request.model, corpus=request.corpus)


def head_template(request: HeadRequest) -> HeadRequest:
    """The one request that stands for a head of a model over a corpus (its attention): picture settings at their
    defaults."""
    return HeadRequest(model=request.model, corpus=request.corpus, layer=request.layer, head=request.head)


def attention_keys(keys: ViewKeys, causal: bool) -> tuple[str, str]:
    """Store keys of a head's text attention and of its position mean."""
    return text_attention_key(keys, causal), position_mean_key(keys, causal)


def stage_done(job: dict[str, Any], store: Store) -> bool:
    """Whether what a job computes is stored (cheap: presence of its keys)."""
    request, stage = HeadRequest.from_dict(job), stage_of(job)
    if stage == "summaries":
        return all(store.has(summary_key(keys)) for keys in resolve_heads(corpus_template(request)).values())
    keys = resolve(request)
    if stage == "fidelity":
        return keys.complete(store) and store.has(fidelity_key(keys))
    if stage == "headmap":
        return store.has(head_map_key(keys))
    if stage == "attention":
        return all(store.has(key) for key in attention_keys(keys, read_spec(request.model).causal))
    return keys.complete(store)
