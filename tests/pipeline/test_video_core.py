"""The pipeline core (``tgs.core``): a video and its expressions in, one typed result per
expression out; the video as the unit of work; settings given once."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from gs_fakes import FakeGrounder, FakeSegmenter, make_clip

from tgs import fast_paths
from tgs.core import ExpressionResult, Pipeline, Settings, VideoItems
from tgs.core.flow import share_enabled
from tgs.core.load_spec import load_spec
from tgs.errors import MissingWeightsError
from tgs.ground_segment import GroundSegmentStage
from tgs.presets import BEST, PAPER, get_preset
from tgs.runners.executor import order_by_video, video_batches
from tgs.think.base import direct_thought
from tgs.types import Query, Thought


class RecordingThinker:
    """The direct thinker, recording each call's items; fails the queries named in ``fail``."""

    name = "recording"

    def __init__(self, fail: tuple[str, ...] = ()) -> None:
        self.calls: list[list] = []
        self.fail = fail

    def think_each(self, items):
        self.calls.append(list(items))
        return [ValueError(f"no answer for {q.uid}") if q.uid in self.fail else direct_thought(q) for q, _ in items]


class SharingStage(GroundSegmentStage):
    """A Ground + Segment stage with ``run_many`` (as the stage-sharing one has), recording its use."""

    def __init__(self, *args, fail: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.many_calls: list[int] = []
        self.fail = fail

    def run_many(self, clip, pairs):
        self.many_calls.append(len(pairs))
        if self.fail:
            raise RuntimeError("shared path broke")
        return [self.run(clip, t, q) for t, q in pairs]


def _queries(n: int) -> tuple[Query, ...]:
    return tuple(Query(uid=f"v_{k}", expression=f"thing {k}") for k in range(n))


def test_a_video_is_thought_about_and_grounded_together() -> None:
    clip = make_clip()
    thinker = RecordingThinker()
    gs = SharingStage(FakeGrounder(), FakeSegmenter(), BEST)
    results = Pipeline(thinker, gs).run_video(VideoItems(clip, _queries(3), key="v"))
    assert [r.uid for r in results] == ["v_0", "v_1", "v_2"] and all(isinstance(r, ExpressionResult) for r in results)
    ((items),) = thinker.calls  # one Think call for the video, every item with the same Clip object
    assert len(items) == 3 and all(c is clip for _, c in items)
    assert gs.many_calls == [3]  # one shared Ground + Segment call
    for r in results:
        assert r.ok and r.key == "v" and r.thought is not None
        assert r.masks.shape == (4, 48, 64) and r.ground_segment.uid == r.uid
        assert {"decode", "think"} <= set(r.timings)


def test_the_short_access_path_reads_the_ground_segment_result() -> None:
    """``result.masks`` / ``probs`` / ``boxes`` / ``chosen`` / ``object_text`` are the Ground +
    Segment result's own objects; None where Ground + Segment did not run (Think failed)."""
    clip = make_clip()
    gs = SharingStage(FakeGrounder(), FakeSegmenter(), BEST)
    done, failed = Pipeline(RecordingThinker(fail=("v_1",)), gs).run_video(VideoItems(clip, _queries(2)))
    inner = done.ground_segment
    assert done.masks is inner.masks.masks and done.probs is inner.masks.probs
    assert done.boxes is inner.boxes and done.chosen == inner.chosen and len(done.chosen) == clip.num_frames
    assert done.object_text == inner.object_text.text == "thing 0"
    assert failed.ground_segment is None
    assert (failed.masks, failed.probs, failed.boxes, failed.chosen, failed.object_text) == (None,) * 5


def test_sharing_off_runs_one_expression_at_a_time_with_the_same_results() -> None:
    clip = make_clip()
    on = SharingStage(FakeGrounder(), FakeSegmenter(), BEST)
    off = SharingStage(FakeGrounder(), FakeSegmenter(), replace(BEST, share_across_expressions=False))
    shared = Pipeline(RecordingThinker(), on).run_video(VideoItems(clip, _queries(3)))
    alone = Pipeline(RecordingThinker(), off).run_video(VideoItems(clip, _queries(3)))
    assert on.many_calls == [3] and off.many_calls == []
    for a, b in zip(shared, alone, strict=True):
        assert a.thought == b.thought
        assert np.array_equal(a.masks, b.masks)
        assert a.ground_segment.sample_record()["frames"] == b.ground_segment.sample_record()["frames"]
    assert share_enabled(BEST) and not share_enabled(off.preset)


def test_failures_stay_with_their_expression() -> None:
    clip = make_clip()
    gs = SharingStage(FakeGrounder(), FakeSegmenter(), BEST)
    results = Pipeline(RecordingThinker(fail=("v_1",)), gs).run_video(VideoItems(clip, _queries(3)))
    assert [r.ok for r in results] == [True, False, True]
    assert "no answer for v_1" in str(results[1].error) and results[1].thought is None
    assert gs.many_calls == [2]
    assert all(r.ground_segment is not None for r in (results[0], results[2]))


def test_a_failing_shared_call_is_an_error_not_a_quiet_fallback() -> None:
    """A broken shared path fails the clip's pairs (recorded per expression) and is never redone one by
    one, which would hide it and make "shared == unshared" compare the unshared path with itself."""
    gs = SharingStage(FakeGrounder(), FakeSegmenter(), BEST, fail=True)
    with fast_paths.counting() as ledger:
        results = Pipeline(RecordingThinker(), gs).run_video(VideoItems(make_clip(), _queries(3)))
    assert gs.many_calls == [3] and [r.ok for r in results] == [False, False, False]
    assert all("shared path broke" in str(r.error) for r in results)
    assert ledger.fallback_count() == 0

    def broken():
        raise FileNotFoundError("frames/3.jpg")

    undecodable = Pipeline(RecordingThinker(), gs).run_video(VideoItems(broken, _queries(2)))
    assert all(isinstance(r.error, FileNotFoundError) for r in undecodable)


def test_given_thoughts_and_no_thinker() -> None:
    clip = make_clip()
    gs = GroundSegmentStage(FakeGrounder(), FakeSegmenter(), PAPER)
    queries = _queries(2)
    thoughts = (Thought(uid="v_0", raw="<s_object>dog</s_object>", s_object="dog"), KeyError("v_1"))
    given = Pipeline(None, gs).run_video(VideoItems(clip, queries, thoughts))
    assert given[0].ground_segment.object_text.text == "dog" and isinstance(given[1].error, KeyError)
    direct = Pipeline(None, gs).run_video(VideoItems(clip, queries))
    assert [r.thought.status.value for r in direct] == ["direct", "direct"]
    assert direct[0].ground_segment.object_text.source == "direct"


def test_several_videos_in_one_batch_think_in_one_call() -> None:
    thinker = RecordingThinker()
    a, b = make_clip(seed=1), make_clip(seed=2)
    videos = [VideoItems(a, _queries(2), key="a"), VideoItems(b, (Query("w_0", "x"),), key="b")]
    results = Pipeline(thinker, None).run_videos(videos)
    assert [r.key for r in results] == ["a", "a", "b"] and all(r.ground_segment is None for r in results)
    ((items),) = thinker.calls
    assert [c for _, c in items] == [a, a, b]


def test_generator_over_videos_and_the_call_on_a_clip() -> None:
    pipe = Pipeline(RecordingThinker(), GroundSegmentStage(FakeGrounder(), FakeSegmenter(), BEST))
    stream = pipe.run(VideoItems(make_clip(seed=s), _queries(2), key=str(s)) for s in range(3))
    first = next(stream)  # results come as each video finishes
    assert first.key == "0"
    assert [r.key for r in stream] == ["0", "1", "1", "2", "2"]
    results = pipe(make_clip(), ["the dog", "the cat"])
    assert [r.query.expression for r in results] == ["the dog", "the cat"] and all(r.ok for r in results)


# --------------------------------------------------------------------------- the unit of work


def test_videos_are_brought_together_in_order_of_first_appearance() -> None:
    items = ["a1", "b1", "a2", "c1", "b2", "a3"]
    ordered = order_by_video(items, lambda s: s[0])
    assert ordered == ["a1", "a2", "a3", "b1", "b2", "c1"]
    assert video_batches(ordered, lambda s: s[0], 1) == [["a1", "a2", "a3"], ["b1", "b2"], ["c1"]]
    assert video_batches(ordered, lambda s: s[0], 4) == [["a1", "a2", "a3", "b1", "b2"], ["c1"]]
    assert video_batches([], lambda s: s[0], 2) == []


def test_null_rows_are_their_own_video(tmp_path: Path) -> None:
    """A null row's media folder is ``null_m-<vid>``, not its ``vid``: another unit of work."""
    from tgs.data.benchmark import Benchmark
    from tgs.data.synth import generate
    from tgs.runners.workers import video_of

    meta = generate(tmp_path, videos=3, seed=0, size=(32, 32))
    samples = list(Benchmark(tmp_path, meta, ("test_s", "test_n")))
    null = [s for s in samples if s.is_null]
    assert null and all(video_of(s) == f"null_m-{s.vid}" != s.vid for s in null)
    assert {video_of(s) for s in samples if not s.is_null} == {s.vid for s in samples if not s.is_null}


# --------------------------------------------------------------------------- settings


def test_settings_carry_device_dtype_and_sources_once() -> None:
    tiny = Settings.tiny()
    assert tiny.untrained and tiny.is_tiny("sam2") and tiny.device == "cpu"
    assert load_spec(get_preset("best"), tiny).describe() == {
        "grounding_dino": "tiny", "sam2_video": "tiny", "set": "tiny",
    }
    real = Settings(device="cpu", sources={"sam2": "/models/sam2"})
    assert not real.untrained and load_spec(get_preset("paper"), real).describe() == {
        "grounding_dino": "IDEA-Research/grounding-dino-tiny", "sam2": "/models/sam2", "set": "real",
    }
    assert real.stage_dtype("fp32") == "fp32" and Settings(dtype="bf16").stage_dtype("fp32") == "bf16"
    assert Settings.from_options(models="tiny", device="cpu") == tiny
    with pytest.raises(ValueError, match="tiny model set takes no model source"):
        Settings.from_options(models="tiny", sam2="/x")
    with pytest.raises(ValueError, match="unknown role"):
        Settings(sources={"sam": "x"})
    with pytest.raises(ValueError, match="dtype"):
        Settings(dtype="fp8")
    with pytest.raises(MissingWeightsError, match="no_gdino"):
        load_spec(get_preset("paper"), Settings(device="cpu", sources={"grounding_dino": "/nowhere/no_gdino"})).require()


@pytest.mark.slow
def test_load_once_then_call_on_a_video_file(tmp_path: Path) -> None:
    """The public API on the tiny models: load, then a file and two expressions."""
    from tgs.data.synth import write_video

    video = write_video(tmp_path / "clip.mp4", 3, 10, (64, 48), seed=3, with_audio=True)
    pipe = Pipeline.load(thinker="direct", preset=get_preset("paper"), settings=Settings.tiny())
    results = pipe(video, ["the red circle", "the blue square"])
    assert [r.query.expression for r in results] == ["the red circle", "the blue square"]
    for r in results:
        assert r.ok, r.error
        assert r.masks.shape == (3, 224, 224)  # the paper preset's mask size
        assert len(r.boxes) == 3
