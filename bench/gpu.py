"""GPU figures: extraction time and attention error per dtype, PCA through torch against scikit-learn's, UMAP through
cuML against umap-learn's, with the fidelity of both pictures on the same heads. Without a GPU it says so first and
prints the figures the CPU gives (every dtype on the CPU, PCA through torch on the CPU, umap-learn alone).

Run: `.venv/bin/python bench/gpu.py [--texts 200] [--heads 0:0,2:5,4:9] [--repeats 3]
[--out bench/results/gpu.json]`.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from workers.core.attention import text_attention
from workers.core.fidelity import picture_fidelity
from workers.core.project import pca_embedding, umap_embedding, warm_up_umap
from workers.corpora.corpus import load_corpus, make_corpus, make_image_corpus
from workers.corpora.images import default_images
from workers.models.devices import TORCH_DTYPES, Placement
from workers.models.extract import QKBundle, extract
from workers.models.loading import LoadedModel, load_model
from workers.models.projection import cuml_available, cuml_umap, torch_pca

UMAP_PARAMS = {"n_neighbors": 15, "min_dist": 0.1, "n_epochs": 200}  # the UMAP choice's full quality


def timed(run, repeats: int, warm_up: bool = True) -> tuple[float, object]:
    """Median seconds of `repeats` calls of run() (after one warm-up call unless told not to), and the last
    result."""
    result = run() if warm_up else None
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), result


def own_attentions(loaded: LoadedModel, corpus) -> list[np.ndarray]:
    """The model's eager output_attentions per text or image, padding cut: list of [layer, head, pos, pos]."""
    device = loaded.input_device
    with torch.inference_mode():
        if loaded.spec.modality == "image":
            pixels = loaded.tokenizer(images=list(corpus.images), return_tensors="pt")["pixel_values"]
            out = loaded.model(pixel_values=pixels.to(device, loaded.placement.dtype), output_attentions=True)
            lengths = [out.attentions[0].shape[-1]] * len(corpus.images)
        else:
            encoded = loaded.tokenizer(list(corpus.texts), padding=True, truncation=True, max_length=128,
                                       return_tensors="pt")
            out = loaded.model(input_ids=encoded["input_ids"].to(device),
                               attention_mask=encoded["attention_mask"].to(device), output_attentions=True)
            lengths = encoded["attention_mask"].sum(dim=1).tolist()
    stacked = torch.stack(out.attentions).double().cpu().numpy()  # [layer, batch, head, pos, pos]
    return [stacked[:, b, :, :n, :n] for b, n in enumerate(lengths)]


def rebuilt(bundle: QKBundle, causal: bool, n_layers: int) -> list[np.ndarray]:
    """softmax(q kᵀ/√d + mask) per text from extracted vectors: list of [layer, head, pos, pos]."""
    text_id = bundle.tokens["text_id"]
    return [np.stack([text_attention(bundle.q[layer][:, rows], bundle.k[layer][:, rows], causal)
                      for layer in range(n_layers)])
            for rows in (np.flatnonzero(text_id == t) for t in range(text_id.max() + 1))]


def attention_errors(device: torch.device) -> dict[str, dict[str, float]]:
    """Per bundled model and dtype: max |attention rebuilt from the extraction - the float32 model's own attention|."""
    texts = make_corpus("sample", list(load_corpus("default").texts[:16]))
    images = make_image_corpus("images", default_images()[:6] + default_images()[-6:])
    errors: dict[str, dict[str, float]] = {}
    for alias in ("minilm", "tiny-gpt", "tiny-vit"):
        reference = load_model(alias, Placement(device, torch.float32))
        corpus = images if reference.spec.modality == "image" else texts
        expected = own_attentions(reference, corpus)
        errors[alias] = {}
        for dtype, torch_dtype in TORCH_DTYPES.items():
            loaded = load_model(alias, Placement(device, torch_dtype))
            mine = rebuilt(extract(loaded, corpus, batch_size=4), loaded.spec.causal, loaded.spec.n_layers)
            errors[alias][dtype] = float(max(np.abs(a - b).max() for a, b in zip(mine, expected, strict=True)))
    return errors


def extraction_seconds(device: torch.device, texts: int, repeats: int) -> dict[str, float]:
    """Median seconds to extract MiniLM's q, k, v over the first `texts` texts of the default corpus, per dtype."""
    corpus = make_corpus("bench", list(load_corpus("default").texts[:texts]))
    seconds = {}
    for dtype, torch_dtype in TORCH_DTYPES.items():
        loaded = load_model("minilm", Placement(device, torch_dtype))
        extract(loaded, make_corpus("warm-up", list(corpus.texts[:64])), batch_size=64)  # kernels, allocator
        seconds[dtype] = round(timed(lambda m=loaded: extract(m, corpus, batch_size=64), repeats, False)[0], 3)
    return seconds


