"""A finite video behind a URL (a file over http(s), an HLS playlist that ends, ...) copied to a local file.

``tgs segment URL`` and a batch list's URL rows segment such a video as the file it is: its
streams are copied packet by packet into a local file (PyAV remux, no re-encoding, so every
decoded frame, timestamp and audio sample is the source's), written under a partial name and
renamed when complete, then processed like any other file. A URL without a duration is a live
stream: refused here with a message that says how to segment it live.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from tgs.errors import MediaError
from tgs.output_folder import partial_path
from tgs.sources.kinds import detect_source, input_spec
from tgs.sources.opening import open_error

__all__ = ["fetch_finite", "is_finite", "is_url", "url_stem"]

logger = logging.getLogger(__name__)

_COPY_SUFFIXES = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm",
                  ".avi": "avi", ".ts": "mpegts", ".flv": "flv"}
_UNSAFE = re.compile(r"[^A-Za-z0-9._\-]+")


def is_finite(container: Any) -> bool:
    """Whether an opened PyAV input is a finite video (it has a duration), not a live stream: the
    one rule both the copy here and the live/file decision (``tgs.core.live_mode.is_live``) apply."""
    return container.duration is not None and container.duration > 0


def is_url(text: str | Path) -> bool:
    """Whether ``text`` names a network source (a URL FFmpeg reads), not a file, device or ``-``."""
    return detect_source(str(text)) == "stream"


def url_stem(url: str) -> str:
    """The name a URL's video goes by (its path's last part without suffix, made folder-safe)."""
    name = Path(unquote(urlparse(url).path)).stem
    return _UNSAFE.sub("_", name).strip("_.") or "video"


_BY_INPUT = (("mp4", ".mp4", "mp4"), ("mov", ".mov", "mov"), ("matroska", ".mkv", "matroska"),
             ("mpegts", ".ts", "mpegts"), ("hls", ".ts", "mpegts"), ("flv", ".flv", "flv"), ("avi", ".avi", "avi"))


def _container(url: str, input_format: str) -> tuple[str, str]:
    """(suffix, FFmpeg muxer) of the copy: the URL's suffix, else the input's own kind of container
    (its time base kept, so timestamps stay exact), else Matroska (takes any codec)."""
    suffix = Path(unquote(urlparse(url).path)).suffix.lower()
    if suffix in _COPY_SUFFIXES:
        return suffix, _COPY_SUFFIXES[suffix]
    names = input_format.split(",")
    for name, copy_suffix, muxer in _BY_INPUT:
        if name in names:
            return copy_suffix, muxer
    return ".mkv", "matroska"


def fetch_finite(url: str, folder: str | Path, *, open_timeout_s: float = 10.0, read_timeout_s: float = 30.0) -> Path:
    """Copy the finite video at ``url`` into ``folder`` (created); its local path, ``folder/<stem><suffix>``.

    The container follows the URL's suffix (mp4, mkv, webm, ...), else the input's container (mp4,
    MPEG-TS for HLS, ...), else Matroska. MediaError
    naming the URL and the fix when it cannot be reached, has no video, or is live (no duration).
    """
    import av

    source = input_spec(url)
    if source.kind != "stream":
        raise ValueError(f"fetch_finite: {url!r} is not a URL")
    try:
        container = av.open(url, timeout=(open_timeout_s, read_timeout_s))
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise open_error(url, source, exc, open_timeout_s) from exc
    with container:
        if not container.streams.video:
            raise MediaError(f"{url} has no video stream", path=url, fix="give a video URL")
        if not is_finite(container):
            raise MediaError(
                f"{url} is a live stream (it has no duration): only a finite video is copied and segmented as a "
                "file", path=url,
                fix=f"segment a live stream on its own (`tgs segment {url} \"...\"`, docs/live.md), or record a "
                f"file (e.g. `ffmpeg -i {url} -t 60 -c copy clip.mp4`) and use that",
            )
        suffix, fmt = _container(url, container.format.name)
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        final = folder / f"{url_stem(url)}{suffix}"
        partial = partial_path(final)
        streams = [s for s in container.streams if s.type in ("video", "audio")]
        try:
            with av.open(str(partial), "w", format=fmt) as out:
                mapping = {s.index: out.add_stream_from_template(s) for s in streams}
                for packet in container.demux(*streams):
                    if packet.dts is None:  # the demuxer's end-of-stream marker
                        continue
                    packet.stream = mapping[packet.stream.index]
                    out.mux(packet)
        except (av.FFmpegError, OSError, ValueError) as exc:
            partial.unlink(missing_ok=True)
            raise MediaError(f"cannot copy {url} ({getattr(exc, 'strerror', None) or exc})", path=url,
                             fix="check that the URL serves a whole video file and try again") from exc
    os.replace(partial, final)
    logger.info("copied %s to %s (%d bytes)", url, final, final.stat().st_size)
    return final
