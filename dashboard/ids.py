"""Every component id in one place (the page contract ids are `single-graph`, `matrix-graph`, `sentence-view`,
`headmap-graph`, `compare-a-graph`, `compare-b-graph`)."""

SINGLE = "single"  # picture components (dashboard.picture), by prefix: the single view's picture,
COMPARE_A = "compare-a"  # side by side's picture A
COMPARE_B = "compare-b"  # and picture B


def picture(prefix: str, part: str) -> str:
    """The id of one part of a picture component: `single` + `graph` -> `single-graph`."""
    return f"{prefix}-{part}"


URL = "url"
URL_CANONICAL = "url-canonical"
URL_PUSHED = "url-pushed"  # the query an intent just pushed (its notices stay when the URL sync runs)
NOTICES = "notices"
VIEW_TABS = "view-tabs"
MODEL = "model-dropdown"
CORPUS = "corpus-dropdown"
LAYER = "layer-dropdown"
HEAD = "head-dropdown"
METHOD = "method-dropdown"
DIMS = "dims-radio"
NORM = "norm-dropdown"
COLOR = "color-dropdown"
SHOW = "show-radio"
LABELS = "labels-switch"
SEARCH = "search-input"
SEARCH_COUNT = "search-count"
HIDE_SPECIAL = "hide-special-switch"
SENTENCE_WEIGHT = "sentence-weight"
PREV_LAYER = "prev-layer"
NEXT_LAYER = "next-layer"
PREV_HEAD = "prev-head"
NEXT_HEAD = "next-head"
CLEAR_SELECTION = "clear-selection"
COPY_LINK = "copy-link"
DOWNLOAD_CSV = "download-csv"
DOWNLOAD_PARQUET = "download-parquet"
DOWNLOAD = "download"
SINGLE_REQUEST = picture(SINGLE, "request")
SINGLE_JOB = picture(SINGLE, "job")  # the view being computed: its request and when the page asked
SINGLE_POLL = picture(SINGLE, "poll")
VIEW_STYLE = "view-style"
MATRIX_REQUEST = "matrix-request"
SINGLE_KEYS = picture(SINGLE, "keys")
SINGLE_DRAWN = "single-drawn"
HEADING = "view-heading"
SUBHEADING = "view-subheading"
PROGRESS = "progress-bar"
PROGRESS_WRAP = "progress-wrap"
STATUS = "view-status"
SELECTION = "selection-summary"
SINGLE_PANEL = "single-panel"
SINGLE_GRAPH = picture(SINGLE, "graph")
HOVER_PANEL = "hover-panel"
MATRIX_PANEL = "matrix-panel"
MATRIX_GRAPH = "matrix-graph"
MATRIX_PROGRESS = "matrix-progress"
MATRIX_STATUS = "matrix-status"
SENTENCE_PANEL = "sentence-panel"
SENTENCE_VIEW = "sentence-view"
SENTENCE_GRAPH = "sentence-graph"
AGGREGATE_GRAPH = "aggregate-graph"
MATRIX_INTERVAL = "matrix-interval"
MATRIX_DRAWN = "matrix-drawn"
IMAGE_FORMAT = "image-format"
PROGRESS_TEXT = "progress-text"
HEALTH = "backend-health"
HEALTH_INTERVAL = "health-interval"
HEALTH_STATE = "health-state"
UPLOAD = "corpus-upload"
UPLOAD_NOTICE = "upload-notice"
CLIENT = "client-id"
MATRIX_DEFERRED = "matrix-deferred"
UPLOAD_BOX = "corpus-upload-box"
FIDELITY = "view-fidelity"
MATRIX_ORDER = "matrix-order"
MATRIX_KEEP = "matrix-keep"
MATRIX_TINT = "matrix-tint"
HEADMAP_PANEL = "headmap-panel"
HEADMAP_GRAPH = "headmap-graph"
HEADMAP_STATUS = "headmap-status"
HEADMAP_INTERVAL = "headmap-interval"
RELATED_HEADS = "related-heads"
MEASURES_POLL = "measures-poll"  # the one-head lines (fidelity, related heads) look again while their jobs run
COMPARE_PANEL = "compare-panel"
COMPARE_A_GRAPH = picture(COMPARE_A, "graph")
COMPARE_B_GRAPH = picture(COMPARE_B, "graph")
COMPARE_A_TITLE = picture(COMPARE_A, "title")
COMPARE_B_TITLE = picture(COMPARE_B, "title")
COMPARE_STATUS = "compare-status"
COMPARE_B_FIDELITY = "compare-b-fidelity"  # picture B's fidelity line
COMPARE_MEASURES_POLL = "compare-measures-poll"  # picture B's fidelity line looks again while its job runs
COMPARE_B_KEYS = picture(COMPARE_B, "keys")
COMPARE_B_REQUEST = picture(COMPARE_B, "request")
COMPARE_B_JOB = picture(COMPARE_B, "job")
COMPARE_B_POLL = picture(COMPARE_B, "poll")
COMPARE_A_REQUEST = picture(COMPARE_A, "request")
COMPARE_A_JOB = picture(COMPARE_A, "job")
COMPARE_A_POLL = picture(COMPARE_A, "poll")
COMPARE_A_KEYS = picture(COMPARE_A, "keys")
B_MODEL = "b-model"
B_CORPUS = "b-corpus"
B_LAYER = "b-layer"
B_HEAD = "b-head"
B_VECTORS = "b-vectors"
