"""Dense output of a user video: a mask on every source frame, at the source's frame rate.

Ground + Segment of the dense mode of a video session (:mod:`tgs.core.session`, used by
:func:`tgs.core.segment.segment_video` without ``fps``):

1. **Ground at keyframes** (:func:`ground_keyframes`): Grounding DINO grounds every
   expression's object text on the sampled frames (the keyframes, 1 per second by default),
   window by window, with the preset's box rule; a null answer grounds nothing.
2. **Propagate once** (the segmenter's ``propagate``): every expression is one object of one
   SAM2-family propagation (:class:`~tgs.segment.propagation.PropagationEngine`) over every decoded source
   frame, seeded by its grounded keyframes under the preset's propagation switches
   (:func:`propagation_policy`); an expression with no box gets empty masks on every frame.
3. **Stream** one :class:`tgs.types.FrameResult` per source frame (:func:`keyframe_frames` marks
   the grounded keyframes) into the sinks: PNG masks, ``masks.json`` (COCO RLE), the overlay
   video at the source's rate with its audio, and the keyframe records of result.json
   (:class:`KeyframeMaskSink`): nothing holds more than the current frame.

The keyframe at sampled time ``t`` is source frame ``searchsorted(times, t - 1e-6)``, the
frame on screen at ``t`` (both come from the same presentation timestamps).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tgs.ground_segment import GroundSegmentStage, ObjectText, box_record
from tgs.presets import Preset
from tgs.types import Clip, FrameResult

__all__ = ["KeyframeMaskSink", "KeyframeRecords", "ground_keyframes", "keyframe_frames", "object_prompts", "propagation_policy"]

TimeAdd = Callable[[str, float], None]
"""Adds seconds to a named step (the caller's timer)."""


def propagation_policy(preset: Preset) -> Any:
    """The :class:`~tgs.segment.propagation.PropagationPolicy` of ``preset``'s switches."""
    from tgs.segment.propagation import PropagationPolicy

    return PropagationPolicy(
        seed_frames=preset.video_seeds,
        min_seed_score=preset.propagation_min_seed_score,
        reseed_iou=preset.propagation_reseed_iou,
        max_conditioning_frames=preset.propagation_max_conditioning_frames,
    )


@dataclass
class KeyframeRecords:
    """Per expression, one record per keyframe: sampled index, time, source frame, chosen box
    (source pixels), score, query index, candidate count (result.json's ``frames``)."""

    object_texts: list[ObjectText]
    records: list[list[dict[str, Any]]]
    times: list[float]


def ground_keyframes(
    windows: Iterable[Clip],
    stages: GroundSegmentStage,
    object_texts: Sequence[ObjectText],
    source_times: np.ndarray,
    add: TimeAdd,
) -> KeyframeRecords:
    """Ground every expression's object text (None: a null answer, nothing grounded) on every
    keyframe (the frames of ``windows``) with the preset's box rule
    (:meth:`~tgs.ground_segment.GroundSegmentStage.ground_select`)."""
    grounded = [k for k, o in enumerate(object_texts) if o.text is not None]
    texts = [object_texts[k].text for k in grounded]
    records: list[list[dict[str, Any]]] = [[] for _ in object_texts]
    times: list[float] = []
    index = 0
    for clip in windows:
        start = time.perf_counter()
        chosen = dict(zip(grounded, stages.ground_select(clip, texts))) if texts else {}  # type: ignore[arg-type]
        add("ground", time.perf_counter() - start)
        for i in range(clip.num_frames):
            t = float(clip.frame_times[i])
            frame = min(int(np.searchsorted(source_times, t - 1e-6)), len(source_times) - 1)
            times.append(round(t, 6))
            for k in range(len(object_texts)):
                entry: dict[str, Any] = {"index": index, "time": round(t, 6), "frame": frame}
                if k in chosen:
                    boxes, picks = chosen[k]
                    entry.update(box_record(boxes.frames[i], picks[i]))
                else:
                    entry.update({"box": None, "score": None, "query_index": None, "candidates": 0})
                records[k].append(entry)
            index += 1
    return KeyframeRecords(list(object_texts), records, times)


def object_prompts(keyframes: KeyframeRecords) -> list[Any]:
    """One :class:`~tgs.segment.propagation.ObjectPrompts` per expression: its boxed keyframes
    (the first record of a source frame that two keyframes fall on)."""
    from tgs.segment.propagation import ObjectPrompts

    prompts = []
    for records in keyframes.records:
        frames: list[int] = []
        boxes: list[Any] = []
        scores: list[float | None] = []
        for record in records:
            if record["box"] is None or (frames and record["frame"] <= frames[-1]):
                continue
            frames.append(record["frame"])
            boxes.append(record["box"])
            scores.append(record["score"])
        prompts.append(ObjectPrompts.from_lists(frames, boxes, scores) if frames else ObjectPrompts.none())
    return prompts


class KeyframeMaskSink:
    """Fills each keyframe record's ``mask_area`` (propagated mask) and ``seeded`` as frames pass."""

    def __init__(self, keyframes: KeyframeRecords, png: bool, masks_dir_name: str) -> None:
        self.by_frame: dict[int, list[tuple[int, dict[str, Any]]]] = {}
        for k, records in enumerate(keyframes.records):
            for record in records:
                record["mask"] = f"{masks_dir_name}/{k}/{record['frame']:05d}.png" if png else None
                self.by_frame.setdefault(record["frame"], []).append((k, record))

    def add(self, frame: FrameResult) -> None:
        for k, record in self.by_frame.get(frame.index, ()):
            record["mask_area"] = round(float(frame.masks[k].mean()), 6)
            record["seeded"] = bool(frame.seeded[k])

    def close(self) -> None:
        return None

    def abort(self) -> None:
        return None


def keyframe_frames(
    frames: Iterable[FrameResult], keyframes: KeyframeRecords
) -> Iterator[FrameResult]:
    """The propagated frames with ``grounded`` set on each expression's grounded keyframes and
    ``details`` its keyframe record there (the first, when two keyframes fall on one frame)."""
    by_frame: dict[int, dict[int, dict[str, Any]]] = {}
    for k, records in enumerate(keyframes.records):
        for record in records:
            if keyframes.object_texts[k].text is not None:
                by_frame.setdefault(record["frame"], {}).setdefault(k, record)
    for frame in frames:
        here = by_frame.get(frame.index)
        if here:
            frame.grounded = np.array([k in here for k in range(frame.num_expressions)], np.bool_)
            frame.details = [here.get(k) for k in range(frame.num_expressions)]
        yield frame
