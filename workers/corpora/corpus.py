"""Corpora: the bundled default and user files (.txt one text per line, .csv / .jsonl with a `text` column)."""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

from workers.contracts.requests import DEFAULT_CORPUS, DEFAULT_IMAGE_CORPUS, REPEATED_CORPUS  # noqa: F401

MAX_LINE_BYTES = 100_000  # a longer line is cut (a text is truncated to its first tokens anyway)
BINARY_SNIFF_BYTES = 8192


class CorpusError(ValueError):
    """A corpus that cannot be used; the message is one line meant for the user."""


@dataclass(frozen=True)
class Corpus:
    """An ordered list of texts with a content hash (sha256 of the texts)."""

    name: str
    texts: tuple[str, ...]
    content_hash: str
    notes: tuple[str, ...] = ()  # what was cut or dropped while reading, shown to the user


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
    from workers.corpora.images import images_hash

    if not named_images:
        raise CorpusError(f"image corpus {name!r} holds no image")
    named_images = named_images[:max_items] if max_items else named_images
    images = [image for _, image in named_images]
    return ImageCorpus(name=name, images=tuple(images), names=tuple(n for n, _ in named_images),
                       content_hash=images_hash(images))


def load_image_corpus(ref: str, max_items: int | None = None) -> ImageCorpus:
    """`images` (generated default), a folder of images or an .npz of arrays."""
    from workers.corpora import images

    if ref == DEFAULT_IMAGE_CORPUS:
        return make_image_corpus(ref, images.default_images(), max_items)
    path = Path(ref)
    try:
        named = images.read_image_folder(path) if path.is_dir() else images.read_image_npz(path)
    except (ValueError, OSError) as exc:
        raise CorpusError(f"image corpus {path}: {str(exc).splitlines()[0]}") from exc
    return make_image_corpus(path.name, named, max_items)


def make_corpus(name: str, texts: Iterable[str], max_texts: int | None = None, notes: tuple[str, ...] = ()
                ) -> Corpus:
    """Clean (strip, drop empty) and hash texts, keeping the first max_texts; error when nothing remains.

    Reads `texts` lazily, so a million-line file stops being read once max_texts texts are kept.
    """
    cleaned: list[str] = []
    more = False
    for text in texts:
        text = " ".join(text.split())
        if not text:
            continue
        if max_texts is not None and len(cleaned) >= max_texts:
            more = True
            break
        cleaned.append(text)
    if not cleaned:
        raise CorpusError(f"corpus {name!r} holds no non-empty text")
    if more:
        notes = (*notes, f"kept the first {max_texts:,} texts; the corpus holds more (QK_ATLAS_MAX_TEXTS)")
    digest = hashlib.sha256("\n".join(cleaned).encode("utf-8")).hexdigest()
    return Corpus(name=name, texts=tuple(cleaned), content_hash=digest, notes=tuple(notes))


def default_corpus_text() -> str:
    """The bundled corpus file's text (CC0, written for the project)."""
    return resources.files("workers").joinpath("data/default_corpus.txt").read_text(encoding="utf-8")


def repeated_word_texts(count: int = 320, length: int = 10, seed: int = 0) -> list[str]:
    """`count` texts, each a seeded string of `length` distinct words of the bundled corpus written twice
    ("ferry spicy beyond … ferry spicy beyond …"): nothing but copying predicts the second half, so induction
    heads show (attention from a repeated word to the word after its first occurrence)."""
    import random
    import re

    words = sorted(set(re.findall(r"[a-z]+", default_corpus_text().lower())))
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        string = " ".join(rng.sample(words, length))
        texts.append(f"{string} {string}")
    return texts


