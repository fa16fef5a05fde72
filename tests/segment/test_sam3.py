"""SAM 3 as Ground + Segment: equal to transformers' own documented pipelines, the choice rules,
null from the presence-gated threshold, and one expression at a time == all together."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tgs.ground_segment import GroundSegmentStage
from tgs.presets import get_preset
from tgs.segment.sam3 import Sam3GroundSegmenter, choose_masklets
from tgs.testing.tiny_sam3 import build_tiny_sam3
from tgs.types import Clip, Query, Thought

# Tolerance for scores and boxes against transformers called directly. Both paths run the same
# float32 operations on the same tensors (ours only hands the vision and text features computed
# once to the forward, which is what transformers' forward computes itself), so they agree to a
# few float32 ulps; 1e-5 is ~100 ulps at the scores' size (~0.25, ulp 3e-8) and ~10 ulps for
# boxes in clip pixels (< 128, ulp 7.6e-6), room for a kernel choosing another blocking on
# another CPU (AVX2 vs AVX-512) for the differently batched text encoding, and far below any
# change a bug would make (a wrong prompt or frame moves scores by >1e-3 in the tiny model).
ATOL = 1e-5
TEXTS = ["dog", "a cat", "the red car"]


@pytest.fixture(scope="module")
def tiny_sam3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_sam3(tmp_path_factory.mktemp("tiny_sam3"), seed=0)


@pytest.fixture(scope="module")
def clip() -> Clip:
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 256, size=(5, 72, 128, 3), dtype=np.uint8)
    frames[:, 10:50, 20:90] = (200, 40, 40)
    return Clip(frames, None, None, np.arange(5, dtype=np.float64))


def _stage(folder: Path, mode: str) -> Sam3GroundSegmenter:
    return Sam3GroundSegmenter.from_pretrained(folder, device="cpu", dtype="fp32", mode=mode)


# --------------------------------------------------------------------------- against transformers


def test_image_mode_equals_transformers_documented_pipeline(tiny_sam3: Path, clip: Clip) -> None:
    from transformers import Sam3Model, Sam3Processor

    model = Sam3Model.from_pretrained(tiny_sam3).eval()
    processor = Sam3Processor.from_pretrained(tiny_sam3)
    ours = _stage(tiny_sam3, "image").candidates(clip, "dog", min_score=0.2)
    assert ours.per_frame and len(ours.masklets) > 0
    by_frame: dict[int, list] = {}
    for m in ours.masklets:
        (t,) = np.flatnonzero(m.present)
        by_frame.setdefault(int(t), []).append(m)
    for t, frame in enumerate(clip.frames):
        inputs = processor(images=frame, text="dog", return_tensors="pt")
        with torch.no_grad():
            outputs = model(**inputs)
        ref = processor.post_process_instance_segmentation(
            outputs, threshold=0.2, mask_threshold=0.5, target_sizes=inputs["original_sizes"].tolist()
        )[0]
        mine = by_frame.get(t, [])
        assert len(mine) == len(ref["scores"])
        for m, score, box, mask in zip(mine, ref["scores"], ref["boxes"], ref["masks"]):
            np.testing.assert_array_equal(m.masks[t], mask.numpy().astype(bool))
            assert abs(m.scores[t] - float(score)) <= ATOL
            np.testing.assert_allclose(m.boxes[t], box.numpy(), atol=ATOL, rtol=0)


def test_video_mode_equals_transformers_documented_pipeline(tiny_sam3: Path, clip: Clip) -> None:
    from transformers import Sam3VideoModel, Sam3VideoProcessor

    model = Sam3VideoModel.from_pretrained(tiny_sam3).eval()
    processor = Sam3VideoProcessor.from_pretrained(tiny_sam3)
    session = processor.init_video_session(video=list(clip.frames), inference_device="cpu", dtype=torch.float32)
    session = processor.add_text_prompt(inference_session=session, text="dog")
    ref: dict[int, dict[int, tuple]] = {}
    for out in model.propagate_in_video_iterator(inference_session=session):
        post = processor.postprocess_outputs(session, out)
        for k, obj_id in enumerate(post["object_ids"].tolist()):
            ref.setdefault(obj_id, {})[out.frame_idx] = (post["scores"][k], post["boxes"][k], post["masks"][k])
    ours = _stage(tiny_sam3, "video").candidates(clip, "dog")
    assert [m.identity for m in ours.masklets] == sorted(ref) and ref
    for m in ours.masklets:
        assert sorted(np.flatnonzero(m.present).tolist()) == sorted(ref[m.identity])
        for t, (score, box, mask) in ref[m.identity].items():
            np.testing.assert_array_equal(m.masks[t], mask.numpy())
            assert abs(m.scores[t] - float(score)) <= ATOL
            np.testing.assert_allclose(m.boxes[t], box.float().numpy(), atol=ATOL, rtol=0)


# --------------------------------------------------------------------------- rules and null


NAN = math.nan
# Three masklets over four frames (NaN: absent). Highest over the clip: masklet 1 (0.9 on frame 0);
# on keyframes {2, 3}: masklet 0 (0.7 on frame 2) beats masklet 2 (0.6 on frame 3), masklet 1 is absent.
SCORES = np.array([[0.6, NAN, 0.7, NAN], [0.9, 0.2, NAN, NAN], [NAN, 0.4, 0.3, 0.6]], np.float32)


@pytest.mark.parametrize(
    ("rule", "threshold", "keyframes", "expected"),
    [
        ("clip_best", 0.5, None, (1,)),
        ("keyframe_best", 0.5, [2, 3], (0,)),
        ("keyframe_best", 0.5, None, (1,)),  # every frame a keyframe: the clip's best
        ("keyframe_best", 0.65, [3], ()),  # 0 and 1 pass 0.65 but neither is on frame 3: null
        ("union", 0.5, None, (0, 1, 2)),
        ("union", 0.65, None, (0, 1)),
        ("clip_best", 0.95, None, ()),  # null: above every score
        ("union", 0.95, None, ()),
    ],
)
def test_choice_rules_on_known_candidates(rule: str, threshold: float, keyframes, expected) -> None:
    assert choose_masklets(SCORES, rule, threshold, keyframes) == expected


def test_unknown_rule_is_refused() -> None:
    with pytest.raises(ValueError, match="sam3_choice"):
        choose_masklets(SCORES, "first", 0.5)


def _pairs(texts: list[str]) -> list[tuple[Thought, Query]]:
    return [(Thought(uid=f"u{k}", raw="", s_object=t), Query(uid=f"u{k}", expression=t)) for k, t in enumerate(texts)]


def test_threshold_above_every_score_gives_null_with_the_score_recorded(tiny_sam3: Path, clip: Clip) -> None:
    stage = _stage(tiny_sam3, "video")
    best = max(m.score for m in stage.candidates(clip, "dog").masklets)
    for threshold, null in ((best, False), (np.nextafter(np.float32(best), np.float32(1)), True)):
        preset = get_preset("sam3", {"sam3_threshold": repr(float(threshold))})
        (result,) = GroundSegmentStage(stage, stage, preset).run_many(clip, _pairs(["dog"]))
        record = result.sample_record()["sam3"]
        assert record["null"] is null and record["best_score"] == pytest.approx(best, abs=0)
        assert bool(result.masks.masks.any()) is not null
        assert len(record["candidates"]) >= 1  # kept even when none is chosen


def test_union_is_the_merge_of_every_passing_masklet(tiny_sam3: Path, clip: Clip) -> None:
    stage = _stage(tiny_sam3, "video")
    candidates = stage.candidates(clip, "dog")
    assert len(candidates.masklets) >= 2
    _, _, masks, record = candidates.resolve("union", 0.0)
    expected = np.logical_or.reduce([m.masks for m in candidates.masklets])
    np.testing.assert_array_equal(masks.masks, expected)
    assert record["chosen"] == [m.identity for m in candidates.masklets]


# --------------------------------------------------------------------------- sharing


@pytest.mark.parametrize("mode", ["video", "image"])
def test_sharing_on_equals_off_and_frames_are_encoded_once(tiny_sam3: Path, clip: Clip, mode: str) -> None:
    """All texts at once == one text at a time (masks, identities, choice identical), each frame's
    vision features computed once for all texts.

    Video mode runs one session per text, stepped together (tgs.segment.sam3.shared_vision_features).
    One session with every text as a prompt fails this test on this tiny model (every tensor random,
    tgs.testing.weights): transformers files a frame's tracker scores under the object ids as they
    are after that frame's additions and hot-start removals, so on frame 4 the pixels two masklets
    of a prompt both claim go by another masklet's score, which depends on the other prompts."""
    stage = _stage(tiny_sam3, mode)
    detector = stage.model.detector_model if mode == "video" else stage.model
    calls = {"n": 0}
    original = detector.get_vision_features

    def counted(*args, **kwargs):
        calls["n"] += 1
        return original(*args, **kwargs)

    detector.get_vision_features = counted  # type: ignore[method-assign]
    results = {}
    for share in (True, False):
        calls["n"] = 0
        preset = get_preset("sam3", {"sam3_threshold": "0.2", "segment_mode": mode,
                                     "share_across_expressions": str(share)})
        results[share] = GroundSegmentStage(stage, stage, preset).run_many(clip, _pairs(TEXTS))
        assert calls["n"] == clip.num_frames * (1 if share else len(TEXTS))  # the shared path ran
    for on, off in zip(results[True], results[False]):
        np.testing.assert_array_equal(on.masks.masks, off.masks.masks)
        assert on.chosen == off.chosen
        a, b = on.sample_record()["sam3"], off.sample_record()["sam3"]
        assert len(a["candidates"]) == len(b["candidates"]) and a["chosen"] == b["chosen"]
        assert [x["id"] for x in a["candidates"]] == [y["id"] for y in b["candidates"]]
        for x, y in zip(a["candidates"], b["candidates"]):
            assert abs(x["score"] - y["score"]) <= ATOL
            assert [f["frame"] for f in x["frames"]] == [f["frame"] for f in y["frames"]]
            assert [f["mask"] for f in x["frames"]] == [f["mask"] for f in y["frames"]]
            for f, g in zip(x["frames"], y["frames"]):
                assert abs(f["score"] - g["score"]) <= ATOL
                np.testing.assert_allclose(f["box"], g["box"], atol=ATOL, rtol=0)


