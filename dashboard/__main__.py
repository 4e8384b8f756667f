"""`python -m dashboard [--host H] [--port P]`: serve the dashboard; `qk-atlas serve` runs this (flags: workers.cli)."""

from __future__ import annotations

import sys

from dashboard.app import create_app
from workers.cli import build_parser


def main(argv: list[str] | None = None) -> int:
    """Run the dashboard until interrupted."""
    args = build_parser().parse_args(["serve", *(sys.argv[1:] if argv is None else argv)])
    app = create_app()
    print(f"qk-atlas: open http://{args.host}:{args.port}/", file=sys.stderr)
    app.run(host=args.host, port=args.port, debug=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
