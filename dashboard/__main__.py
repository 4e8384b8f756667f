"""`python -m dashboard [--host H] [--port P]`: serve the dashboard; `qk-atlas serve` runs this (flags: workers.cli)."""

from __future__ import annotations

import logging
import sys

from dashboard.jobs import start_local_workers
from workers.cli import build_parser
from workers.config import settings


def main(argv: list[str] | None = None) -> int:
    """Run the dashboard until interrupted; the local workers start first, so the model loads while the web
    app's modules import."""
    args = build_parser().parse_args(["serve", *(sys.argv[1:] if argv is None else argv)])
    cache_dir = settings().cache_dir
    cache_dir.mkdir(parents=True, exist_ok=True)
    local_worker = start_local_workers(cache_dir)
    from dashboard.app import create_app

    app = create_app(cache_dir, start_worker=False, local_worker=local_worker)
    print(f"qk-atlas: open http://{args.host}:{args.port}/", file=sys.stderr)
    for name in ("werkzeug", "dash.dash"):  # no line per request, no second address: errors only
        logging.getLogger(name).setLevel(logging.ERROR)
    app.run(host=args.host, port=args.port, debug=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
