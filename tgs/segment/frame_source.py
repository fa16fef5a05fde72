"""Frames for dense propagation: random access to ranges ``[start, stop)`` of a frame sequence.

Dense propagation reads a video more than once (the seed frames, a backward pass in chunks,
then one forward pass), so it asks a *source* for ranges of frames instead of holding the
video. Two sources:

- :class:`ArrayFrameSource`: frames already in memory (a :class:`tgs.types.Clip`, tests);
- :class:`VideoFrameSource`: a video file decoded with PyAV. On opening, the packets are
  demuxed once (no decoding) to list every frame's presentation timestamp; frame ``i`` is the
  i-th in presentation order, whatever the frame rate (variable-frame-rate files included).
  A range is read by seeking to the key frame at or before its first frame and decoding
  forward, so memory holds one decoded frame and the cost of a range does not grow with its
  position in the file (a file with duplicate timestamps is decoded from its start instead).
  Frames come in playback orientation, as :mod:`tgs.data.media` decodes them: a phone video
  stored sideways with a rotation in its display matrix is turned upright (``size`` too).
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from tgs.errors import MediaError

__all__ = ["ArrayFrameSource", "FrameSource", "VideoFrameSource", "frame_times"]

logger = logging.getLogger(__name__)


@runtime_checkable
class FrameSource(Protocol):
    """A re-readable sequence of uint8 RGB frames [H, W, 3] of one size."""

    @property
    def num_frames(self) -> int: ...

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) in pixels."""
        ...

    def frames(self, start: int, stop: int) -> Iterator[np.ndarray]:
        """Frames ``start, start + 1, ..., stop - 1`` in order (uint8 [H, W, 3])."""
        ...


def _check_range(start: int, stop: int, count: int) -> None:
    if not 0 <= start <= stop <= count:
        raise IndexError(f"frame range [{start}, {stop}) is outside [0, {count})")


def frame_times(source: FrameSource) -> np.ndarray:
    """Each frame's presentation time (s), float64 [T]: the source's ``times`` (a video file's
    timestamps, an array source's given times), else one frame per second (a Ref-AVS clip)."""
    times = getattr(source, "times", None)
    return np.arange(source.num_frames, dtype=np.float64) if times is None else np.asarray(times, np.float64)


class ArrayFrameSource:
    """Frames held in memory: uint8 [T, H, W, 3]; times: their presentation times (s), or None
    (one frame per second from 0, as a Ref-AVS clip is stamped)."""

    def __init__(self, frames: np.ndarray, times: np.ndarray | None = None) -> None:
        array = np.asarray(frames)
        if array.dtype != np.uint8 or array.ndim != 4 or array.shape[-1] != 3 or array.shape[0] < 1:
            raise ValueError(f"frames: expected uint8 [T>0, H, W, 3], got {array.dtype} {tuple(array.shape)}")
        self._frames = array
        self.times = None if times is None else np.asarray(times, np.float64)
        if self.times is not None and self.times.shape != (array.shape[0],):
            raise ValueError(f"times: expected one per frame ({array.shape[0]}), got shape {self.times.shape}")

    @property
    def num_frames(self) -> int:
        return int(self._frames.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        return int(self._frames.shape[1]), int(self._frames.shape[2])

    def frames(self, start: int, stop: int) -> Iterator[np.ndarray]:
        _check_range(start, stop, self.num_frames)
        for i in range(start, stop):
            yield self._frames[i]


def _first_frame_turns(container, stream) -> int:
    """Quarter turns that show the stream's frames as they play (read from its first decoded frame)."""
    import av

    from tgs.data.media import display_rotation

    try:
        container.seek(0)  # back to the start after demuxing
        for frame in container.decode(stream):
            return display_rotation(frame)
    except av.FFmpegError:
        return 0  # the frames themselves report it when read
    return 0


class VideoFrameSource:
    """Every decoded frame of a video file's first video stream, by index, with PyAV.

    ``times`` (seconds from the stream start, float64 [T]) gives each frame's presentation
    time; ``fps`` is the stream's average rate (for writing an overlay at the source rate).
    MediaError when the file cannot be opened or has no video frames.
    """

    def __init__(self, path: str | Path) -> None:
        from tgs.data.media import open_container, video_stream

        self.path = Path(path)
        container = open_container(self.path)
        with container:
            stream = video_stream(container, self.path)
            pts = sorted(int(p.pts) for p in container.demux(stream) if p.pts is not None)
            self._time_base = stream.time_base or Fraction(1, 1)
            start = stream.start_time if stream.start_time is not None else (pts[0] if pts else 0)
            rate = stream.average_rate or stream.guessed_rate
            self.fps = float(rate) if rate else 0.0
            height, width = int(stream.codec_context.height), int(stream.codec_context.width)
            turns = _first_frame_turns(container, stream) if pts else 0
        if not pts:
            raise MediaError(f"{self.path} has no video frames", path=self.path, fix="re-encode the file")
        self._pts = pts
        self._seekable = len(set(pts)) == len(pts)  # duplicate timestamps: count frames from the start
        self._turns = turns
        self._size = (width, height) if turns % 2 else (height, width)  # as played
        self.times = (np.asarray(pts, dtype=np.float64) - start) * float(self._time_base)
        if self.fps <= 0 and len(pts) > 1:
            self.fps = (len(pts) - 1) / max(self.times[-1] - self.times[0], 1e-9)

    @property
    def num_frames(self) -> int:
        return len(self._pts)

    @property
    def size(self) -> tuple[int, int]:
        return self._size

    @property
    def duration(self) -> float:
        """Seconds from the first frame's start to the last frame's end."""
        period = 1.0 / self.fps if self.fps else 0.0
        return float(self.times[-1] - self.times[0] + period)

    def frames(self, start: int, stop: int) -> Iterator[np.ndarray]:
        _check_range(start, stop, self.num_frames)
        if start == stop:
            return
        import av

        from tgs.data.media import open_container, to_rgb, video_stream

        container = open_container(self.path)
        with container:
            stream = video_stream(container, self.path)
            if start > 0 and self._seekable:
                container.seek(self._pts[start], backward=True, any_frame=False, stream=stream)
            want = start
            count = -1
            try:
                for frame in container.decode(stream):
                    if frame.pts is None:
                        continue
                    count += 1
                    index = bisect.bisect_left(self._pts, int(frame.pts)) if self._seekable else count
                    if index >= len(self._pts) or self._pts[index] != frame.pts or index < want:
                        continue
                    if index > want:  # the seek landed after the first wanted frame
                        raise MediaError(
                            f"{self.path}: seeking to frame {want} landed on frame {index}",
                            path=self.path, fix="re-encode the file (e.g. ffmpeg -i in.mp4 out.mp4)",
                        )
                    image = to_rgb(frame)
                    if image.shape[:2] != self._size:
                        raise MediaError(
                            f"{self.path}: frame {index} is {image.shape[1]}x{image.shape[0]}, the stream "
                            f"says {self._size[1]}x{self._size[0]}", path=self.path, fix="re-encode the file",
                        )
                    yield image
                    want += 1
                    if want >= stop:
                        return
            except av.FFmpegError as exc:
                raise MediaError(f"cannot decode video {self.path}: {exc}", path=self.path,
                                 fix="re-encode the file") from exc
        if want < stop:
            raise MediaError(f"{self.path}: frames {want}..{stop - 1} could not be decoded",
                             path=self.path, fix="re-encode the file")
