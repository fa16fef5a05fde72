"""The currencies passed between the Think, Ground and Segment stages.

Each is a small frozen dataclass validated on construction, so a stage that receives
one can trust its shapes and dtypes; a wrong shape fails where it was made, naming the
expected and the received shape, instead of deep inside a model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

import numpy as np

__all__ = ["Boxes", "Clip", "FrameBoxes", "FrameResult", "FrameSink", "Masks", "ParseStatus", "Query", "Thought"]


def _check_array(name: str, value: Any, *, ndim: int, dtype: Any | None = None, last: int | None = None) -> None:
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name}: expected a numpy array, got {type(value).__name__}")
    if value.ndim != ndim:
        raise ValueError(f"{name}: expected {ndim} dimensions, got shape {tuple(value.shape)}")
    if dtype is not None and value.dtype != np.dtype(dtype):
        raise TypeError(f"{name}: expected dtype {np.dtype(dtype)}, got {value.dtype}")
    if last is not None and value.shape[-1] != last:
        raise ValueError(f"{name}: expected last dimension {last}, got shape {tuple(value.shape)}")


@dataclass(frozen=True, eq=False)
class Clip:
    """A decoded video clip: decoded once, never re-read by the stages.

    frames: uint8 [T, H, W, 3], RGB, original size.
    audio: float32 [N] mono in [-1, 1] at ``sample_rate`` Hz, or None when the source has no
        audio track.
    frame_times: float64 [T], seconds from the start of the source.
    source: where it came from (a folder, a video file, "synthetic"), for error messages.
    """

    frames: np.ndarray
    audio: np.ndarray | None
    sample_rate: int | None
    frame_times: np.ndarray
    source: str = ""

    def __post_init__(self) -> None:
        _check_array("Clip.frames", self.frames, ndim=4, dtype=np.uint8, last=3)
        if self.frames.shape[0] == 0:
            raise ValueError(f"Clip.frames: a clip needs at least one frame ({self.source})")
        _check_array("Clip.frame_times", self.frame_times, ndim=1)
        if self.frame_times.shape[0] != self.frames.shape[0]:
            raise ValueError(
                f"Clip.frame_times: expected {self.frames.shape[0]} times (one per frame), "
                f"got {self.frame_times.shape[0]}"
            )
        if self.audio is None:
            if self.sample_rate is not None:
                raise ValueError("Clip.sample_rate must be None when audio is None")
        else:
            _check_array("Clip.audio", self.audio, ndim=1, dtype=np.float32)
            if not self.sample_rate or self.sample_rate <= 0:
                raise ValueError(f"Clip.sample_rate: expected a positive rate, got {self.sample_rate}")

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the frames."""
        return int(self.frames.shape[1]), int(self.frames.shape[2])

    @property
    def has_audio(self) -> bool:
        return self.audio is not None


@dataclass(frozen=True)
class Query:
    """One referring expression about one clip.

    ``clip`` may be None while a benchmark is only being listed; stages that need pixels
    receive a decoded clip alongside.
    """

    uid: str
    expression: str
    clip: Clip | None = None
    split: str | None = None

    def __post_init__(self) -> None:
        if not self.uid:
            raise ValueError("Query.uid must be a non-empty string")
        if not isinstance(self.expression, str):
            raise TypeError(f"Query.expression: expected str, got {type(self.expression).__name__}")


class ParseStatus(str, Enum):
    """How a thinker answer was parsed; the values are written to thoughts.jsonl."""

    OK = "ok"  # both object tags found
    NULL = "null"  # the answer says no object is referred to
    PARTIAL = "partial"  # only one of f_object / s_object found
    NO_TAGS = "no_tags"  # neither tag found: the original yields the literal "Error"
    DIRECT = "direct"  # no thinker: the expression itself is the object text


@dataclass(frozen=True)
class Thought:
    """What a thinker said about a query.

    raw: the full decoded model text (special tokens kept).
    reasoning: text inside <think> ... </think>, or "" when absent.
    f_object / s_object: fine / simplified object descriptions; None when the tag is
        absent (the paper then grounds the literal "Error", see presets).
    is_null: the answer states that nothing is referred to.
    """

    uid: str
    raw: str
    reasoning: str = ""
    f_object: str | None = None
    s_object: str | None = None
    is_null: bool = False
    status: ParseStatus = ParseStatus.OK
    error: str | None = None

    def object_text(self, which: str = "s_object") -> str | None:
        """The object description chosen by name ("f_object" or "s_object")."""
        if which not in ("f_object", "s_object"):
            raise ValueError(f"which: expected 'f_object' or 's_object', got {which!r}")
        return getattr(self, which)


