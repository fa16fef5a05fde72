"""The live mode end to end on a stream FFmpeg serves in real time (``-re``, MPEG-TS over TCP):
the real-time source, the background thinker on its windows, the tiny SAM2 tracker."""

from __future__ import annotations

import numpy as np
import pytest
from live_fakes import BOXES, ScriptedThinker, TextGrounder
from live_streams import RATE, SIZE, TcpServer, connect, free_port, needs_ffmpeg

from tgs.core.live import LiveOptions, LiveRun
from tgs.ground_segment import GroundSegmentStage
from tgs.presets import BEST
from tgs.segment import Sam2VideoSegmenter
from tgs.sources import open_source
from tgs.testing.tiny_vision import build_tiny_sam2_video

pytestmark = needs_ffmpeg

SECONDS = 3


@pytest.fixture(scope="module")
def segmenter(tmp_path_factory: pytest.TempPathFactory) -> Sam2VideoSegmenter:
    return Sam2VideoSegmenter.from_pretrained(build_tiny_sam2_video(tmp_path_factory.mktemp("sam2"), seed=0),
                                              dtype="float32")


def test_a_real_time_stream_gets_masks_for_every_emitted_frame(segmenter: Sam2VideoSegmenter) -> None:
    thinker = ScriptedThinker([["cat", "dog"], ["cat", "bird"]])
    with TcpServer(free_port(), SECONDS) as server, \
            connect(server.url, open_source, think_seconds=1.0) as source:  # realtime: a stream's default
        run = LiveRun(source, thinker=thinker, stage=GroundSegmentStage(TextGrounder(), segmenter, BEST),
                      expressions=["a", "b"], options=LiveOptions(wait_for_think=True, reground_every=100.0))
        results = list(run.frames())
    stats = source.stats
    # every decoded frame is emitted (with a mask per expression) or counted as skipped
    assert stats.frames_decoded == SECONDS * RATE and stats.frames_unread == 0
    assert len(results) + sum(r.skipped for r in results) == stats.frames_decoded
    previous = -1
    for r in results:
        assert r.skipped == r.index - previous - 1
        previous = r.index
        assert r.masks.shape == (2, *SIZE) and r.latency is not None and r.latency >= 0
    record = run.record()
    assert record["frames_emitted"] == len(results) and record["frames_skipped"] == stats.frames_skipped
    # the thinker saw the last second at 1 fps with its 16 kHz audio, once per completed window
    assert len(thinker.clips) >= 2
    for clip in thinker.clips:
        assert clip.num_frames == 1 and clip.frames.shape[1:] == (*SIZE, 3)
        assert clip.sample_rate == 16000 and clip.audio.shape == (16000,)
    # thinks are due at 1 s and 2 s of stream time, each waited for on the frame it started on
    # (wait_for_think): the first grounds and seeds both expressions there, the second changes
    # expression 1 only (lost objects are not grounded again within the test: reground_every)
    first = next(r for r in results if r.time >= 1.0)
    second = next(r for r in results if r.time >= 2.0)
    assert list(first.grounded) == list(first.seeded) == [True, True]
    assert list(second.grounded) == list(second.seeded) == [False, True]
    np.testing.assert_array_equal(second.boxes[1], BOXES["bird"])
    assert [r.index for r in results if r.grounded.any()] == [first.index, second.index]
    assert first.details[1]["object_text"] == "dog" and second.details[1]["object_text"] == "bird"
    spans = record["think"]["answers"]
    assert [s["object_text"] for s in spans[0]] == ["cat"]
    assert [s["object_text"] for s in spans[1]] == ["dog", "bird"]
    assert spans[1][1]["end"] - spans[1][1]["start"] == pytest.approx(1.0)  # a 1-s window (float64 pts)
