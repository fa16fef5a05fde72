"""Online tracking: SAM2-family propagation one frame at a time, for a live stream.

:class:`OnlineTracker` drives the engine's public online session
(:meth:`tgs.segment.propagation.PropagationEngine.online`, an
:class:`~tgs.segment.propagation.OnlineSession`: the same session class, frame slot, seeding,
tracking step and pruning as a file's propagation, nothing re-implemented) forward only, one
frame per :meth:`OnlineTracker.step`, on a stream whose length is unknown; it adds the masks at
the frame size. A loaded video segmenter makes one
(:meth:`tgs.segment.Sam2VideoSegmenter.online_tracker`; :class:`OnlineSegmenter` is that
capability):

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

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from tgs.segment._sam2_common import low_res_to_masks, low_res_to_masks_and_probs
from tgs.segment.propagation import (
    UNBOUNDED_FRAMES,
    OnlineSession,
    PropagationEngine,
    PropagationPolicy,
    PropagationStats,
)

__all__ = ["UNBOUNDED_FRAMES", "OnlineSegmenter", "OnlineTracker", "TrackedObject"]


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
    video model (its model, processor, device, dtype and preprocessing; a video segmenter's
    :meth:`~tgs.segment.Sam2VideoSegmenter.online_tracker` passes its own). policy: only
    ``max_conditioning_frames`` applies (the seeds are given here, not planned from keyframes).
    """

    def __init__(self, engine: PropagationEngine, policy: PropagationPolicy | None = None,
                 *, with_probs: bool = False) -> None:
        self.engine = engine
        self.policy = policy or PropagationPolicy()
        self.with_probs = with_probs
        self.stats = PropagationStats()
        self._session: OnlineSession | None = None  # made on the first frame (its size)

    def fresh(self) -> OnlineTracker:
        """A new tracker on the same engine and policy, tracking nothing (a stream whose frame
        size changed starts over with one)."""
        return OnlineTracker(self.engine, self.policy, with_probs=self.with_probs)

    # ------------------------------------------------------------------ state

    @property
    def keys(self) -> list[Hashable]:
        """The objects being tracked, in the order they were (last) seeded."""
        return [] if self._session is None else self._session.keys

    @property
    def frame(self) -> int:
        """The tracker's number of the last frame stepped (-1 before the first)."""
        return -1 if self._session is None else self._session.frame

    @property
    def size(self) -> tuple[int, int] | None:
        """(height, width) of the stream, fixed by the first frame."""
        return None if self._session is None else self._session.size

    def drop(self, key: Hashable) -> None:
        """Stop tracking ``key`` (its state is released); unknown keys are ignored."""
        if self._session is not None:
            self._session.drop(key)

    def sessions(self) -> dict[Hashable, object]:
        """Each object's transformers inference session (for inspection: memory checks)."""
        return {} if self._session is None else self._session.sessions()

    # ------------------------------------------------------------------ stepping

    def step(self, image: np.ndarray,
             seeds: Mapping[Hashable, np.ndarray | None] | None = None) -> dict[Hashable, TrackedObject]:
        """Take the next frame (uint8 [H, W, 3] RGB), seed ``seeds`` on it ({key: xyxy box in
        frame pixels}; a key already tracked starts afresh, a None box drops it), track every
        other object; returns {key: TrackedObject} for every tracked object.
        """
        size = (int(image.shape[0]), int(image.shape[1]))
        if self._session is None:
            self._session = self.engine.online(size, self.policy, self.stats)
        session = self._session
        session.load(image)  # refuses a changed frame size
        for key, box in (seeds or {}).items():
            if box is None:
                session.drop(key)
            else:
                session.seed(key, box)
        out: dict[Hashable, TrackedObject] = {}
        with torch.inference_mode():
            for key in session.keys:
                logits, presence, seeded = session.track(key)
                if self.with_probs:
                    masks, probs = low_res_to_masks_and_probs(logits, size)
                    out[key] = TrackedObject(masks[0], presence, seeded, probs[0])
                else:
                    out[key] = TrackedObject(low_res_to_masks(logits, size)[0], presence, seeded)
        self.stats.frames_done += 1
        self.stats.frames_tracked += int(bool(out))
        return out


@runtime_checkable
class OnlineSegmenter(Protocol):
    """A video segmenter that can track a live stream (:class:`tgs.segment.Sam2VideoSegmenter`)."""

    def online_tracker(self, policy: PropagationPolicy | None = None, *,
                       with_probs: bool = False) -> OnlineTracker: ...
