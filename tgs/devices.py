"""Device and dtype resolution shared by every stage.

Stages accept ``device`` / ``dtype`` as names (CLI and config friendly) or as torch objects;
these two helpers turn either into torch objects, so "auto" means the same thing
everywhere: CUDA when present, bf16 on CUDA and fp32 on CPU.
"""

from __future__ import annotations

import torch

from tgs.errors import SettingsError

__all__ = ["DTYPE_NAMES", "resolve_device", "resolve_dtype"]

DTYPE_NAMES: dict[str, torch.dtype] = {
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp16": torch.float16,
    "float16": torch.float16,
    "half": torch.float16,
    "fp32": torch.float32,
    "float32": torch.float32,
    "float": torch.float32,
}


def resolve_device(name: str | torch.device | None) -> torch.device:
    """A torch device from a name: None or "auto" -> "cuda" when available, else "cpu".

    Any name torch understands ("cpu", "cuda", "cuda:1", "mps") is accepted; asking for CUDA
    on a machine without it fails here with a clear message instead of deep inside a model.
    """
    if isinstance(name, torch.device):
        device = name
    elif name is None or str(name).strip().lower() == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            device = torch.device(str(name).strip())
        except RuntimeError as exc:
            raise SettingsError(
                f"device {name!r} is not a device name", fix="use --device auto, cpu, cuda or cuda:N"
            ) from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SettingsError(
            f"device {name!r} requested but CUDA is not available on this machine",
            fix="use --device cpu, or --device auto (CUDA when present, else CPU)",
        )
    return device


def resolve_dtype(name: str | torch.dtype | None, device: torch.device | str | None = None) -> torch.dtype:
    """A floating torch dtype from a name: None or "auto" -> bf16 on CUDA, fp32 elsewhere.

    Accepted names: "auto", "bf16"/"bfloat16", "fp16"/"float16"/"half", "fp32"/"float32".
    """
    if isinstance(name, torch.dtype):
        if not name.is_floating_point:
            raise ValueError(f"dtype: expected a floating dtype, got {name}")
        return name
    if name is None or str(name).strip().lower() == "auto":
        dev = resolve_device(device) if not isinstance(device, torch.device) else device
        return torch.bfloat16 if dev.type == "cuda" else torch.float32
    key = str(name).strip().lower()
    if key not in DTYPE_NAMES:
        raise SettingsError(f"dtype {name!r} is not a dtype name", fix="use auto, bf16, fp16 or fp32")
    return DTYPE_NAMES[key]
