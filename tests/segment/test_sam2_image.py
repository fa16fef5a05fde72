"""Segment stage, per-frame SAM2 over a tiny random model: shapes, post-processing facts, loading."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from float32_error import assert_masks_agree
from safetensors.torch import load_file, save_file

from tgs.errors import CheckpointKeyError, MissingWeightsError
from tgs.segment import Sam2ImageSegmenter
from tgs.segment._sam2_common import boxes_to_input_coords, low_res_to_masks_and_probs, pixel_values
from tgs.testing.tiny_vision import build_tiny_sam2, build_tiny_sam2_video
from tgs.types import Clip, Masks

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


@pytest.fixture(scope="module")
def tiny_sam2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_sam2(tmp_path_factory.mktemp("tiny_sam2"), seed=0)


@pytest.fixture(scope="module")
def clip() -> Clip:
    rng = np.random.default_rng(5)
    frames = rng.integers(0, 256, size=(5, 64, 96, 3), dtype=np.uint8)
    return Clip(frames, None, None, np.arange(5, dtype=np.float64))


BOXES = [
    np.array([10, 8, 60, 50], np.float32),
    None,
    np.array([0, 0, 95, 63], np.float32),
    None,
    [30, 20, 40, 30],
]


def test_masks_shapes_dtypes_and_empty_frames(tiny_sam2: Path, clip: Clip) -> None:
    masks = Sam2ImageSegmenter.from_pretrained(tiny_sam2).segment(clip, BOXES)
    assert isinstance(masks, Masks)
    assert masks.masks.shape == (5, 64, 96) and masks.masks.dtype == np.bool_
    assert masks.probs is not None and masks.probs.shape == (5, 64, 96) and masks.probs.dtype == np.float32
    assert np.all((masks.probs >= 0) & (masks.probs <= 1))
    for i in (1, 3):  # no box: zero mask and zero probabilities, no prediction made
        assert not masks.masks[i].any() and not masks.probs[i].any()
        assert np.isnan(masks.meta["iou_scores"][i])
    for i in (0, 2, 4):
        assert masks.probs[i].min() > 0 and np.isfinite(masks.meta["iou_scores"][i])


@pytest.mark.numeric
def test_batched_frames_match_one_at_a_time(tiny_sam2: Path, clip: Clip) -> None:
    single = Sam2ImageSegmenter.from_pretrained(tiny_sam2, frame_batch_size=1).segment(clip, BOXES)
    batched = Sam2ImageSegmenter.from_pretrained(tiny_sam2, frame_batch_size=3).segment(clip, BOXES)
    assert_masks_agree(single.masks, single.probs, batched.masks, batched.probs)  # see tests/float32_error.py


@pytest.mark.numeric
def test_low_res_logits_are_resized_bilinearly_without_corner_alignment() -> None:
    """2x2 -> 4x4 with align_corners=False: rows are a, 3a/4 + b/4, a/4 + 3b/4, b."""
    low = torch.tensor([[[[-2.0, 6.0], [2.0, 10.0]]]])
    masks, probs = low_res_to_masks_and_probs(low, (4, 4))
    top = np.array([-2.0, 0.0, 4.0, 6.0])
    bottom = np.array([2.0, 4.0, 8.0, 10.0])
    rows = np.stack([top, 0.75 * top + 0.25 * bottom, 0.25 * top + 0.75 * bottom, bottom])
    # dyadic logits: the resize is exact; float32 sigmoid (exp, add, divide) within 4 u of numpy's
    np.testing.assert_allclose(probs[0], 1 / (1 + np.exp(-rows)), rtol=4 * 2.0**-24, atol=0)
    np.testing.assert_array_equal(masks[0], rows > 0)


def test_probabilities_use_logits_clamped_to_32() -> None:
    low = torch.full((1, 1, 4, 4), -100.0)
    masks, probs = low_res_to_masks_and_probs(low, (8, 8))
    assert not masks.any()
    np.testing.assert_array_equal(
        probs, np.full((1, 8, 8), torch.sigmoid(torch.tensor(-32.0)).item(), np.float32)
    )


@pytest.mark.numeric
def test_box_coordinates_follow_sam2_transforms() -> None:
    coords = boxes_to_input_coords(np.array([[22.4, 44.8, 112.0, 224.0]]), (224, 224), (1024, 1024))
    # the box rounded to float32, / w, * 1024: three roundings, 3 u relative
    np.testing.assert_allclose(coords.numpy(), [[102.4, 204.8, 512.0, 1024.0]], rtol=3 * 2.0**-24)
    coords = boxes_to_input_coords(np.array([[64.0, 36.0, 1280.0, 720.0]]), (720, 1280), (1024, 1024))
    np.testing.assert_allclose(coords.numpy(), [[51.2, 51.2, 1024.0, 1024.0]], rtol=3 * 2.0**-24)


@pytest.mark.numeric
def test_original_preprocessing_resizes_floats_and_hf_is_within_one_grey_level(tiny_sam2: Path) -> None:
    """SAM2Transforms: ToTensor, Resize on floats, Normalize (here a 224 frame up to 128... and 64 up to 128)."""
    segmenter = Sam2ImageSegmenter.from_pretrained(tiny_sam2)
    ip = segmenter.processor.image_processor
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, size=(2, 64, 64, 3), dtype=np.uint8)  # upscaled, like 224 -> 1024
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0
    reference = (
        F.interpolate(x, size=(128, 128), mode="bilinear", align_corners=False) - IMAGENET_MEAN
    ) / IMAGENET_STD
    ours = pixel_values(frames, ip, "original")
    # bilinear (<= 4 taps, weights rounded: ~ 8 u of values <= 1), then - mean, / std (2 roundings of
    # values <= 2.7): ~ 8 u x 4.5 + 2 u x 2.7 ~ 2.5e-6 per side; 1e-5 covers both
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=0)
    theirs = pixel_values(frames, ip, "hf")
    assert (theirs - reference).abs().max().item() <= 1 / 255 / 0.224 + 1e-5


def test_paper_shaped_input_runs_at_224(tiny_sam2: Path) -> None:
    frames = np.random.default_rng(2).integers(0, 256, size=(2, 224, 224, 3), dtype=np.uint8)
    clip = Clip(frames, None, None, np.arange(2, dtype=np.float64))
    seg = Sam2ImageSegmenter.from_pretrained(tiny_sam2, preprocess="original")
    masks = seg.segment(clip, [np.array([20.0, 30.0, 180.0, 200.0]), None])
    assert masks.masks.shape == (2, 224, 224) and masks.probs.shape == (2, 224, 224)


def test_bad_boxes_are_rejected(tiny_sam2: Path, clip: Clip) -> None:
    seg = Sam2ImageSegmenter.from_pretrained(tiny_sam2)
    with pytest.raises(ValueError, match="one box"):
        seg.segment(clip, BOXES[:2])
    with pytest.raises(ValueError, match="frame 1"):
        seg.segment(clip, [None, np.array([1.0, 2.0, 3.0]), None, None, None])


def test_video_checkpoint_loads_into_the_image_segmenter(tmp_path: Path, clip: Clip) -> None:
    """The hub's facebook/sam2.1-* repositories are Sam2VideoModel checkpoints."""
    video_dir = build_tiny_sam2_video(tmp_path / "video", seed=0)
    masks = Sam2ImageSegmenter.from_pretrained(video_dir).segment(clip, BOXES)
    assert masks.masks.shape == (5, 64, 96)


def test_missing_directory_fails_fast(tmp_path: Path) -> None:
    with pytest.raises(MissingWeightsError) as err:
        Sam2ImageSegmenter.from_pretrained(tmp_path / "nothing-here")
    assert "nothing-here" in str(err.value) and "sam2.1-hiera-large" in str(err.value)


def test_checkpoint_with_missing_extra_and_reshaped_keys_is_rejected(tiny_sam2: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(tiny_sam2, bad)
    state = load_file(bad / "model.safetensors")
    state.pop("mask_decoder.conv_s0.bias")
    state["surplus.weight"] = torch.zeros(3)
    state["mask_decoder.iou_token.weight"] = state["mask_decoder.iou_token.weight"][:, :5].clone()
    save_file(state, bad / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(CheckpointKeyError) as err:
        Sam2ImageSegmenter.from_pretrained(bad)
    assert err.value.missing == ["mask_decoder.conv_s0.bias"]
    assert err.value.unexpected == ["surplus.weight"]
    assert "mask_decoder.iou_token.weight" in str(err.value)
