"""Stored results the web process reads back as records (numpy only): the head map, the summary names, a head's
attention within each text."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Cell = tuple[int, int]  # (layer, head)
RELATED = 5  # heads listed as most alike the opened one
SUMMARY_NAMES = ("prev_token", "next_token", "first_token", "special", "induction", "entropy", "norm_ratio",
                 "qk_overlap")


@dataclass(frozen=True)
class HeadMap:
    """cells [H] as (layer, head); distances [H, H]; coords [H, 2] (MDS of the distances)."""

    cells: list[Cell]
    distances: np.ndarray
    coords: np.ndarray

    def to_dict(self) -> dict:
        """JSON-friendly form."""
        return {"cells": [list(cell) for cell in self.cells], "distances": self.distances.round(5).tolist(),
                "coords": self.coords.round(5).tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> HeadMap:
        """Inverse of to_dict."""
        return cls([tuple(cell) for cell in data["cells"]], np.asarray(data["distances"], dtype=float),
                   np.asarray(data["coords"], dtype=float))

    def related(self, cell: Cell, count: int = RELATED) -> list[tuple[Cell, float]]:
        """The `count` heads whose attention is most like `cell`'s, nearest first, with their distance."""
        index = self.cells.index(cell)
        order = [i for i in np.argsort(self.distances[index], kind="stable") if i != index][:count]
        return [(self.cells[i], float(self.distances[index, i])) for i in order]


@dataclass(frozen=True)
class TextAttention:
    """One head's stored attention within every text (workers.core.attention.attention_within_texts): the blocks
    one after another, attention [Σ n_t²] (float16 at rest), offsets [texts + 1]; and the norm of each token's value
    vector, value_norms [token] (None when the extraction kept no values)."""

    attention: np.ndarray
    offsets: np.ndarray
    value_norms: np.ndarray | None = None

    def to_arrays(self) -> dict[str, np.ndarray]:
        """What the store keeps: named arrays, the attention as float16 (half the bytes; within 5e-4)."""
        arrays = {"attention": self.attention.astype(np.float16), "offsets": self.offsets.astype(np.int64)}
        return arrays if self.value_norms is None else {**arrays, "value_norms": self.value_norms}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> TextAttention:
        """Inverse of to_arrays."""
        return cls(arrays["attention"], arrays["offsets"], arrays.get("value_norms"))

    def of(self, text: int) -> np.ndarray | None:
        """Attention [query, key] float32 [n, n] within text `text` (its tokens in table order), or None when the
        head has no such text."""
        if not 0 <= text < len(self.offsets) - 1:
            return None
        start, end = int(self.offsets[text]), int(self.offsets[text + 1])
        n = round((end - start) ** 0.5)  # a square: exact for any text length
        return self.attention[start:end].reshape(n, n).astype(np.float32) if n else None
