"""Ground stage over a tiny random Grounding DINO: caption rule, preprocessing, box selection."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from float32_error import TINY_GDINO_CHAIN, float32_bound
from PIL import Image
from safetensors.torch import load_file, save_file

from tgs.errors import CheckpointKeyError, MissingWeightsError
from tgs.ground import GroundingDinoGrounder, prepare_caption
from tgs.ground.grounding_dino import original_resize_shape
from tgs.testing.tiny_vision import build_tiny_grounding_dino
from tgs.types import Boxes, Clip

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


@pytest.fixture(scope="module")
def tiny_gdino(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_grounding_dino(tmp_path_factory.mktemp("tiny_gdino"), seed=0)


@pytest.fixture(scope="module")
def clip() -> Clip:
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 256, size=(6, 72, 128, 3), dtype=np.uint8)
    frames[:, 20:50, 30:90] = (200, 40, 40)  # a flat object so frames are not pure noise
    return Clip(frames, None, None, np.arange(6, dtype=np.float64))


@pytest.mark.parametrize(
    ("text", "dedupe", "expected"),
    [
        ("A Dog", False, "a dog."),
        ("  Guitar Player \n", False, "guitar player."),
        ("the dog.", False, "the dog.."),  # the original appends a period unconditionally
        ("the dog.", True, "the dog."),
        ("null", False, "null."),
        ("Error", False, "error."),
        ("", False, "."),
    ],
)
def test_prepare_caption(text: str, dedupe: bool, expected: str) -> None:
    assert prepare_caption(text, dedupe_period=dedupe) == expected


@pytest.mark.parametrize(
    ("hw", "expected"),
    [
        ((720, 1280), (750, 1333)),  # Ref-AVSBench frames: long side capped at 1333
        ((480, 640), (800, 1066)),
        ((800, 800), (800, 800)),
        ((224, 224), (800, 800)),
        ((1000, 500), (1332, 666)),  # round(666.5) = 666, then int(666 * 1000 / 500)
    ],
)
def test_original_resize_shape(hw: tuple[int, int], expected: tuple[int, int]) -> None:
    assert original_resize_shape(*hw) == expected


def test_hf_resize_rule_differs_from_original_on_some_shapes() -> None:
    """transformers computes the long side from the unrounded short side: 1333 vs 1332 here."""
    from transformers.image_transforms import get_size_with_aspect_ratio

    assert get_size_with_aspect_ratio((720, 1280), 800, 1333) == original_resize_shape(720, 1280)
    assert get_size_with_aspect_ratio((1000, 500), 800, 1333) == (1333, 666)
    assert original_resize_shape(1000, 500) == (1332, 666)


def _reference_original_transform(frame: np.ndarray, shortest: int, longest: int) -> np.ndarray:
    """GroundingDINO load_image: PIL bilinear resize, /255, ImageNet normalisation; [3, h, w]."""
    h, w = original_resize_shape(frame.shape[0], frame.shape[1], shortest, longest)
    resized = np.asarray(Image.fromarray(frame).resize((w, h), Image.BILINEAR), dtype=np.float32) / 255.0
    return ((resized - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1)


def test_original_preprocessing_matches_reference_and_hf_is_within_one_grey_level(tiny_gdino: Path) -> None:
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, size=(72, 128, 3), dtype=np.uint8)
    original = GroundingDinoGrounder.from_pretrained(tiny_gdino, preprocess="original")
    hf = GroundingDinoGrounder.from_pretrained(tiny_gdino)
    reference = _reference_original_transform(frame, 80, 133)
    ours = original.pixel_inputs(frame[None])["pixel_values"][0].numpy()
    assert ours.shape == reference.shape == (3, 75, 133)
    # The same uint8 PIL resize on both sides, then x / 255, - mean, / std in float32 in either
    # order: <= 4 roundings of values within [-2.2, 2.7] (ImageNet normalisation), 4 u x 2.7 ~ 7e-7
    # per side; 1e-5 is ten times both.
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-5)
    # transformers resizes the uint8 tensor with torchvision's antialiased kernel: off by <= 1 grey level.
    theirs = hf.pixel_inputs(frame[None])["pixel_values"][0].numpy()
    assert theirs.shape == reference.shape
    one_level = 1.0 / 255.0 / IMAGENET_STD.min()
    assert np.abs(theirs - reference).max() <= one_level + 1e-5


def test_ground_returns_query_ordered_boxes_in_clip_pixels(tiny_gdino: Path, clip: Clip) -> None:
    grounder = GroundingDinoGrounder.from_pretrained(tiny_gdino, box_threshold=0.3)
    boxes = grounder.ground(clip, "The loudest Guitar")
    assert isinstance(boxes, Boxes)
    assert boxes.text == "the loudest guitar."
    assert boxes.image_size == (72, 128) and len(boxes) == clip.num_frames
    assert sum(len(f) for f in boxes.frames) > 0, "the tiny model must produce boxes above threshold"
    for frame in boxes.frames:
        assert frame.xyxy.dtype == np.float32 and frame.scores.dtype == np.float32
        assert frame.query_index.dtype == np.int64
        assert np.all(np.diff(frame.query_index) > 0), "boxes must come in detector query order"
        assert np.all(frame.scores > 0.3) and np.all(frame.scores <= 1.0)
        assert np.all(frame.xyxy[:, 2] >= frame.xyxy[:, 0]) and np.all(frame.xyxy[:, 3] >= frame.xyxy[:, 1])


@pytest.mark.numeric
def test_ground_matches_a_direct_model_call(tiny_gdino: Path, clip: Clip) -> None:
    """Scores = max over tokens of sigmoid(logits); boxes = cxcywh * (w, h, w, h) -> xyxy."""
    grounder = GroundingDinoGrounder.from_pretrained(tiny_gdino, box_threshold=0.5)
    boxes = grounder.ground(clip, "a red guitar")
    inputs = grounder.processor(images=[clip.frames[2]], text="a red guitar.", return_tensors="pt")
    with torch.no_grad():
        out = grounder.model(**inputs)
    scores = torch.sigmoid(out.logits[0]).max(dim=-1).values.numpy()
    keep = np.flatnonzero(scores > 0.5)
    cx, cy, w, h = (out.pred_boxes[0, keep].numpy() * np.array([128, 72, 128, 72], np.float32)).T
    expected = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    frame = boxes.frames[2]
    np.testing.assert_array_equal(frame.query_index, keep)
    # The same model call, but ours batches the frames (other summation orders): both float32,
    # twice the tiny model's first-order bound; scores in [0, 1], boxes within 128 px.
    np.testing.assert_allclose(frame.scores, scores[keep], rtol=0, atol=float32_bound(TINY_GDINO_CHAIN, 1.0, 2))
    np.testing.assert_allclose(frame.xyxy, expected, rtol=0, atol=float32_bound(TINY_GDINO_CHAIN, 128.0, 2))
    assert frame.first() == 0 and frame.query_index[frame.first()] == keep[0]


@pytest.mark.numeric
def test_batched_frames_give_the_same_boxes_as_one_at_a_time(tiny_gdino: Path, clip: Clip) -> None:
    single = GroundingDinoGrounder.from_pretrained(tiny_gdino, frame_batch_size=1).ground(clip, "a dog")
    batched = GroundingDinoGrounder.from_pretrained(tiny_gdino, frame_batch_size=4).ground(clip, "a dog")
    for a, b in zip(single.frames, batched.frames):
        np.testing.assert_array_equal(a.query_index, b.query_index)
        # other batch shapes round differently: twice the tiny model's first-order float32 bound
        np.testing.assert_allclose(a.xyxy, b.xyxy, rtol=0, atol=float32_bound(TINY_GDINO_CHAIN, 128.0, 2))
        np.testing.assert_allclose(a.scores, b.scores, rtol=0, atol=float32_bound(TINY_GDINO_CHAIN, 1.0, 2))


def test_bf16_keeps_deformable_sampling_in_fp32(tiny_gdino: Path, clip: Clip) -> None:
    from transformers.models.grounding_dino.modeling_grounding_dino import MultiScaleDeformableAttention

    from tgs.ground.deformable_sampling import GatherDeformableAttention

    grounder = GroundingDinoGrounder.from_pretrained(tiny_gdino, dtype="bf16")
    assert grounder.fp32_deformable_sampling and grounder.model.dtype == torch.bfloat16
    seen: list[tuple[torch.dtype, torch.dtype]] = []
    kernels = (MultiScaleDeformableAttention, GatherDeformableAttention)
    modules = [m for m in grounder.model.modules() if isinstance(m, kernels)]
    assert len(modules) == 3  # 1 encoder + 2 decoder layers in the tiny model
    for module in modules:  # registered after the stage's hooks: sees what the sampling sees
        module.register_forward_pre_hook(lambda _m, args: seen.append((args[0].dtype, args[4].dtype)))
    boxes = grounder.ground(clip, "a dog")
    assert seen and all(value == loc == torch.float32 for value, loc in seen)
    assert len(boxes) == clip.num_frames
    fp32 = GroundingDinoGrounder.from_pretrained(tiny_gdino)
    assert not fp32.fp32_deformable_sampling


def test_threshold_one_keeps_nothing(tiny_gdino: Path, clip: Clip) -> None:
    boxes = GroundingDinoGrounder.from_pretrained(tiny_gdino, box_threshold=1.0).ground(clip, "a dog")
    assert all(len(f) == 0 for f in boxes.frames)
    assert boxes.select("first") == [None] * clip.num_frames


def test_bad_settings_are_rejected(tiny_gdino: Path) -> None:
    with pytest.raises(ValueError, match="preprocess"):
        GroundingDinoGrounder.from_pretrained(tiny_gdino, preprocess="cv2")
    with pytest.raises(ValueError, match="frame_batch_size"):
        GroundingDinoGrounder.from_pretrained(tiny_gdino, frame_batch_size=0)
    with pytest.raises(ValueError, match="threshold"):
        GroundingDinoGrounder.from_pretrained(tiny_gdino, box_threshold=1.5)


def test_missing_local_directory_fails_fast(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(MissingWeightsError) as err:
        GroundingDinoGrounder.from_pretrained(missing)
    assert str(missing) in str(err.value) and "huggingface-cli download" in str(err.value)


def test_unknown_hub_id_offline_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    attempts: list[object] = []

    def no_connection(sock: socket.socket, address: object) -> None:
        attempts.append(address)
        raise OSError("network used by an offline test")

    monkeypatch.setattr(socket.socket, "connect", no_connection)
    with pytest.raises(MissingWeightsError) as err:
        GroundingDinoGrounder.from_pretrained("IDEA-Research/no-such-grounding-model")
    assert attempts == []  # fails at once: not one connection attempt, so no retries to wait for
    assert "IDEA-Research/no-such-grounding-model" in str(err.value) and "HF_HUB_OFFLINE" in str(err.value)


def test_checkpoint_with_other_keys_is_rejected(tiny_gdino: Path, tmp_path: Path) -> None:
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(tiny_gdino, bad)
    state = load_file(bad / "model.safetensors")
    dropped = "model.text_projection.weight"
    state.pop(dropped)
    state["model.surplus.weight"] = torch.zeros(2)
    save_file(state, bad / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(CheckpointKeyError) as err:
        GroundingDinoGrounder.from_pretrained(bad)
    assert dropped in err.value.missing
    assert "model.surplus.weight" in err.value.unexpected
