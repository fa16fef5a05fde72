"""Shared helpers of the Ref-Thinker tests: tiny models (built once per process) and random clips."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import numpy as np
import torch

from tgs.types import Clip, Query


@functools.cache
def tiny_model_dir() -> Path:
    """A saved tiny Ref-Thinker directory (unmerged LoRA), shared by the tests of one process."""
    from tgs.testing.tiny_thinker import build_tiny_ref_thinker

    root = Path(tempfile.mkdtemp(prefix="tiny-ref-thinker-"))
    return build_tiny_ref_thinker(root / "model", seed=0)


def random_clip(seed: int, *, frames: int = 10, size: tuple[int, int] = (48, 64), seconds: float = 10.0,
                sample_rate: int = 16000, audio: bool = True) -> Clip:  # fmt: skip
    """Random frames uint8 [frames, h, w, 3] and noise audio (or none)."""
    rng = np.random.default_rng(seed)
    samples = rng.standard_normal(int(seconds * sample_rate)).astype(np.float32) * 0.1 if audio else None
    return Clip(
        frames=rng.integers(0, 256, (frames, *size, 3), dtype=np.uint8),
        audio=samples,
        sample_rate=sample_rate if audio else None,
        frame_times=np.arange(frames, dtype=np.float64),
    )


EXPRESSIONS = (
    "The dog.",
    "The object making the loudest sound in the whole video.",
    "A cat",
    "The man on the left who is playing the guitar.",
)


def items(n: int = 4) -> list[tuple[Query, Clip]]:
    return [(Query(uid=f"u{i}", expression=EXPRESSIONS[i % len(EXPRESSIONS)]), random_clip(i)) for i in range(n)]


def random_inputs(config, batch: int = 1, seed: int = 0):
    """Random pixel_values [B, 10, 3, 224, 224] and audio_fbank [B, 10, 98, 128]."""
    g = torch.Generator().manual_seed(seed)
    size = config.vision_config["image_size"]
    return (torch.randn(batch, 10, 3, size, size, generator=g), torch.randn(batch, 10, 98, 128, generator=g))
