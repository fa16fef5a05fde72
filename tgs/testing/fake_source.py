"""An in-memory live source with the interface of :class:`tgs.sources.LiveSource`, for tests.

:class:`FakeLiveSource` hands out frames generated from their index (or given as an array)
at a nominal rate, with a scripted set of frames the "real-time policy" drops (decoded,
counted in the next emitted frame's ``skipped``, never handed out), and a think window
cut from ring buffers exactly as a live source does (the last ``seconds`` of frames at
``think_fps`` and the audio over the same span). Nothing waits on a clock: frame ``i`` has
presentation time ``i / fps`` and is "decoded" when the consumer asks for the next frame,
so a test is deterministic; ``on_frame`` lets a test act between two frames.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field

import numpy as np

__all__ = ["FakeLiveSource", "SourceFrame", "SourceStats", "ThinkWindow"]

AUDIO_RATE = 16000


@dataclass
class SourceFrame:
    """One emitted frame (fields as :class:`tgs.sources.SourceFrame`)."""

    index: int
    time: float
    image: np.ndarray
    arrival: float
    skipped: int = 0


@dataclass
class ThinkWindow:
    """What the thinker sees (fields as :class:`tgs.sources.ThinkWindow`)."""

    start: float
    end: float
    frame_times: np.ndarray
    frames: np.ndarray
    audio: np.ndarray


@dataclass
class SourceStats:
    frames_decoded: int = 0
    frames_emitted: int = 0
    frames_skipped: int = 0
    reconnects: int = 0


@dataclass
class FakeLiveSource:
    """``num_frames`` frames of ``size`` at ``fps``; ``skip``: indices the real-time policy drops;
    ``audio``: the whole track, float32 mono at 16 kHz (None: no audio); ``frame``: frame
    index -> uint8 [H, W, 3] (default: a flat shade that changes with the index);
    ``on_frame``: called with each emitted frame before it is handed out."""

    num_frames: int
    size: tuple[int, int] = (32, 40)
    fps: float = 5.0
    skip: Collection[int] = ()
    audio: np.ndarray | None = None
    frame: Callable[[int], np.ndarray] | None = None
    on_frame: Callable[[SourceFrame], None] | None = None
    think_seconds: float = 10.0
    think_fps: float = 1.0
    kind: str = "stream"
    spec: str = "fake://live"
    gaps: list = field(default_factory=list)
    stats: SourceStats = field(default_factory=SourceStats)

    def __post_init__(self) -> None:
        keep = math.ceil(self.think_seconds * self.think_fps) + 1
        self._ring: deque[tuple[float, np.ndarray]] = deque(maxlen=keep)  # frames at think_fps
        self._next_think_time = 0.0
        self._now: float | None = None
        self._closed = False
        self.windows_taken = 0

    @property
    def live(self) -> bool:
        return self.kind != "file"

    @property
    def has_audio(self) -> bool:
        return self.audio is not None

    def _image(self, index: int) -> np.ndarray:
        if self.frame is not None:
            return self.frame(index)
        shade = (index * 7) % 200 + 20
        return np.full((*self.size, 3), shade, dtype=np.uint8)

    def frames(self) -> Iterator[SourceFrame]:
        skipped = 0
        for index in range(self.num_frames):
            if self._closed:
                return
            t = index / self.fps
            image = self._image(index)
            self.stats.frames_decoded += 1
            self._now = t
            if t + 1e-9 >= self._next_think_time:  # the 1-fps ring buffer of the think window
                self._ring.append((t, image))
                self._next_think_time += 1.0 / self.think_fps
            if index in self.skip:
                skipped += 1
                self.stats.frames_skipped += 1
                continue
            item = SourceFrame(index, t, image, time.monotonic(), skipped)
            skipped = 0
            self.stats.frames_emitted += 1
            if self.on_frame is not None:
                self.on_frame(item)
            yield item

    def think_window(self, seconds: float | None = None) -> ThinkWindow | None:
        if self._now is None:
            return None
        self.windows_taken += 1
        seconds = self.think_seconds if seconds is None else seconds
        end = self._now + 1.0 / self.fps
        start = max(0.0, end - seconds)
        kept = [(t, f) for t, f in self._ring if t >= start - 1e-9]
        audio = np.zeros((0,), np.float32)
        if self.audio is not None:
            audio = self.audio[round(start * AUDIO_RATE): round(end * AUDIO_RATE)].astype(np.float32)
        return ThinkWindow(start, end, np.array([t for t, _ in kept]), np.stack([f for _, f in kept]), audio)

    def close(self) -> None:
        self._closed = True

    def __enter__(self) -> FakeLiveSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
