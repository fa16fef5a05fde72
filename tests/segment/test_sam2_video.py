"""Segment stage, SAM2 video propagation over a tiny random model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from float32_error import SAM2_PROB_TOL

from tgs.errors import CheckpointKeyError
from tgs.segment import Sam2ImageSegmenter, Sam2VideoSegmenter
from tgs.segment.sam2_video import choose_seed_frames
from tgs.testing.tiny_vision import build_tiny_sam2, build_tiny_sam2_video
from tgs.types import Clip


@pytest.fixture(scope="module")
def tiny_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_sam2_video(tmp_path_factory.mktemp("tiny_sam2_video"), seed=0)


@pytest.fixture(scope="module")
def clip() -> Clip:
    rng = np.random.default_rng(7)
    frames = rng.integers(0, 256, size=(8, 64, 96, 3), dtype=np.uint8)
    return Clip(frames, None, None, np.arange(8, dtype=np.float64))


BOX = np.array([12.0, 10.0, 70.0, 50.0], np.float32)


def _one_box(num_frames: int, at: int) -> list[np.ndarray | None]:
    boxes: list[np.ndarray | None] = [None] * num_frames
    boxes[at] = BOX
    return boxes


@pytest.mark.parametrize("at", [0, 3, 7])
def test_a_box_on_one_frame_gives_a_mask_on_every_frame(tiny_video: Path, clip: Clip, at: int) -> None:
    masks = Sam2VideoSegmenter.from_pretrained(tiny_video).segment(clip, _one_box(clip.num_frames, at))
    assert masks.masks.shape == (8, 64, 96) and masks.masks.dtype == np.bool_
    assert masks.probs is not None and masks.probs.dtype == np.float32
    assert masks.meta["seed_frames"] == [at]
    assert np.all(np.isfinite(masks.meta["object_score_logits"])), "every frame must be propagated"
    assert masks.masks.any(axis=(1, 2)).all(), "forward and backward propagation must reach every frame"


def test_no_box_anywhere_gives_empty_masks(tiny_video: Path, clip: Clip) -> None:
    masks = Sam2VideoSegmenter.from_pretrained(tiny_video).segment(clip, [None] * clip.num_frames)
    assert not masks.masks.any() and masks.probs is not None and not masks.probs.any()


def test_seed_frame_equals_the_image_prediction_of_the_same_weights(tiny_video: Path, clip: Clip) -> None:
    """A seed frame is decoded without memory: the image model on the same checkpoint agrees."""
    video = Sam2VideoSegmenter.from_pretrained(tiny_video).segment(clip, _one_box(clip.num_frames, 3))
    image = Sam2ImageSegmenter.from_pretrained(tiny_video).segment(clip, _one_box(clip.num_frames, 3))
    # the video model's own image path: other kernels and shapes, the same function (float32_error)
    np.testing.assert_allclose(video.probs[3], image.probs[3], rtol=0, atol=SAM2_PROB_TOL)


def test_seed_rules_choose_different_frames(tiny_video: Path, clip: Clip) -> None:
    boxes: list[np.ndarray | None] = [None] * clip.num_frames
    boxes[2], boxes[5] = BOX, BOX + 5
    scores = [None, None, 0.3, None, None, 0.8, None, None]
    seg = Sam2VideoSegmenter.from_pretrained(tiny_video, seed_frames="best")
    assert seg.segment(clip, boxes, scores).meta["seed_frames"] == [5]
    seg = Sam2VideoSegmenter.from_pretrained(tiny_video, seed_frames="all")
    assert seg.segment(clip, boxes).meta["seed_frames"] == [2, 5]


@pytest.mark.parametrize(
    ("rule", "scores", "expected"),
    [
        ("all", None, [1, 3, 4]),
        ("first", None, [1]),
        ("best", [None, 0.2, None, 0.9, 0.9], [3]),  # ties: the earliest frame
        ("best", [None, 0.95, None, 0.9, 0.1], [1]),
    ],
)
def test_choose_seed_frames(rule: str, scores: list[float | None] | None, expected: list[int]) -> None:
    boxes = [None, BOX, None, BOX, BOX]
    assert choose_seed_frames(boxes, scores, rule) == expected


def test_best_seed_needs_scores() -> None:
    with pytest.raises(ValueError, match="score"):
        choose_seed_frames([BOX, None], None, "best")
    with pytest.raises(ValueError, match="seed_frames"):
        choose_seed_frames([BOX], None, "middle")


def test_image_checkpoint_lacks_memory_modules(tmp_path: Path) -> None:
    image_dir = build_tiny_sam2(tmp_path / "image", seed=0)
    with pytest.raises(CheckpointKeyError) as err:
        Sam2VideoSegmenter.from_pretrained(image_dir)
    assert any(k.startswith("memory_attention.") for k in err.value.missing)
