"""The live mode: think in the background, ground and seed on the frame, track every emitted frame."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from live_fakes import BOXES, BoxSegmenter, ScriptedThinker, TextGrounder

from tgs import fast_paths
from tgs.core.dense import propagation_policy
from tgs.core.live import LatencyStats, LiveOptions, LiveRun
from tgs.core.rethink import Answer
from tgs.ground_segment import GroundSegmentStage
from tgs.presets import BEST
from tgs.segment import Sam2VideoSegmenter
from tgs.segment.online import OnlineTracker
from tgs.testing.fake_source import AUDIO_RATE, FakeLiveSource
from tgs.testing.synthetic_video import MovingSquareSource
from tgs.testing.tiny_vision import build_tiny_sam2_video
from tgs.types import ParseStatus


def _run(source: FakeLiveSource, thinker=None, segmenter=None, grounder=None, expressions=("cat", "dog"),
         on_answer=None, **options) -> tuple[LiveRun, TextGrounder]:
    """A run on a Ground + Segment stage of ``grounder`` (a TextGrounder) and ``segmenter`` (a
    BoxSegmenter: its tracker is a BoxTracker)."""
    grounder = grounder or TextGrounder()
    stage = GroundSegmentStage(grounder, segmenter or BoxSegmenter(), BEST)
    run = LiveRun(source, thinker=thinker, stage=stage, expressions=list(expressions), preset=BEST,
                  options=LiveOptions(**options), on_answer=on_answer)
    return run, grounder


# ---------------------------------------------------------------------------- frames, skips, latency


@pytest.fixture(scope="module")
def segmenter(tmp_path_factory: pytest.TempPathFactory) -> Sam2VideoSegmenter:
    return Sam2VideoSegmenter.from_pretrained(build_tiny_sam2_video(tmp_path_factory.mktemp("sam2"), seed=0),
                                              dtype="float32")


def test_every_emitted_frame_has_a_result_and_the_skips_add_up(segmenter: Sam2VideoSegmenter) -> None:
    """Direct thinker, the tiny SAM2 tracker: a result per emitted frame, emitted + skipped ==
    decoded, masks equal to the online tracker's fed the emitted frames."""
    square = MovingSquareSource(30, (32, 40), period=40)
    source = FakeLiveSource(30, (32, 40), skip={3, 4, 10, 28}, frame=square.frame)
    run, grounder = _run(source, segmenter=segmenter, expressions=["cat", "dog"])
    results = list(run.frames())
    emitted = [i for i in range(30) if i not in {3, 4, 10, 28}]
    assert [r.index for r in results] == emitted
    assert [(r.index, r.skipped) for r in results if r.skipped] == [(5, 2), (11, 1), (29, 1)]
    assert len(results) + sum(r.skipped for r in results) == source.stats.frames_decoded == 30
    record = run.record()
    assert record["frames_emitted"] == 26 and record["frames_skipped"] == 4 and record["frames_decoded"] == 30
    assert all(r.arrival is not None and r.latency is not None and r.latency >= 0 for r in results)
    assert record["latency_s"]["max"] == round(max(r.latency for r in results), 6)
    assert {"track", "postprocess"} <= set(results[0].timings) and "ground" in results[0].timings
    # grounded and seeded once, on the first frame (the direct thinker decides at once)
    assert grounder.calls == [("cat", 0.0), ("dog", 0.0)]
    assert results[0].grounded.all() and results[0].seeded.all()
    # the masks are the online tracker's on the emitted frames, seeded where the run seeded
    # (a lost object, i.e. an empty mask of the random tiny model, is grounded again each second)
    reference = segmenter.online_tracker(propagation_policy(BEST))
    informative = 0  # masks neither empty nor full: the equality compares real masks, not two blanks
    for r in results:
        assert r.grounded[r.seeded].all()  # a seed comes from a grounding on the same frame
        seeds = {k: np.asarray(r.boxes[k], np.float32) for k in np.flatnonzero(r.seeded)}
        want = reference.step(square.frame(r.index), seeds)
        for k in range(2):
            np.testing.assert_array_equal(r.masks[k], want[k].mask)
            informative += int(r.masks[k].any() and not r.masks[k].all())
    # the tiny random SAM2 of seed 0 gives partial masks here (about half of each 32x40 frame)
    assert informative > 0
    assert [t for _, t in grounder.calls if t > 0] == [t for r in results for k in np.flatnonzero(r.grounded)
                                                       for t in [r.time] if t > 0]


