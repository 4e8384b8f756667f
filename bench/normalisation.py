"""Fidelity and time of every picture: normalisations x projections, and the attention layout, per MiniLM head.

Usage: .venv/bin/python bench/normalisation.py [--corpus default|unseen] [--umap-every 4] [--tsne-every 8]
       [--only pca ...] [--norms ...] [--resume] [--shard I/N | --merge] [--tsne-threads 2] [--out OUT]
On the bundled MiniLM over the default corpus, or over `unseen`: 640 sentences of Python's own reference
documentation (the standard library's pydoc_data: technical prose that no choice here was tuned on). PCA under
every normalisation and the attention layout on every head; UMAP (200 epochs, the single view's setting) under
every normalisation on every `--umap-every`-th head, and t-SNE (openTSNE, 250 + 500 iterations) on every
`--tsne-every`-th head (their cost: about 8 and 50 s a head on 2 cores; 25k points a head). Long runs split:
`--shard 0/2` and `--shard 1/2` side by side (each head saved as it ends; `--resume` carries on after a stop),
then `--merge`. UMAP is compiled first. Writes OUT.json and OUT.md, a Markdown table (OUT: bench/results/
normalisation, or normalisation_unseen). Every fidelity figure stands beside the no-picture baseline (a sink or
the previous token), over all queries and over the queries whose most-attended key is not a sink ([CLS], [SEP]).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


UNSEEN_TEXTS = 640


def unseen_corpus(path: Path) -> Path:
    """Write the second corpus: UNSEEN_TEXTS prose sentences of Python's reference documentation (seeded sample)."""
    import random
    import re
    from pydoc_data.topics import topics

    text = re.sub(r"\s+", " ", " ".join(topics[name] for name in sorted(topics)))
    sentences = re.split(r"(?<=[.!?])\s+(?=[A-Z])", text)
    prose = [s for s in sentences if 60 <= len(s) <= 220 and re.match(r"^[A-Z][a-z]", s)
             and not re.search(r"[=_{}\[\]<>*`|\\#@~^]|\.\.\.|\(\)|::", s) and s.count("(") == s.count(")")]
    random.Random(0).shuffle(prose)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(prose[:UNSEEN_TEXTS]) + "\n")
    return path


OVERLAP = "fit, clouds forced to overlap"
OVERLAP_GAP = 0.5


def overlapping_fit(q, k, text_id):
    """The fit's most faithful grid candidate among those whose clouds overlap (centroid gap <= OVERLAP_GAP)."""
    from workers.core.normalize import candidate_transform, fit_transform_for

    _chosen, scores = fit_transform_for(q, k, text_id, causal=False)
    allowed = [s for s in scores if s["centroid_gap"] <= OVERLAP_GAP and 0.5 <= s["spread_ratio"] <= 2.0]
    best = max(allowed or scores, key=lambda s: s["top1_in_k"])
    return candidate_transform(q.astype(np.float64), k.astype(np.float64), best["translation"],
                               best["scale_multiplier"]).apply(q, k)


def measure(q, k, text_id, sinks, norm: str, method: str, extra: dict | None = None) -> dict[str, float]:
    """Seconds to normalise and project, and the picture's fidelity beside the no-picture baseline, for one head
    (sinks bool [N]: the keys that are sinks)."""
    from workers.core.fidelity import picture_fidelity
    from workers.core.fitted import fitted_layout
    from workers.core.layout import attention_layout
    from workers.core.normalize import normalize, picture_layout
    from workers.core.project import Projector
    from workers.pipeline.keys import estimator_params

    start = time.perf_counter()
    q2, k2 = overlapping_fit(q, k, text_id) if norm == OVERLAP else normalize(q, k, norm, text_id, causal=False)
    normalised = time.perf_counter()
    params = {**estimator_params(method.removesuffix("-preview"), method.endswith("-preview")), **(extra or {})}
    if method == "attention":
        coords = attention_layout(q2, k2, text_id, False, 2, **params)
    elif method.startswith("fitted"):
        coords = fitted_layout(q2, k2, text_id, False, sinks, 2, **params)
    else:
        coords = Projector(method, 2, **params).fit_transform(np.vstack([q2, k2]))
    seconds = time.perf_counter() - start
    found = picture_fidelity(q, k, coords, text_id, causal=False, sinks=sinks)
    return {"s_normalise": normalised - start, "s_total": seconds, "top1_in_3": found.top1_in_k,
            "rank_correlation": found.rank_correlation, "top1_in_3_non_sink": found.top1_in_k_non_sink,
            "non_sink_share": found.non_sink_share, "baseline": found.baseline,
            "baseline_non_sink": found.baseline_non_sink, **picture_layout(coords[:len(q)], coords[len(q):])}


