"""Stage currencies validate shapes and implement the two box rules."""

from __future__ import annotations

import numpy as np
import pytest

from tgs.types import Boxes, Clip, FrameBoxes, Masks, Thought


def _clip(t: int = 3) -> Clip:
    return Clip(np.zeros((t, 4, 5, 3), np.uint8), np.zeros(160, np.float32), 16000, np.arange(t, dtype=float))


def test_clip_validates() -> None:
    clip = _clip()
    assert clip.num_frames == 3 and clip.size == (4, 5) and clip.has_audio
    with pytest.raises(TypeError, match="uint8"):
        Clip(np.zeros((3, 4, 5, 3), np.float32), None, None, np.arange(3.0))
    with pytest.raises(ValueError, match="3 times"):
        Clip(np.zeros((3, 4, 5, 3), np.uint8), None, None, np.arange(2.0))
    with pytest.raises(ValueError, match="sample_rate"):
        Clip(np.zeros((3, 4, 5, 3), np.uint8), None, 16000, np.arange(3.0))


def test_first_vs_best_rules() -> None:
    fb = FrameBoxes(
        xyxy=np.array([[0, 0, 1, 1], [0, 0, 2, 2], [0, 0, 3, 3]], np.float32),
        scores=np.array([0.2, 0.9, 0.9], np.float32),
        query_index=np.array([4, 7, 2], np.int64),
    )
    assert fb.first() == 2  # query 2 is the earliest query
    assert fb.best() == 2  # tie at 0.9 broken by the lower query index
    boxes = Boxes((fb, FrameBoxes.empty()), (10, 10))
    assert boxes.select("first") == [2, None]
    assert boxes.select("best") == [2, None]
    with pytest.raises(ValueError, match="first"):
        boxes.select("top")


def test_best_differs_from_first() -> None:
    fb = FrameBoxes(np.zeros((2, 4), np.float32), np.array([0.15, 0.6], np.float32), np.array([1, 5]))
    assert fb.first() == 0 and fb.best() == 1


def test_frameboxes_lengths_checked() -> None:
    with pytest.raises(ValueError, match="2 boxes"):
        FrameBoxes(np.zeros((2, 4), np.float32), np.zeros(3, np.float32), np.zeros(2, np.int64))


def test_masks_validate() -> None:
    m = Masks.empty(2, (3, 4))
    assert m.masks.shape == (2, 3, 4) and m.probs is not None
    with pytest.raises(TypeError, match="bool"):
        Masks(np.zeros((2, 3, 4), np.uint8))
    with pytest.raises(ValueError, match="2 frames"):
        Masks(np.zeros((2, 3, 4), bool), np.zeros((1, 3, 4), np.float32))


def test_thought_object_text() -> None:
    t = Thought("u", "raw", f_object="a red ball", s_object="ball")
    assert t.object_text("f_object") == "a red ball"
    with pytest.raises(ValueError):
        t.object_text("object")
