"""Stored results the web process reads back as records (numpy only): the head map and the summary names."""

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
