"""Several expressions on one clip: ground_many == ground per text, caption truncation, device preprocessing."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from float32_error import TINY_GDINO_CHAIN, float32_bound

from tgs import fast_paths
from tgs.core.load_spec import load_spec
from tgs.core.loading import load_model
from tgs.core.settings import Settings
from tgs.ground import GroundingDinoGrounder
from tgs.ground.grounding_dino import caption_token_limit, device_original_transform, original_resize_shape
from tgs.presets import BEST, PAPER, get_preset
from tgs.testing.tiny_vision import build_tiny_grounding_dino
from tgs.types import Boxes, Clip

# 989 characters: with bert-base-uncased ~200 tokens; with the tiny vocabulary (whole words,
# unknown ones split into letters) 398 tokens, past the 256 the model reads.
LONG = ("the drummer, behind the singer in a striped shirt, who plays quietly. " * 20)[:989]
TEXTS = ["a dog", "The loudest Guitar player on the left", "null", "Error", LONG, "a red guitar."]


@pytest.fixture(scope="module")
def tiny_gdino(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_grounding_dino(tmp_path_factory.mktemp("tiny_gdino_many"), seed=0)


@pytest.fixture(scope="module")
def clip() -> Clip:
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 256, size=(5, 72, 128, 3), dtype=np.uint8)
    frames[:, 20:50, 30:90] = (200, 40, 40)
    return Clip(frames, None, None, np.arange(5, dtype=np.float64))


# Batched captions and frames round differently (other matrix shapes): both sides float32, so twice
# the tiny model's first-order bound (tests/float32_error.py); scores are in [0, 1], boxes in pixels
# of a frame <= 128 px wide (asserting the same query indices first keeps the comparison exact in
# which box is which).
SCORE_TOL = float32_bound(TINY_GDINO_CHAIN, 1.0, paths=2)
BOX_TOL = float32_bound(TINY_GDINO_CHAIN, 128.0, paths=2)


def assert_same_boxes(expected: list[Boxes], got: list[Boxes], *, atol: float = BOX_TOL, same_text: bool = True) -> None:
    assert len(expected) == len(got)
    kept = 0
    for a, b in zip(expected, got):
        assert a.text == b.text or not same_text
        assert a.image_size == b.image_size and len(a) == len(b)
        for fa, fb in zip(a.frames, b.frames):
            np.testing.assert_array_equal(fa.query_index, fb.query_index)
            np.testing.assert_allclose(fb.scores, fa.scores, rtol=0, atol=SCORE_TOL)
            np.testing.assert_allclose(fb.xyxy, fa.xyxy, rtol=0, atol=atol)
            kept += len(fa)
    assert kept > 0, "the comparison needs boxes above the threshold"


def _backbone_calls(grounder: GroundingDinoGrounder) -> list[int]:
    """Spy: frames per call of the Swin backbone (not called when ground_many reuses its outputs)."""
    calls: list[int] = []
    grounder.model.model.backbone.conv_encoder.register_forward_pre_hook(
        lambda _m, args: calls.append(int(args[0].shape[0]))
    )
    return calls


def _caption_groups(grounder: GroundingDinoGrounder, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Spy: captions per forward of ground_many (the padded text batch it builds)."""
    sizes: list[int] = []
    real = grounder._text_batch

    def spy(tokens, frames):
        sizes.append(len(tokens))
        return real(tokens, frames)

    monkeypatch.setattr(grounder, "_text_batch", spy)
    return sizes


@pytest.mark.parametrize("preset", [PAPER, BEST], ids=["paper", "best"])
def test_batch_captions_switch_decides_the_padded_forward(preset, clip: Clip, monkeypatch: pytest.MonkeyPatch) -> None:
    """Off (both presets): one caption per forward, the batched code never runs; on: all of a
    frame's captions in one padded forward, counted as the fast path ``ground.caption_batch``."""
    settings = Settings.tiny(device="cpu", dtype="fp32")
    assert preset.batch_captions is False
    texts = TEXTS[:4]
    off = load_model(load_spec(preset, settings).grounder)
    sizes = _caption_groups(off, monkeypatch)
    with fast_paths.counting() as ledger:
        off.ground_many(clip, texts)
    assert sizes == [1] * len(texts) * clip.num_frames and "ground.caption_batch" not in ledger.ran
    on = load_model(load_spec(replace(preset, batch_captions=True), settings).grounder)
    sizes = _caption_groups(on, monkeypatch)
    with fast_paths.counting() as ledger:
        on.ground_many(clip, texts)
    assert sizes == [len(texts)] * clip.num_frames and ledger.ran["ground.caption_batch"] == clip.num_frames
    assert get_preset(preset.name, {"batch_captions": "true"}).batch_captions is True


