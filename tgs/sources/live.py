"""A source of frames that may never end: a file, a camera, a network stream or standard input.

:func:`open_source` opens the input at once (a bad spec fails here, with a one-line
:class:`~tgs.errors.MediaError` naming the source and the fix) and starts a reader thread that
demuxes and decodes with PyAV. The consumer iterates :meth:`LiveSource.frames`; what it gets
depends on the policy:

- ``"realtime"`` (default for live kinds): each item is the newest decoded frame; the frames
  decoded while the consumer was busy are counted in the item's ``skipped``, never queued, so
  a slow consumer falls behind by at most one frame and memory holds one frame;
- ``"every-frame"`` (default for files): every decoded frame, in order, through a queue of
  ``queue_size`` frames; a full queue stops the reader (back-pressure), so a slow consumer
  falls behind the live source instead of skipping.

Either way, ``stats.frames_decoded == frames_emitted + frames_skipped + frames_unread`` (unread:
decoded but still waiting when the consumer closed the source). Frames are converted to RGB in
the consumer's thread, only those handed out (and the few the think window keeps).

Beside the hand-off the reader keeps the thinker's window in ring buffers
(:mod:`tgs.sources.rings`): a frame per ``1 / think_fps`` s over the last ``think_seconds`` and
the audio over the same span at 16 kHz mono, from the source's own audio stream or from a
separate ``audio_device`` (read by a second thread, placed on the source's clock when its
first samples arrive).

Times are seconds from the start of the source (the video stream's start time), continuous
across reconnects: with ``reconnect`` a network source that drops (end of stream, read error or
read timeout) is reopened with exponential backoff (``tenacity``) until ``give_up_after_s``; the
first frame after it comes at the last frame's time plus the wall-clock time that passed, and
the gap is recorded in ``gaps``. Without ``reconnect`` (and for files, cameras and standard input)
the end of the input ends ``frames()`` cleanly; ``end_reason`` says why. A first connection that
fails is an error at once, whatever ``reconnect`` says: a wrong URL should not wait a minute.

``close()`` (idempotent, from any thread; the context manager calls it, so Ctrl-C in the consumer
ends the reader too) stops the threads and waits for them: each reader closes its own container
(closing it from another thread would free what a read in progress uses). Every live input and
the audio device are opened with the read timeout (PyAV's interrupt callback), so a reader waiting
on the network wakes within ``read_timeout_s`` and ends; standard input is waited on in slices
that check for close() (:class:`tgs.sources.opening.PipeReader`), so it ends within 0.1 s. What
cannot be interrupted: a capture device's (or a microphone's) blocking read that gets no data;
such a reader ends (and closes its container) when that read returns (the device delivers or
goes away); ``close()`` then returns after ``read_timeout_s`` (1 s without one) with a warning,
and the thread, a daemon, never keeps the process alive.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from tgs.data.audio_stream import MonoResampler
from tgs.data.media import to_rgb
from tgs.errors import MediaError
from tgs.sources.kinds import InputSpec, SourceKind, input_spec
from tgs.sources.opening import open_audio_device, open_input
from tgs.sources.rings import AudioRing, FrameRing, ThinkWindow

__all__ = [
    "Gap",
    "LiveSource",
    "Policy",
    "ReconnectPolicy",
    "SourceFrame",
    "SourceStats",
    "open_source",
]

logger = logging.getLogger(__name__)

Policy = Literal["realtime", "every-frame"]
POLICIES: tuple[str, ...] = ("realtime", "every-frame")


@dataclass(frozen=True)
class ReconnectPolicy:
    """How a dropped network source is retried: waits of first_delay_s, doubling up to max_delay_s,
    until give_up_after_s have passed since the drop."""

    first_delay_s: float = 0.5
    max_delay_s: float = 8.0
    give_up_after_s: float = 60.0

    def __post_init__(self) -> None:
        for name in ("first_delay_s", "max_delay_s", "give_up_after_s"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"ReconnectPolicy.{name}: expected a positive number of seconds, got {value!r}")


@dataclass(frozen=True)
class Gap:
    """A drop of a network source that was resumed: start is the time of the last frame before it,
    end the time of the first frame after it (stream seconds; end - start is the wall time that passed)."""

    start: float
    end: float
    reason: str
    attempts: int


@dataclass
class SourceStats:
    """Counts since the source opened; ``frames_decoded == frames_emitted + frames_skipped + frames_unread``
    once the source is closed or ended."""

    frames_decoded: int = 0
    frames_emitted: int = 0
    frames_skipped: int = 0
    frames_unread: int = 0
    reconnects: int = 0


@dataclass(frozen=True)
class SourceFrame:
    """A frame handed to the consumer.

    index: decoded frame number from 0 (skipped frames included); time: s from the source start;
    image: uint8 [H, W, 3] RGB in playback orientation; arrival: ``time.monotonic()`` when it was decoded;
    skipped: frames decoded and never handed out just before this one (always 0 under "every-frame").
    """

    index: int
    time: float
    image: np.ndarray
    arrival: float
    skipped: int = 0


@dataclass
class _Decoded:
    index: int
    time: float
    frame: Any  # av.VideoFrame, converted to RGB by the consumer
    arrival: float


class _Closed(Exception):
    """close() was called while the reader waited to reconnect."""


class _Handoff:
    """Reader -> consumer: the newest frame only ("realtime") or a bounded queue ("every-frame")."""

    def __init__(self, policy: Policy, capacity: int, stats: SourceStats) -> None:
        self.realtime = policy == "realtime"
        self.capacity = 1 if self.realtime else capacity
        self.stats = stats
        self._items: deque[_Decoded] = deque()
        self._skipped = 0  # replaced since the consumer last took one ("realtime")
        self._cond = threading.Condition()
        self._finished = False  # the reader is done: what is queued is still handed out
        self._stopped = False  # the consumer closed: nothing more is handed out

    def put(self, item: _Decoded) -> bool:
        """False once the consumer has closed (the reader then stops)."""
        with self._cond:
            if self.realtime:
                if self._items:
                    self._items.popleft()
                    self._skipped += 1
            else:
                while len(self._items) >= self.capacity and not self._stopped:
                    self._cond.wait()
            if self._stopped:
                self.stats.frames_unread += 1  # decoded while the consumer closed
                return False
            self._items.append(item)
            self._cond.notify_all()
            return True

    def get(self) -> tuple[_Decoded, int] | None:
        """The next item and the frames skipped before it; None at the end or after close()."""
        with self._cond:
            while not self._items and not self._finished and not self._stopped:
                self._cond.wait()
            if self._stopped or not self._items:
                return None
            item, skipped = self._items.popleft(), self._skipped
            self._skipped = 0
            self.stats.frames_emitted += 1
            self.stats.frames_skipped += skipped
            self._cond.notify_all()
            return item, skipped

    def finish(self) -> None:
        with self._cond:
            self._finished = True
            self._cond.notify_all()

    def stop(self) -> None:
        with self._cond:
            if not self._stopped:
                self._stopped = True
                self.stats.frames_unread += len(self._items)
                self.stats.frames_skipped += self._skipped
                self._items.clear()
                self._skipped = 0
            self._cond.notify_all()


class LiveSource:
    """Frames (and the thinker's window) of one source; see the module docstring. Made by :func:`open_source`."""

    def __init__(
        self,
        spec: str,
        source: InputSpec,
        *,
        policy: Policy,
        reconnect: ReconnectPolicy | None,
        think_seconds: float,
        think_fps: float,
        audio_device: str | None,
        open_timeout_s: float,
        read_timeout_s: float | None,
        queue_size: int,
        audio_options: dict[str, str] | None = None,
    ) -> None:
        self.spec = spec
        self.kind: SourceKind = source.kind
        self.live = source.live
        self.policy: Policy = policy
        self.reconnect = reconnect
        self.think_seconds = float(think_seconds)
        self.think_fps = float(think_fps)
        self.audio_device = audio_device
        self.gaps: list[Gap] = []
        self.stats = SourceStats()
        self.end_reason: str | None = None
        self.size: tuple[int, int] | None = None  # (height, width) of the frames handed out, after the first
        self._input = source
        self._timeouts = (open_timeout_s, read_timeout_s)
        self._frames = FrameRing(think_fps, think_seconds)
        self._audio = AudioRing(think_seconds)
        self._handoff = _Handoff(policy, queue_size, self.stats)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._latest: tuple[float, float] | None = None  # (time, arrival) of the newest decoded frame
        self._first_time: float | None = None
        self._origin: float | None = None  # stream seconds of time 0 in this connection
        self._offset = 0.0  # added to this connection's times (continuity across reconnects)
        self._resume: tuple[float, float, str, int] | None = None  # a drop being resumed
        self._period = 0.0

        container = self._open()  # raises MediaError: a bad source fails in the caller's thread
        video = container.streams.video[0]
        rate = video.average_rate or video.guessed_rate
        self.fps: float | None = float(rate) if rate else None
        self._period = 1.0 / self.fps if self.fps else 0.0
        self._device = None
        if audio_device is not None:
            try:
                self._device = open_audio_device(audio_device, audio_options, open_timeout_s, read_timeout_s)
            except BaseException:
                container.close()
                raise
        self.has_audio = self._device is not None or bool(container.streams.audio)
        logger.info("opened %s (%s, %s fps, audio: %s, policy %s)", spec, self.kind, self.fps or "?",
                    audio_device or ("stream" if self.has_audio else "none"), policy)
        self._reader = threading.Thread(target=self._read, args=(container,), name=f"tgs-source-{self.kind}",
                                        daemon=True)
        self._reader.start()
        self._mic: threading.Thread | None = None
        if self._device is not None:
            self._mic = threading.Thread(target=self._listen, name="tgs-source-audio", daemon=True)
            self._mic.start()

    # ------------------------------------------------------------------ consumer side

    def frames(self) -> Iterator[SourceFrame]:
        """The frames as the policy hands them out; ends at the end of the source or at close().
        A file that cannot be decoded raises MediaError when its frames run out."""
        while (got := self._handoff.get()) is not None:
            item, skipped = got
            image = to_rgb(item.frame)
            if self.size is None:
                self.size = (int(image.shape[0]), int(image.shape[1]))
            yield SourceFrame(item.index, item.time, image, item.arrival, skipped)
        if self._error is not None and not self._stop.is_set():
            raise self._error

    def think_window(self, seconds: float | None = None) -> ThinkWindow | None:
        """The last ``seconds`` (default and at most ``think_seconds``) of frames at ``think_fps`` and the
        audio over the same span; None before the first frame."""
        span = self.think_seconds if seconds is None else float(seconds)
        if not (math.isfinite(span) and 0 < span <= self.think_seconds + 1e-9):
            raise ValueError(f"think_window: seconds must be in (0, {self.think_seconds:g}] (think_seconds of "
                             f"open_source), got {seconds!r}")
        latest = self._latest
        if latest is None or self._first_time is None:
            return None
        end = latest[0]
        kept = self._frames.snapshot(end, span)
        if kept is None:
            return None
        start = max(end - span, self._first_time)
        audio = self._audio.read(start, end) if self.has_audio else np.zeros(0, np.float32)
        return ThinkWindow(start=start, end=end, frame_times=kept[0], frames=kept[1], audio=audio)

    def close(self) -> None:
        """Stop the reader (and the audio device thread); idempotent, from any thread."""
        self._stop.set()
        self._handoff.stop()
        current = threading.current_thread()
        wait = (self._timeouts[1] or 1.0) + 1.0
        for thread in (self._reader, self._mic):
            if thread is not None and thread is not current:
                thread.join(timeout=wait)
                if thread.is_alive():  # a read FFmpeg does not interrupt (see the module docstring)
                    logger.warning("%s: the %s thread is blocked in a read that cannot be interrupted; it closes "
                                   "its input and ends when that read returns", self.spec, thread.name)

    def __enter__(self) -> LiveSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # a forgotten source must not leave its reader running
        stop = getattr(self, "_stop", None)
        if stop is not None and not stop.is_set():
            stop.set()
            self._handoff.stop()

    # ------------------------------------------------------------------ reader side

    def _open(self):  # -> av.container.InputContainer
        return open_input(self.spec, self._input, *self._timeouts, stop=self._stop)

    def _read(self, container) -> None:
        try:
            while True:
                try:
                    reason = self._pump(container)
                finally:
                    container.close()
                if self._stop.is_set():
                    self.end_reason = "closed"
                    return
                if self.reconnect is None or self.kind != "stream":
                    self.end_reason = reason
                    if reason != "end of stream":
                        logger.warning("%s: %s; the source ends here", self.spec, reason)
                    return
                container = self._reopen(reason)
                if container is None:
                    return
        except _Closed:
            self.end_reason = "closed"
        except BaseException as exc:  # handed to the consumer by frames()
            self._error = exc
            self.end_reason = f"error: {exc}"
        finally:
            self._handoff.finish()

    def _pump(self, container) -> str:
        """Decode until the input ends; why it ended. MediaError for a file that cannot be decoded."""
        import av

        video = container.streams.video[0]
        video.thread_type = "AUTO"
        audio = container.streams.audio[0] if container.streams.audio and self._device is None else None
        resampler = MonoResampler() if audio is not None else None
        self._origin = None
        if video.start_time is not None and video.time_base is not None:
            self._origin = float(video.start_time * video.time_base)
        streams = [video] + ([audio] if audio is not None else [])
        try:
            for packet in container.demux(*streams):
                if self._stop.is_set():
                    return "closed"
                for frame in packet.decode():
                    if packet.stream.type == "video":
                        if not self._on_video(frame):
                            return "closed"
                    elif resampler is not None:
                        self._on_audio(frame, resampler)
        except (av.FFmpegError, OSError) as exc:
            if self.kind == "file":
                raise MediaError(f"cannot decode video {self.spec}: {exc}", path=self.spec,
                                 fix="re-encode the file") from exc
            if isinstance(exc, (av.error.ExitError, TimeoutError)) and self._timeouts[1] is not None:  # read timeout
                return f"no data for {self._timeouts[1]:g} s (read timeout)"
            return f"read error ({getattr(exc, 'strerror', None) or exc})"
        return "end of stream"

    def _stream_time(self, raw: float | None) -> float:
        if raw is None:  # no timestamp: one period after the last frame
            return (self._latest[0] + self._period) if self._latest is not None else 0.0
        if self._origin is None:
            self._origin = raw
        return raw - self._origin + self._offset

    def _on_video(self, frame) -> bool:
        arrival = time.monotonic()
        if self._resume is not None:  # the first frame after a reconnect: continue the clock
            last_time, last_arrival, reason, attempts = self._resume
            end = last_time + max(arrival - last_arrival, self._period)
            self._offset = 0.0
            self._offset = end - self._stream_time(frame.time)  # this frame lands at `end`
            self.gaps.append(Gap(start=last_time, end=end, reason=reason, attempts=attempts))
            self._resume = None
        t = self._stream_time(frame.time)
        if self._latest is not None and t <= self._latest[0]:
            t = self._latest[0] + (self._period or 1e-3)  # keep times increasing (a timestamp jump back)
        index = self.stats.frames_decoded
        self.stats.frames_decoded += 1
        if self._first_time is None:
            self._first_time = t
        self._frames.add(t, frame, to_rgb)
        self._latest = (t, arrival)
        return self._handoff.put(_Decoded(index, t, frame, arrival))

    def _on_audio(self, frame, resampler: MonoResampler) -> None:
        if self._resume is not None or frame.time is None:
            return  # audio of a new connection before its first video frame: no place on the clock yet
        samples = resampler.convert(frame)
        self._audio.write(samples, start=self._stream_time(frame.time))

    def _reopen(self, reason: str):  # -> container | None
        """Reconnect with backoff; None when given up (end_reason says why)."""
        from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_exponential

        policy = self.reconnect
        assert policy is not None
        last = self._latest
        logger.warning("%s dropped (%s); reconnecting (giving up after %g s)", self.spec, reason,
                       policy.give_up_after_s)
        attempts = 0

        def attempt():
            nonlocal attempts
            attempts += 1
            return self._open()

        def sleep(seconds: float) -> None:
            if self._stop.wait(seconds):
                raise _Closed

        retrying = Retrying(
            wait=wait_exponential(multiplier=policy.first_delay_s, min=policy.first_delay_s,
                                  max=policy.max_delay_s),
            stop=stop_after_delay(policy.give_up_after_s),
            retry=retry_if_exception_type(MediaError),
            sleep=sleep,
            reraise=True,
        )
        try:
            container = retrying(attempt)
        except MediaError as exc:
            self.end_reason = f"dropped ({reason}); gave up reconnecting after {attempts} attempt(s): {exc.message}"
            logger.warning("%s: %s", self.spec, self.end_reason)
            return None
        self.stats.reconnects += 1
        logger.warning("%s: reconnected after %d attempt(s)", self.spec, attempts)
        if last is not None:
            self._resume = (last[0], last[1], reason, attempts)
        return container

    def _listen(self) -> None:
        """The audio device's thread: its samples on the source's clock, from the first video frame on."""
        import av

        container = self._device
        resampler = MonoResampler()
        placed = False
        try:
            stream = container.streams.audio[0]
            for packet in container.demux(stream):
                if self._stop.is_set():
                    return
                for frame in packet.decode():
                    latest = self._latest
                    if latest is None:
                        continue  # no clock yet
                    samples = resampler.convert(frame)
                    if not placed:  # now on the source's clock, then contiguous
                        self._audio.write(samples, start=latest[0] + (time.monotonic() - latest[1]))
                        placed = True
                    else:
                        self._audio.write(samples)
        except (av.FFmpegError, OSError) as exc:
            logger.warning("audio device %s stopped: %s; the thinker hears silence from here", self.audio_device,
                           exc)
        finally:
            container.close()


def open_source(
    spec: str | Path,
    *,
    audio_device: str | None = None,
    policy: Policy | None = None,
    reconnect: ReconnectPolicy | None = None,
    think_seconds: float = 10.0,
    think_fps: float = 1.0,
    input_format: str | None = None,
    input_options: dict[str, str] | None = None,
    audio_options: dict[str, str] | None = None,
    open_timeout_s: float = 10.0,
    read_timeout_s: float | None = 10.0,
    queue_size: int = 8,
    stdin_fd: int | None = None,
) -> LiveSource:
    """Open a file, camera, network stream or ``-`` (standard input) as a :class:`LiveSource`.

    policy: "realtime" or "every-frame" (None: realtime for live kinds, every-frame for files).
    reconnect: retry a dropped network source (None: a drop ends it).
    think_seconds / think_fps: the think window's ring buffers.
    input_format / input_options: FFmpeg's input format and options (e.g. a camera's
        ``{"video_size": "1280x720", "framerate": "30"}``, ``{"rtsp_transport": "tcp"}``).
    audio_device / audio_options: a separate microphone (``alsa:default``, ``pulse:default``, ...).
    open_timeout_s / read_timeout_s: every live input and the audio device (PyAV's timeouts); a read
        timeout ends the source (a network source with ``reconnect``: a drop, retried).
    queue_size: "every-frame" queue length (frames decoded ahead of the consumer).
    stdin_fd: the descriptor ``-`` reads (default: this process's standard input).
    Raises MediaError (unreachable URL, missing device, non-video input, unreadable file) or ValueError.
    """
    text = str(spec)
    if policy is not None and policy not in POLICIES:
        raise ValueError(f"policy: expected one of {', '.join(POLICIES)}, got {policy!r}")
    if not (isinstance(queue_size, int) and queue_size >= 1):
        raise ValueError(f"queue_size: expected an integer >= 1, got {queue_size!r}")
    source = input_spec(text, input_format=input_format, options=input_options, stdin_fd=stdin_fd)
    if source.kind == "stdin":
        fd = int(source.url.split(":", 1)[1])
        if os.isatty(fd):
            raise MediaError("nothing is piped to standard input (`-` reads a stream from it)",
                             fix="pipe a video stream in, e.g. `ffmpeg -i clip.mp4 -f mpegts - | tgs segment - \"...\"`")
    chosen: Policy = policy or ("realtime" if source.live else "every-frame")
    return LiveSource(
        text, source, policy=chosen, reconnect=reconnect, think_seconds=think_seconds, think_fps=think_fps,
        audio_device=audio_device, open_timeout_s=open_timeout_s, read_timeout_s=read_timeout_s,
        queue_size=queue_size, audio_options=audio_options,
    )

