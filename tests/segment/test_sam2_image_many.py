"""Several objects on one clip: segment_many == segment per object, with each frame encoded once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from float32_error import TINY_SAM2_CHAIN, assert_masks_agree, float32_bound

from tgs.segment import Sam2ImageSegmenter
from tgs.testing.tiny_vision import build_tiny_sam2
from tgs.types import Clip


@pytest.fixture(scope="module")
def tiny_sam2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_sam2(tmp_path_factory.mktemp("tiny_sam2_many"), seed=0)


@pytest.fixture(scope="module")
def clip() -> Clip:
    rng = np.random.default_rng(5)
    frames = rng.integers(0, 256, size=(5, 64, 96, 3), dtype=np.uint8)
    frames[:, 10:40, 20:70] = (30, 200, 90)
    return Clip(frames, None, None, np.arange(5, dtype=np.float64))


def _objects(num_frames: int) -> list[list[np.ndarray | None]]:
    """Four objects with different boxes; each skips some frames; frame 4 has no box at all."""
    objects = []
    for k in range(4):
        boxes: list[np.ndarray | None] = []
        for t in range(num_frames):
            if t == 4 or (t + k) % 3 == 0:
                boxes.append(None)
            else:
                boxes.append(np.array([5 + 3 * t, 4 + 2 * k, 50 + 5 * k, 40 + t], np.float32))
        objects.append(boxes)
    objects.append([None] * num_frames)  # an object never grounded
    return objects


def _encoder_calls(segmenter: Sam2ImageSegmenter) -> list[int]:
    calls: list[int] = []
    segmenter.model.vision_encoder.register_forward_pre_hook(lambda _m, args: calls.append(int(args[0].shape[0])))
    return calls


@pytest.mark.numeric
@pytest.mark.parametrize(("preprocess", "frame_batch_size"), [("original", 1), ("hf", 1), ("original", 2)])
def test_segment_many_equals_segment_per_object(
    tiny_sam2: Path, clip: Clip, preprocess: str, frame_batch_size: int
) -> None:
    segmenter = Sam2ImageSegmenter.from_pretrained(tiny_sam2, preprocess=preprocess, frame_batch_size=frame_batch_size)
    objects = _objects(clip.num_frames)
    calls = _encoder_calls(segmenter)
    expected = [segmenter.segment(clip, boxes) for boxes in objects]
    encoded_alone = sum(calls)
    calls.clear()
    got = segmenter.segment_many(clip, objects, [[None] * clip.num_frames for _ in objects])
    assert sum(calls) == 4 < encoded_alone  # frames 0-3 once each, frame 4 never
    assert len(got) == len(objects)
    for a, b in zip(expected, got):  # objects batched: other summation orders (tests/float32_error.py)
        assert_masks_agree(a.masks, a.probs, b.masks, b.probs)
        # IoU scores: the IoU head's outputs (of magnitude <= 1 here) after the same chain
        iou_tol = float32_bound(TINY_SAM2_CHAIN, 1.0, paths=2)
        np.testing.assert_allclose(b.meta["iou_scores"], a.meta["iou_scores"], rtol=0, atol=iou_tol)
    assert got[0].masks[1].any() and not got[-1].masks.any() and not got[-1].probs.any()


def test_device_preprocess_gives_the_same_masks(tiny_sam2: Path, clip: Clip) -> None:
    objects = _objects(clip.num_frames)[:2]
    for preprocess in ("original", "hf"):
        host = Sam2ImageSegmenter.from_pretrained(tiny_sam2, preprocess=preprocess)
        device = Sam2ImageSegmenter.from_pretrained(tiny_sam2, preprocess=preprocess, device_preprocess=True)
        for a, b in zip(host.segment_many(clip, objects), device.segment_many(clip, objects)):
            np.testing.assert_array_equal(a.masks, b.masks)  # the same pixels in: the same operations
            np.testing.assert_array_equal(a.probs, b.probs)


def test_segment_many_checks_its_inputs(tiny_sam2: Path, clip: Clip) -> None:
    segmenter = Sam2ImageSegmenter.from_pretrained(tiny_sam2)
    assert segmenter.segment_many(clip, []) == []
    with pytest.raises(ValueError, match="one box"):
        segmenter.segment_many(clip, [[None] * (clip.num_frames - 1)])
    with pytest.raises(ValueError, match="score lists"):
        segmenter.segment_many(clip, [[None] * clip.num_frames], [])


def test_compile_switch_gives_the_same_masks(tiny_sam2: Path, clip: Clip) -> None:
    short = Clip(clip.frames[:2], None, None, clip.frame_times[:2])  # tracing time grows with the shapes seen
    objects = [boxes[:2] for boxes in _objects(clip.num_frames)[:2]]
    eager = Sam2ImageSegmenter.from_pretrained(tiny_sam2)
    compiled = Sam2ImageSegmenter.from_pretrained(tiny_sam2, compile="aot_eager")
    assert hasattr(compiled.model.vision_encoder, "_compiled_call_impl")
    for a, b in zip(eager.segment_many(short, objects), compiled.segment_many(short, objects)):
        assert_masks_agree(a.masks, a.probs, b.masks, b.probs)  # traced graphs may fuse: other roundings
