"""Opening a source with PyAV, and the one-line errors that say what went wrong and what to do.

Every failure to open is a :class:`~tgs.errors.MediaError` naming the source and the fix:
nobody listening at an address, no answer in time, a URL FFmpeg cannot read, a camera that is
not there or not allowed, standard input that is not a media stream, a source without video.
Files are opened as every video file is (:mod:`tgs.data.media`), with the same messages.
"""

from __future__ import annotations

import os
import select
import threading
import time
from pathlib import Path

from tgs.errors import MediaError
from tgs.sources.kinds import InputSpec, device_input

__all__ = ["POLL_S", "PipeReader", "open_audio_device", "open_error", "open_input"]


POLL_S = 0.1
"""Standard input is waited on in slices this long, checking for close() and the timeouts between."""


class PipeReader:
    """Standard input for FFmpeg (a file-like object PyAV reads through), waited on in slices of
    :data:`POLL_S`: FFmpeg's own pipe input blocks in ``read()`` until the writer sends something,
    which neither its interrupt callback nor close() can end. Here ``stop`` (set by close()) ends
    the input as an end of stream, and a wait longer than ``timeout`` s raises TimeoutError (the
    open timeout while opening, then the read timeout; None: no limit). The descriptor stays open
    (it is the process's standard input)."""

    def __init__(self, fd: int, stop: threading.Event | None, timeout: float | None) -> None:
        self.fd, self.stop, self.timeout = fd, stop, timeout

    def read(self, size: int) -> bytes:
        start = time.monotonic()
        while self.stop is None or not self.stop.is_set():
            ready, _, _ = select.select([self.fd], [], [], POLL_S)
            if ready:
                return os.read(self.fd, size)
            if self.timeout is not None and time.monotonic() - start > self.timeout:
                raise TimeoutError(f"no data on standard input for {self.timeout:g} s")
        return b""  # closed: the end of the input


def open_input(
    spec: str, source: InputSpec, open_timeout: float, read_timeout: float | None,
    stop: threading.Event | None = None,
):
    """The container of ``source`` with a video stream; MediaError naming the source and the fix.

    A network stream or a camera is opened with PyAV's timeouts: FFmpeg's interrupt callback ends
    an open that takes over ``open_timeout`` s and a read that waits over ``read_timeout`` s (None:
    none) with an exit error, wherever FFmpeg polls it: network I/O does, a capture device's
    blocking read that gets no frame does not (see :meth:`tgs.sources.live.LiveSource.close`).
    Standard input is read through a :class:`PipeReader` with the same timeouts, which ``stop``
    (the source's close) also ends."""
    import av

    if source.kind == "file":
        from tgs.data.media import open_container, video_stream

        path = Path(source.url)
        container = open_container(path)
        try:
            video_stream(container, path)
        except MediaError:
            container.close()
            raise
        return container
    pipe = PipeReader(int(source.url.split(":", 1)[1]), stop, open_timeout) if source.kind == "stdin" else None
    try:
        container = av.open(pipe if pipe is not None else source.url, format=source.format,
                            options=dict(source.options), timeout=(open_timeout, read_timeout))
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise open_error(spec, source, exc, open_timeout) from exc
    if pipe is not None:
        pipe.timeout = read_timeout
    if not container.streams.video:
        container.close()
        what = "standard input" if source.kind == "stdin" else spec
        raise MediaError(f"{what} has no video stream", path=None if source.kind == "stdin" else spec,
                         fix="give a source with video (audio only is not segmented)")
    return container


_STREAM_EXAMPLE = "e.g. `ffmpeg -re -i clip.mp4 -f mpegts tcp://127.0.0.1:5000?listen=1`"


def open_error(spec: str, source: InputSpec, exc: BaseException, open_timeout: float) -> MediaError:
    import av

    reason = getattr(exc, "strerror", None) or str(exc)
    if source.kind == "stdin":
        return MediaError(
            f"standard input is not a media stream FFmpeg can read ({reason})",
            fix="pipe a video stream into it, e.g. `ffmpeg -i clip.mp4 -f mpegts - | tgs segment - \"...\"`",
        )
    if source.kind == "camera":
        if isinstance(exc, (FileNotFoundError, av.error.FileNotFoundError)) or "No such file" in reason:
            return MediaError(f"camera {spec} not found ({reason})", path=spec,
                              fix="list the cameras (`ls /dev/video*`, `v4l2-ctl --list-devices`) and name one")
        if isinstance(exc, PermissionError) or "Permission denied" in reason:
            return MediaError(f"no permission to open camera {spec}", path=spec,
                              fix="add your user to the `video` group (then log in again)")
        return MediaError(f"cannot open capture device {spec} ({reason})", path=spec,
                          fix="check the device name and its FFmpeg input format (e.g. v4l2:/dev/video0)")
    if isinstance(exc, ConnectionRefusedError) or "refused" in reason.lower():
        return MediaError(f"cannot connect to {spec}: connection refused", path=spec,
                          fix=f"check the address and port, and that the sender is running ({_STREAM_EXAMPLE})")
    if isinstance(exc, (TimeoutError, av.error.ExitError)) or "timed out" in reason.lower():
        return MediaError(f"no answer from {spec} within {open_timeout:g} s", path=spec,
                          fix="check that the address is reachable and the stream is running")
    return MediaError(f"cannot open stream {spec} ({reason})", path=spec,
                      fix="check the URL: FFmpeg must read it (try `ffprobe URL`)")


def open_audio_device(device: str, options: dict[str, str] | None, open_timeout: float, read_timeout: float | None):
    """A microphone's container (``FORMAT:DEVICE``), opened with the same timeouts as a live input."""
    import av

    parsed = device_input(device)
    if parsed is None:
        raise MediaError(f"--audio {device!r} is not an audio device spec", path=device,
                         fix="give FORMAT:DEVICE, e.g. alsa:default, pulse:default, avfoundation::0")
    fmt, name = parsed
    try:
        container = av.open(name, format=fmt, options=dict(options or {}), timeout=(open_timeout, read_timeout))
    except (av.FFmpegError, OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise MediaError(f"cannot open audio device {device} ({reason})", path=device,
                         fix="list the devices (`arecord -L`, `pactl list sources short`) and name one") from exc
    if not container.streams.audio:
        container.close()
        raise MediaError(f"audio device {device} gives no audio stream", path=device, fix="name a microphone")
    return container
