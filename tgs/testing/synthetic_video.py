"""Synthetic frame sources generated on the fly, for memory tests and benchmarks of long videos.

:class:`MovingSquareSource` draws frame ``i`` from its index alone (a light square gliding
over a dark textured background, leaving the frame and coming back), so a 10-minute 720p
video costs no disk and no memory beyond the frame being read, and any range can be read
again, as :class:`tgs.segment.frame_source.FrameSource` requires.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

__all__ = ["MovingSquareSource"]


class MovingSquareSource:
    """``num_frames`` uint8 RGB frames of ``size`` (height, width); the square's side is a
    quarter of the short side and it crosses the frame once every ``period`` frames."""

    def __init__(self, num_frames: int, size: tuple[int, int], *, period: int = 90, seed: int = 0) -> None:
        if num_frames < 1 or period < 2:
            raise ValueError(f"expected num_frames >= 1 and period >= 2, got {num_frames}, {period}")
        self._num_frames = num_frames
        self._size = (int(size[0]), int(size[1]))
        self.period = period
        rng = np.random.default_rng(seed)
        self._background = rng.integers(0, 80, size=(*self._size, 3), dtype=np.uint8)
        self.side = max(2, min(self._size) // 4)

    @property
    def num_frames(self) -> int:
        return self._num_frames

    @property
    def size(self) -> tuple[int, int]:
        return self._size

    def box(self, index: int) -> np.ndarray | None:
        """The square's xyxy box on frame ``index`` clipped to the frame, None when it is outside."""
        height, width = self._size
        phase = (index % self.period) / self.period
        x0 = round(-self.side + phase * (width + 2 * self.side))  # enters left, leaves right
        y0 = (height - self.side) // 2
        x1 = x0 + self.side
        if x1 <= 0 or x0 >= width:
            return None
        return np.array([max(0, x0), y0, min(width, x1), y0 + self.side], dtype=np.float32)

    def frame(self, index: int) -> np.ndarray:
        image = self._background.copy()
        box = self.box(index)
        if box is not None:
            x0, y0, x1, y1 = box.astype(int)
            image[y0:y1, x0:x1] = (230, 200, 40)
        return image

    def frames(self, start: int, stop: int) -> Iterator[np.ndarray]:
        if not 0 <= start <= stop <= self._num_frames:
            raise IndexError(f"frame range [{start}, {stop}) is outside [0, {self._num_frames})")
        for index in range(start, stop):
            yield self.frame(index)