def test_latency_stats_are_bounded_and_hand_computed() -> None:
    stats = LatencyStats(window=4)
    for latency, skipped in [(0.1, 0), (0.5, 2), (0.2, 0), (0.4, 1), (0.3, 0)]:
        stats.add(latency, skipped)
    assert len(stats.recent) == 4  # the quantiles see the last 4 frames only
    record = stats.record()
    # last four: 0.5 0.2 0.4 0.3 -> median (0.3 + 0.4) / 2; p95 by linear interpolation:
    # position 0.95 * 3 = 2.85 between the sorted 0.4 and 0.5
    assert record["latency_s"]["p50"] == pytest.approx(0.35)
    assert record["latency_s"]["p95"] == pytest.approx(0.4 + 0.85 * 0.1)
    assert record["latency_s"]["max"] == 0.5 and record["latency_s"]["mean"] == pytest.approx(0.3)
    assert record["frames_emitted"] == 5 and record["frames_skipped"] == 3
    assert record["skipped_ratio"] == pytest.approx(3 / 8)


# ---------------------------------------------------------------------------- thinking on the stream


def test_a_changed_object_text_reseeds_only_that_expression() -> None:
    """Thinks at 2, 4 and 6 s (2-s windows, 5 fps); the third answer changes expression 1 only:
    it is grounded and seeded again on that frame, expression 0 keeps its track; the answers
    over time are spans of windows."""
    audio = np.linspace(-1, 1, 8 * AUDIO_RATE, dtype=np.float32)
    source = FakeLiveSource(40, fps=5.0, audio=audio, think_seconds=2.0)
    thinker = ScriptedThinker([["cat", "dog"], ["cat", "dog"], ["cat", "bird"]])
    heard: list[Answer] = []
    run, grounder = _run(source, thinker=thinker, expressions=["a", "b"], think_seconds=2.0, wait_for_think=True,
                         on_answer=heard.append)
    tracker = run.tracker
    results = list(run.frames())
    assert len(thinker.clips) == 3
    first = thinker.clips[0]  # the last 2 s at 1 fps, and the audio of the same span
    np.testing.assert_array_equal(first.frame_times, [1.0, 2.0])
    np.testing.assert_array_equal(first.audio, audio[: 2 * AUDIO_RATE])
    assert not any(r.masks.any() or r.grounded.any() for r in results[:10])  # before the first answer
    assert grounder.calls == [("cat", 2.0), ("dog", 2.0), ("bird", 6.0)]
    assert tracker.seeds == [(10, 0), (10, 1), (30, 1)]
    assert [r.index for r in results if r.seeded[0]] == [10]
    assert [r.index for r in results if r.seeded[1]] == [10, 30]
    assert all(r.masks[0].any() for r in results[10:])
    np.testing.assert_array_equal(results[35].boxes[1], BOXES["bird"])
    assert results[35].details[1] == {"object_text": "bird", "answer": [4.0, 6.0]}
    spans = run.record()["think"]["answers"]
    assert [(s["start"], s["end"], s["object_text"], s["windows"]) for s in spans[0]] == [(0.0, 6.0, "cat", 3)]
    assert [(s["start"], s["end"], s["object_text"], s["windows"]) for s in spans[1]] == [
        (0.0, 4.0, "dog", 2), (4.0, 6.0, "bird", 1)]
    assert spans[1][1]["thought"]["raw"] == "<s_object>bird</s_object>"
    assert [(a.expression, a.text, a.start) for a in heard][-2:] == [(0, "cat", 4.0), (1, "bird", 4.0)]
    assert run.record()["think"]["thinks"] == {"started": 3, "finished": 3, "failed": 0, "abandoned": 0, "missed": 0}


