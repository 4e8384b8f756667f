"""Pure computation for qk-atlas: corpus, model, extraction, normalisation, projection, store.

Nothing in this package imports Dash; the dashboard reads results through `workers.store`.
"""

__version__ = "0.1.0"
