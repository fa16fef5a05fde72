"""An in-memory live source with the interface of :class:`tgs.sources.LiveSource`, for tests.

:class:`FakeLiveSource` hands out frames generated from their index (or given as an array)
at a nominal rate, with a scripted set of frames the "real-time policy" drops (decoded,
counted in the next emitted frame's ``skipped``, never handed out), and a think window
cut from the live source's own ring buffers (:mod:`tgs.sources.rings`: the last ``seconds``
of frames at ``think_fps`` and the audio over the same span). Nothing waits on a clock: frame ``i`` has
presentation time ``i / fps`` and is "decoded" when the consumer asks for the next frame,
so a test is deterministic; ``on_frame`` lets a test act between two frames.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field

import numpy as np

from tgs.data.media import REF_AVS_SAMPLE_RATE as AUDIO_RATE
from tgs.sources import SourceFrame, SourceStats, ThinkWindow
from tgs.sources.rings import AudioRing, FrameRing

__all__ = ["AUDIO_RATE", "FakeLiveSource"]


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
        self._frames = FrameRing(self.think_fps, self.think_seconds)
        self._audio = AudioRing(self.think_seconds)
        self._latest: float | None = None
        self._closed = False

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
            self._frames.add(t, image, lambda frame: frame)
            if self.audio is not None:  # the audio of the frame's display time
                a, b = round(t * AUDIO_RATE), round((index + 1) / self.fps * AUDIO_RATE)
                self._audio.write(self.audio[a:b], start=t)
            self._latest = t
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
        """As :meth:`tgs.sources.LiveSource.think_window`: frames kept in (end - seconds, end],
        end the newest decoded frame's time, the audio over [start, end)."""
        span = self.think_seconds if seconds is None else float(seconds)
        if not (math.isfinite(span) and 0 < span <= self.think_seconds + 1e-9):
            raise ValueError(f"think_window: seconds must be in (0, {self.think_seconds:g}], got {seconds!r}")
        if self._latest is None:
            return None
        end = self._latest
        kept = self._frames.snapshot(end, span)
        if kept is None:
            return None
        start = max(end - span, 0.0)
        audio = self._audio.read(start, end) if self.has_audio else np.zeros(0, np.float32)
        return ThinkWindow(start=start, end=end, frame_times=kept[0], frames=kept[1], audio=audio)

    def close(self) -> None:
        self._closed = True

    def __enter__(self) -> FakeLiveSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
