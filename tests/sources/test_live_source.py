"""LiveSource on streams served in real time by ffmpeg: policies, think window, reconnect, errors.

Each served clip is 2 s at 25 fps (50 frames, mpeg2video in MPEG-TS, timestamps on a 90 kHz
clock, so consecutive frames are exactly 3600 ticks = 0.04 s apart). Slow consumers are made
slow by waiting for the reader's count to move, never by sleeping a guessed time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest
from live_streams import (
    RATE,
    SIZE,
    TcpServer,
    connect,
    ffmpeg_args,
    free_port,
    make_clip,
    needs_ffmpeg,
    wait_until,
)

from tgs.errors import MediaError
from tgs.sources import ReconnectPolicy, open_source

pytestmark = needs_ffmpeg

SECONDS = 2
FRAMES = SECONDS * RATE


def _served(seconds=SECONDS, **kwargs):
    return TcpServer(free_port(), seconds, **kwargs)


def test_every_frame_gets_each_frame_in_order_with_increasing_times() -> None:
    with _served() as server, connect(server.url, open_source, policy="every-frame") as source:
        got = list(source.frames())
        assert source.end_reason == "end of stream"
    assert [f.index for f in got] == list(range(FRAMES))
    assert all(f.skipped == 0 for f in got)
    times = np.array([f.time for f in got])
    assert times[0] == 0.0
    # pts are integers on the 90 kHz clock: each step is 3600 ticks; the float64 subtraction of two such
    # times (< 3 s) is exact to well below 1e-9 s
    np.testing.assert_allclose(np.diff(times), 1.0 / RATE, atol=1e-9)
    assert all(f.image.shape == (*SIZE, 3) and f.image.dtype == np.uint8 for f in got)
    assert source.size == SIZE and source.fps == RATE and source.has_audio
    stats = source.stats
    assert (stats.frames_decoded, stats.frames_emitted, stats.frames_skipped, stats.frames_unread) == (FRAMES, FRAMES,
                                                                                                        0, 0)


def test_realtime_hands_out_the_newest_frame_and_counts_every_skipped_one() -> None:
    with _served() as server, connect(server.url, open_source) as source:  # realtime: the default for a stream
        assert source.policy == "realtime"
        got = []
        for frame in source.frames():
            got.append(frame)
            if len(got) <= 3:  # a slow consumer: busy until the reader has decoded 4 more frames
                wait_until(lambda f=frame: source.stats.frames_decoded >= f.index + 5, what="4 more frames")
    indices = [f.index for f in got]
    assert indices == sorted(set(indices))
    previous = -1
    for frame in got:
        assert frame.skipped == frame.index - previous - 1  # skipped = the frames decoded in between
        previous = frame.index
    assert all(f.skipped >= 3 for f in got[1:4])  # the consumer was busy for 4 decoded frames each time
    stats = source.stats
    assert stats.frames_decoded == FRAMES and indices[-1] == FRAMES - 1  # the last frame is always handed out
    assert stats.frames_emitted == len(got)
    assert stats.frames_emitted + stats.frames_skipped == stats.frames_decoded
    assert stats.frames_skipped == sum(f.skipped for f in got) and stats.frames_unread == 0


def test_every_frame_applies_back_pressure_and_never_skips() -> None:
    queue = 2
    with _served() as server, connect(server.url, open_source, policy="every-frame", queue_size=queue) as source:
        got = []
        for frame in source.frames():
            got.append(frame)
            # never more than the queue and the one frame the reader holds ahead of what was handed out
            assert source.stats.frames_decoded - source.stats.frames_emitted <= queue + 1
            if len(got) == 1:  # busy until the reader is blocked on the full queue
                wait_until(lambda: source.stats.frames_decoded == queue + 2, what="a full queue")
    assert [f.index for f in got] == list(range(FRAMES)) and all(f.skipped == 0 for f in got)


def test_think_window_is_bounded_and_its_audio_spans_it() -> None:
    think_seconds, think_fps = 1.0, 4.0
    with _served() as server, connect(server.url, open_source, policy="every-frame", think_seconds=think_seconds,
                                      think_fps=think_fps) as source:
        windows = []
        for frame in source.frames():
            window = source.think_window()
            assert window is not None
            windows.append(window)
            assert len(window.frame_times) == window.frames.shape[0] <= think_seconds * think_fps
            assert window.frames.shape[1:] == (*SIZE, 3)
            assert window.end >= frame.time  # the newest decoded frame: the reader may be a queue ahead
            assert np.all(window.frame_times > window.end - think_seconds) and np.all(window.frame_times <= window.end)
            assert np.all(np.diff(window.frame_times) > 0)
            rate = window.sample_rate
            assert window.audio.shape == (round(window.end * rate) - round(window.start * rate),)
            assert window.start == max(0.0, window.end - think_seconds)
            half = source.think_window(0.5)
            assert half is not None and len(half.frame_times) <= 0.5 * think_fps
    full = [w for w in windows if w.end >= 1.5]
    assert full and all(len(w.frame_times) == think_seconds * think_fps for w in full)
    # one frame per 1/think_fps s: the first frame of each quarter second (every 0.04 s from 0)
    assert np.allclose(np.diff(full[-1].frame_times), 0.24, atol=0.041)
    # the sine (lavfi's amplitude: 1/8) is heard over the window's first half, decoded by then (not silence)
    assert np.abs(full[-1].audio[: len(full[-1].audio) // 2]).max() > 0.05
    with pytest.raises(ValueError, match="think_seconds"):
        source.think_window(2.0)


def test_a_drop_without_reconnect_ends_the_stream_cleanly() -> None:
    server = _served(seconds=None)
    with server, connect(server.url, open_source, policy="every-frame") as source:
        got = []
        for frame in source.frames():
            got.append(frame)
            if len(got) == 10:
                server.kill()
    assert len(got) >= 10 and source.end_reason is not None and source.gaps == []
    assert source.stats.frames_decoded == len(got) and source.stats.reconnects == 0


def test_a_stalled_sender_ends_the_stream_after_the_read_timeout() -> None:
    server = _served(seconds=None)
    with server, connect(server.url, open_source, policy="every-frame", read_timeout_s=0.5) as source:
        got = []
        for frame in source.frames():
            got.append(frame)
            if len(got) == 10:
                os.kill(server.process.pid, signal.SIGSTOP)  # alive, connected, silent
        os.kill(server.process.pid, signal.SIGCONT)
    assert source.end_reason == "no data for 0.5 s (read timeout)"
    assert source.stats.frames_decoded == len(got) >= 10


def test_reconnect_resumes_after_a_drop_and_records_one_gap() -> None:
    port = free_port()
    policy = ReconnectPolicy(first_delay_s=0.05, max_delay_s=0.2, give_up_after_s=30.0)
    first = TcpServer(port, None)
    with connect(first.url, open_source, policy="every-frame", reconnect=policy) as source:
        got, second = [], None
        try:
            for frame in source.frames():
                got.append(frame)
                if len(got) == 10:
                    first.kill()  # the source drops; while it retries, the sender comes back on the same port
                    second = TcpServer(port, None)
                if source.gaps and frame.time >= source.gaps[0].end and len(got) >= 30:
                    break
        finally:
            first.kill()
            if second is not None:
                second.kill()
    assert len(source.gaps) == 1 and source.stats.reconnects == 1
    gap = source.gaps[0]
    assert gap.attempts >= 1 and gap.reason
    before = [f for f in got if f.time <= gap.start]
    after = [f for f in got if f.time >= gap.end]
    assert before and after and len(before) + len(after) == len(got)
    assert before[-1].time == gap.start and after[0].time == gap.end  # the gap is between those two frames
    assert gap.end - gap.start >= 1.0 / RATE - 1e-9
    times = [f.time for f in got]
    assert np.all(np.diff(times) > 0)  # continuous clock: never back across the gap
    assert [f.index for f in got] == list(range(len(got)))  # every-frame: nothing skipped across the gap
    # after the gap frames keep the served rate (times from the new connection's own clock, shifted)
    np.testing.assert_allclose(np.diff([f.time for f in after]), 1.0 / RATE, atol=1e-9)


def test_unreachable_url_fails_at_once_with_a_clear_message() -> None:
    url = f"tcp://127.0.0.1:{free_port()}"  # nobody listens
    with pytest.raises(MediaError) as caught:
        open_source(url, reconnect=ReconnectPolicy())  # reconnect retries drops, not a first connection
    text = str(caught.value)
    assert "\n" not in text and url in text and "connection refused" in text and "Fix:" in text


def test_missing_camera_and_unreadable_file_are_clear_errors(tmp_path) -> None:
    with pytest.raises(MediaError, match=r"camera /dev/video97 not found.*Fix: list the cameras"):
        open_source("/dev/video97")
    bad = tmp_path / "clip.mp4"
    bad.write_text("not a video\n")
    with pytest.raises(MediaError, match=r"cannot open media file .*clip\.mp4"):
        open_source(bad)
    with pytest.raises(MediaError, match="video not found"):
        open_source(tmp_path / "missing.mp4")


def test_a_file_source_gives_the_frames_the_file_decoder_gives(tmp_path) -> None:
    from tgs.data.media import load_video_frames

    clip = make_clip(tmp_path / "clip.mp4")
    frames, times = load_video_frames(clip, None)
    with open_source(clip) as source:
        assert source.kind == "file" and not source.live and source.policy == "every-frame"
        got = list(source.frames())
    np.testing.assert_array_equal(np.stack([f.image for f in got]), frames)
    np.testing.assert_array_equal(np.array([f.time for f in got]), times)


def test_close_from_another_thread_ends_frames_and_accounts_for_every_frame() -> None:
    # lavfi's test source is a device input that decodes as fast as it is read, without end
    with open_source("lavfi:testsrc2=size=64x48:rate=25", policy="every-frame", queue_size=3) as source:
        assert source.kind == "camera" and source.live
        got = []
        for frame in source.frames():
            got.append(frame)
            if len(got) == 5:
                threading.Thread(target=source.close).start()
    stats = source.stats
    assert len(got) >= 5 and source.end_reason == "closed"
    assert stats.frames_decoded == stats.frames_emitted + stats.frames_skipped + stats.frames_unread
    source.close()  # idempotent


def test_every_live_input_and_the_audio_device_are_opened_with_the_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    """PyAV's interrupt callback bounds opens and reads of cameras, standard input and microphones too."""
    import av

    from tgs.sources.kinds import input_spec
    from tgs.sources.opening import open_audio_device, open_input

    spec = "lavfi:testsrc2=size=64x48:rate=25"
    camera = open_input(spec, input_spec(spec), 3.0, 4.0)
    mic = open_audio_device("lavfi:sine=frequency=440:sample_rate=16000", None, 3.0, 4.0)
    try:
        assert (camera.open_timeout, camera.read_timeout) == (3.0, 4.0)
        assert (mic.open_timeout, mic.read_timeout) == (3.0, 4.0)
    finally:
        camera.close()
        mic.close()
    seen = []

    def refuse(url, **kwargs):  # standard input: what av.open is given, then "not a media stream"
        seen.append(kwargs["timeout"])
        raise av.error.InvalidDataError(1094995529, "Invalid data found when processing input")

    monkeypatch.setattr(av, "open", refuse)
    with pytest.raises(MediaError, match="standard input is not a media stream"):
        open_input("-", input_spec("-", stdin_fd=0), 3.0, 4.0)
    assert seen == [(3.0, 4.0)]


