"""Which kind of source a spec names, and how FFmpeg is asked to open it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tgs.sources import detect_source
from tgs.sources.kinds import input_spec


@pytest.mark.parametrize(
    ("spec", "kind"),
    [
        ("-", "stdin"),
        ("/dev/video0", "camera"),
        ("/dev/video12", "camera"),
        ("v4l2:/dev/video2", "camera"),
        ("avfoundation:0", "camera"),
        ("dshow:video=Integrated Camera", "camera"),
        ("lavfi:testsrc2=rate=25", "camera"),
        ("rtsp://cam.local:554/stream1", "stream"),
        ("rtmp://live.example/app/key", "stream"),
        ("srt://10.0.0.2:9000?mode=caller", "stream"),
        ("udp://@239.0.0.1:1234", "stream"),
        ("tcp://127.0.0.1:5000", "stream"),
        ("http://example.org/clip.mp4", "stream"),
        ("https://example.org/live/index.m3u8", "stream"),
        ("HTTPS://EXAMPLE.ORG/a.mp4", "stream"),
        ("clip.mp4", "file"),
        ("/data/videos/clip.mkv", "file"),
        ("file:///data/clip.mp4", "file"),
        ("./-", "file"),
        ("C:\\videos\\clip.mp4", "file"),
        ("weird:name.mp4", "file"),  # not a device format: a file with a colon in its name
        (Path("clip.mp4"), "file"),
        (Path("/dev/video0"), "camera"),
    ],
)
def test_detect_source(spec, kind) -> None:
    assert detect_source(spec) == kind


def test_input_spec_per_kind() -> None:
    camera = input_spec("/dev/video3", options={"video_size": "640x480"})
    assert (camera.url, camera.format, camera.options) == ("/dev/video3", "v4l2", {"video_size": "640x480"})
    device = input_spec("dshow:video=Cam")
    assert (device.url, device.format) == ("video=Cam", "dshow")
    stdin = input_spec("-", stdin_fd=7)
    assert stdin.url == "pipe:7" and stdin.live
    stream = input_spec("rtsp://h/s", options={"rtsp_transport": "tcp", "analyzeduration": "500000"})
    assert stream.options["rtsp_transport"] == "tcp" and stream.options["analyzeduration"] == "500000"
    local = input_spec("file:///tmp/a.mp4")
    assert (local.kind, local.url, local.live) == ("file", "/tmp/a.mp4", False)