@pytest.mark.parametrize(("preprocess", "frame_batch_size"), [("original", 1), ("hf", 1), ("original", 3)])
def test_ground_many_equals_ground_per_text(
    tiny_gdino: Path, clip: Clip, preprocess: str, frame_batch_size: int
) -> None:
    grounder = GroundingDinoGrounder.from_pretrained(
        tiny_gdino, preprocess=preprocess, frame_batch_size=frame_batch_size, box_threshold=0.3
    )
    assert grounder.expression_batch_size == 1  # the default: one caption per forward
    swin_calls = _backbone_calls(grounder)
    expected = [grounder.ground(clip, text) for text in TEXTS]
    assert len(swin_calls) == len(TEXTS) * -(-clip.num_frames // frame_batch_size)
    swin_calls.clear()
    got = grounder.ground_many(clip, TEXTS)
    assert len(swin_calls) == -(-clip.num_frames // frame_batch_size)  # the backbone once per frame batch, for all texts
    assert_same_boxes(expected, got)
    for a, b in zip(expected, got):  # same shapes in every forward: bit-identical
        for fa, fb in zip(a.frames, b.frames):
            np.testing.assert_array_equal(fa.scores, fb.scores)
            np.testing.assert_array_equal(fa.xyxy, fb.xyxy)


@pytest.mark.parametrize("expression_batch_size", [2, None])
def test_batched_expressions_with_padding_agree(tiny_gdino: Path, clip: Clip, expression_batch_size: int | None) -> None:
    """Captions of different lengths padded into one forward: same boxes and query order; the
    batched matrix products round differently, so scores and boxes within the float32 bound."""
    single = GroundingDinoGrounder.from_pretrained(tiny_gdino, box_threshold=0.3)
    batched = GroundingDinoGrounder.from_pretrained(
        tiny_gdino, box_threshold=0.3, expression_batch_size=expression_batch_size or len(TEXTS)
    )
    assert_same_boxes(single.ground_many(clip, TEXTS), batched.ground_many(clip, TEXTS))


def test_ground_many_of_nothing_and_bf16(tiny_gdino: Path, clip: Clip) -> None:
    grounder = GroundingDinoGrounder.from_pretrained(tiny_gdino, dtype="bf16")
    assert grounder.ground_many(clip, []) == []
    expected = [grounder.ground(clip, t) for t in TEXTS[:2]]
    got = grounder.ground_many(clip, TEXTS[:2])
    for a, b in zip(expected, got):
        for fa, fb in zip(a.frames, b.frames):
            np.testing.assert_array_equal(fa.query_index, fb.query_index)
            np.testing.assert_array_equal(fa.scores, fb.scores)


def test_caption_token_limit_comes_from_the_config(tiny_gdino: Path) -> None:
    from transformers import GroundingDinoConfig

    grounder = GroundingDinoGrounder.from_pretrained(tiny_gdino)
    assert caption_token_limit(tiny_gdino) == caption_token_limit(str(tiny_gdino)) == 256
    assert caption_token_limit(grounder.model) == grounder.caption_token_limit == 256
    assert caption_token_limit(GroundingDinoConfig(max_text_len=128)) == 128


def test_long_caption_is_truncated_to_the_model_limit(
    tiny_gdino: Path, clip: Clip, caplog: pytest.LogCaptureFixture
) -> None:
    """A 989-character expression used to raise "The size of tensor a (398) must match the size of
    tensor b (256)"; now the model reads its first 256 tokens, as the original does."""
    grounder = GroundingDinoGrounder.from_pretrained(tiny_gdino, box_threshold=0.3)
    tokens = grounder.tokenize(LONG.lower() + ".")
    assert len(LONG) == 989 and tokens["input_ids"].shape[1] > 256
    assert tokens["attention_mask"].shape[1] == 256
    with caplog.at_level(logging.WARNING, logger="tgs.ground.grounding_dino"):
        boxes = grounder.ground(clip, LONG)
    assert "caption truncation" in caplog.text and "first 256" in caplog.text
    assert len(boxes) == clip.num_frames and sum(len(f) for f in boxes.frames) > 0
    # Tokens past the limit are not read: another ending after the same first 300 tokens gives the same boxes.
    ids = tokens["input_ids"][0]
    head = grounder.processor.tokenizer.decode(ids[1:300])
    variant = head + " the piano on the right is silent and nobody plays it."
    assert grounder.tokenize(variant)["input_ids"][0][:300].tolist() == ids[:300].tolist()
    assert_same_boxes([grounder.ground(clip, LONG)], [grounder.ground(clip, variant)], same_text=False)


def test_device_preprocess_hf_equals_the_host_path(tiny_gdino: Path, clip: Clip) -> None:
    host = GroundingDinoGrounder.from_pretrained(tiny_gdino, preprocess="hf", box_threshold=0.3)
    device = GroundingDinoGrounder.from_pretrained(tiny_gdino, preprocess="hf", box_threshold=0.3, device_preprocess=True)
    a, b = host.pixel_inputs(clip.frames), device.pixel_inputs(clip.frames)
    torch.testing.assert_close(a["pixel_values"], b["pixel_values"], rtol=0, atol=0)
    assert torch.equal(a["pixel_mask"], b["pixel_mask"])
    assert_same_boxes(host.ground_many(clip, TEXTS[:3]), device.ground_many(clip, TEXTS[:3]))


@pytest.mark.parametrize(
    ("height", "width"), [(720, 1280), (1080, 1920), (480, 640), (1000, 500), (300, 200), (72, 128)]
)
def test_device_original_transform_equals_the_pil_path(height: int, width: int) -> None:
    """Pillow's bilinear resize in integer tensor ops: the same pixels as PIL, up- and downscaling."""
    from tgs.ground.grounding_dino import original_transform

    rng = np.random.default_rng(height)
    frame = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    frame[10 : height // 2, 20 : width // 2] = (200, 40, 40)
    size, max_size = (800, 1333) if height > 100 else (80, 133)
    shape = original_resize_shape(height, width, size, max_size)
    pil = original_transform(frame, size, max_size)
    ours = device_original_transform(torch.from_numpy(frame)[None], shape)[0]
    assert ours.shape == pil.shape == (3, *shape)
    torch.testing.assert_close(ours, pil, rtol=0, atol=0)


def test_device_preprocess_original_gives_the_same_boxes(tiny_gdino: Path, clip: Clip) -> None:
    host = GroundingDinoGrounder.from_pretrained(tiny_gdino, preprocess="original", box_threshold=0.3)
    device = GroundingDinoGrounder.from_pretrained(
        tiny_gdino, preprocess="original", box_threshold=0.3, device_preprocess=True
    )
    torch.testing.assert_close(
        host.pixel_inputs(clip.frames)["pixel_values"], device.pixel_inputs(clip.frames)["pixel_values"], rtol=0, atol=0
    )
    expected = [host.ground(clip, t) for t in TEXTS[:3]]
    assert_same_boxes(expected, device.ground_many(clip, TEXTS[:3]))


def test_compile_switch_gives_the_same_boxes(tiny_gdino: Path, clip: Clip) -> None:
    """``compile`` wraps the heavy submodules in torch.compile; "aot_eager" traces them the same way
    inductor does without its minutes of C++ compilation on a small CPU."""
    eager = GroundingDinoGrounder.from_pretrained(tiny_gdino, box_threshold=0.3)
    compiled = GroundingDinoGrounder.from_pretrained(tiny_gdino, box_threshold=0.3, compile="aot_eager")
    assert compiled.compile == "aot_eager" and eager.compile is None
    assert hasattr(compiled.model.model.encoder, "_compiled_call_impl")
    short = Clip(clip.frames[:2], None, None, clip.frame_times[:2])  # tracing time grows with the shapes seen
    assert_same_boxes(eager.ground_many(short, TEXTS[:1]), compiled.ground_many(short, TEXTS[:1]))
    with pytest.raises(ValueError, match="compile"):
        GroundingDinoGrounder.from_pretrained(tiny_gdino, compile=3)  # type: ignore[arg-type]