def test_stream_encodes_each_frame_once_and_equals_one_text_at_a_time(tiny_sam3: Path, clip: Clip) -> None:
    """Dense SAM 3 (tgs.segment.sam3_stream): one bounded session per text fed each frame together,
    its vision features computed once; each text's candidates equal its run alone."""
    from tgs.segment.sam3_stream import track_candidates

    stage = _stage(tiny_sam3, "video")
    calls = {"vit": 0, "neck": 0}
    vit, neck = stage.model.detector_model.get_vision_features, stage.model.get_vision_features_for_tracker

    def counted_vit(*args, **kwargs):
        calls["vit"] += 1
        return vit(*args, **kwargs)

    def counted_neck(*args, **kwargs):
        calls["neck"] += 1
        return neck(*args, **kwargs)

    stage.model.detector_model.get_vision_features = counted_vit  # type: ignore[method-assign]
    stage.model.get_vision_features_for_tracker = counted_neck  # type: ignore[method-assign]
    together = track_candidates(stage, iter(clip.frames), clip.size, TEXTS)
    assert calls == {"vit": clip.num_frames, "neck": clip.num_frames}  # the shared path ran
    assert any(found.tracks for found in together)
    for text, found in zip(TEXTS, together, strict=True):
        (alone,) = track_candidates(stage, iter(clip.frames), clip.size, [text])
        # Exact: each session runs the same float32 operations on the same tensors whether or not
        # other sessions read the same vision features (they are handed the very tensors computed
        # once), so every score, box and mask is bit for bit the same.
        assert found.tracks == alone.tracks