def test_thinking_does_not_block_the_frame_loop() -> None:
    """The thinker is held on an Event: frames keep coming (the thinks falling due meanwhile
    are delayed, a slot that passes entirely is skipped, not queued); once it is released, its
    answer applies to the next frame."""
    source = FakeLiveSource(40, fps=5.0, think_seconds=2.0)
    thinker = ScriptedThinker([["cat"]], block=True)
    run, grounder = _run(source, thinker=thinker, expressions=["a"], think_seconds=2.0)
    frames = run.frames()
    for _ in range(11):  # frames 0..10: the think starts on frame 10 (t = 2 s)
        result = next(frames)
    assert thinker.started.wait(30)
    for _ in range(21):  # frames 11..31 while the thinker is held (the thinks due at 4 s and 6 s wait)
        result = next(frames)
        assert not result.masks.any() and run.rethinker.busy
    assert result.index == 31 and grounder.calls == [] and len(thinker.clips) == 1
    thinker.release.set()
    assert run.rethinker.join(30)
    result = next(frames)  # frame 32 (6.4 s): the answer (about [0 s, 2 s]) is grounded and seeded here
    assert result.index == 32 and result.grounded[0] and result.seeded[0] and result.masks[0].any()
    assert result.details[0]["answer"] == [0.0, 2.0]
    # and the next think starts on that frame: the 4-s slot is taken late, the 6-s one skipped
    assert run.rethinker.join(30) and len(thinker.clips) == 2
    np.testing.assert_array_equal(thinker.clips[1].frame_times, [5.0, 6.0])  # the window (4.4 s, 6.4 s]
    assert run.rethinker.counts["missed"] == 1 and run.rethinker.due == 8.0
    rest = list(frames)
    assert len(rest) == 7 and grounder.calls == [("cat", 6.4)]


def test_two_expressions_grounded_on_one_frame_share_the_grounding() -> None:
    """Both expressions are decided on frame 0 (direct thinker) and grounded there through the
    stage's shared path: one ``ground_many`` call, counted as the ``ground.many`` fast path; the
    tracker is the stage's segmenter's, under the preset's propagation switches."""
    segmenter = BoxSegmenter()
    with fast_paths.counting() as ledger:
        run, grounder = _run(FakeLiveSource(8, fps=5.0), segmenter=segmenter, expressions=["cat", "dog"])
        results = list(run.frames())
    assert ledger.as_record() == {"ran": {"ground.many": 1}, "fallbacks": []}
    assert grounder.many == [["cat", "dog"]] and grounder.calls == [("cat", 0.0), ("dog", 0.0)]
    assert results[0].grounded.all() and results[0].seeded.all()
    assert segmenter.policies == [propagation_policy(BEST)]


def test_a_missing_tag_fallback_is_logged_once_for_the_stream(caplog: pytest.LogCaptureFixture) -> None:
    """Three windows whose answers have an empty tag: each grounds the expression (the best
    preset's ``missing_tag``), and the fallback is logged once, not once per window."""
    source = FakeLiveSource(35, fps=5.0, think_seconds=2.0)
    run, grounder = _run(source, thinker=ScriptedThinker([[""]]), expressions=["cat"], think_seconds=2.0,
                         wait_for_think=True)
    with caplog.at_level("WARNING", logger="tgs.ground_segment"):
        results = list(run.frames())
    assert run.rethinker.counts["finished"] == 3
    assert grounder.calls == [("cat", 2.0)] and results[10].details[0]["object_text"] == "cat"
    assert sum("no usable <s_object>" in r.getMessage() for r in caplog.records) == 1


