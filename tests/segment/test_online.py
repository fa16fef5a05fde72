"""Online tracking: one frame at a time, equal to the dense engine, memory flat over a long stream."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tgs.segment import Sam2VideoSegmenter
from tgs.segment.frame_source import ArrayFrameSource
from tgs.segment.online import OnlineTracker
from tgs.segment.propagation import ObjectPrompts, PropagationEngine, PropagationPolicy
from tgs.testing.synthetic_video import MovingSquareSource
from tgs.testing.tiny_vision import build_tiny_edgetam_video, build_tiny_sam2_video

BUILDERS: dict[str, Callable[[Path, int], Path]] = {
    "sam2": lambda out, seed: build_tiny_sam2_video(out, seed=seed),
    "edgetam": lambda out, seed: build_tiny_edgetam_video(out, seed=seed),
}


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def segmenter(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Sam2VideoSegmenter:
    folder = BUILDERS[request.param](tmp_path_factory.mktemp(f"tiny_{request.param}_video"), 0)
    return Sam2VideoSegmenter.from_pretrained(folder, dtype="float32")


def _frames(num_frames: int, height: int = 32, width: int = 40, seed: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(num_frames, height, width, 3), dtype=np.uint8)


def test_online_equals_the_dense_engine(segmenter: Sam2VideoSegmenter) -> None:
    """Seeded on frame 0 and stepped forward, the online tracker makes the engine's calls on the
    same inputs (fp32, one thread of ops): the masks and presence logits are equal, bit for bit.

    The video is longer than the model's object-pointer window
    (``max_object_pointers_in_encoder``): from there on a file's session and a stream's
    session read the same pointers (see tgs/segment/online.py), so equality is exact.
    """
    length = max(20, int(segmenter.model.config.max_object_pointers_in_encoder) + 4)
    frames = _frames(length)
    boxes = {"a": np.array([4, 4, 30, 24], np.float32), "b": np.array([10, 2, 38, 30], np.float32)}
    prompts = [ObjectPrompts.from_lists([0], [box]) for box in boxes.values()]
    want = list(segmenter.engine.run(ArrayFrameSource(frames), prompts, segmenter.policy, with_probs=True))
    tracker = segmenter.online_tracker(with_probs=True)
    for i, image in enumerate(frames):
        got = tracker.step(image, boxes if i == 0 else None)
        assert list(got) == ["a", "b"]
        for k, key in enumerate(boxes):
            np.testing.assert_array_equal(got[key].mask, want[i].masks[k])
            np.testing.assert_array_equal(got[key].probs, want[i].probs[k])
            assert got[key].presence == want[i].scores[k]
            assert got[key].seeded == bool(want[i].seeded[k]) == (i == 0)
    assert tracker.frame == length - 1


def test_reseeding_replaces_only_that_object(segmenter: Sam2VideoSegmenter) -> None:
    """A re-seeded object is a fresh object from that frame (equal to a tracker that first saw it
    there, given the same later frames); the other object's track is untouched."""
    frames = _frames(14, seed=8)
    first, second = np.array([4, 4, 30, 24], np.float32), np.array([20, 10, 39, 31], np.float32)
    both = segmenter.online_tracker()
    alone_a = segmenter.online_tracker()
    late_b = segmenter.online_tracker()
    for i, image in enumerate(frames):
        seeds = {"a": first, "b": first} if i == 0 else ({"b": second} if i == 6 else None)
        got = both.step(image, seeds)
        ref_a = alone_a.step(image, {"a": first} if i == 0 else None)
        np.testing.assert_array_equal(got["a"].mask, ref_a["a"].mask)
        assert got["a"].presence == ref_a["a"].presence
        assert got["b"].seeded == (i in (0, 6))
        if i >= 6:  # b started again on frame 6: what a tracker seeded there gives
            ref_b = late_b.step(image, {"b": second} if i == 6 else None)
            np.testing.assert_array_equal(got["b"].mask, ref_b["b"].mask)
            assert got["b"].presence == ref_b["b"].presence
    both.step(frames[0], {"b": None})  # a None box drops the object
    assert both.keys == ["a"]


def _entries(tracker: OnlineTracker) -> int:
    """Entries of every per-frame dict the tracker's sessions hold (outputs, tracked-frame records,
    prompts, the shared vision-feature cache): what grows with the stream when pruning fails."""
    count = 0
    caches = {}
    for session in tracker.sessions().values():
        for per_object in (session.output_dict_per_obj, session.frames_tracked_per_obj,
                           session.point_inputs_per_obj, session.mask_inputs_per_obj):
            for value in per_object.values():
                count += sum(len(v) for v in value.values()) if per_object is session.output_dict_per_obj else len(value)
        count += len(session.obj_with_new_inputs) + len(session.processed_frames or {})
        caches[id(session.cache)] = len(session.cache._vision_features)
    assert len(caches) == 1  # one cache shared by the objects
    return count + sum(caches.values())


def test_stored_state_stays_bounded_over_a_long_stream(segmenter: Sam2VideoSegmenter) -> None:
    """500 frames, two objects, one re-seeded every 100 frames: the entries held never exceed
    what one step reads (the window of non-conditioning frames, the seed, one cached frame)."""
    source = MovingSquareSource(500, (24, 32), period=50)
    tracker = segmenter.online_tracker(PropagationPolicy(max_conditioning_frames=2))
    window = segmenter.engine.window
    # per object: window non-conditioning outputs + 1 seed output + window tracked-frame records;
    # plus the one cached frame of vision features
    bound = 2 * (2 * window + 1) + 1
    counts = []
    box = np.array([0, 6, 12, 18], np.float32)
    for i, image in enumerate(source.frames(0, source.num_frames)):
        seeds = {"a": box, "b": box} if i == 0 else ({"b": box} if i % 100 == 0 else None)
        tracker.step(image, seeds)
        counts.append(_entries(tracker))
    assert max(counts) <= bound
    assert counts[-1] == counts[250] == counts[120]  # flat: the same after 120, 250 and 500 frames
    assert tracker.stats.peak_stored_frames <= window + 1
    assert tracker.stats.frames_done == 500
    # the count sees a leak: the unpruned engine (transformers' default) passes the bound
    engine = segmenter.engine
    unpruned = OnlineTracker(PropagationEngine(engine.model, engine.processor, device=engine.device,
                                               dtype=engine.dtype, retain_all=True))
    for i, image in enumerate(source.frames(0, bound)):
        unpruned.step(image, {"a": box, "b": box} if i == 0 else None)
    assert _entries(unpruned) > bound


def test_a_changed_frame_size_is_refused(segmenter: Sam2VideoSegmenter) -> None:
    tracker = segmenter.online_tracker()
    tracker.step(_frames(1)[0], {"a": np.array([1, 1, 9, 9], np.float32)})
    with pytest.raises(ValueError, match="frame size changed"):
        tracker.step(_frames(1, 16, 16)[0])
