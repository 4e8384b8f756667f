"""qk-atlas dashboard: Dash UI over results in `workers.store`; never imports torch."""
