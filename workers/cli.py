"""`qk-atlas serve`, `qk-atlas export` (the command-line contract in DESIGN.md) and `qk-atlas heads`."""

from __future__ import annotations

import argparse
import json
import os
import sys

from workers.contracts.choices import (
    DEFAULT_DIMS,
    DEFAULT_METHOD,
    DEFAULT_NORMALISATION,
    DIMS,
    METHODS,
    NORMALISATIONS,
    values,
)
from workers.contracts.specs import ModelError
from workers.corpora.corpus import CorpusError

UNLISTED_MODEL_COMMANDS = ("export", "heads")  # commands that may name a local folder or hub id


def build_parser() -> argparse.ArgumentParser:
    """Argument parser for both subcommands."""
    parser = argparse.ArgumentParser(prog="qk-atlas", description="Joint query-key embeddings of attention heads.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the dashboard (embedded default)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8050)
    export = sub.add_parser("export", help="write one head's q, k and projection to .npz, .csv or .parquet")
    export.add_argument("--model", default="minilm",
                        help="registry alias (minilm), local model folder or Hugging Face id (export and heads only; "
                             "the dashboard offers registry models alone)")
    export.add_argument("--corpus", default="default", help="'default' or a .txt/.csv/.jsonl file")
    export.add_argument("--layer", type=int, required=True)
    export.add_argument("--head", type=int, required=True)
    _picture_flags(export)
    export.add_argument("--dims", type=int, choices=[int(d) for d in values(DIMS)], default=DEFAULT_DIMS)
    export.add_argument("--out", required=True, help="output file: .npz, .csv or .parquet")
    heads = sub.add_parser("heads", help="one row per head: summary numbers (attention to previous / next / first / "
                                         "special tokens, entropy, norm ratio, q-k overlap) and the fidelity of "
                                         "its 2D picture beside the no-picture baseline, as .csv or .parquet")
    heads.add_argument("--model", default="minilm", help="registry alias, local model folder or Hugging Face id")
    heads.add_argument("--corpus", default="default", help="'default' or a .txt/.csv/.jsonl file")
    _picture_flags(heads)
    heads.add_argument("--out", required=True, help="output file: .csv or .parquet")
    return parser


def _picture_flags(parser: argparse.ArgumentParser) -> None:
    """--method and --norm, from the table of choices (the dashboard's defaults)."""
    parser.add_argument("--method", choices=values(METHODS), default=DEFAULT_METHOD,
                        help=_choices_help(METHODS, DEFAULT_METHOD))
    parser.add_argument("--norm", choices=values(NORMALISATIONS), default=DEFAULT_NORMALISATION,
                        help=_choices_help(NORMALISATIONS, DEFAULT_NORMALISATION))


def _choices_help(table, default: str) -> str:
    """--help text of a flag: each value and what it does (the table of choices' own words)."""
    return "; ".join(f"{c.value}{' (default)' if c.value == default else ''}: {c.help}"
                     for c in table).replace("%", "%%")


def _progress(fraction: float, message: str) -> None:
    """Progress on stderr."""
    print(f"\r[{int(100 * fraction):3d}%] {message:<60}", end="", file=sys.stderr, flush=True)


def export(args: argparse.Namespace) -> int:
    """Run the export subcommand."""
    from pathlib import Path

    from workers.contracts.requests import HeadRequest
    from workers.core.export import FORMATS, write_export
    from workers.pipeline.stages import export_arrays, export_metrics
    from workers.store import open_store

    if Path(args.out).suffix.lower() not in FORMATS:
        raise ValueError(f"unsupported output {args.out!r}: use one of {', '.join(FORMATS)}")
    request = HeadRequest(model=args.model, corpus=args.corpus, layer=args.layer, head=args.head,
                          norm=args.norm, method=args.method, dims=args.dims)
    store = open_store()
    arrays = export_arrays(request, store, _progress)
    notes = [str(note) for note in arrays.pop("notes", [])]
    out = write_export(arrays, args.out)
    metrics_path = out.with_name(out.name + ".metrics.json")
    metrics_path.write_text(json.dumps(export_metrics(request, store, notes), indent=2) + "\n")
    print(f"\nwrote {out} ({len(arrays['token']):,} tokens, coords {arrays['coords'].shape}) and {metrics_path.name}",
          file=sys.stderr)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    return 0


def heads(args: argparse.Namespace) -> int:
    """Run the heads subcommand: every head's summary in one table."""
    from pathlib import Path

    import pandas as pd

    from workers.contracts.requests import HeadRequest
    from workers.models.registry import read_spec
    from workers.pipeline.stages import ensure_extraction, ensure_head_summary, ensure_head_view, ensure_view_fidelity
    from workers.store import open_store

    out = Path(args.out)
    if out.suffix.lower() not in (".csv", ".parquet"):
        raise ValueError(f"unsupported output {args.out!r}: use .csv or .parquet")
    spec, store = read_spec(args.model), open_store()
    ensure_extraction(HeadRequest(model=args.model, corpus=args.corpus), store, _progress)
    rows = []
    cells = [(layer, head) for layer in range(spec.n_layers) for head in range(spec.n_heads)]
    for done, (layer, head) in enumerate(cells, start=1):
        request = HeadRequest(model=args.model, corpus=args.corpus, layer=layer, head=head, norm=args.norm,
                              method=args.method)
        summary = ensure_head_summary(request, store)
        ensure_head_view(request, store)
        picture = ensure_view_fidelity(request, store)["picture"]
        rows.append({"layer": layer, "head": head, **summary, **fidelity_columns(picture)})
        _progress(done / len(cells), f"head summaries and pictures {done}/{len(cells)}")
    frame = pd.DataFrame(rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out, index=False) if out.suffix.lower() == ".csv" else frame.to_parquet(out, index=False)
    print(f"\nwrote {out} ({len(frame)} heads)", file=sys.stderr)
    return 0


def fidelity_columns(picture: dict[str, float]) -> dict[str, float]:
    """The picture's fidelity as `heads` columns, each beside its no-picture baseline."""
    return {"fidelity_top1_in_3": picture["top1_in_k"], "baseline_top1_in_3": picture["baseline"],
            "non_sink_share": picture["non_sink_share"], "fidelity_top1_in_3_non_sink": picture["top1_in_k_non_sink"],
            "baseline_non_sink": picture["baseline_non_sink"], "fidelity_rank_correlation": picture["rank_correlation"]}


def serve(args: argparse.Namespace) -> int:
    """Run the dashboard until interrupted: `python -m dashboard` in this process (the web app is its own program;
    the workers never import it)."""
    os.execv(sys.executable, [sys.executable, "-m", "dashboard", "--host", args.host, "--port", str(args.port)])
    return 0  # not reached: execv replaces this process


def allow_unlisted_models_for(command: str) -> None:
    """export and heads are the user's own commands: local folders and hub ids are allowed beside the registry.
    serve answers anyone who reaches the page, so the server and its local workers take registry models only."""
    if command in UNLISTED_MODEL_COMMANDS:
        os.environ["QK_ATLAS_ALLOW_UNLISTED_MODELS"] = "1"
    else:
        os.environ.pop("QK_ATLAS_ALLOW_UNLISTED_MODELS", None)


def check_placement(command: str) -> None:
    """Refuse to start, with a one-line ValueError, on a QK_ATLAS_DEVICE / _DTYPE / _DEVICE_MAP of the wrong form or
    naming what this machine lacks (a GPU, accelerate). serve imports torch for it only when the device setting could
    name a missing one (auto and cpu always exist): the web process never loads torch."""
    from workers.config import settings

    config = settings()
    if command == "serve" and not config.device_may_be_missing():
        return
    from workers.models.devices import placement

    placement(config)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `qk-atlas` console script."""
    args = build_parser().parse_args(argv)
    allow_unlisted_models_for(args.command)
    try:
        check_placement(args.command)
        return {"export": export, "heads": heads, "serve": serve}[args.command](args)
    except (CorpusError, ModelError, ValueError, OSError) as exc:
        print(f"\nqk-atlas: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
