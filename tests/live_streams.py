"""Live streams served in real time by the FFmpeg command line, for the tests of live sources
(:mod:`tgs.testing.live_streams`, shared with the benchmarks), and the tests' own helpers.

The tests that need ffmpeg are skipped, saying why, only when the ffmpeg command is missing
(``make test`` installs it: ``make ffmpeg``).
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tgs.testing.live_streams import FFMPEG, RATE, SIZE, TcpServer, UdpSender, connect, ffmpeg_args, free_port

__all__ = ["FFMPEG", "RATE", "SIZE", "TcpServer", "UdpSender", "connect", "ffmpeg_args", "free_port", "make_clip",
           "needs_ffmpeg", "wait_until"]

needs_ffmpeg = pytest.mark.skipif(FFMPEG is None, reason="the ffmpeg command is missing (install it: make ffmpeg)")


def wait_until(condition: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    """Block until ``condition()`` holds (a synchronisation, not a timing assertion)."""
    event = threading.Event()
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        event.wait(0.01)


def make_clip(path: Path, seconds: float = 2.0) -> Path:
    """A small mp4 (h264 with B-frames, aac) for the file-source tests."""
    subprocess.run([FFMPEG or "ffmpeg", "-nostdin", "-loglevel", "error", "-y",
                    "-f", "lavfi", "-i", "testsrc2=size=96x64:rate=25",
                    "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100", "-t", str(seconds),
                    "-c:v", "libx264", "-bf", "2", "-pix_fmt", "yuv420p", "-c:a", "aac", str(path)], check=True)
    return path


def wait_listening(port: int, timeout: float = 20.0) -> None:
    """Block until a socket listens on 127.0.0.1:``port`` (read from /proc/net/tcp: no connection is
    made, so a sender that serves one client is not used up); a synchronisation, not a timing."""
    wanted = f"0100007F:{port:04X}"
    deadline = time.monotonic() + timeout
    while True:
        with open("/proc/net/tcp", encoding="ascii") as table:
            if any(f.split()[1] == wanted and f.split()[3] == "0A" for f in list(table)[1:]):  # 0A: LISTEN
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"nothing listens on port {port} after {timeout} s")
        time.sleep(0.02)