def test_audio_from_a_separate_device_fills_the_think_window() -> None:
    video = "lavfi:testsrc2=size=64x48:rate=25,realtime"
    with open_source(video, audio_device="lavfi:sine=frequency=440:sample_rate=16000,arealtime",
                     think_seconds=1.0, think_fps=2.0) as source:
        assert source.has_audio
        for frame in source.frames():
            window = source.think_window()
            heard = window is not None and window.audio.size > 0 and np.abs(window.audio).max() > 0.05  # the sine's amplitude is 1/8
            if (frame.time >= 1.0 and heard) or frame.time > 10.0:
                break
    assert heard and window.audio.shape == (round(window.end * 16000) - round(window.start * 16000),)


_READ_STDIN = """
import json, sys
from tgs.sources import open_source
from tgs.errors import MediaError
try:
    with open_source("-", policy=sys.argv[1]) as source:
        frames = [(f.index, f.time, f.skipped) for f in source.frames()]
        s = source.stats
        print(json.dumps({"kind": source.kind, "frames": frames, "decoded": s.frames_decoded,
                          "skipped": s.frames_skipped, "size": source.size}))
except MediaError as exc:
    print(json.dumps({"error": str(exc)}))
"""


def _read_stdin(feed: list[str] | bytes, policy: str = "every-frame") -> dict:
    cmd = [sys.executable, "-c", _READ_STDIN, policy]
    if isinstance(feed, bytes):
        done = subprocess.run(cmd, input=feed, capture_output=True, timeout=60, check=True)
    else:
        sender = subprocess.Popen(feed, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
        try:
            done = subprocess.run(cmd, stdin=sender.stdout, capture_output=True, timeout=60, check=True)
        finally:
            sender.stdout.close()
            sender.wait(timeout=30)
    return json.loads(done.stdout.decode().strip().splitlines()[-1])


def test_a_stream_piped_into_stdin() -> None:
    result = _read_stdin(ffmpeg_args(SECONDS, ["-f", "mpegts", "-"]))
    assert result["kind"] == "stdin" and result["decoded"] == FRAMES and result["skipped"] == 0
    assert [f[0] for f in result["frames"]] == list(range(FRAMES)) and result["size"] == list(SIZE)


def _unread_bytes(fd: int) -> int:
    import fcntl
    import struct
    import termios

    return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]


