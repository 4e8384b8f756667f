"""Image corpora: the bundled default (gradients, sinusoids, scikit-learn's sample photos and handwritten digits),
folders, .npz files.

Each image is a uint8 array [height, width, 3]; the model's image processor resizes and normalises it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
SIZE = 224
DIGIT_SIDE = 32  # an 8x8 digit upscaled 4x: each of its pixels one 4x4 block, one patch of tiny-vit
DIGITS_SEED = 0
HELD_OUT_SHARE = 0.2
DIGITS_PER_CLASS = 3  # held-out digits of each class in the bundled corpus


def _to_uint8(image: np.ndarray) -> np.ndarray:
    """[0, 1] floats -> uint8."""
    return (np.clip(image, 0.0, 1.0) * 255).round().astype(np.uint8)


def gradients(size: int = SIZE) -> list[tuple[str, np.ndarray]]:
    """Colour and brightness gradients in four directions."""
    ramp = np.linspace(0.0, 1.0, size)
    horizontal, vertical = np.meshgrid(ramp, ramp)
    out = []
    fields = {"left-right": horizontal, "top-bottom": vertical, "diagonal": (horizontal + vertical) / 2,
              "radial": np.hypot(horizontal - 0.5, vertical - 0.5) * np.sqrt(2)}
    for name, field in fields.items():
        out.append((f"brightness {name}", _to_uint8(np.repeat(field[..., None], 3, axis=2))))
        colour = np.stack([field, 1 - field, 0.5 + 0.5 * np.sin(np.pi * field)], axis=2)
        out.append((f"colour {name}", _to_uint8(colour)))
    return out


def sinusoids(size: int = SIZE) -> list[tuple[str, np.ndarray]]:
    """Grey sinusoidal gratings of several frequencies and angles."""
    y, x = np.mgrid[0:size, 0:size] / size
    out = []
    for cycles in (2, 4, 8, 16):
        for degrees in (0, 45, 90, 135):
            angle = np.deg2rad(degrees)
            wave = 0.5 + 0.5 * np.sin(2 * np.pi * cycles * (x * np.cos(angle) + y * np.sin(angle)))
            out.append((f"sinusoid {cycles} cycles {degrees} deg", _to_uint8(np.repeat(wave[..., None], 3, axis=2))))
    return out


def sample_photos() -> list[tuple[str, np.ndarray]]:
    """The two photographs scikit-learn ships (china.jpg, flower.jpg), centre crops and quadrants."""
    from sklearn.datasets import load_sample_images

    photos = load_sample_images()
    out = []
    for name, image in zip(photos.filenames, photos.images, strict=True):
        height, width = image.shape[:2]
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        out.append((f"{Path(name).stem} centre", image[top: top + side, left: left + side]))
        half_h, half_w = height // 2, width // 2
        for label, (r, c) in {"top-left": (0, 0), "top-right": (0, half_w), "bottom-left": (half_h, 0),
                              "bottom-right": (half_h, half_w)}.items():
            out.append((f"{Path(name).stem} {label}", image[r: r + half_h, c: c + half_w]))
    return out


def digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 handwritten digits (8x8, ink 0..16) as uint8 RGB [n, 32, 32, 3], ink bright on black,
    each digit pixel a 4x4 block; and their labels [n]."""
    from sklearn.datasets import load_digits

    data = load_digits()
    grey = np.round(data.images * (255 / 16)).astype(np.uint8)
    scale = DIGIT_SIDE // grey.shape[1]
    big = grey.repeat(scale, axis=1).repeat(scale, axis=2)
    return np.repeat(big[..., None], 3, axis=3), data.target.astype(np.int64)


def digit_split(n: int, seed: int = DIGITS_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of `n` digits into training and held-out indices (a fifth held out), each sorted."""
    order = np.random.default_rng(seed).permutation(n)
    cut = n - round(n * HELD_OUT_SHARE)
    return np.sort(order[:cut]), np.sort(order[cut:])


def held_out_digits(per_class: int = DIGITS_PER_CLASS) -> list[tuple[str, np.ndarray]]:
    """The first `per_class` held-out digits of each class (tiny-vit never trained on them), by class, each named
    by its label and its index in scikit-learn's digits ("digit 3 #12")."""
    images, labels = digits()
    _train, held_out = digit_split(len(images))
    out = []
    for label in range(10):
        for index in held_out[labels[held_out] == label][:per_class]:
            out.append((f"digit {label} #{index}", images[index]))
    return out


def default_images() -> list[tuple[str, np.ndarray]]:
    """The bundled image corpus: 8 gradients, 16 sinusoids, 10 photo crops, 30 held-out handwritten digits."""
    return gradients() + sinusoids() + sample_photos() + held_out_digits()


def images_hash(images: list[np.ndarray]) -> str:
    """sha256 over shapes and pixels."""
    digest = hashlib.sha256()
    for image in images:
        digest.update(str(image.shape).encode())
        digest.update(np.ascontiguousarray(image).tobytes())
    return digest.hexdigest()


def as_rgb(image: np.ndarray) -> np.ndarray:
    """Any [h, w], [h, w, 1|3|4] array -> uint8 [h, w, 3]."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = _to_uint8(image.astype(np.float64) / (255.0 if image.max() > 1.0 else 1.0))
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise ValueError(f"an image must be [height, width(, channels)], got shape {image.shape}")
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    return image[..., :3]


def read_image_folder(folder: Path) -> list[tuple[str, np.ndarray]]:
    """All images in a folder (sorted by name)."""
    from PIL import Image, UnidentifiedImageError

    out = []
    for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        try:
            with Image.open(path) as handle:
                out.append((path.name, as_rgb(np.asarray(handle.convert("RGB")))))
        except (OSError, UnidentifiedImageError) as exc:
            raise ValueError(f"cannot read image {path.name}: {exc}") from exc
    return out


def read_image_npz(path: Path) -> list[tuple[str, np.ndarray]]:
    """Images from an .npz: each array one image [h, w(, c)] or a stack [n, h, w(, c)]."""
    out = []
    with np.load(path, allow_pickle=False) as data:
        for name in data.files:
            array = data[name]
            if array.ndim == 4 or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
                out += [(f"{name}[{i}]", as_rgb(image)) for i, image in enumerate(array)]
            else:
                out.append((name, as_rgb(array)))
    return out