def head_pictures(device: torch.device, texts: int, heads: list[tuple[int, int]], repeats: int) -> list[dict]:
    """Per head of MiniLM (float32 extraction): PCA by scikit-learn and by torch on `device`, UMAP by umap-learn and
    (on a CUDA GPU with cuML) by cuML: seconds, fidelity (top-1-in-3, rank correlation), PCA agreement."""
    loaded = load_model("minilm", Placement(device, torch.float32))
    bundle = extract(loaded, make_corpus("bench", list(load_corpus("default").texts[:texts])), batch_size=64)
    text_id = bundle.tokens["text_id"]
    warm_up_umap()
    rows = []
    for layer, head in heads:
        q, k = bundle.q[layer][head], bundle.k[layer][head]
        x = np.vstack([q, k]).astype(np.float32)
        row: dict = {"layer": layer, "head": head, "points": len(x)}
        pictures = {}
        row["pca_sklearn_s"], pictures["pca_sklearn"] = timed(lambda x=x: pca_embedding(x, 2, 0), repeats)
        row["pca_torch_s"], pictures["pca_torch"] = timed(lambda x=x: torch_pca(x, 2, device), repeats)
        difference = np.abs(pictures["pca_torch"] - pictures["pca_sklearn"]).max()
        row["pca_max_difference_of_extent"] = float(f"{difference / np.abs(pictures['pca_sklearn']).max():.2e}")
        row["umap_learn_s"], pictures["umap_learn"] = timed(lambda x=x: umap_embedding(x, 2, 0, **UMAP_PARAMS), 1,
                                                            False)
        if device.type == "cuda" and cuml_available():
            cuml_umap(x[:2000], 2, 0, **UMAP_PARAMS)  # warm-up: kernels
            row["umap_cuml_s"], pictures["umap_cuml"] = timed(lambda x=x: cuml_umap(x, 2, 0, **UMAP_PARAMS), 1,
                                                              False)
        for name in [n for n in row if n.endswith("_s")]:
            row[name] = round(row[name], 4)
        for name, coords in pictures.items():
            found = picture_fidelity(q, k, np.asarray(coords), text_id, causal=False)
            row[f"{name}_top1_in_3"] = round(found.top1_in_k, 3)
            row[f"{name}_rank_correlation"] = round(found.rank_correlation, 3)
        rows.append(row)
    return rows


def main() -> None:
    """Measure on the GPU when torch sees one, else on the CPU (said first); print and write the figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--texts", type=int, default=200)
    parser.add_argument("--heads", default="0:0,2:5,4:9")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="bench/results/gpu.json")
    args = parser.parse_args()
    gpu = torch.cuda.is_available()
    device = torch.device("cuda" if gpu else "cpu")
    if gpu:
        where = f"GPU: {torch.cuda.get_device_name(device)} (torch {torch.__version__}, CUDA {torch.version.cuda})"
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False  # as the workers run
    else:
        where = (f"NO GPU PRESENT: torch {torch.__version__} sees no CUDA device; GPU figures not measured. "
                 f"CPU figures only ({platform.machine()}, {torch.get_num_threads()} torch threads)")
    print(where, flush=True)
    print(f"cuML: {'installed' if cuml_available() else 'not installed (UMAP on the GPU needs the gpu extra)'}",
          flush=True)
    heads = [tuple(int(x) for x in pair.split(":")) for pair in args.heads.split(",")]
    result = {"gpu": gpu, "device": str(device), "where": where, "cuml": cuml_available(), "texts": args.texts,
              "attention_max_error": attention_errors(device),
              "extraction_s": extraction_seconds(device, args.texts, args.repeats),
              "heads": head_pictures(device, args.texts, heads, args.repeats)}
    print("\nattention rebuilt from the extraction vs the float32 model's own (max |difference|)")
    print(f"{'model':<10}" + "".join(f"{dtype:>12}" for dtype in TORCH_DTYPES))
    for alias, errors in result["attention_max_error"].items():
        print(f"{alias:<10}" + "".join(f"{errors[dtype]:>12.2e}" for dtype in TORCH_DTYPES))
    print(f"\nMiniLM extraction of {args.texts} texts on {device} (median s): "
          + ", ".join(f"{dtype} {s}" for dtype, s in result["extraction_s"].items()))
    print(f"\nper head of MiniLM on {device}: seconds, then fidelity (top-1-in-3 / rank correlation)")
    for row in result["heads"]:
        cuml = (f"  cuML {row['umap_cuml_s']:.2f} s {row['umap_cuml_top1_in_3']:.3f}/"
                f"{row['umap_cuml_rank_correlation']:.3f}" if "umap_cuml_s" in row else "  cuML not run")
        print(f"L{row['layer']}H{row['head']} ({row['points']:,} points)  PCA sklearn {row['pca_sklearn_s']:.3f} s, "
              f"torch {row['pca_torch_s']:.3f} s (max difference {row['pca_max_difference_of_extent']:.1e} of the "
              f"extent; fidelity {row['pca_sklearn_top1_in_3']:.3f}/{row['pca_sklearn_rank_correlation']:.3f} and "
              f"{row['pca_torch_top1_in_3']:.3f}/{row['pca_torch_rank_correlation']:.3f})  umap-learn "
              f"{row['umap_learn_s']:.2f} s {row['umap_learn_top1_in_3']:.3f}/"
              f"{row['umap_learn_rank_correlation']:.3f}{cuml}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
