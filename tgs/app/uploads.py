"""Which uploads the demo accepts: size, suffix, and a PyAV probe of the content.

A file is accepted when it is at most ``max_upload_bytes``, has a video suffix, opens in
FFmpeg as an MP4/MOV, Matroska/WebM or AVI container, has a video stream whose first
frame decodes, and lasts at most ``max_video_seconds``. The content check matters: an
image or a GIF renamed to ``.mp4`` opens in FFmpeg as a one-stream "video" and must not
pass. Error messages never contain the server-side path, because the page shows them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tgs.errors import MediaError

__all__ = ["UPLOAD_SUFFIXES", "DemoLimits", "VideoProbe", "describe_limits", "probe_upload"]

UPLOAD_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi")
"""File suffixes the upload accepts (checked before the content is probed)."""

_CONTAINER_SUFFIX = {
    "mov,mp4,m4a,3gp,3g2,mj2": ".mp4",
    "matroska,webm": ".mkv",
    "avi": ".avi",
}
"""PyAV (FFmpeg demuxer) format name -> suffix of the staged input; any other format is refused."""

_VIDEO_FIX = "upload an MP4, MOV, MKV, WebM or AVI video"


@dataclass(frozen=True)
class DemoLimits:
    """What an upload and a request may be.

    max_upload_bytes: largest accepted file (bytes); also Gradio's ``max_file_size``.
    max_video_seconds: longest accepted video (seconds of the first video stream).
    max_expression_chars: longest accepted expression (characters).
    """

    max_upload_bytes: int = 200 * 1024 * 1024
    max_video_seconds: float = 600.0
    max_expression_chars: int = 300

    def __post_init__(self) -> None:
        if self.max_upload_bytes <= 0:
            raise ValueError(f"max_upload_bytes: expected > 0, got {self.max_upload_bytes}")
        if not self.max_video_seconds > 0:
            raise ValueError(f"max_video_seconds: expected > 0, got {self.max_video_seconds}")
        if self.max_expression_chars <= 0:
            raise ValueError(f"max_expression_chars: expected > 0, got {self.max_expression_chars}")


@dataclass(frozen=True)
class VideoProbe:
    """What :func:`probe_upload` found: container (FFmpeg demuxer name), the suffix the staged
    input gets, duration (seconds), frame size (pixels) and file size (bytes)."""

    container: str
    suffix: str
    seconds: float
    width: int
    height: int
    size_bytes: int


def mb(n_bytes: int) -> str:
    """Bytes as MiB for messages ("200.0 MB")."""
    return f"{n_bytes / (1024 * 1024):.1f} MB"


def probe_upload(path: Path, limits: DemoLimits) -> VideoProbe:
    """Check that ``path`` is a video the demo may process; MediaError saying why not.

    The messages never contain the server-side path (they are shown in the page).
    """
    import av

    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise MediaError("the uploaded file is empty", fix="upload a video file")
    if size > limits.max_upload_bytes:
        raise MediaError(
            f"the uploaded file is {mb(size)}, over the {mb(limits.max_upload_bytes)} limit",
            fix="upload a shorter or smaller video (or start the demo with a larger --max-upload-mb)",
        )
    suffix = path.suffix.lower()
    if suffix not in UPLOAD_SUFFIXES:
        raise MediaError(
            f"files of type {suffix or '(no suffix)'!r} are not accepted",
            fix=f"upload a video: {', '.join(UPLOAD_SUFFIXES)}",
        )
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise MediaError(f"the uploaded file is not a readable video ({type(exc).__name__})", fix=_VIDEO_FIX) from exc
    with container:
        return _probe_container(container, size, limits)


def _probe_container(container: Any, size: int, limits: DemoLimits) -> VideoProbe:
    import av

    fmt = container.format.name
    if fmt not in _CONTAINER_SUFFIX:
        raise MediaError(f"the uploaded file is a {fmt!r} file, not a video container", fix=_VIDEO_FIX)
    if not container.streams.video:
        raise MediaError("the uploaded file has no video stream", fix=_VIDEO_FIX)
    stream = container.streams.video[0]
    try:
        first = next(container.decode(stream), None)
    except (av.FFmpegError, ValueError) as exc:
        raise MediaError(f"the uploaded video cannot be decoded ({type(exc).__name__})", fix=_VIDEO_FIX) from exc
    if first is None:
        raise MediaError("the uploaded video has no frames", fix=_VIDEO_FIX)
    seconds = _duration(container, stream)
    if not math.isfinite(seconds) or seconds > limits.max_video_seconds:
        raise MediaError(
            f"the uploaded video lasts {seconds:.0f} s, over the {limits.max_video_seconds:.0f} s limit",
            fix="upload a shorter clip",
        )
    from tgs.data.media import display_rotation

    width, height = int(first.width), int(first.height)
    if display_rotation(first) % 2:  # played a quarter turn round (phone video): sizes as it plays
        width, height = height, width
    return VideoProbe(fmt, _CONTAINER_SUFFIX[fmt], seconds, width, height, size)


def _duration(container: Any, stream: Any) -> float:
    """Seconds of the video stream from metadata (container duration as a fallback); 0 if unknown."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000  # av.time_base: microseconds
    return 0.0



def describe_limits(limits: DemoLimits) -> tuple[str, ...]:
    """The limits in words, for the CLI and the page."""
    return (
        f"uploads up to {mb(limits.max_upload_bytes)} ({', '.join(UPLOAD_SUFFIXES)})",
        f"videos up to {limits.max_video_seconds:.0f} s",
    )
