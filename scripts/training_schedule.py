"""What the training scripts (train_tiny_gpt.py, train_tiny_vit.py) share: the learning-rate schedule and the
loss curve's window means."""

from __future__ import annotations

import math


def window_means(values: list[float], width: int) -> list[float]:
    """Means of consecutive windows of `width` values (the last one possibly shorter), rounded to 3 digits."""
    return [round(sum(values[i:i + width]) / len(values[i:i + width]), 3) for i in range(0, len(values), width)]


def learning_rate(step: int, steps: int, peak: float, warmup: int, floor: float) -> float:
    """Linear warm-up, then cosine decay to `floor` times the peak."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))
