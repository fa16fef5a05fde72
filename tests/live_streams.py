"""Live streams served in real time by the FFmpeg command line, for the tests of live sources.

``ffmpeg -re`` paces a synthetic clip (testsrc2 + a sine) at 25 fps to a local TCP port that it
listens on (one client), or to its standard output. The tests that need it are skipped, saying
why, only when the ffmpeg command is missing (``make test`` installs it: ``make ffmpeg``).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

FFMPEG = shutil.which("ffmpeg")
needs_ffmpeg = pytest.mark.skipif(FFMPEG is None, reason="the ffmpeg command is missing (install it: make ffmpeg)")

RATE = 25  # frames per second of the served clip
SIZE = (240, 320)  # (height, width)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ffmpeg_args(seconds: float | None, output: list[str], *, audio: bool = True) -> list[str]:
    """An ffmpeg command serving the synthetic clip in real time (``seconds`` None: until killed)."""
    args = [FFMPEG or "ffmpeg", "-nostdin", "-loglevel", "error", "-re",
            "-f", "lavfi", "-i", f"testsrc2=size={SIZE[1]}x{SIZE[0]}:rate={RATE}"]
    if audio:
        args += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"]
    if seconds is not None:
        args += ["-t", str(seconds)]
    args += ["-c:v", "mpeg2video", "-q:v", "5", "-g", str(RATE)]
    args += ["-c:a", "mp2"] if audio else []
    return args + output


class TcpServer:
    """``ffmpeg -re ... -f mpegts tcp://127.0.0.1:PORT?listen=1``; a context manager that kills it."""

    def __init__(self, port: int, seconds: float | None, *, audio: bool = True) -> None:
        self.port = port
        self.url = f"tcp://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            ffmpeg_args(seconds, ["-f", "mpegts", f"{self.url}?listen=1"], audio=audio),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        )

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)

    def __enter__(self) -> TcpServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()


class UdpSender:
    """``ffmpeg -re ... -f mpegts udp://127.0.0.1:PORT``: datagrams to a port, whoever listens (a reader
    that binds it later gets the stream from then on: no start-up race); kills it on exit."""

    def __init__(self, port: int, seconds: float | None) -> None:
        self.url = f"udp://127.0.0.1:{port}"
        self.process = subprocess.Popen(ffmpeg_args(seconds, ["-f", "mpegts", f"{self.url}?pkt_size=1316"]),
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)

    def __enter__(self) -> UdpSender:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)


def connect(url: str, open_source: Callable, timeout: float = 20.0, **kwargs):
    """``open_source(url, **kwargs)``, retried while the server is not listening yet (refused)."""
    from tgs.errors import MediaError

    deadline = time.monotonic() + timeout
    while True:
        try:
            return open_source(url, **kwargs)
        except MediaError as exc:
            if "refused" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


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
