"""Image view (ViT corpora): the image, the selected patch outlined, and that patch's attention as a heatmap."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from dashboard.figures.text import title_layout

DISPLAY = 224  # pixels a side (images are shown as the model sees them: resized to a square)


def square(image: np.ndarray, size: int = DISPLAY) -> np.ndarray:
    """uint8 [h, w, 3] -> uint8 [size, size, 3], resized like the image processor does."""
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR))


def image_figure(image: np.ndarray, attention_row: np.ndarray, grid: int, position: int, title: str) -> go.Figure:
    """attention_row [1 + grid²]: attention of token `position` (0 = CLS) to CLS and every patch."""
    shown = square(image)
    cell = DISPLAY / grid
    patches = attention_row[1:].reshape(grid, grid)
    centres = (np.arange(grid) + 0.5) * cell
    figure = go.Figure([
        go.Image(z=shown, hoverinfo="skip"),
        go.Heatmap(z=patches, x=centres, y=centres, customdata=1 + np.arange(grid * grid).reshape(grid, grid),
                   colorscale="Inferno", opacity=0.55, zmin=0, zmax=float(patches.max()) or 1.0,
                   colorbar={"title": {"text": "attention", "side": "top"}, "thickness": 10, "len": 0.6,
                             "orientation": "h", "y": -0.02, "yanchor": "top"},  # under: the toolbar is upright
                   hovertemplate="patch row %{y:.0f}px col %{x:.0f}px<br>attention %{z:.3f}<extra></extra>"),
    ])
    if position > 0:
        row, col = divmod(position - 1, grid)
        figure.add_shape(type="rect", x0=col * cell, x1=(col + 1) * cell, y0=row * cell, y1=(row + 1) * cell,
                         line={"color": "#00e5ff", "width": 3})
    cls_share = float(attention_row[0])
    label = "CLS" if position == 0 else f"patch r{(position - 1) // grid} c{(position - 1) % grid}"
    figure.update_layout(**title_layout(f"{title} · {label} · {cls_share:.2f} of its attention on CLS"),
                         margin={"l": 10, "r": 40, "b": 10}, plot_bgcolor="white")
    figure.update_xaxes(visible=False, range=[0, DISPLAY])
    figure.update_yaxes(visible=False, range=[DISPLAY, 0], scaleanchor="x")
    return figure