@dataclass(frozen=True, eq=False)
class FrameBoxes:
    """Detector candidates of one frame, in detector query order.

    xyxy: float32 [K, 4] in original pixels (x0, y0, x1, y1).
    scores: float32 [K], the detector's confidence of each box.
    query_index: int64 [K], the detector query each box came from; keeping it lets the
        paper's "first query above threshold" rule and the "best score" rule both be
        expressed on the same data.
    """

    xyxy: np.ndarray
    scores: np.ndarray
    query_index: np.ndarray

    def __post_init__(self) -> None:
        _check_array("FrameBoxes.xyxy", self.xyxy, ndim=2, last=4)
        _check_array("FrameBoxes.scores", self.scores, ndim=1)
        _check_array("FrameBoxes.query_index", self.query_index, ndim=1)
        k = self.xyxy.shape[0]
        if self.scores.shape[0] != k or self.query_index.shape[0] != k:
            raise ValueError(
                f"FrameBoxes: {k} boxes but {self.scores.shape[0]} scores and "
                f"{self.query_index.shape[0]} query indices"
            )

    @classmethod
    def empty(cls) -> FrameBoxes:
        return cls(
            np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0,), np.int64)
        )

    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    def first(self) -> int | None:
        """Position of the box with the lowest query index (the paper's rule), or None."""
        if len(self) == 0:
            return None
        return int(np.argmin(self.query_index))

    def best(self) -> int | None:
        """Position of the highest-scoring box (ties: lowest query index), or None."""
        if len(self) == 0:
            return None
        order = np.lexsort((self.query_index, -self.scores.astype(np.float64)))
        return int(order[0])


@dataclass(frozen=True, eq=False)
class Boxes:
    """Grounding result of a clip: candidates per frame plus the frame size they refer to.

    frames: one FrameBoxes per clip frame.
    image_size: (height, width) of the original frames.
    text: the caption the detector saw.
    """

    frames: tuple[FrameBoxes, ...]
    image_size: tuple[int, int]
    text: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.frames, tuple):
            object.__setattr__(self, "frames", tuple(self.frames))
        for i, f in enumerate(self.frames):
            if not isinstance(f, FrameBoxes):
                raise TypeError(f"Boxes.frames[{i}]: expected FrameBoxes, got {type(f).__name__}")

    def __len__(self) -> int:
        return len(self.frames)

    def select(self, rule: str) -> list[int | None]:
        """Per frame, the chosen box position under ``rule`` ("first" or "best")."""
        if rule == "first":
            return [f.first() for f in self.frames]
        if rule == "best":
            return [f.best() for f in self.frames]
        raise ValueError(f"box rule: expected 'first' or 'best', got {rule!r}")

    @classmethod
    def empty(cls, num_frames: int, image_size: tuple[int, int], text: str = "") -> Boxes:
        return cls(tuple(FrameBoxes.empty() for _ in range(num_frames)), image_size, text)


@dataclass(frozen=True, eq=False)
class Masks:
    """Segmentation of a clip.

    masks: bool [T, H, W], the binary masks (J and S are computed from these).
    probs: float32 [T, h, w] in [0, 1] or None; foreground probability maps for the F
        metric, possibly at another resolution than ``masks`` (evaluation resizes).
    """

    masks: np.ndarray
    probs: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_array("Masks.masks", self.masks, ndim=3, dtype=np.bool_)
        if self.probs is not None:
            _check_array("Masks.probs", self.probs, ndim=3)
            if self.probs.shape[0] != self.masks.shape[0]:
                raise ValueError(
                    f"Masks.probs: expected {self.masks.shape[0]} frames, got {self.probs.shape[0]}"
                )

    @property
    def num_frames(self) -> int:
        return int(self.masks.shape[0])

    @classmethod
    def empty(cls, num_frames: int, size: tuple[int, int], with_probs: bool = True) -> Masks:
        h, w = size
        probs = np.zeros((num_frames, h, w), np.float32) if with_probs else None
        return cls(np.zeros((num_frames, h, w), np.bool_), probs)


