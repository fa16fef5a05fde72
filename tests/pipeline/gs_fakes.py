"""Small deterministic stand-ins for the Ground and Segment stages, recording what they receive."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tgs.types import Boxes, Clip, FrameBoxes, Masks


def frame_boxes(rows: Sequence[tuple[Sequence[float], float, int]]) -> FrameBoxes:
    """FrameBoxes from (xyxy, score, query index) rows, in the given (query) order."""
    if not rows:
        return FrameBoxes.empty()
    return FrameBoxes(
        np.array([r[0] for r in rows], np.float32),
        np.array([r[1] for r in rows], np.float32),
        np.array([r[2] for r in rows], np.int64),
    )


class FakeGrounder:
    """Two candidates per frame, derived from the frame size and content; odd frames of
    ``empty_frames`` get none. Candidate A (query 2, low score) covers the top-left
    quarter, candidate B (query 7, high score) the bottom-right part; scores move a
    little with the frame's mean colour so that they differ from frame to frame."""

    def __init__(self, empty_frames: Sequence[int] = (3,), fixed: Sequence[FrameBoxes] | None = None) -> None:
        self.empty_frames = set(empty_frames)
        self.fixed = fixed
        self.calls: list[str] = []

    def ground(self, clip: Clip, text: str) -> Boxes:
        self.calls.append(text)
        if self.fixed is not None:
            return Boxes(tuple(self.fixed), clip.size, text)
        h, w = clip.size
        frames = []
        for i, frame in enumerate(clip.frames):
            if i in self.empty_frames:
                frames.append(FrameBoxes.empty())
                continue
            shade = float(frame.mean()) / 2550.0
            frames.append(
                frame_boxes(
                    [
                        ([0.0, 0.0, w / 2, h / 2], 0.3 + shade, 2),
                        ([w / 4, h / 3, w - 1.0, h - 1.0], 0.6 + shade, 7),
                    ]
                )
            )
        return Boxes(tuple(frames), clip.size, text)


class FakeSegmenter:
    """Fills each box (clip pixels) with True and probability 0.8 (0.1 outside); zeros without a box."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.clips: list[Clip] = []
        self.boxes: list[list[np.ndarray | None]] = []
        self.fail_after = fail_after

    def segment(self, clip: Clip, boxes: Sequence[np.ndarray | None]) -> Masks:
        if self.fail_after is not None and len(self.clips) >= self.fail_after:
            raise KeyboardInterrupt("simulated interruption")
        self.clips.append(clip)
        self.boxes.append(list(boxes))
        t, (h, w) = clip.num_frames, clip.size
        masks = np.zeros((t, h, w), np.bool_)
        probs = np.zeros((t, h, w), np.float32)
        for i, box in enumerate(boxes):
            if box is None:
                continue
            x0, y0, x1, y1 = (round(float(v)) for v in box)
            masks[i, y0:y1, x0:x1] = True
            probs[i] = np.where(masks[i], 0.8, 0.1)
        return Masks(masks, probs)


class FakeVideoSegmenter(FakeSegmenter):
    """A segmenter whose ``segment`` takes grounding scores, like the SAM2 video segmenter."""

    def __init__(self) -> None:
        super().__init__()
        self.scores: list[list[float | None]] = []

    def segment(  # type: ignore[override]
        self, clip: Clip, boxes: Sequence[np.ndarray | None], scores: Sequence[float | None] | None = None
    ) -> Masks:
        self.scores.append(list(scores) if scores is not None else [])
        return super().segment(clip, boxes)


def make_clip(height: int = 48, width: int = 64, frames: int = 4, seed: int = 0) -> Clip:
    rng = np.random.default_rng(seed)
    return Clip(
        frames=rng.integers(0, 256, (frames, height, width, 3), dtype=np.uint8),
        audio=None,
        sample_rate=None,
        frame_times=np.arange(frames, dtype=np.float64),
        source="test",
    )