def test_the_stdin_reader_ends_on_stop_and_on_its_timeout() -> None:
    """PipeReader: data as it comes; a wait for a silent writer ends at stop (an end of input, b"")
    or, past its timeout, with TimeoutError."""
    from tgs.sources.opening import PipeReader

    read_end, write_end = os.pipe()
    try:
        stop = threading.Event()
        reader = PipeReader(read_end, stop, None)
        os.write(write_end, b"abc")
        assert reader.read(10) == b"abc"
        got: list[bytes] = []
        waiting = threading.Thread(target=lambda: got.append(reader.read(10)))
        waiting.start()  # blocked: the writer sends nothing
        stop.set()
        waiting.join()
        assert got == [b""]
        with pytest.raises(TimeoutError, match="no data on standard input for 0 s"):
            PipeReader(read_end, None, 0.0).read(10)
    finally:
        os.close(write_end)
        os.close(read_end)


def test_close_ends_a_stdin_reader_whose_writer_is_silent() -> None:
    """FFmpeg's pipe input would block in read() until the writer sends more; close() ends it."""
    data = subprocess.run(ffmpeg_args(1, ["-f", "mpegts", "-"]), capture_output=True, check=True).stdout
    read_end, write_end = os.pipe()
    written = threading.Event()

    def writer() -> None:  # the stream's first second, then silence with the pipe left open
        os.write(write_end, data)
        written.set()

    threading.Thread(target=writer, daemon=True).start()
    try:
        with open_source("-", stdin_fd=read_end, policy="every-frame", read_timeout_s=None) as source:
            got = 0
            for _ in source.frames():
                got += 1
                if got == 1:
                    def close_when_written() -> None:  # once the reader has taken every byte
                        written.wait()
                        wait_until(lambda: _unread_bytes(read_end) == 0, what="the pipe drained")
                        source.close()

                    threading.Thread(target=close_when_written).start()
        assert got >= 1 and source.end_reason == "closed"  # the reader ended: close() waited for it
        stats = source.stats
        assert stats.frames_decoded == stats.frames_emitted + stats.frames_skipped + stats.frames_unread
    finally:
        os.close(write_end)
        os.close(read_end)


def test_stdin_that_is_not_video_is_a_clear_error() -> None:
    text = _read_stdin(b"hello, this is not a video stream\n" * 100)
    assert "standard input is not a media stream" in text["error"] and "Fix:" in text["error"]
    audio_only = [*ffmpeg_args(1, ["-vn", "-f", "mpegts", "-"])]
    assert "standard input has no video stream" in _read_stdin(audio_only)["error"]