def cells_figure(value: float, digits: int = 3) -> str:
    """A table figure, '—' where a row's per-head results predate the measure."""
    return "—" if value != value else f"{value:.{digits}f}"


def table(rows: list[dict]) -> str:
    """Markdown table of the aggregated rows."""
    lines = ["| normalisation | projection | heads | top-1-in-3 mean | no-picture baseline | non-sink queries | "
             "non-sink top-1-in-3 | non-sink baseline | worst head | rank correlation | centroid gap / spread | "
             "s / head |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['norm']} | {row['method']} | {row['heads']} | {row['top1_mean']:.3f} | "
                     f"{cells_figure(row['baseline_mean'])} | {cells_figure(row['non_sink_share_mean'])} | "
                     f"{cells_figure(row['top1_non_sink_mean'])} | {cells_figure(row['baseline_non_sink_mean'])} | "
                     f"{row['top1_worst']:.3f} ({row['worst_head']}) | {row['rho_mean']:.3f} | "
                     f"{row['gap_median']:.2f} | {row['s_per_head']:.2f} |")
    return "\n".join(lines) + "\n"


def _mean_of(found: dict[str, dict], name: str) -> float:
    """Mean over heads of one figure (nan where no head has it; heads whose share is undefined left out)."""
    values = [value[name] for value in found.values() if name in value and value[name] == value[name]]
    return float(np.mean(values)) if len(values) == len(found) else float("nan")


def summarise(norm: str, method_name: str, found: dict[str, dict]) -> dict:
    """One table row from the per-head results of one (normalisation, projection)."""
    tops = {name: value["top1_in_3"] for name, value in found.items()}
    worst = min(tops, key=tops.get)
    return {"norm": norm, "method": method_name, "heads": len(found),
            "top1_mean": float(np.mean(list(tops.values()))), "top1_worst": tops[worst], "worst_head": worst,
            "rho_mean": float(np.mean([value["rank_correlation"] for value in found.values()])),
            "gap_median": float(np.median([value["centroid_gap"] for value in found.values()])),
            "s_per_head": float(np.mean([value["s_total"] for value in found.values()])),
            "s_normalise_per_head": float(np.mean([value["s_normalise"] for value in found.values()])),
            "baseline_mean": _mean_of(found, "baseline"), "non_sink_share_mean": _mean_of(found, "non_sink_share"),
            "top1_non_sink_mean": _mean_of(found, "top1_in_3_non_sink"),
            "baseline_non_sink_mean": _mean_of(found, "baseline_non_sink")}


def parse_shard(text: str) -> tuple[int, int]:
    """'I/N' -> (I, N): this process measures the heads whose index is I modulo N."""
    index, count = (int(part) for part in text.split("/"))
    if not 0 <= index < count:
        raise argparse.ArgumentTypeError(f"shard must be I/N with 0 <= I < N, got {text!r}")
    return index, count


def shard_files(out: str) -> list[Path]:
    """Every shard file written next to OUT.json."""
    base = Path(out)
    return sorted(base.parent.glob(base.name + ".shard-*.json"))


def load_results(out: str) -> dict[str, dict[str, dict]]:
    """Per-head results kept in OUT.json, updated by every shard file beside it."""
    results: dict[str, dict[str, dict]] = {}
    for path in [Path(out + ".json"), *shard_files(out)]:
        if path.exists():
            for step, found in json.loads(path.read_text())["per_head"].items():
                results.setdefault(step, {}).update(found)
    return results


HEAD_FIGURES = ("baseline", "non_sink_share", "baseline_non_sink")  # from attention alone: the same in every picture


def with_head_figures(results: dict[str, dict[str, dict]]) -> dict[str, dict[str, dict]]:
    """Per-head results where each head also carries the figures that do not depend on the picture (the no-picture
    baseline, the non-sink share), taken from any step that measured that head, for steps measured before them."""
    known: dict[str, dict[str, float]] = {}
    for found in results.values():
        for head, value in found.items():
            known.setdefault(head, {}).update({name: value[name] for name in HEAD_FIGURES if name in value})
    return {step: {head: {**known.get(head, {}), **value} for head, value in found.items()}
            for step, found in results.items()}


def write_table(out: str, plan: list[tuple[str, str, list]], results: dict[str, dict[str, dict]]) -> None:
    """Rows in the plan's order from whatever per-head results exist; OUT.json and OUT.md."""
    from workers.pipeline.keys import METHOD_NAMES

    names = {**METHOD_NAMES, "fitted-preview": METHOD_NAMES["fitted"] + " (matrix preview: 20 steps)"}
    completed = with_head_figures(results)
    rows = [summarise("any (attention unchanged)" if method.startswith("fitted") else norm, names[method],
                      completed[f"{norm} · {method}"])
            for norm, method, _heads in plan if results.get(f"{norm} · {method}")]
    Path(out + ".json").write_text(json.dumps({"rows": rows, "per_head": results}, indent=2) + "\n")
    Path(out + ".md").write_text(table(rows))