class _Lines:
    """The lines of a UTF-8 file, read lazily; lines over MAX_LINE_BYTES are cut (and counted)."""

    def __init__(self, path: Path):
        self.path = path
        self.cut = 0

    def __iter__(self) -> Iterator[str]:
        """Decoded lines with their line ending; one-line CorpusError on binary or non-UTF-8 content."""
        try:
            handle = self.path.open("rb")
        except OSError as exc:
            raise CorpusError(f"cannot read corpus file {self.path}: {exc.strerror}") from exc
        with handle:
            if b"\x00" in handle.peek(BINARY_SNIFF_BYTES)[:BINARY_SNIFF_BYTES]:
                raise CorpusError(f"corpus file {self.path} looks binary; expected UTF-8 text")
            for number, raw in enumerate(iter(lambda: handle.readline(MAX_LINE_BYTES), b""), start=1):
                cut = not raw.endswith(b"\n") and len(raw) >= MAX_LINE_BYTES
                if cut:
                    self.cut += 1
                    while (rest := handle.readline(MAX_LINE_BYTES)) and not rest.endswith(b"\n"):
                        pass  # skip the remainder of an over-long line
                yield self._decode(raw, number, cut) + ("\n" if cut else "")

    def _decode(self, raw: bytes, number: int, cut: bool) -> str:
        """UTF-8 (BOM dropped on line 1); a cut line may end inside a character, which is dropped."""
        try:
            return raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            if cut and exc.start >= len(raw) - 3:
                return raw[: exc.start].decode("utf-8-sig" if number == 1 else "utf-8")
            raise CorpusError(f"corpus file {self.path}: line {number} is not valid UTF-8 (byte {exc.start} "
                              "of the line)") from exc

    def notes(self) -> tuple[str, ...]:
        """What reading cut."""
        if not self.cut:
            return ()
        return (f"{self.cut:,} line{'s' if self.cut != 1 else ''} longer than {MAX_LINE_BYTES:,} bytes "
                "cut (a text's first tokens are all the model reads)",)


def _texts_from_csv(lines: Iterable[str], path: Path) -> Iterator[str]:
    """The `text` column of a CSV file."""
    try:
        reader = csv.DictReader(iter(lines))
        if not reader.fieldnames or "text" not in [f.strip() for f in reader.fieldnames]:
            raise CorpusError(f"{path}: CSV needs a 'text' column (found: {reader.fieldnames or 'no header'})")
        key = next(f for f in reader.fieldnames if f.strip() == "text")
        for row in reader:
            yield row.get(key) or ""
    except csv.Error as exc:
        raise CorpusError(f"{path}: malformed CSV ({exc})") from exc


def _texts_from_jsonl(lines: Iterable[str], path: Path) -> Iterator[str]:
    """The `text` field of each JSON object line."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CorpusError(f"{path}: line {number} is not valid JSON ({exc.msg})") from exc
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise CorpusError(f"{path}: line {number} has no string 'text' field")
        yield record["text"]


def load_corpus_file(path: str | Path, max_texts: int | None = None) -> Corpus:
    """Corpus from a .txt, .csv or .jsonl file; CorpusError with a one-line message otherwise."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in {".txt", ".csv", ".jsonl"}:
        raise CorpusError(f"unsupported corpus file type {suffix or '(none)'!r}: use .txt, .csv or .jsonl")
    if not path.exists():
        raise CorpusError(f"corpus file not found: {path}")
    if not path.is_file():
        raise CorpusError(f"corpus path is not a file: {path}")
    lines = _Lines(path)
    readers = {".txt": lambda: (text for line in lines for text in line.splitlines()),
               ".csv": lambda: _texts_from_csv(lines, path), ".jsonl": lambda: _texts_from_jsonl(lines, path)}
    corpus = make_corpus(path.name, readers[suffix](), max_texts)
    return replace(corpus, notes=(*lines.notes(), *corpus.notes))


def load_corpus(ref: str, max_texts: int | None = None, named: dict[str, str] | None = None
                ) -> Corpus | ImageCorpus:
    """`default`, `repeated`, `images`, a configured corpus name, or a path (text, image folder, .npz) -> corpus."""
    if named and ref in named:
        ref_path = named[ref]
        if Path(ref_path).is_dir() or ref_path.endswith(".npz"):
            corpus = load_image_corpus(ref_path, max_texts)
            return ImageCorpus(ref, corpus.images, corpus.names, corpus.content_hash)
    if ref == DEFAULT_IMAGE_CORPUS or Path(ref).is_dir() or ref.lower().endswith(".npz"):
        return load_image_corpus(ref, max_texts)
    if ref == DEFAULT_CORPUS:
        return make_corpus(DEFAULT_CORPUS, default_corpus_text().splitlines(), max_texts)
    if ref == REPEATED_CORPUS:
        return make_corpus(REPEATED_CORPUS, repeated_word_texts(), max_texts)
    if named and ref in named:
        return replace(load_corpus_file(named[ref], max_texts), name=ref)
    return load_corpus_file(ref, max_texts)
