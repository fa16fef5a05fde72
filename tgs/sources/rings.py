"""Bounded memory for what the thinker sees of a live source: the last seconds of frames and audio.

A live source runs for hours; nothing here grows with it. :class:`FrameRing` keeps one RGB frame
per ``1 / fps`` seconds (the first frame decoded at or after each ``k / fps``, so a window is fresh
the moment a frame arrives) in a deque of ``ceil(seconds * fps)``; :class:`AudioRing` keeps the
last ``seconds`` (+ 1 s of slack) of 16 kHz mono float32 samples in a fixed circular array,
addressed by absolute sample number ``round(time * 16000)`` so audio and frames share one clock.
The reader converts audio as a file's track is converted
(:class:`tgs.data.audio_stream.MonoResampler`: float, the float32 mean over channels, soxr "HQ"
to 16 kHz), chunk by chunk.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tgs.data.media import REF_AVS_SAMPLE_RATE

__all__ = ["AudioRing", "FrameRing", "ThinkWindow"]

_EPS = 1e-6


@dataclass(frozen=True)
class ThinkWindow:
    """What the thinker sees: frames at ``think_fps`` over [start, end] and the audio over the same span.

    frame_times: float64 [T] s (stream time); frames: uint8 [T, H, W, 3] RGB; audio: float32 [S] mono at
    ``sample_rate`` (16 kHz), ``S = round(end * rate) - round(start * rate)``, zeros where nothing was heard
    (a gap, before the audio started); empty when the source has no audio.
    """

    start: float
    end: float
    frame_times: np.ndarray
    frames: np.ndarray
    audio: np.ndarray
    sample_rate: int = REF_AVS_SAMPLE_RATE


class FrameRing:
    """One frame per ``1 / fps`` s over the last ``seconds``; RGB conversion only for the frames kept."""

    def __init__(self, fps: float, seconds: float) -> None:
        if not (math.isfinite(fps) and fps > 0 and math.isfinite(seconds) and seconds > 0):
            raise ValueError(f"think window: expected positive fps and seconds, got {fps!r}, {seconds!r}")
        self.fps = float(fps)
        self.seconds = float(seconds)
        self.capacity = max(1, math.ceil(self.seconds * self.fps - _EPS))
        self._kept: deque[tuple[float, np.ndarray]] = deque(maxlen=self.capacity)
        self._next_slot: int | None = None
        self._lock = threading.Lock()

    def add(self, time: float, frame: object, to_rgb: Callable[[object], np.ndarray]) -> bool:
        """Offer a decoded frame at ``time``; kept (converted by ``to_rgb``) if it opens a new slot."""
        slot = math.floor(time * self.fps + _EPS)
        if self._next_slot is not None and slot < self._next_slot:
            return False
        image = to_rgb(frame)
        with self._lock:
            self._kept.append((time, image))
            self._next_slot = slot + 1
        return True

    def snapshot(self, end: float, seconds: float) -> tuple[np.ndarray, np.ndarray] | None:
        """(times [T], frames [T, H, W, 3]) kept in (end - seconds, end], at most ``ceil(seconds * fps)``."""
        with self._lock:
            kept = [(t, f) for t, f in self._kept if end - seconds < t <= end + _EPS]
        kept = kept[-max(1, math.ceil(seconds * self.fps - _EPS)):]
        if not kept:
            return None
        shapes = {f.shape for _, f in kept}
        if len(shapes) > 1:  # the size changed (a reconnect to another resolution): the newest size only
            newest = kept[-1][1].shape
            kept = [(t, f) for t, f in kept if f.shape == newest]
        return np.array([t for t, _ in kept], dtype=np.float64), np.stack([f for _, f in kept])


class AudioRing:
    """The last ``seconds`` (+ 1 s) of mono audio at ``rate``, addressed by absolute sample number."""

    def __init__(self, seconds: float, rate: int = REF_AVS_SAMPLE_RATE) -> None:
        self.rate = int(rate)
        self.capacity = math.ceil(seconds * self.rate) + self.rate
        self._buffer = np.zeros(self.capacity, np.float32)
        self._first: int | None = None  # first sample number written
        self._end = 0  # one past the last sample number written
        self._lock = threading.Lock()

    @property
    def started(self) -> bool:
        return self._first is not None

    def write(self, samples: np.ndarray, start: float | None = None) -> None:
        """Append samples; ``start`` (s) places them on the clock (a jump forward leaves silence between,
        a small step back is absorbed: the samples follow on). Without ``start`` they follow the last ones."""
        samples = np.asarray(samples, np.float32).reshape(-1)
        with self._lock:
            if start is not None:
                at = round(start * self.rate)
                if self._first is None:
                    self._first = self._end = at
                elif at > self._end:
                    self._fill(np.zeros(min(at - self._end, self.capacity), np.float32))
                    self._end = at
            elif self._first is None:
                self._first = self._end
            self._fill(samples)

    def _fill(self, samples: np.ndarray) -> None:
        n = samples.shape[0]
        if n > self.capacity:
            self._end += n - self.capacity
            samples = samples[-self.capacity:]
            n = self.capacity
        pos = self._end % self.capacity
        first = min(n, self.capacity - pos)
        self._buffer[pos:pos + first] = samples[:first]
        self._buffer[: n - first] = samples[first:]
        self._end += n

    def read(self, start: float, end: float) -> np.ndarray:
        """float32 [round(end * rate) - round(start * rate)]: the samples over [start, end), zeros where none."""
        a, b = round(start * self.rate), round(end * self.rate)
        out = np.zeros(max(0, b - a), np.float32)
        with self._lock:
            if self._first is None:
                return out
            lo = max(a, self._first, self._end - self.capacity)
            hi = min(b, self._end)
            if lo < hi:
                out[lo - a: hi - a] = self._buffer[np.arange(lo, hi) % self.capacity]
        return out
