"""Where and in which precision models run: QK_ATLAS_DEVICE, QK_ATLAS_DTYPE and QK_ATLAS_DEVICE_MAP (read and
checked for form by workers.config) resolved with torch, and checked against what this machine has."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import torch

from workers.config import DTYPES, Settings, settings

TORCH_DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "bfloat16": torch.bfloat16,
                                        "float16": torch.float16}
assert tuple(TORCH_DTYPES) == DTYPES  # one list of names, in workers.config


@dataclass(frozen=True)
class Placement:
    """Where a model runs: its device (inputs go there), its dtype, and whether accelerate spreads it (device_map)."""

    device: torch.device
    dtype: torch.dtype
    device_map: str | None = None

    def describe(self) -> str:
        """One line, e.g. "cuda:0 (NVIDIA H200), bfloat16" or "cpu, float32"."""
        where = str(self.device)
        if self.device.type == "cuda":
            where += f" ({torch.cuda.get_device_name(self.device)})"
        spread = f", device_map={self.device_map} (accelerate)" if self.device_map else ""
        return f"{where}, {str(self.dtype).removeprefix('torch.')}{spread}"


CPU_FLOAT32 = Placement(torch.device("cpu"), torch.float32)


def resolve_device(name: str) -> torch.device:
    """A QK_ATLAS_DEVICE value -> the torch device; ValueError (one line) when this machine does not have it."""
    if name == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError("QK_ATLAS_DEVICE=mps, but torch sees no Apple GPU (MPS) here: set QK_ATLAS_DEVICE to "
                             "auto or cpu")
        return torch.device("mps")
    if name.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(name.partition(":")[2] or 0)
        if index >= count:
            seen = (f"torch {torch.__version__} is built without CUDA" if torch.version.cuda is None
                    else f"torch sees {count} CUDA GPU{'s' if count != 1 else ''}")
            raise ValueError(f"QK_ATLAS_DEVICE={name}, but {seen} here: set QK_ATLAS_DEVICE to auto or cpu")
        return torch.device(name)
    raise ValueError(f"QK_ATLAS_DEVICE={name!r} is not a device")  # workers.config refuses it before


def placement(config: Settings | None = None) -> Placement:
    """The configured placement, checked against this machine: the device exists, accelerate is installed when
    QK_ATLAS_DEVICE_MAP asks for it; ValueError (one line) otherwise. float32 on a GPU is true float32 (no TF32)."""
    config = config or settings()
    device = resolve_device(config.device)
    if config.device_map and importlib.util.find_spec("accelerate") is None:
        raise ValueError("QK_ATLAS_DEVICE_MAP=auto needs the accelerate package: pip install 'qk-atlas[gpu]' "
                         "(or pip install accelerate), or unset QK_ATLAS_DEVICE_MAP")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # the stored numbers do not depend on the device
        torch.backends.cudnn.allow_tf32 = False
    return Placement(device, TORCH_DTYPES[config.dtype], config.device_map)


def is_gpu(device: torch.device) -> bool:
    """Whether a device is a GPU (CUDA or Apple's MPS)."""
    return device.type in ("cuda", "mps")
