"""Live streams served in real time by the FFmpeg command line, for the tests and benchmarks of
live sources.

``ffmpeg -re`` paces a synthetic clip (testsrc2 + a 440 Hz sine) at ``rate`` frames per second,
MPEG-TS, to a local TCP port it listens on (one client, :class:`TcpServer`), as UDP datagrams
(:class:`UdpSender`), or to any output given to :func:`ffmpeg_args` (e.g. its standard output).
:func:`connect` opens a source on a server that may not be listening yet.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["FFMPEG", "RATE", "SIZE", "TcpServer", "UdpSender", "connect", "ffmpeg_args", "free_port"]

FFMPEG = shutil.which("ffmpeg")
"""The ffmpeg command, or None where it is missing (``make ffmpeg`` installs it)."""

RATE = 25  # frames per second of the served clip
SIZE = (240, 320)  # (height, width) of the served clip


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ffmpeg_args(
    seconds: float | None, output: list[str], *, audio: bool = True, size: tuple[int, int] = SIZE, rate: int = RATE
) -> list[str]:
    """An ffmpeg command serving the synthetic clip in real time (``seconds`` None: until killed) to
    ``output`` (its output options and URL); ``size``: (height, width)."""
    if FFMPEG is None:
        raise RuntimeError("the ffmpeg command is missing (install it: make ffmpeg)")
    args = [FFMPEG, "-nostdin", "-loglevel", "error", "-re",
            "-f", "lavfi", "-i", f"testsrc2=size={size[1]}x{size[0]}:rate={rate}"]
    if audio:
        args += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"]
    if seconds is not None:
        args += ["-t", str(seconds)]
    args += ["-c:v", "mpeg2video", "-q:v", "5", "-g", str(rate)]
    args += ["-c:a", "mp2"] if audio else []
    return args + output


class _Served:
    """An ffmpeg process; a context manager that kills it on exit."""

    process: subprocess.Popen

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()


class TcpServer(_Served):
    """``ffmpeg -re ... -f mpegts tcp://127.0.0.1:PORT?listen=1``: one client, from when it connects."""

    def __init__(self, port: int, seconds: float | None, *, audio: bool = True, size: tuple[int, int] = SIZE,
                 rate: int = RATE) -> None:
        self.port = port
        self.url = f"tcp://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            ffmpeg_args(seconds, ["-f", "mpegts", f"{self.url}?listen=1"], audio=audio, size=size, rate=rate),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        )


class UdpSender(_Served):
    """``ffmpeg -re ... -f mpegts udp://127.0.0.1:PORT``: datagrams to a port, whoever listens (a reader
    that binds it later gets the stream from then on: no start-up race)."""

    def __init__(self, port: int, seconds: float | None) -> None:
        self.url = f"udp://127.0.0.1:{port}"
        self.process = subprocess.Popen(ffmpeg_args(seconds, ["-f", "mpegts", f"{self.url}?pkt_size=1316"]),
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)


def connect(url: str, open_source: Callable[..., Any] | None = None, timeout: float = 20.0, **kwargs: Any) -> Any:
    """``open_source(url, **kwargs)`` (default :func:`tgs.sources.open_source`), retried while the
    server is not listening yet (connection refused), for at most ``timeout`` s."""
    from tgs.errors import MediaError

    if open_source is None:
        from tgs.sources import open_source
    pause = threading.Event()
    deadline = time.monotonic() + timeout
    while True:
        try:
            return open_source(url, **kwargs)
        except MediaError as exc:
            if "refused" not in str(exc) or time.monotonic() > deadline:
                raise
            pause.wait(0.05)