@dataclass(eq=False)
class FrameResult:
    """One emitted frame of a video session and every expression's result on it (in the order
    of the expressions): the one per-frame currency of dense, sampled, benchmark and live runs,
    and what every output sink consumes.

    index: the frame's number in its stream: the source frame (dense, live: counted from the
        first decoded frame, skipped frames included) or the sampled frame (sampled, benchmark).
    time: presentation time (s) from the start of the source.
    image: uint8 [H, W, 3] RGB, the frame as decoded (source size).
    masks: bool [N, H, W] at the frame size, one per expression (all False: nothing found).
    boxes: per expression the chosen / tracked box (x0, y0, x1, y1) in frame pixels, or None.
    scores: float32 [N]: the grounding score on a grounded frame, else the tracker's presence
        logit; NaN where there is none.
    grounded: bool [N]: the expression was grounded (Grounding DINO / SAM 3 ran) on this frame.
    seeded: bool [N]: the frame conditioned that expression's tracker (a seed or re-seed).
    probs: float32 [N, H, W] mask probabilities when asked for, else None.
    details: per expression a small dict of what the grounding step reported on this frame
        (e.g. ``query_index``, ``candidates``), or None.
    timings: seconds per stage spent on this frame ("decode", "ground", "segment", "track", ...).
    arrival: live sources: ``time.monotonic()`` when the frame was decoded; None otherwise.
    latency: live sources: seconds from arrival to this result; None otherwise.
    skipped: live sources: frames dropped by the real-time policy just before this one.
    """

    index: int
    time: float
    image: np.ndarray
    masks: np.ndarray
    boxes: list[tuple[float, float, float, float] | None]
    scores: np.ndarray
    grounded: np.ndarray
    seeded: np.ndarray
    probs: np.ndarray | None = None
    details: list[dict[str, Any] | None] | None = None
    timings: dict[str, float] = field(default_factory=dict)
    arrival: float | None = None
    latency: float | None = None
    skipped: int = 0

    def __post_init__(self) -> None:
        _check_array("image", self.image, ndim=3, dtype=np.uint8, last=3)
        _check_array("masks", self.masks, ndim=3, dtype=np.bool_)
        count = self.masks.shape[0]
        if self.masks.shape[1:] != self.image.shape[:2]:
            raise ValueError(f"masks {self.masks.shape[1:]} do not match the frame {self.image.shape[:2]}")
        for name in ("boxes", "scores", "grounded", "seeded"):
            if len(getattr(self, name)) != count:
                raise ValueError(f"{name}: expected {count} entries (one per expression), got {len(getattr(self, name))}")

    @property
    def num_expressions(self) -> int:
        return int(self.masks.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        return int(self.image.shape[0]), int(self.image.shape[1])


class FrameSink(Protocol):
    """An output fed frame by frame: ``add`` each :class:`FrameResult` in order, then ``close``
    (the output is complete) or ``abort`` (on an error or Ctrl-C).

    The rule every sink keeps: what is under a final name is always valid. An output that is
    only valid whole (a PNG mask, masks.json, an ordinary overlay video) is written under a
    partial name and renamed by ``close``; ``abort`` removes the partial file, so a final name
    holds the previous complete output or nothing. An output made to be read while it grows
    (a live run's masks.jsonl: one complete line per frame; a fragmented overlay video:
    complete fragments) is written under its final name, valid at every moment; ``abort``
    ends it after the last complete line or fragment and keeps it (complete footage)."""

    def add(self, frame: FrameResult) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


def stack_frames(frames: Sequence[np.ndarray]) -> np.ndarray:
    """Stack per-frame HxWx3 uint8 arrays into [T, H, W, 3], naming the first mismatch."""
    if not frames:
        raise ValueError("no frames to stack")
    first = frames[0].shape
    for i, f in enumerate(frames):
        if f.shape != first:
            raise ValueError(f"frame {i} has shape {f.shape}, frame 0 has {first}")
    return np.stack(frames).astype(np.uint8, copy=False)
