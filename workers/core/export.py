"""Writing one head's data to .npz, .csv or .parquet (the export contract in DESIGN.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

FORMATS = (".npz", ".csv", ".parquet")


def points_table(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One row per point (queries then keys): text_id, position, token, role, x, y[, z]."""
    n = len(arrays["token"])
    coords = arrays["coords"]
    table = {
        "text_id": np.concatenate([arrays["text_id"]] * 2),
        "position": np.concatenate([arrays["position"]] * 2),
        "token": np.concatenate([arrays["token"]] * 2).astype(object),
        "role": np.array(["query"] * n + ["key"] * n, dtype=object),
    }
    for axis, name in enumerate("xyz"[: coords.shape[1]]):
        table[name] = coords[:, axis]
    return table


def write_export(arrays: dict[str, np.ndarray], out: str | Path) -> Path:
    """Write arrays to `out` by its suffix; ValueError for unknown formats."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"unsupported output {suffix or '(none)'!r}: use one of {', '.join(FORMATS)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".npz":
        np.savez(out, **arrays)
        return out
    import pandas as pd

    frame = pd.DataFrame(points_table(arrays))
    if suffix == ".csv":
        frame.to_csv(out, index=False)
    else:
        frame.to_parquet(out, index=False)
    return out
