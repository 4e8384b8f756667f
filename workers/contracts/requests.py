"""What a view asks for (HeadRequest) and the store keys it reads (ViewKeys): plain data every process shares."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from workers.contracts.choices import DEFAULT_METHOD, DEFAULT_NORMALISATION, METHODS, NORMALISATIONS, values
from workers.contracts.specs import BUNDLED_ALIAS, ModelSpec

if TYPE_CHECKING:
    from workers.store import Store

DEFAULT_CORPUS = "default"
DEFAULT_IMAGE_CORPUS = "images"
REPEATED_CORPUS = "repeated"  # strings of random corpus words, each written twice (repeated_word_texts)
VECTORS = ("qk", "v")


@dataclass(frozen=True)
class HeadRequest:
    """Everything that determines one head's picture."""

    model: str = BUNDLED_ALIAS
    corpus: str = DEFAULT_CORPUS
    layer: int = 0
    head: int = 0
    norm: str = DEFAULT_NORMALISATION
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
    if request.norm not in values(NORMALISATIONS):
        raise ValueError(f"unknown normalisation {request.norm!r}")
    if request.method not in values(METHODS):
        raise ValueError(f"unknown projection {request.method!r}")
    if request.dims not in (2, 3):
        raise ValueError(f"dims must be 2 or 3, got {request.dims}")
    if request.vectors not in VECTORS:
        raise ValueError(f"unknown vectors {request.vectors!r}; choose one of {', '.join(VECTORS)}")


# what a job computes (workers.pipeline.stages.STAGE_RUNNERS)
STAGES = ("view", "fidelity", "summaries", "headmap", "attention")


def job_request(request: HeadRequest, stage: str = "view") -> dict[str, Any]:
    """What a job carries: the request's fields, and its stage unless it is the picture itself (so a picture's job
    id is its request's)."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; choose one of {', '.join(STAGES)}")
    return request.to_dict() if stage == "view" else {**request.to_dict(), "stage": stage}


def stage_of(job: dict[str, Any]) -> str:
    """The stage a job computes ("view" when it names none); ValueError for an unknown one."""
    stage = job.get("stage", "view")
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; choose one of {', '.join(STAGES)}")
    return stage
