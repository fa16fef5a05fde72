"""Online tracking: SAM2-family propagation one frame at a time, for a live stream.

:class:`OnlineTracker` drives the machinery of :mod:`tgs.segment.propagation` (the same
session class, frame slot, seeding, tracking step and pruning: nothing is re-implemented)
forward only, one frame per :meth:`OnlineTracker.step`, on a stream whose length is unknown:

- an object is **seeded** with a box on the frame being stepped (a conditioning frame);
  seeding an object again (its object text changed, or it was lost and found) *replaces*
  its state: a fresh session, nothing remembered from the old object;
- every other object is **tracked** on that frame from its memory, and its session is
  **pruned** at once to what later steps read (the ``window`` frames before the frontier,
  at most ``max_conditioning_frames`` seeds), so what the tracker holds is flat whatever
  the stream's length: every per-frame dict of the sessions (outputs, tracked-frame records,
  prompts, the shared one-frame vision-feature cache) has a bounded number of entries.

Frame numbers. The tracker numbers the frames it is given 0, 1, 2, ... (a frame skipped by a
real-time source is never given, so SAM2 sees consecutive frames; only differences of
frame numbers enter the model). transformers' inference session is built for a known
video length: ``num_frames`` caps the object pointers a step reads
(``min(num_frames, max_object_pointers_in_encoder)``, also the scale of their temporal
encoding). A stream has no length, so the session reports an unbounded one and every step
reads the model's full pointer window, as transformers' own streaming mode does; a run of
:class:`~tgs.segment.propagation.PropagationEngine` over a file of at least
``max_object_pointers_in_encoder`` frames, seeded on its first frame, makes the same calls
and gives the same masks (tests/segment/test_online.py).
"""

from __future__ import annotations

import sys
from collections.abc import Hashable, Mapping
from dataclasses import dataclass

import numpy as np
import torch

from tgs.segment._sam2_common import low_res_to_masks, low_res_to_masks_and_probs
from tgs.segment.propagation import (
    PropagationEngine,
    PropagationPolicy,
    PropagationStats,
    _FrameSlot,
    _make_session,
    _Track,
)

__all__ = ["OnlineTracker", "TrackedObject"]

UNBOUNDED_FRAMES = sys.maxsize
"""The length a stream's session reports (see the module docstring)."""


@dataclass(frozen=True, eq=False)
class TrackedObject:
    """One object on the frame just stepped: ``mask`` bool [H, W] at the frame size,
    ``presence`` SAM2's object-presence logit (< 0: predicted absent, mask empty),
    ``seeded`` the frame conditioned the object, ``probs`` float32 [H, W] when asked for."""

    mask: np.ndarray
    presence: float
    seeded: bool
    probs: np.ndarray | None = None


class OnlineTracker:
    """Tracks keyed objects through a stream, one :meth:`step` per frame, memory flat.

    engine: the :class:`~tgs.segment.propagation.PropagationEngine` of a loaded SAM2-family
    video segmenter (``Sam2VideoSegmenter.engine``; :meth:`from_segmenter`): its model,
    processor, device, dtype and preprocessing. policy: only ``max_conditioning_frames``
    applies (the seeds are given here, not planned from keyframes).
    """

    def __init__(self, engine: PropagationEngine, policy: PropagationPolicy | None = None,
                 *, with_probs: bool = False) -> None:
        self.engine = engine
        self.policy = policy or PropagationPolicy()
        self.with_probs = with_probs
        self.stats = PropagationStats()
        self._slot = _FrameSlot(engine._preprocess)
        self._cache = None  # one vision-feature cache shared by every object's session
        self._tracks: dict[Hashable, _Track] = {}
        self._frame = -1
        self._size: tuple[int, int] | None = None

    @classmethod
    def from_segmenter(cls, segmenter, policy: PropagationPolicy | None = None, *,
                       with_probs: bool = False) -> OnlineTracker:
        """The tracker of a loaded :class:`~tgs.segment.Sam2VideoSegmenter` (its engine)."""
        return cls(segmenter.engine, policy, with_probs=with_probs)

    def fresh(self) -> OnlineTracker:
        """A new tracker on the same engine and policy, tracking nothing (a stream whose frame
        size changed starts over with one)."""
        return OnlineTracker(self.engine, self.policy, with_probs=self.with_probs)

    # ------------------------------------------------------------------ state

    @property
    def keys(self) -> list[Hashable]:
        """The objects being tracked, in the order they were (last) seeded."""
        return list(self._tracks)

    @property
    def frame(self) -> int:
        """The tracker's number of the last frame stepped (-1 before the first)."""
        return self._frame

    @property
    def size(self) -> tuple[int, int] | None:
        """(height, width) of the stream, fixed by the first frame."""
        return self._size

    def drop(self, key: Hashable) -> None:
        """Stop tracking ``key`` (its state is released); unknown keys are ignored."""
        self._tracks.pop(key, None)

    def sessions(self) -> dict[Hashable, object]:
        """Each object's transformers inference session (for inspection: memory checks)."""
        return {key: track.session for key, track in self._tracks.items()}

    # ------------------------------------------------------------------ stepping

    def step(self, image: np.ndarray,
             seeds: Mapping[Hashable, np.ndarray | None] | None = None) -> dict[Hashable, TrackedObject]:
        """Take the next frame (uint8 [H, W, 3] RGB), seed ``seeds`` on it ({key: xyxy box in
        frame pixels}; a key already tracked starts afresh, a None box drops it), track every
        other object; returns {key: TrackedObject} for every tracked object.
        """
        size = (int(image.shape[0]), int(image.shape[1]))
        if self._size is None:
            self._size = size
        elif size != self._size:
            raise ValueError(f"frame size changed from {self._size} to {size}: start a new OnlineTracker")
        self._frame += 1
        frame = self._frame
        self._slot.set(frame, image)
        out: dict[Hashable, TrackedObject] = {}
        with torch.inference_mode():
            for key, box in (seeds or {}).items():
                self._tracks.pop(key, None)
                if box is not None:  # decoded from the box alone, as the engine's first seeds
                    self._tracks[key] = track = self._new_track(frame, np.asarray(box, dtype=np.float32).reshape(4))
                    self.engine._seed(track, frame)
            for key, track in self._tracks.items():  # a seeded object reuses its conditioning output
                logits, presence, seeded = self.engine._step(track, frame, False, self.policy, self.stats)
                self.engine._prune(track, frame, False, self.policy, self.stats)
                if self.with_probs:
                    masks, probs = low_res_to_masks_and_probs(logits, size)
                    out[key] = TrackedObject(masks[0], presence, seeded, probs[0])
                else:
                    out[key] = TrackedObject(low_res_to_masks(logits, size)[0], presence, seeded)
        self.stats.frames_done += 1
        self.stats.frames_tracked += int(bool(self._tracks))
        return out

    def _new_track(self, frame: int, box: np.ndarray) -> _Track:
        if not np.all(np.isfinite(box)):
            raise ValueError(f"seed box: expected a finite xyxy box of 4 numbers, got {box!r}")
        engine = self.engine
        session = _make_session(engine.model, self._slot, UNBOUNDED_FRAMES, self._size, engine.device,  # type: ignore[arg-type]
                                engine.dtype, self._cache)
        self._cache = session.cache
        return _Track(session, self._size, {frame: box}, {})  # type: ignore[arg-type]