def main() -> None:
    """Measure the planned (normalisation, projection, head) cells, then rebuild the table from every result."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--umap-every", type=int, default=4)
    parser.add_argument("--tsne-every", type=int, default=8)
    parser.add_argument("--only", nargs="*", choices=["attention", "fitted", "fitted-preview", "pca", "umap",
                                                        "tsne"],
                        help="measure these projections only; the other results are kept from OUT.json")
    parser.add_argument("--norms", nargs="*", help="with --only: these normalisations only")
    parser.add_argument("--resume", action="store_true",
                        help="keep the per-head results already in OUT.json and shard files; measure the rest")
    parser.add_argument("--shard", type=parse_shard, help="I/N: measure every N-th head from the I-th, saving "
                        "each head to OUT.shard-I-of-N.json as it ends; run N shards side by side, then --merge")
    parser.add_argument("--merge", action="store_true", help="measure nothing: fold shard files into OUT")
    parser.add_argument("--tsne-threads", type=int, default=2, help="openTSNE threads (the app uses 2)")
    parser.add_argument("--corpus", choices=["default", "unseen"], default="default")
    parser.add_argument("--out", help="default: bench/results/normalisation (_unseen for the second corpus)")
    args = parser.parse_args()
    args.out = args.out or str(ROOT / "bench" / "results" / ("normalisation" + ("_unseen" if args.corpus == "unseen"
                                                                                  else "")))
    corpus = "default" if args.corpus == "default" else str(unseen_corpus(ROOT / "bench" / "results" / "unseen.txt"))
    from workers.config import settings
    from workers.contracts.choices import NORMALISATIONS, values
    from workers.contracts.requests import HeadRequest
    from workers.core.fidelity import sink_keys
    from workers.core.project import warm_up_umap
    from workers.models.registry import read_spec
    from workers.pipeline.keys import resolve
    from workers.pipeline.stages import head_qk
    from workers.store import Store

    store = Store(settings().cache_dir / "results")
    spec = read_spec("minilm")
    heads = [(layer, head) for layer in range(spec.n_layers) for head in range(spec.n_heads)]
    plan = [("none", "fitted", heads), ("none", "fitted-preview", heads), ("fit", "attention", heads),
            ("scale+translate", "attention", heads)]
    plan += [(norm, "pca", heads) for norm in (*values(NORMALISATIONS), OVERLAP)]
    plan += [(norm, "umap", heads[::args.umap_every]) for norm in values(NORMALISATIONS)]
    plan += [(norm, "tsne", heads[::args.tsne_every]) for norm in values(NORMALISATIONS)]
    keep = bool(args.only or args.resume or args.merge)
    results = load_results(args.out) if keep else {}
    if args.merge:
        write_table(args.out, plan, results)
        for path in shard_files(args.out):  # folded into OUT.json now
            path.unlink()
        return
    todo = [step for step in plan
            if not args.only or (step[1] in args.only and (not args.norms or step[0] in args.norms))]
    shard_path = Path(f"{args.out}.shard-{args.shard[0]}-of-{args.shard[1]}.json") if args.shard else None
    shard_results: dict[str, dict[str, dict]] = {}
    warm_up_umap()
    for norm, method, chosen in todo:
        step = f"{norm} · {method}"
        for layer, head in chosen:
            name = f"L{layer}H{head}"
            if args.shard and heads.index((layer, head)) % args.shard[1] != args.shard[0]:
                continue
            if args.resume and name in results.get(step, {}):
                continue
            request = HeadRequest(corpus=corpus, layer=layer, head=head)
            q, k, text_id = head_qk(request, store)
            sinks = sink_keys(text_id, store.get_arrays(resolve(request).tokens)["is_special"], causal=False)
            extra = {"n_jobs": args.tsne_threads} if method == "tsne" else {}
            found = measure(q, k, text_id, sinks, norm, method, extra)
            results.setdefault(step, {})[name] = found
            shard_results.setdefault(step, {})[name] = found
            print(f"{step:28s} {name:5s} top1 {found['top1_in_3']:.3f} {found['s_total']:.2f} s", flush=True)
            if shard_path:  # written aside and renamed, so a stop never leaves half a file
                partial = shard_path.with_suffix(".partial")
                partial.write_text(json.dumps({"per_head": shard_results}, indent=2) + "\n")
                partial.replace(shard_path)
    if not shard_path:
        write_table(args.out, plan, results)


if __name__ == "__main__":
    main()
