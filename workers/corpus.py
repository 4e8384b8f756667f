"""Corpora: the bundled default and user files (.txt one text per line, .csv / .jsonl with a `text` column)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

DEFAULT_CORPUS = "default"
DEFAULT_IMAGE_CORPUS = "images"


class CorpusError(ValueError):
    """A corpus that cannot be used; the message is one line meant for the user."""


@dataclass(frozen=True)
class Corpus:
    """An ordered list of texts with a content hash (sha256 of the texts)."""

    name: str
    texts: tuple[str, ...]
    content_hash: str


@dataclass(frozen=True)
class ImageCorpus:
    """An ordered list of images (uint8 [height, width, 3]) with names and a content hash."""

    name: str
    images: tuple  # of np.ndarray
    names: tuple[str, ...]
    content_hash: str

    @property
    def texts(self) -> tuple[str, ...]:
        """Image names stand in for texts (hover, exports)."""
        return self.names


def make_image_corpus(name: str, named_images: list, max_items: int | None = None) -> ImageCorpus:
    """ImageCorpus from (name, array) pairs; error when empty."""
    from workers.images import images_hash

    if not named_images:
        raise CorpusError(f"image corpus {name!r} holds no image")
    named_images = named_images[:max_items] if max_items else named_images
    images = [image for _, image in named_images]
    return ImageCorpus(name=name, images=tuple(images), names=tuple(n for n, _ in named_images),
                       content_hash=images_hash(images))


def load_image_corpus(ref: str, max_items: int | None = None) -> ImageCorpus:
    """`images` (generated default), a folder of images or an .npz of arrays."""
    from workers import images

    if ref == DEFAULT_IMAGE_CORPUS:
        return make_image_corpus(ref, images.default_images(), max_items)
    path = Path(ref)
    try:
        named = images.read_image_folder(path) if path.is_dir() else images.read_image_npz(path)
    except (ValueError, OSError) as exc:
        raise CorpusError(f"image corpus {path}: {str(exc).splitlines()[0]}") from exc
    return make_image_corpus(path.name, named, max_items)


def make_corpus(name: str, texts: list[str], max_texts: int | None = None) -> Corpus:
    """Clean (strip, drop empty) and hash texts; error when nothing remains."""
    cleaned = [" ".join(t.split()) for t in texts]
    cleaned = [t for t in cleaned if t]
    if not cleaned:
        raise CorpusError(f"corpus {name!r} holds no non-empty text")
    if max_texts is not None and len(cleaned) > max_texts:
        cleaned = cleaned[:max_texts]
    digest = hashlib.sha256("\n".join(cleaned).encode("utf-8")).hexdigest()
    return Corpus(name=name, texts=tuple(cleaned), content_hash=digest)


def default_corpus_text() -> str:
    """The bundled corpus file's text (CC0, written for the project)."""
    return resources.files("workers").joinpath("data/default_corpus.txt").read_text(encoding="utf-8")


def _read_text_file(path: Path) -> str:
    """File content as UTF-8, or a one-line CorpusError."""
    if not path.exists():
        raise CorpusError(f"corpus file not found: {path}")
    if not path.is_file():
        raise CorpusError(f"corpus path is not a file: {path}")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CorpusError(f"cannot read corpus file {path}: {exc.strerror}") from exc
    if b"\x00" in raw[:8192]:
        raise CorpusError(f"corpus file {path} looks binary; expected UTF-8 text")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CorpusError(f"corpus file {path} is not valid UTF-8 (byte {exc.start})") from exc


def _texts_from_csv(content: str, path: Path) -> list[str]:
    """The `text` column of a CSV file."""
    try:
        reader = csv.DictReader(io.StringIO(content))
        if not reader.fieldnames or "text" not in [f.strip() for f in reader.fieldnames]:
            raise CorpusError(f"{path}: CSV needs a 'text' column (found: {reader.fieldnames or 'no header'})")
        key = next(f for f in reader.fieldnames if f.strip() == "text")
        return [row.get(key) or "" for row in reader]
    except csv.Error as exc:
        raise CorpusError(f"{path}: malformed CSV ({exc})") from exc


def _texts_from_jsonl(content: str, path: Path) -> list[str]:
    """The `text` field of each JSON object line."""
    texts: list[str] = []
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CorpusError(f"{path}: line {number} is not valid JSON ({exc.msg})") from exc
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise CorpusError(f"{path}: line {number} has no string 'text' field")
        texts.append(record["text"])
    return texts


def load_corpus_file(path: str | Path, max_texts: int | None = None) -> Corpus:
    """Corpus from a .txt, .csv or .jsonl file; CorpusError with a one-line message otherwise."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in {".txt", ".csv", ".jsonl"}:
        raise CorpusError(f"unsupported corpus file type {suffix or '(none)'!r}: use .txt, .csv or .jsonl")
    content = _read_text_file(path)
    if suffix == ".txt":
        texts = content.splitlines()
    elif suffix == ".csv":
        texts = _texts_from_csv(content, path)
    else:
        texts = _texts_from_jsonl(content, path)
    return make_corpus(path.name, texts, max_texts)


def load_corpus(ref: str, max_texts: int | None = None, named: dict[str, str] | None = None
                ) -> Corpus | ImageCorpus:
    """`default`, `images`, a configured corpus name, or a path (text file, image folder, .npz) -> corpus."""
    if named and ref in named:
        ref_path = named[ref]
        if Path(ref_path).is_dir() or ref_path.endswith(".npz"):
            corpus = load_image_corpus(ref_path, max_texts)
            return ImageCorpus(ref, corpus.images, corpus.names, corpus.content_hash)
    if ref == DEFAULT_IMAGE_CORPUS or Path(ref).is_dir() or ref.lower().endswith(".npz"):
        return load_image_corpus(ref, max_texts)
    if ref == DEFAULT_CORPUS:
        return make_corpus(DEFAULT_CORPUS, default_corpus_text().splitlines(), max_texts)
    if named and ref in named:
        corpus = load_corpus_file(named[ref], max_texts)
        return Corpus(name=ref, texts=corpus.texts, content_hash=corpus.content_hash)
    return load_corpus_file(ref, max_texts)
