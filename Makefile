# The README's two commands: `make serve` and `make test` (each sets up .venv first).
HOST ?= 127.0.0.1
PORT ?= 8050

.PHONY: serve test lint bench

serve:
	scripts/setup.sh
	.venv/bin/qk-atlas serve --host $(HOST) --port $(PORT)

test:
	scripts/setup.sh test
	.venv/bin/ruff check .
	.venv/bin/python -m pytest -n 2 --dist loadfile

bench:
	scripts/setup.sh test
	.venv/bin/python bench/run.py
