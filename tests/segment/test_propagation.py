"""Dense propagation engine: policy decisions, sharing across objects, pruning, re-seeding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tgs.segment import Sam2VideoSegmenter
from tgs.segment._sam2_common import low_res_to_masks_and_probs
from tgs.segment.frame_source import ArrayFrameSource
from tgs.segment.propagation import (
    ObjectPrompts,
    PropagationEngine,
    PropagationPolicy,
    PropagationStats,
    box_iou,
    mask_box,
    needs_reseed,
)
from tgs.testing.tiny_vision import build_tiny_edgetam_video, build_tiny_sam2_video
from tgs.types import Clip


@pytest.fixture(scope="module")
def tiny_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_sam2_video(tmp_path_factory.mktemp("tiny_sam2_video"), seed=0)


@pytest.fixture(scope="module")
def segmenter(tiny_video: Path) -> Sam2VideoSegmenter:
    return Sam2VideoSegmenter.from_pretrained(tiny_video, dtype="float32")


def _clip(num_frames: int, height: int = 48, width: int = 64, seed: int = 3) -> Clip:
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, size=(num_frames, height, width, 3), dtype=np.uint8)
    return Clip(frames, None, None, np.arange(num_frames, dtype=np.float64))


def _boxes(num_frames: int, at: dict[int, list[float]]) -> list[np.ndarray | None]:
    return [np.asarray(at[i], np.float32) if i in at else None for i in range(num_frames)]


# ---------------------------------------------------------------------------- policy logic


def test_mask_box_and_iou() -> None:
    mask = np.zeros((10, 12), bool)
    mask[2:5, 3:9] = True
    np.testing.assert_array_equal(mask_box(mask), [3, 2, 9, 5])
    assert mask_box(np.zeros((4, 4), bool)) is None
    assert box_iou(np.array([0, 0, 2, 2.0]), np.array([1, 1, 3, 3.0])) == pytest.approx(1 / 7)
    assert box_iou(np.array([0, 0, 1, 1.0]), np.array([2, 2, 3, 3.0])) == 0.0


def test_reseed_decision_follows_the_overlap() -> None:
    mask = np.zeros((20, 20), bool)
    mask[0:10, 0:10] = True
    assert not needs_reseed(mask, np.array([0, 0, 10, 10.0]), 0.5)  # agrees
    assert needs_reseed(mask, np.array([10, 10, 20, 20.0]), 0.5)  # the object moved away: lost
    assert needs_reseed(np.zeros((20, 20), bool), np.array([0, 0, 10, 10.0]), 0.1)  # empty mask
    assert not needs_reseed(mask, np.array([10, 10, 20, 20.0]), None)  # switched off
    # IoU of [0,0,10,10] and [0,0,10,20] is 0.5: not below a 0.5 threshold, below 0.6
    assert not needs_reseed(mask, np.array([0, 0, 10, 20.0]), 0.5)
    assert needs_reseed(mask, np.array([0, 0, 10, 20.0]), 0.6)


def test_policy_plan_and_switches(segmenter: Sam2VideoSegmenter) -> None:
    prompts = ObjectPrompts.from_lists([0, 3, 6, 9], [None, [1, 1, 5, 5], [2, 2, 6, 6], [0, 0, 4, 4]],
                                       [None, 0.3, 0.9, 0.2])
    plan = segmenter.engine.plan
    assert sorted(plan(prompts, PropagationPolicy(seed_frames="all"))[0]) == [3, 6, 9]
    seeds, checks = plan(prompts, PropagationPolicy(seed_frames="first", reseed_iou=0.5))
    assert sorted(seeds) == [3] and sorted(checks) == [6, 9]
    assert sorted(plan(prompts, PropagationPolicy(seed_frames="best"))[0]) == [6]
    seeds, checks = plan(prompts, PropagationPolicy(seed_frames="first", min_seed_score=0.25, reseed_iou=None))
    assert sorted(seeds) == [3] and checks == {}
    assert plan(ObjectPrompts.none(), PropagationPolicy()) == ({}, {})
    switches = PropagationPolicy.switches()
    assert switches["seed_frames"]["choices"] == ("all", "best", "first")
    assert switches["reseed_iou"]["default"] == 0.5
    with pytest.raises(ValueError, match="seed_frames"):
        PropagationPolicy(seed_frames="middle")
    with pytest.raises(ValueError, match="reseed_iou"):
        PropagationPolicy(reseed_iou=1.5)
    with pytest.raises(ValueError, match="increasing"):
        ObjectPrompts.from_lists([3, 1], [None, None])


# ---------------------------------------------------------------------------- engine


def test_segment_many_equals_segment_per_object(segmenter: Sam2VideoSegmenter) -> None:
    """All objects in one propagation == each object alone (fp32, exact), first seeds differing."""
    clip = _clip(12)
    objects = [
        _boxes(12, {0: [4, 4, 30, 30], 7: [10, 8, 40, 40]}),
        _boxes(12, {5: [20, 10, 60, 44]}),
        [None] * 12,  # a null answer
        _boxes(12, {11: [0, 0, 20, 20], 3: [30, 20, 63, 47]}),
    ]
    encoded: list[int] = []  # spy: the objects share one propagation, so frames are encoded for all at once
    hook = segmenter.model.vision_encoder.register_forward_pre_hook(lambda *_: encoded.append(1))
    try:
        many = segmenter.segment_many(clip, objects)
        shared_encodings = len(encoded)
        encoded.clear()
        alone = [segmenter.segment(clip, boxes) for boxes in objects]
    finally:
        hook.remove()
    # shared: each frame at most once per pass (backward, then forward) whatever the object count;
    # alone: every seeded object encodes its frames again (3 objects x 12 frames here)
    assert shared_encodings <= 2 * clip.num_frames < len(encoded)
    assert len(many) == 4
    for shared, single in zip(many, alone, strict=True):
        np.testing.assert_array_equal(shared.masks, single.masks)
        np.testing.assert_array_equal(shared.probs, single.probs)
        assert shared.meta.get("seed_frames") == single.meta.get("seed_frames")
    assert not many[2].masks.any() and not many[2].probs.any()


def test_null_answer_gives_empty_masks_on_every_frame(segmenter: Sam2VideoSegmenter) -> None:
    clip = _clip(6)
    results = list(segmenter.engine.run(ArrayFrameSource(clip.frames), [ObjectPrompts.none()]))
    assert [r.index for r in results] == list(range(6))
    assert all(not r.masks.any() and np.isnan(r.scores).all() for r in results)


@pytest.mark.parametrize("first", [0, 23, 44])
def test_pruned_sessions_equal_the_unpruned_reference(tiny_video: Path, segmenter: Sam2VideoSegmenter,
                                                      first: int) -> None:
    """The memory kept (window of 15 frames around the frontier) is all propagation reads."""
    clip = _clip(45, 32, 40, seed=5)
    prompts = [ObjectPrompts.from_lists([first], [[4, 4, 30, 24]])]
    reference = PropagationEngine(segmenter.model, segmenter.processor, device=segmenter.device,
                                  dtype=segmenter.dtype, retain_all=True, chunk_size=7)
    policy = PropagationPolicy(max_conditioning_frames=None)
    unpruned = PropagationStats()
    want = list(reference.run(ArrayFrameSource(clip.frames), prompts, policy, with_probs=True, stats=unpruned))
    assert unpruned.peak_stored_frames == 45
    engine = PropagationEngine(segmenter.model, segmenter.processor, device=segmenter.device,
                               dtype=segmenter.dtype, chunk_size=7)
    stats = PropagationStats()
    seen: list[int] = []
    got = []
    for result in engine.run(ArrayFrameSource(clip.frames), prompts, policy, with_probs=True, stats=stats,
                             on_frame=lambda s: seen.append(s.frames_done)):
        got.append(result)
    assert seen == list(range(1, 46)) and stats.frames_done == 45
    assert stats.seconds["track"] > 0
    assert stats.peak_stored_frames <= 2 * engine.window + 2  # the window on each side of a seed
    for a, b in zip(want, got, strict=True):
        np.testing.assert_array_equal(a.masks, b.masks)
        np.testing.assert_array_equal(a.probs, b.probs)
        np.testing.assert_array_equal(a.scores, b.scores)


def test_a_lost_object_is_reseeded(segmenter: Sam2VideoSegmenter) -> None:
    """The object leaves and re-enters: at the keyframe where the grounded box disagrees with
    the tracked mask, the box seeds again; with re-seeding off it does not."""
    clip = _clip(10, 48, 64, seed=9)
    # keyframe 6 has a box far from wherever the tracked mask is: a 1-pixel-wide sliver at
    # the right edge cannot overlap a tracked mask's box by IoU >= 0.9 unless it is that sliver.
    prompts = [ObjectPrompts.from_lists([0, 3, 6], [[2, 2, 30, 30], None, [62, 0, 63, 1]], [0.9, None, 0.8])]
    source = ArrayFrameSource(clip.frames)
    stats = PropagationStats()
    on = list(segmenter.engine.run(source, prompts, PropagationPolicy(seed_frames="first", reseed_iou=0.9),
                                   stats=stats))
    assert stats.reseeds == 1
    assert [r.index for r in on if r.seeded[0]] == [0, 6]
    off = list(segmenter.engine.run(source, prompts, PropagationPolicy(seed_frames="first", reseed_iou=None)))
    assert [r.index for r in off if r.seeded[0]] == [0]
    for a, b in zip(on[:6], off[:6], strict=True):  # identical until the re-seed
        np.testing.assert_array_equal(a.masks, b.masks)
    # the re-seeded frame is decoded from the box alone, like a first seed on that frame
    alone = list(segmenter.engine.run(source, [ObjectPrompts.from_lists([6], [[62, 0, 63, 1]])]))
    np.testing.assert_array_equal(on[6].masks, alone[6].masks)


def test_conditioning_frames_are_capped(segmenter: Sam2VideoSegmenter) -> None:
    clip = _clip(12)
    boxes = {i: [4, 4, 30, 30] for i in range(12)}
    prompts = [ObjectPrompts.from_lists(sorted(boxes), list(boxes.values()))]
    engine = segmenter.engine
    stats = PropagationStats()
    results = list(engine.run(ArrayFrameSource(clip.frames), prompts, PropagationPolicy(max_conditioning_frames=2),
                              stats=stats))
    assert all(r.seeded[0] for r in results)
    assert stats.peak_conditioning_frames == 2
    stats = PropagationStats()
    list(engine.run(ArrayFrameSource(clip.frames), prompts, PropagationPolicy(max_conditioning_frames=None),
                    stats=stats))
    assert stats.peak_conditioning_frames == 12


def test_keyframes_outside_the_video_are_refused(segmenter: Sam2VideoSegmenter) -> None:
    with pytest.raises(IndexError, match="outside"):
        list(segmenter.engine.run(ArrayFrameSource(_clip(3).frames), [ObjectPrompts.from_lists([5], [[0, 0, 4, 4]])]))


# ---------------------------------------------------------------------------- models


def test_propagation_models_are_registered_with_a_default_per_device() -> None:
    from tgs.models.registry import MODEL_SPECS
    from tgs.segment.sam2_video import PROPAGATION_MODEL_KEYS, default_propagation_model

    for key in PROPAGATION_MODEL_KEYS:
        assert key in MODEL_SPECS
    assert MODEL_SPECS["edgetam_video"].default_source == "facebook/EdgeTAM"
    assert MODEL_SPECS["sam2_video_base_plus"].default_source == "facebook/sam2.1-hiera-base-plus"
    assert default_propagation_model("cpu") == "edgetam_video"
    assert default_propagation_model(torch.device("cuda")) == "sam2_video_large"


def test_tiny_edgetam_propagates_and_shares_exactly(tmp_path: Path) -> None:
    from tgs.models.registry import resolve_source

    source = resolve_source("edgetam_video", "tiny")
    seg = Sam2VideoSegmenter.from_pretrained(source, dtype="float32")
    assert type(seg.model).__name__ == "EdgeTamVideoModel"
    clip = _clip(8)
    objects = [_boxes(8, {2: [4, 4, 30, 30]}), _boxes(8, {0: [20, 10, 60, 44], 5: [10, 10, 40, 40]})]
    many = seg.segment_many(clip, objects)
    for boxes, shared in zip(objects, many, strict=True):
        alone = seg.segment(clip, boxes)
        np.testing.assert_array_equal(shared.masks, alone.masks)
        assert np.isfinite(shared.meta["object_score_logits"]).all()
    assert many[0].masks.any(axis=(1, 2)).all()


# ---------------------------------------------------------------------------- against transformers


@pytest.fixture(scope="module")
def tiny_edgetam(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_edgetam_video(tmp_path_factory.mktemp("tiny_edgetam_video"), seed=0)


def _transformers_propagation(segmenter: Sam2VideoSegmenter, frames: np.ndarray, seed: int,
                              box: list[float]) -> dict[int, object]:
    """{frame: Sam2VideoSegmentationOutput} of transformers' own documented video API:
    ``init_video_session`` over the whole clip, the box added on the seed frame,
    ``propagate_in_video_iterator`` backward from the seed, then forward from it."""
    processor, model = segmenter.processor, segmenter.model
    session = processor.init_video_session(video=list(frames), inference_device=segmenter.device,
                                           dtype=segmenter.dtype)
    processor.add_inputs_to_inference_session(inference_session=session, frame_idx=seed, obj_ids=1,
                                              input_boxes=[[box]])
    outputs: dict[int, object] = {}
    with torch.inference_mode():
        for reverse in (True, False):
            for out in model.propagate_in_video_iterator(session, start_frame_idx=seed, reverse=reverse):
                outputs.setdefault(out.frame_idx, out)  # the seed frame comes twice, the same output
    return outputs


@pytest.mark.parametrize("model", ["sam2", "edgetam"])
def test_one_object_equals_transformers_own_propagation(model: str, tiny_video: Path, tiny_edgetam: Path) -> None:
    """The engine (default settings: pruned sessions, streamed frames, shared feature cache)
    tracks one object exactly as transformers' Sam2VideoModel / EdgeTamVideoModel
    ``propagate_in_video_iterator`` does, from the same box on the same frames.

    The order is the engine's: backward from the seed first, then forward. Run forward first
    and then backward, transformers gives other results on both sides of the seed (15 of 24
    frames differ with the tiny SAM2, 19 with the tiny EdgeTAM), because SAM2 conditions each
    step on the stored outputs of the ``num_maskmem`` frames before it (after it, backward)
    whichever pass made them: forward-first, the backward pass also reads frames after the
    seed that forward tracking stored; backward-first, the forward pass reads the frames
    before the seed. Both are SAM2; the engine runs backward first because it streams the
    video once forward afterwards (see tgs/segment/propagation.py).
    """
    segmenter = Sam2VideoSegmenter.from_pretrained(tiny_video if model == "sam2" else tiny_edgetam,
                                                   dtype="float32")
    clip = _clip(24)
    seed, box = 6, [4.0, 4.0, 30.0, 30.0]
    stats = PropagationStats()
    ours = list(segmenter.engine.run(ArrayFrameSource(clip.frames), [ObjectPrompts.from_lists([seed], [box])],
                                     with_probs=True, stats=stats))
    theirs = _transformers_propagation(segmenter, clip.frames, seed, box)
    assert sorted(theirs) == [r.index for r in ours] == list(range(24))
    # 24 frames > the window of 15: the engine forgot outputs transformers keeps, and still agrees
    assert stats.peak_stored_frames < 24
    height, width = clip.frames.shape[1:3]
    for result in ours:
        out = theirs[result.index]
        their_masks = segmenter.processor.post_process_masks([out.pred_masks], original_sizes=[(height, width)])[0]
        # Tolerance 0: both run the same transformers modules on the same pixel values (the
        # video processor and the engine's image processor give equal tensors) with the same
        # memory entries in the same order; the engine only drops entries no step reads. So
        # every float32 operation and its order are the same, and so is each rounding.
        np.testing.assert_array_equal(result.masks, their_masks[:, 0].numpy(), err_msg=f"frame {result.index}")
        _, their_probs = low_res_to_masks_and_probs(out.pred_masks.float(), (height, width))
        np.testing.assert_array_equal(result.probs, their_probs, err_msg=f"frame {result.index}")
        np.testing.assert_array_equal(result.scores, out.object_score_logits.reshape(-1).numpy())
    areas = [int(r.masks.sum()) for r in ours]
    assert min(areas) > 0 and max(areas) < height * width  # a real mask, not an empty or full frame


def test_sam3_tracker_propagates_with_bounded_memory_and_shares_exactly() -> None:
    """``--sam2 sam3_tracker_video``: SAM 3's tracker in our engine; pruning equals keeping everything."""
    from tgs.core.load_spec import load_spec
    from tgs.core.settings import Settings
    from tgs.models.registry import resolve_source
    from tgs.presets import get_preset

    spec = load_spec(get_preset("best"), Settings(device="cpu", sources={"sam2": "sam3_tracker_video"}), "dense")
    assert spec.segmenter is not None and spec.segmenter.loader == "sam2_video"
    assert spec.segmenter.key == "sam3_tracker_video" and spec.segmenter.source is None
    seg = Sam2VideoSegmenter.from_pretrained(resolve_source(spec.segmenter.key, "tiny"), dtype="float32")
    assert type(seg.model).__name__ == "Sam3TrackerVideoModel"
    assert type(seg.processor).__name__ == "Sam3TrackerVideoProcessor"
    clip = _clip(40, 40, 56, seed=7)
    prompts = [ObjectPrompts.from_lists([3], [[4, 4, 30, 24]]), ObjectPrompts.from_lists([0, 12], [[20, 8, 50, 36]] * 2)]
    reference = PropagationEngine(seg.model, seg.processor, device=seg.device, dtype=seg.dtype, retain_all=True)
    policy = PropagationPolicy(max_conditioning_frames=None)
    want = list(reference.run(ArrayFrameSource(clip.frames), prompts, policy, with_probs=True))
    engine = PropagationEngine(seg.model, seg.processor, device=seg.device, dtype=seg.dtype)
    stats = PropagationStats()
    got = list(engine.run(ArrayFrameSource(clip.frames), prompts, policy, with_probs=True, stats=stats))
    assert stats.peak_stored_frames <= 2 * engine.window + 2 < clip.num_frames
    assert any(r.masks.any() for r in got)
    for a, b in zip(want, got, strict=True):
        np.testing.assert_array_equal(a.masks, b.masks)
        np.testing.assert_array_equal(a.probs, b.probs)
    objects = [_boxes(8, {2: [4, 4, 30, 30]}), _boxes(8, {0: [20, 10, 50, 36], 5: [10, 10, 40, 30]})]
    small = _clip(8, 40, 56)
    for boxes, shared in zip(objects, seg.segment_many(small, objects), strict=True):
        np.testing.assert_array_equal(shared.masks, seg.segment(small, boxes).masks)