def test_sam3_preset_loads_only_sam3() -> None:
    """The load spec: SAM 3 alone (no Grounding DINO), its video model unless segment_mode=image
    (tests/core/test_load_spec.py checks that pre-flight and the loaders agree on it)."""
    from tgs.core.load_spec import load_spec
    from tgs.core.settings import Settings

    cpu = Settings(device="cpu")
    preset = get_preset("sam3")
    assert preset.segmenter == "sam3" and load_spec(preset, cpu).keys == ("sam3_video",)
    assert load_spec(get_preset("sam3", {"segment_mode": "image"}), cpu).keys == ("sam3",)
    assert load_spec(get_preset("sam3", {"segment_mode": "image"}), cpu, "dense").keys == ("sam3_video",)
    assert get_preset("best").differences(preset) == {"segmenter": ("sam2", "sam3")}


def test_no_candidates_is_null() -> None:
    assert choose_masklets(np.zeros((0, 4), np.float32), "clip_best", 0.0) == ()


def test_long_object_text_is_cut_to_whole_words_that_fit(tiny_sam3: Path, clip: Clip) -> None:
    """SAM 3 reads 32 tokens; transformers pads without truncating, so a long text is cut (warned)."""
    stage = _stage(tiny_sam3, "video")
    long_text = "the small dog barking loudly near the red car"  # 45 characters: 47 tokens in the tiny vocab
    fitted = stage.fit_prompt(long_text)
    assert long_text.startswith(fitted) and len(stage.processor.tokenizer(fitted)["input_ids"]) <= 32
    next_word = long_text[len(fitted):].split()[0]
    assert len(stage.processor.tokenizer(f"{fitted} {next_word}")["input_ids"]) > 32  # whole words, as many as fit
    (found,) = stage.candidates_many(clip, [long_text])
    assert found.text == long_text
    (direct,) = stage.candidates_many(clip, [fitted])
    assert [m.identity for m in found.masklets] == [m.identity for m in direct.masklets]
    for a, b in zip(found.masklets, direct.masklets):
        np.testing.assert_array_equal(a.masks, b.masks)
