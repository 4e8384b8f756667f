"""The table of choices: every normalisation, projection, dimension count and colour mode with its label, its
default and its parameters, defined once.

The dashboard (menus, headings, matrix notes), the URL parser, the command line, the pipeline (estimator
parameters and store keys), the metrics file and the README's table of choices all read this module; it imports
nothing beyond the standard library.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Choice:
    """One value of a menu: what the URL and the command line write, what people read, and what it computes with."""

    value: str  # in URLs, on the command line, in metrics files
    label: str  # in the dashboard's menu
    name: str  # in headings and sentences
    help: str  # one line: what it does
    params: dict[str, Any] = field(default_factory=dict)  # everything beside the value that determines the result
    preview: dict[str, Any] | None = None  # the matrix cells' faster parameters (None: the same as params)
    preview_note: str = ""  # said under the matrix when its cells are previews
    modality: str = ""  # "image" / "text": only meaningful for that kind of model ("" for all)
    from_attention: bool = False  # a picture placed from the head's attention, not from the points alone
    # a method placed from the points alone: "module:name" of a function (points [n, d], dims, seed, **params) ->
    # [n, dims], or of a scikit-learn-style estimator class taking n_components (and random_state if it has one)
    estimator: str = ""
    reading: str = ""  # the guide line under the heading: how to read a picture made with this choice


# The attention layout (workers.core.layout): each query linked to the keys it attends to most.
LAYOUT_TOP_KEYS = 3
LAYOUT_NEIGHBOURS = 10
LAYOUT_STRUCTURE_WEIGHT = 0.2
LAYOUT_SHARPNESS = 4.0
LAYOUT_EPOCHS = 100  # from a PCA start, 50 to 200 epochs gave the same fidelity (bench/normalisation.py)

# The picture fitted to attention (workers.core.fitted): distance reproduces each query's attention.
FITTED_ITERATIONS = 60  # L-BFGS steps (bench/normalisation.py: the 20-step preview 0.954 top-1-in-3, these 0.974)
FITTED_TAU = 0.1  # softmax temperature over squared distances, keys' RMS radius 1
FITTED_ANCHOR = 0.1  # how strongly non-sink keys keep the shape of their principal components
FITTED_GAP_WEIGHT = 1.0  # how strongly the query and key clouds are centred on each other

# The fitted normalisation (workers.core.normalize): a small grid of translations and scales, scored on a sample.
FIT_TRANSLATIONS: tuple[str, ...] = ("none", "centroid", "equal-norm")
FIT_SCALE_MULTIPLIERS: tuple[float, ...] = (1.0, 1.25, 1.5, 2.0)
FIT_SPREAD_RATIO_LIMIT = 2.0  # the fit keeps the key cloud within this factor of the query cloud's size
FIT_SAMPLE_TEXTS = 48
HEAD_MAP_SAMPLE_TEXTS = 64  # texts whose queries the head map compares heads on

NORMALISATIONS: tuple[Choice, ...] = (
    Choice("fit", "fitted for fidelity (default)", "fit",
           "per head, the key translation and query/key scale whose 2D PCA picture is most faithful to attention",
           params={"translations": FIT_TRANSLATIONS, "multipliers": FIT_SCALE_MULTIPLIERS,
                   "sample_texts": FIT_SAMPLE_TEXTS, "score": "pca-2d top-1-in-3",
                   "spread_ratio_limit": FIT_SPREAD_RATIO_LIMIT, "version": 2},
           reading="Keys moved and rescaled per head (attention unchanged) so that a query near a key tends to "
                   "attend to it."),
    Choice("none", "none (raw q, k)", "none", "the raw query and key vectors",
           reading="Raw vectors: attention follows the dot product q·k, so a query near a key need not attend to "
                   "it."),
    Choice("scale", "scale", "scale", "queries scaled by c and keys by 1/c so their mean norms match",
           reading="Queries and keys rescaled to equal mean norms (attention unchanged): nearness follows q·k more "
                   "closely."),
    Choice("scale+translate", "scale + translate (AttentionViz)", "scale+translate",
           "scaled as above, then keys translated onto the query centroid, as in AttentionViz",
           reading="Keys moved onto the queries' centre and rescaled, as in AttentionViz: a query near a key tends "
                   "to attend to it."),
)

# Matrix cells: fewer optimisation steps (bench/umap_settings.py: UMAP 50 epochs is 3.4x faster than 200, the
# most-attended key among the 3 nearest for 65% of queries instead of 69%, rank correlation unchanged).
METHODS: tuple[Choice, ...] = (
    Choice("pca", "PCA", "PCA", "principal components of the queries and keys together (linear, fast)",
           params={"version": 2},  # "version" only keys the store (2: duplicates not merged)
           estimator="workers.models.projection:pca_embedding"),  # GPU: torch
    Choice("umap", "UMAP", "UMAP", "UMAP (n_neighbors 15, min_dist 0.1, 200 epochs) of the queries and keys together",
           params={"n_neighbors": 15, "min_dist": 0.1, "n_epochs": 200},
           preview={"n_neighbors": 15, "min_dist": 0.1, "n_epochs": 50},
           preview_note="cells are UMAP previews (50 epochs; the opened head runs the full 200)",
           estimator="workers.models.projection:umap_embedding"),  # GPU: cuML
    Choice("tsne", "t-SNE", "t-SNE", "t-SNE of the queries and keys together", params={},
           preview={"early_exaggeration_iter": 125, "n_iter": 250},
           preview_note="cells are t-SNE previews (half the iterations; the opened head runs them all)",
           estimator="workers.core.project:tsne_embedding"),
    Choice("attention", "Attention layout", "attention layout",
           "UMAP over a graph of the head's attention: each query linked to the keys it attends to most",
           params={"n_epochs": LAYOUT_EPOCHS, "top_keys": LAYOUT_TOP_KEYS, "n_neighbors": LAYOUT_NEIGHBOURS,
                   "structure_weight": LAYOUT_STRUCTURE_WEIGHT, "sharpness": LAYOUT_SHARPNESS, "version": 1},
           preview={"n_epochs": 50, "top_keys": LAYOUT_TOP_KEYS, "n_neighbors": LAYOUT_NEIGHBOURS,
                    "structure_weight": LAYOUT_STRUCTURE_WEIGHT, "sharpness": LAYOUT_SHARPNESS, "version": 1},
           preview_note="cells are attention-layout previews (50 epochs; the opened head runs 100)",
           from_attention=True,
           reading="Placed from the head's attention: each query is drawn towards the keys it attends to most."),
    Choice("fitted", "Fitted to attention (default)", "picture fitted to attention",
           "queries and keys placed so that a softmax over distances reproduces each query's attention",
           params={"iterations": FITTED_ITERATIONS, "tau": FITTED_TAU, "anchor": FITTED_ANCHOR,
                   "gap_weight": FITTED_GAP_WEIGHT, "version": 1},
           preview={"iterations": 20, "tau": FITTED_TAU, "anchor": FITTED_ANCHOR, "gap_weight": FITTED_GAP_WEIGHT,
                    "version": 1},
           preview_note="cells are previews of the fitted picture (20 steps; the opened head runs 60)",
           from_attention=True,
           reading="Placed so that distance reproduces attention: a query sits closest to the keys it attends to "
                   "most."),
)

DIMS: tuple[Choice, ...] = (
    Choice("2", "2D", "2D", "a flat picture"),
    Choice("3", "3D", "3D", "a picture to turn (the matrix always draws 2D)"),
)

COLOURS: tuple[Choice, ...] = (
    Choice("role", "query / key", "role", "queries and keys in two colours"),
    Choice("position", "normalised position", "position", "position in the text over its length"),
    Choice("position_mod5", "position mod 5", "position mod 5", "position in the text modulo 5"),
    Choice("kind", "special / punctuation", "kind", "special tokens, punctuation, other tokens"),
    Choice("norm", "vector norm", "norm", "the vector's norm after normalisation"),
    Choice("token_length", "token length (characters)", "token length", "characters in the token",
           modality="text"),
    Choice("frequency", "corpus frequency (log10)", "frequency", "log10 of the token's count in the corpus",
           modality="text"),
    Choice("text_length", "text length (tokens)", "text length", "tokens in the token's text", modality="text"),
    Choice("row", "patch row (images)", "patch row", "the image patch's row", modality="image"),
    Choice("col", "patch column (images)", "patch column", "the image patch's column", modality="image"),
)

ROLE_PLURALS = {"query": "queries", "key": "keys"}  # a role's points in legends, menus and sentences

ATTENTION_METHODS: tuple[str, ...] = tuple(c.value for c in METHODS if c.from_attention)

DEFAULT_NORMALISATION = "fit"
DEFAULT_METHOD = "fitted"
DEFAULT_DIMS = 2
DEFAULT_COLOUR = "role"

TABLES: dict[str, tuple[tuple[Choice, ...], str]] = {  # URL parameter / command-line flag: (choices, default)
    "norm": (NORMALISATIONS, DEFAULT_NORMALISATION), "method": (METHODS, DEFAULT_METHOD),
    "dims": (DIMS, str(DEFAULT_DIMS)), "color": (COLOURS, DEFAULT_COLOUR)}


def values(table: tuple[Choice, ...]) -> tuple[str, ...]:
    """The values of a table, in menu order."""
    return tuple(choice.value for choice in table)


def find(table: tuple[Choice, ...], value: str) -> Choice:
    """The choice with this value (KeyError when there is none)."""
    for choice in table:
        if choice.value == value:
            return choice
    raise KeyError(value)


def for_modality(table: tuple[Choice, ...], modality: str) -> tuple[Choice, ...]:
    """The choices that mean something for a model of this modality ("text" or "image"), in menu order."""
    return tuple(choice for choice in table if choice.modality in ("", modality))


def params_of(table: tuple[Choice, ...], value: str, preview: bool = False) -> dict[str, Any]:
    """A choice's parameters: full quality, or the matrix's faster preview."""
    choice = find(table, value)
    return dict(choice.preview if preview and choice.preview is not None else choice.params)


def markdown_table() -> str:
    """The README's table of choices (tests/unit/test_docs.py checks the README holds exactly this)."""
    lines = ["| URL / flag | value | menu label | default | what it does | matrix preview |",
             "|---|---|---|---|---|---|"]
    for name, (table, default) in TABLES.items():
        flag = f"`{name}=` / `--{name}`" if name != "color" else "`color=` (dashboard only)"
        for choice in table:
            lines.append(f"| {flag} | `{choice.value}` | {choice.label} | {'yes' if choice.value == default else ''} "
                         f"| {choice.help} | {choice.preview_note} |")
    return "\n".join(lines)


VALUES_READING = "The head's value vectors alone: near means the two tokens pass on alike information."


def reading(method: str, norm: str, vectors: str = "qk") -> str:
    """The guide line under a picture's heading: from its method when placed from attention, else from its
    normalisation (value pictures: VALUES_READING)."""
    if vectors == "v":
        return VALUES_READING
    chosen = find(METHODS, method)
    return chosen.reading if chosen.from_attention else find(NORMALISATIONS, norm).reading
