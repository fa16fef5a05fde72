"""tgs.devices: the meaning of "auto" and the accepted names."""

from __future__ import annotations

import pytest
import torch

from tgs.devices import resolve_device, resolve_dtype


def test_auto_device_is_cuda_only_when_available() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device(None).type == expected
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error")
def test_cuda_without_cuda_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda")


@pytest.mark.parametrize(
    ("name", "device", "expected"),
    [
        ("auto", "cpu", torch.float32),
        (None, "cpu", torch.float32),
        ("bf16", "cpu", torch.bfloat16),
        ("fp16", "cpu", torch.float16),
        ("fp32", "cpu", torch.float32),
        ("BFloat16", "cpu", torch.bfloat16),
        (torch.float16, "cpu", torch.float16),
    ],
)
def test_resolve_dtype(name, device: str, expected: torch.dtype) -> None:
    assert resolve_dtype(name, torch.device(device)) == expected


def test_auto_dtype_is_bf16_on_cuda() -> None:
    assert resolve_dtype("auto", torch.device("cuda")) == torch.bfloat16


def test_bad_names_are_rejected() -> None:
    with pytest.raises(ValueError, match="bf16"):
        resolve_dtype("int8", torch.device("cpu"))
    with pytest.raises(ValueError, match="floating"):
        resolve_dtype(torch.int8)
    with pytest.raises(ValueError, match="device"):
        resolve_device("not a device")
