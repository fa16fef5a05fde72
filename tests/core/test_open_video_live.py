"""``open_video`` / ``Pipeline.open_video`` on a live source: the same call as for a file gives a
live session whose ``frames()`` yields a FrameResult per emitted frame until ``stop()``.

A synthetic clip is served in real time by ``ffmpeg -re`` on a local TCP port (tiny models, the
direct thinker); what is checked holds whatever the machine's speed.
"""

from __future__ import annotations

import pytest
from live_streams import SIZE, TcpServer, free_port, needs_ffmpeg, wait_listening

from tgs.core import Pipeline
from tgs.core.segment import open_video
from tgs.core.session import VideoSession
from tgs.core.settings import Settings
from tgs.errors import SettingsError
from tgs.types import FrameResult

pytestmark = needs_ffmpeg

EXPRESSIONS = ["the red ball", "the clock"]


def _served() -> TcpServer:
    server = TcpServer(free_port(), None)
    wait_listening(server.port)
    return server


def _consume(session: VideoSession, stop_after: int) -> list[FrameResult]:
    got = []
    for frame in session.frames():
        got.append(frame)
        if len(got) == stop_after:
            session.stop()
    return got


def _check(frames: list[FrameResult], stop_after: int) -> None:
    assert len(frames) >= stop_after  # stop() ends the stream after the frame in hand (one more may be ready)
    previous = -1
    for frame in frames:
        assert frame.masks.shape == (len(EXPRESSIONS), *SIZE) and frame.image.shape == (*SIZE, 3)
        assert frame.index == previous + 1 + frame.skipped  # every decoded frame is emitted or counted
        assert frame.latency is not None and frame.latency >= 0 and frame.arrival is not None
        previous = frame.index
    assert frames[0].grounded.all()  # direct: every expression is grounded on the first frame


def test_open_video_on_a_stream_is_a_live_session_until_stop() -> None:
    with _served() as server:
        session = open_video(server.url, EXPRESSIONS, thinker="direct", settings=Settings.tiny(device="cpu"))
        assert isinstance(session, VideoSession) and session.mode.name == "live"
        with session:
            frames = _consume(session, 8)
            summary = session.summary()
    _check(frames, 8)
    assert session.mode.end_reason == "stopped"
    live = summary.live
    assert live["frames_emitted"] == len(frames) and live["frames_skipped"] == sum(f.skipped for f in frames)
    assert summary.source == server.url and summary.output["mode"] == "live"


def test_pipeline_open_video_on_streams_loads_the_live_models_once() -> None:
    pipe = Pipeline.load(thinker="direct", preset="best", settings=Settings.tiny(device="cpu"))
    runs = []
    for _ in range(2):
        with _served() as server, pipe.open_video(server.url, EXPRESSIONS) as session:
            _check(_consume(session, 3), 3)
            runs.append(session.mode.run)
    # the second session takes the first one's Grounding DINO and video model from the pipeline's cache
    assert runs[1].stage.grounder is runs[0].stage.grounder and runs[1].stage.segmenter is runs[0].stage.segmenter


def test_a_sampling_rate_is_refused_for_a_live_source_before_any_work() -> None:
    with pytest.raises(SettingsError, match="fps"):
        open_video("tcp://127.0.0.1:9", EXPRESSIONS, thinker="direct", settings=Settings.tiny(), fps=2.0)
