"""Train `tiny-vit`: a small ViT that reads scikit-learn's handwritten digits, shipped in the package.

Run: `.venv/bin/python scripts/train_tiny_vit.py [--steps 1500] [--out workers/data/tiny_vit]` (seeded, CPU);
`--remeasure` recomputes the heads of the saved model into its training.json.

What it learns from: scikit-learn's 1,797 handwritten digits (8x8 greys, 0..16), each upscaled 4x to 32x32 (one digit
pixel per 4x4 block, which is one patch) and made RGB (`workers.corpora.images.digits`), split by a seeded permutation
into 1,438 for training and 359 held out (`digit_split`). Training images are shifted by up to `max_shift` (4) pixels
either way (black fill), a new shift every time they are drawn: mostly not by whole patches, so that a patch often
holds parts of up to four digit pixels; the held-out digits and those of the bundled corpus are not shifted (one digit
pixel per patch). The model is a ViTModel built from a ViTConfig (32x32 images, 4x4 patches: CLS + 8x8 patches) with
its pooler (tanh of a linear map of CLS's last state), and a linear classifier on the pooled CLS (ViT's pre-logits
layer, then logits); its position embeddings start as 2D sinusoids (half the width for the row, half for the column)
and are then learned. Writes config.json and model.safetensors (the ViTModel, which the registry loads as it is),
classifier.safetensors (the linear classifier), preprocessor_config.json (a ViTImageProcessor: 32x32, the training
digits' mean and std) and `training.json` (settings, loss curve, wall time, held-out accuracy beside the majority
class, the heads found) to --out.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from training_schedule import learning_rate, window_means  # noqa: E402

from workers.corpora.images import DIGIT_SIDE, DIGITS_SEED, digit_split, digits  # noqa: E402
from workers.models.tiny_vit import (  # noqa: E402
    CLASSIFIER_FILE,
    RELATIONS,
    classifier_logits,
    heads_found,
    held_out,
    ink_patches,
    pixels,
    strongest_heads,
)

LOSS_WINDOW = 50  # steps per point of the recorded loss curve
LR_FLOOR = 0.01  # the cosine decay ends at this fraction of the peak learning rate

SETTINGS = {"seed": 0, "image_size": DIGIT_SIDE, "patch_size": 4, "hidden_size": 64, "num_hidden_layers": 4,
            "num_attention_heads": 4, "intermediate_size": 128, "batch_size": 64, "lr": 2e-3, "warmup": 100,
            "weight_decay": 0.05, "max_shift": 4, "positions": "learned, started as 2D sinusoids",
            "position_scale": 0.5}


def sinusoids_2d(grid: int, width: int) -> torch.Tensor:
    """2D sinusoidal position codes [1 + grid², width]: CLS zeros, then per patch (row by row) sinusoids of its row
    in the first half of the width and of its column in the second."""
    half = width // 2
    position = torch.arange(grid, dtype=torch.float32)[:, None]
    frequency = torch.exp(-math.log(100.0) * torch.arange(0, half, 2, dtype=torch.float32) / half)
    codes = torch.zeros(grid, half)
    codes[:, 0::2], codes[:, 1::2] = torch.sin(position * frequency), torch.cos(position * frequency)
    row, col = torch.div(torch.arange(grid * grid), grid, rounding_mode="floor"), torch.arange(grid * grid) % grid
    return torch.cat([torch.zeros(1, width), torch.cat([codes[row], codes[col]], dim=1)])


def shifted(batch: torch.Tensor, max_shift: int, fill: float, rng: np.random.Generator) -> torch.Tensor:
    """Each image of [b, 3, side, side] moved by a random whole number of pixels in [-max_shift, max_shift] down and
    right (negative: up and left), the uncovered border filled with `fill` (black, normalised)."""
    side = batch.shape[-1]
    padded = torch.nn.functional.pad(batch, [max_shift] * 4, value=fill)
    out = torch.empty_like(batch)
    for i, (dy, dx) in enumerate(rng.integers(-max_shift, max_shift + 1, size=(len(batch), 2))):
        top, left = max_shift - dy, max_shift - dx
        out[i] = padded[i, :, top:top + side, left:left + side]
    return out


class DigitClassifier(torch.nn.Module):
    """A ViTModel (with its pooler) and a linear classifier on the pooled CLS."""

    def __init__(self, config):
        super().__init__()
        from transformers import ViTModel

        self.vit = ViTModel(config)
        self.classifier = torch.nn.Linear(config.hidden_size, config.num_labels)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Logits [batch, labels]."""
        return self.classifier(self.vit(pixel_values=pixel_values).pooler_output)


def accuracy(model, classifier: dict[str, torch.Tensor], pixel_values: torch.Tensor, labels: np.ndarray) -> float:
    """Share of images whose highest logit is their label, rounded to 4 digits."""
    predicted = classifier_logits(model, classifier, pixel_values).argmax(-1)
    return round(float((predicted == labels).mean()), 4)


def remeasure(folder: Path) -> None:
    """Recompute the heads of a saved model into its training.json (the training record otherwise kept)."""
    from transformers import AutoImageProcessor, ViTModel

    processor = AutoImageProcessor.from_pretrained(folder)
    model = ViTModel.from_pretrained(folder, attn_implementation="eager").eval()
    record = json.loads((folder / "training.json").read_text())
    record["relations"] = list(RELATIONS)
    pixel_values, _labels, ink = held_out(processor, model.config.patch_size)
    record["heads"] = heads_found(model, pixel_values, ink)
    record["strongest_heads"] = strongest_heads(record["heads"])
    (folder / "training.json").write_text(json.dumps(record, indent=1) + "\n")
    report(record)


