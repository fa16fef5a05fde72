"""Device and dtype resolution shared by every stage.

Stages accept ``device`` / ``dtype`` as names (CLI and config friendly) or as torch objects;
these two helpers turn either into torch objects, so "auto" means the same thing
everywhere: CUDA when present, bf16 on CUDA and fp32 on CPU.
"""

from __future__ import annotations

import numpy as np
import torch

from tgs.errors import SettingsError

__all__ = ["DTYPE_NAMES", "compile_backend", "compile_modules", "frames_to_device", "resolve_device", "resolve_dtype"]

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


def frames_to_device(frames: np.ndarray, device: torch.device | str) -> torch.Tensor:
    """uint8 frames [N, H, W, 3] as a uint8 tensor on ``device`` (4x fewer bytes than float).

    On CUDA the copy goes through pinned host memory and is non-blocking, so it overlaps
    with work already queued on the device; on the CPU the array is wrapped without a copy.
    """
    host = torch.from_numpy(np.ascontiguousarray(frames))
    device = torch.device(device)
    if device.type != "cuda":
        return host.to(device)
    return host.pin_memory().to(device, non_blocking=True)


def compile_backend(compile: bool | str) -> str | None:
    """The ``torch.compile`` backend a stage's ``compile`` option asks for: False -> None (eager),
    True -> "inductor", a string -> that backend (e.g. "aot_eager", which CPU tests use because
    inductor's C++ compilation takes minutes on a small CPU)."""
    if compile is False or compile is None:
        return None
    if compile is True:
        return "inductor"
    if not isinstance(compile, str) or not compile.strip():
        raise ValueError(f"compile: expected true, false or a torch.compile backend name, got {compile!r}")
    return compile.strip()


def compile_modules(modules: list[torch.nn.Module], backend: str, *, dynamic: bool | None = None) -> int:
    """``torch.compile`` each module in place (``Module.compile``: state-dict keys unchanged).

    Stages compile their heavy submodules (backbones, encoders, decoders) rather than a whole
    model whose Python-level forward varies between calls. Returns how many were compiled.
    """
    for module in modules:
        module.compile(backend=backend, dynamic=dynamic)
    return len(modules)