def test_a_think_still_running_at_the_end_is_waited_for_then_abandoned(caplog: pytest.LogCaptureFixture) -> None:
    """The stream ends while the thinker is held on an Event. With no time to wait
    (``close_timeout=0``) the think is abandoned: logged once, counted, and the counts add up
    (started == finished + failed + abandoned); given time, its answers are recorded."""
    for released in (False, True):
        source = FakeLiveSource(40, fps=5.0, think_seconds=2.0)
        thinker = ScriptedThinker([["cat"]], block=True)
        run, _ = _run(source, thinker=thinker, expressions=["a"], think_seconds=2.0,
                      close_timeout=None if released else 0.0)
        frames = run.frames()
        for _ in range(11):  # the think starts on frame 10 (t = 2 s)
            next(frames)
        assert thinker.started.wait(30)
        if released:
            thinker.release.set()
        with caplog.at_level("WARNING", logger="tgs.core.rethink"):
            frames.close()  # the consumer stops: the run ends, the rethinker closes
            run.rethinker.close()  # again: nothing more happens
        thinks = run.record()["think"]["thinks"]
        abandoned = [r for r in caplog.records if "abandoned" in r.getMessage()]
        if released:
            assert thinks == {"started": 1, "finished": 1, "failed": 0, "abandoned": 0, "missed": 0}
            assert [s["object_text"] for s in run.record()["think"]["answers"][0]] == ["cat"]
            assert not abandoned
        else:
            assert thinks == {"started": 1, "finished": 0, "failed": 0, "abandoned": 1, "missed": 0}
            assert run.record()["think"]["answers"] == [[]] and len(abandoned) == 1
            thinker.release.set()  # let its thread end
        assert thinks["started"] == thinks["finished"] + thinks["failed"] + thinks["abandoned"]
        caplog.clear()


def test_an_expression_without_an_object_is_grounded_every_second_until_found() -> None:
    """Nothing to find before 3 s, then found and tracked; lost (empty mask) from frame 30 on:
    grounded again every second, and seeded again when found."""
    source = FakeLiveSource(50, fps=5.0)
    segmenter = BoxSegmenter(hidden=lambda frame: 30 <= frame < 42)
    run, grounder = _run(source, segmenter=segmenter, grounder=TextGrounder(visible_from=3.0), expressions=["cat"])
    results = list(run.frames())
    # frames are 0.2 s apart: grounded at 0, 1, 2 s (nothing), 3 s (found: frame 15); hidden
    # from frame 30 (6 s): grounded at 7 s (frame 35) and 8 s (frame 40), found and seeded, still
    # hidden; visible again from frame 42: no grounding at 9 s
    times = [t for _, t in grounder.calls]
    assert times == [0.0, 1.0, 2.0, 3.0, 7.0, 8.0]
    assert [r.index for r in results if r.seeded[0]] == [15, 35, 40]
    assert [r.index for r in results if r.masks[0].any()] == [*range(15, 30), *range(42, 50)]
    assert run.record()["lost"] == 3 and run.record()["seeds"] == 3
    assert run.record()["think"]["answers"][0][0]["object_text"] == "cat"


def test_a_null_answer_drops_the_track_and_grounds_nothing() -> None:
    """The best preset grounds nothing for a null answer: the track ends, no grounding follows."""
    source = FakeLiveSource(30, fps=5.0, think_seconds=2.0)

    class NullAware(ScriptedThinker):
        def think_each(self, items):
            thoughts = super().think_each(items)
            return [replace(t, is_null=True, status=ParseStatus.NULL) if t.s_object == "null" else t for t in thoughts]

    thinker = NullAware([["cat"], ["null"]])
    run, grounder = _run(source, thinker=thinker, expressions=["a"], think_seconds=2.0, wait_for_think=True)
    results = list(run.frames())
    assert grounder.calls == [("cat", 2.0)]
    assert [r.index for r in results if r.masks[0].any()] == list(range(10, 20))
    assert results[25].details[0]["object_text"] is None


