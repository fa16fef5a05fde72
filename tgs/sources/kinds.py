"""What a source spec names, and how FFmpeg opens it.

A spec is one string a user types after ``tgs segment``:

- ``-``: a stream on standard input (``ffmpeg ... -f mpegts - | tgs segment - "..."``);
- a camera or other capture device: ``/dev/video0`` (Linux, opened with FFmpeg's ``v4l2``
  input) or ``FORMAT:DEVICE`` naming one of FFmpeg's device inputs, e.g. ``v4l2:/dev/video2``,
  ``avfoundation:0`` (macOS), ``dshow:video=Integrated Camera`` (Windows), ``x11grab::0.0``
  (a screen), ``lavfi:testsrc2=rate=25,realtime`` (a synthetic clock-paced source);
- a URL with any scheme but ``file``: a network stream FFmpeg reads (``rtsp://``, ``rtmp://``,
  ``srt://``, ``udp://``, ``tcp://``, ``http(s)://`` (a file or an HLS playlist), ...; FFmpeg
  says when it cannot read one);
- anything else is a file (``file://`` URLs too): a file stays a file.

Audio devices (``--audio``) use the same ``FORMAT:DEVICE`` form, e.g. ``alsa:default``,
``pulse:default``, ``avfoundation::0``, ``dshow:audio=Microphone``.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

__all__ = [
    "DEVICE_FORMATS",
    "InputSpec",
    "SourceKind",
    "detect_source",
    "device_input",
    "input_spec",
]

SourceKind = Literal["file", "camera", "stream", "stdin"]

DEVICE_FORMATS = frozenset(
    {"v4l2", "video4linux2", "avfoundation", "dshow", "vfwcap", "x11grab", "gdigrab", "kmsgrab", "fbdev",
     "decklink", "lavfi", "alsa", "pulse", "jack", "oss", "sndio", "openal"}
)
"""FFmpeg device inputs accepted as ``FORMAT:DEVICE`` (cameras, screens, microphones, lavfi)."""

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
_DEVICE = re.compile(r"^([A-Za-z0-9_]+):(.*)$", re.DOTALL)


def _scheme(text: str) -> str | None:
    match = _SCHEME.match(text)
    return match.group(1).lower() if match else None


def device_input(text: str) -> tuple[str, str] | None:
    """(FFmpeg input format, device) of a ``FORMAT:DEVICE`` spec or a ``/dev/video*`` path; else None."""
    if text.startswith("/dev/video"):
        return ("v4l2" if sys.platform.startswith("linux") else "video4linux2"), text
    match = _DEVICE.match(text)
    if match and match.group(1).lower() in DEVICE_FORMATS and "://" not in text:
        fmt = match.group(1).lower()
        return ("v4l2" if fmt == "video4linux2" else fmt), match.group(2)
    return None


def detect_source(spec: str | Path) -> SourceKind:
    """The kind of source ``spec`` names (see the module docstring); never touches the source."""
    text = str(spec)
    if text == "-":
        return "stdin"
    if device_input(text) is not None:
        return "camera"
    scheme = _scheme(text)
    if scheme is not None and scheme != "file":
        return "stream"
    return "file"


@dataclass(frozen=True)
class InputSpec:
    """What ``av.open`` is given for a spec: the URL or path, the input format, the options."""

    kind: SourceKind
    url: str
    format: str | None = None
    options: dict[str, str] = field(default_factory=dict)

    @property
    def live(self) -> bool:
        return self.kind != "file"


LIVE_PROBE = {"analyzeduration": "1000000", "probesize": "1000000"}
"""Probe at most 1 s / 1 MB of a live input before the first frame (FFmpeg's default is 5 s)."""


def input_spec(
    spec: str | Path,
    *,
    input_format: str | None = None,
    options: dict[str, str] | None = None,
    stdin_fd: int | None = None,
) -> InputSpec:
    """How to open ``spec`` with PyAV; ``input_format`` / ``options`` override or add FFmpeg's input options
    (e.g. ``{"video_size": "1280x720", "framerate": "30"}`` for a camera, ``{"rtsp_transport": "tcp"}``)."""
    text = str(spec)
    kind = detect_source(text)
    extra = {str(k): str(v) for k, v in (options or {}).items()}
    if kind == "stdin":
        fd = sys.stdin.fileno() if stdin_fd is None else stdin_fd
        return InputSpec(kind, f"pipe:{fd}", input_format, {**LIVE_PROBE, **extra})
    if kind == "camera":
        fmt, device = device_input(text)  # type: ignore[misc]
        return InputSpec(kind, device, input_format or fmt, extra)
    if kind == "stream":
        return InputSpec(kind, text, input_format, {**LIVE_PROBE, **extra})
    path = text[len("file://"):] if text.startswith("file://") else text
    return InputSpec(kind, path, input_format, extra)