def report(record: dict) -> None:
    """Accuracy beside the baseline, and the head giving each relation the largest share."""
    print(f"held-out accuracy {record['test_accuracy']:.3f} (majority class {record['majority_baseline']:.3f})")
    for name, ends in record["strongest_heads"].items():
        print(f"  {name:12s} uniform {ends['most']['uniform']:.3f}; " + ", ".join(
            f"{end} {found['head']} {found['share']:.3f} ({found['times_uniform']}x)" for end, found in ends.items()))


def main() -> None:
    """Build the processor, train, save model + processor + training record."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--out", default=str(ROOT / "workers" / "data" / "tiny_vit"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--set", action="append", default=[], metavar="NAME=JSON",
                        help="override one of SETTINGS (recorded in training.json), e.g. --set lr=0.003")
    parser.add_argument("--remeasure", action="store_true", help="train nothing: recompute the heads in --out")
    args = parser.parse_args()
    if args.remeasure:
        remeasure(Path(args.out))
        return
    overrides = {name: json.loads(value) for name, _, value in (item.partition("=") for item in args.set)}
    if set(overrides) - set(SETTINGS):
        parser.error(f"unknown settings {sorted(set(overrides) - set(SETTINGS))}; known: {', '.join(SETTINGS)}")
    settings = {**SETTINGS, **overrides, "steps": args.steps}
    random.seed(settings["seed"])
    torch.manual_seed(settings["seed"])
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(settings["seed"])
    started, cpu_started = time.perf_counter(), time.process_time()

    from safetensors.torch import save_file
    from transformers import ViTConfig, ViTImageProcessor

    images, labels = digits()
    train, held_out_ids = digit_split(len(images))
    grey = images[train].astype(np.float64) / 255
    mean, std = round(float(grey.mean()), 3), round(float(grey.std()), 3)
    side = settings["image_size"]
    processor = ViTImageProcessor(do_resize=True, size={"height": side, "width": side}, do_rescale=True,
                                  do_normalize=True, image_mean=[mean] * 3, image_std=[std] * 3)
    train_pixels, test_pixels = pixels(processor, images[train]), pixels(processor, images[held_out_ids])
    train_labels = torch.from_numpy(labels[train])
    black = (0.0 - mean) / std
    config = ViTConfig(image_size=side, patch_size=settings["patch_size"], num_channels=3,
                       hidden_size=settings["hidden_size"], num_hidden_layers=settings["num_hidden_layers"],
                       num_attention_heads=settings["num_attention_heads"],
                       intermediate_size=settings["intermediate_size"], hidden_dropout_prob=0.0,
                       attention_probs_dropout_prob=0.0, num_labels=10,
                       id2label={i: str(i) for i in range(10)}, label2id={str(i): i for i in range(10)})
    model = DigitClassifier(config)
    grid = side // settings["patch_size"]
    with torch.no_grad():  # a row and a column code per patch: one query/key map can point at a neighbour
        model.vit.embeddings.position_embeddings.copy_(settings["position_scale"]
                                                       * sinusoids_2d(grid, settings["hidden_size"])[None])
    model.vit.set_attn_implementation("sdpa")  # fast for training; the saved model loads with eager attention
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings["lr"], weight_decay=settings["weight_decay"])
    losses = []
    model.train()
    for step in range(args.steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, args.steps, settings["lr"], settings["warmup"], LR_FLOOR)
        chosen = torch.from_numpy(rng.integers(0, len(train_pixels), settings["batch_size"]))
        batch = shifted(train_pixels[chosen], settings["max_shift"], black, rng)
        loss = torch.nn.functional.cross_entropy(model(batch), train_labels[chosen])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
        if step % 100 == 0 or step == args.steps - 1:
            print(f"step {step:5d}  loss {window_means(losses[-50:], LOSS_WINDOW)[0]:.3f}  "
                  f"{time.perf_counter() - started:6.0f} s", flush=True)
    train_seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    model.eval()
    encoder = model.vit
    encoder.set_attn_implementation("eager")
    classifier = {name: value.detach().clone() for name, value in model.classifier.state_dict().items()}
    majority = int(np.bincount(labels[train]).argmax())
    found = heads_found(encoder, test_pixels, ink_patches(images[held_out_ids], settings["patch_size"]))
    record = {"settings": settings, "train_seconds": round(train_seconds, 1), "cpu_seconds": round(cpu_seconds, 1),
              "threads": args.threads,
              "torch": torch.__version__, "parameters": sum(p.numel() for p in model.parameters()),
              "split_seed": DIGITS_SEED, "train_images": len(train), "test_images": len(held_out_ids),
              "image_mean": mean, "image_std": std,
              "final_loss": window_means(losses[-50:], LOSS_WINDOW)[0],
              "loss_every_50": window_means(losses, LOSS_WINDOW),
              "train_accuracy": accuracy(encoder, classifier, train_pixels, labels[train]),
              "test_accuracy": accuracy(encoder, classifier, test_pixels, labels[held_out_ids]),
              "majority_class": majority,
              "majority_baseline": round(float((labels[held_out_ids] == majority).mean()), 4),
              "relations": list(RELATIONS), "heads": found, "strongest_heads": strongest_heads(found)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    encoder.save_pretrained(out)
    save_file(classifier, out / CLASSIFIER_FILE)
    processor.save_pretrained(out)
    (out / "training.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"trained in {train_seconds:.0f} s ({cpu_seconds:.0f} s of CPU time); saved to {out}")
    report(record)


if __name__ == "__main__":
    main()