def test_a_failed_think_keeps_the_object_text() -> None:
    """The second think raises for every expression: the track goes on, the span records it."""
    source = FakeLiveSource(35, fps=5.0, think_seconds=2.0)

    class Flaky(ScriptedThinker):
        def think_each(self, items):
            thoughts = super().think_each(items)
            return [RuntimeError("server down") for _ in items] if len(self.clips) == 2 else thoughts

    thinker = Flaky([["cat"]])
    run, grounder = _run(source, thinker=thinker, expressions=["a"], think_seconds=2.0, wait_for_think=True)
    results = list(run.frames())
    assert grounder.calls == [("cat", 2.0)]  # the third think's same answer grounds nothing either
    assert all(r.masks[0].any() for r in results[10:]) and [r.index for r in results if r.seeded[0]] == [10]
    think = run.record()["think"]
    assert think["thinks"] == {"started": 3, "finished": 2, "failed": 1, "abandoned": 0, "missed": 0}
    (span,) = think["answers"][0]
    assert (span["start"], span["end"], span["windows"], span["failed"]) == (0.0, 6.0, 2, 1)


def test_a_long_run_holds_a_bounded_state() -> None:
    """3000 frames (10 min at 5 fps), a think every 2 s answering the same text: the latency
    window, the answers record and the tracker's boxes do not grow."""
    source = FakeLiveSource(3000, fps=5.0, think_seconds=2.0)
    thinker = ScriptedThinker([["cat", "dog"]])
    run, _ = _run(source, thinker=thinker, think_seconds=2.0, wait_for_think=True, latency_window=64)
    count = sum(1 for _ in run.frames())
    assert count == 3000 and len(thinker.clips) == 299  # at 2, 4, ..., 598 s
    assert len(run.latency.recent) == 64 and run.latency.frames == 3000
    assert [len(spans) for spans in run.rethinker.log.spans] == [1, 1]
    assert run.rethinker.log.spans[0][0]["windows"] == 299
    assert len(run.tracker.boxes) == 2


def test_from_pipeline_and_a_frame_size_change(segmenter: Sam2VideoSegmenter) -> None:
    """A loaded Pipeline gives the run its stages; a stream whose frame size changes (a reconnect
    to another rendition) starts a fresh tracker and grounds every expression again."""
    from tgs.core.flow import Pipeline
    from tgs.ground_segment import GroundSegmentStage

    square = MovingSquareSource(12, (32, 40), period=12)
    small = MovingSquareSource(12, (24, 32), period=12)
    source = FakeLiveSource(12, frame=lambda i: square.frame(i) if i < 6 else small.frame(i))
    grounder = TextGrounder()
    run = LiveRun.from_pipeline(source, Pipeline(None, GroundSegmentStage(grounder, segmenter, BEST)), ["cat"],
                                options=LiveOptions(reground_every=100.0))
    results = list(run.frames())
    assert isinstance(run.tracker, OnlineTracker) and run.tracker.size == (24, 32)
    assert grounder.calls == [("cat", 0.0), ("cat", 1.2)]
    assert [r.index for r in results if r.seeded[0]] == [0, 6]
    assert results[5].masks.shape == (1, 32, 40) and results[6].masks.shape == (1, 24, 32)
    with pytest.raises(ValueError, match="SAM2-family video segmenter"):
        LiveRun.from_pipeline(source, Pipeline(None, GroundSegmentStage(grounder, object(), BEST)), ["cat"])


def test_a_think_window_longer_than_the_source_keeps_is_refused_at_once() -> None:
    with pytest.raises(ValueError, match="open it with think_seconds=20"):
        _run(FakeLiveSource(5, think_seconds=10.0), thinker=ScriptedThinker([["cat"]]), expressions=["a"],
             think_seconds=20.0)
