"""Dense output of a user video: a mask on every source frame, at the source's frame rate.

Ground + Segment of :func:`tgs.core.segment.segment_video` without ``fps``:

1. **Ground at keyframes** (:func:`ground_keyframes`): Grounding DINO grounds every
   expression's object text on the sampled frames (the keyframes, 1 per second by default),
   window by window, with the preset's box rule; a null answer grounds nothing.
2. **Propagate once** (:func:`propagate`): every expression is one object of one SAM2-family
   propagation (:class:`~tgs.segment.propagation.PropagationEngine`) over every decoded source
   frame, seeded by its grounded keyframes under the preset's propagation switches
   (:func:`propagation_policy`); an expression with no box gets empty masks on every frame.
3. **Stream into sinks**: PNG masks, ``masks.json`` (COCO RLE), the overlay video at the
   source's rate with its audio, and the keyframe records of result.json: nothing holds more
   than the current frame.

The keyframe at sampled time ``t`` is source frame ``searchsorted(times, t - 1e-6)``, the
frame on screen at ``t`` (both come from the same presentation timestamps).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tgs.ground_segment import ObjectText, choose_object_text, shared_method
from tgs.presets import Preset
from tgs.types import Clip, Query, Thought

__all__ = ["KeyframeRecords", "ground_keyframes", "object_prompts", "propagate", "propagation_policy"]

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


def _ground_window(grounder: Any, clip: Clip, texts: list[str], share: bool) -> list[Any]:
    ground_many = shared_method(grounder, "ground_many", "ground.many") if share and len(texts) > 1 else None
    if ground_many is not None:
        return list(ground_many(clip, texts))
    return [grounder.ground(clip, text) for text in texts]


def ground_keyframes(
    windows: Iterable[Clip],
    grounder: Any,
    preset: Preset,
    pairs: Sequence[tuple[Thought, Query]],
    source_times: np.ndarray,
    add: TimeAdd,
) -> KeyframeRecords:
    """Ground every pair's object text on every keyframe (the frames of ``windows``).

    Grounding DINO's image work is shared between the expressions (``ground_many``) under the
    preset's ``share_across_expressions``, as in :class:`tgs.ground_segment.GroundSegmentStage`.
    """
    object_texts = [choose_object_text(thought, query, preset) for thought, query in pairs]
    grounded = [k for k, o in enumerate(object_texts) if o.text is not None]
    records: list[list[dict[str, Any]]] = [[] for _ in pairs]
    times: list[float] = []
    index = 0
    for clip in windows:
        start = time.perf_counter()
        texts = [object_texts[k].text for k in grounded]
        boxes_per_text = _ground_window(grounder, clip, texts, preset.share_across_expressions) if texts else []  # type: ignore[arg-type]
        add("ground", time.perf_counter() - start)
        start = time.perf_counter()
        chosen = {k: (boxes, boxes.select(preset.box_rule)) for k, boxes in zip(grounded, boxes_per_text)}
        add("select", time.perf_counter() - start)
        for i in range(clip.num_frames):
            t = float(clip.frame_times[i])
            frame = min(int(np.searchsorted(source_times, t - 1e-6)), len(source_times) - 1)
            times.append(round(t, 6))
            for k in range(len(pairs)):
                entry: dict[str, Any] = {"index": index, "time": round(t, 6), "frame": frame, "box": None,
                                         "score": None, "query_index": None, "candidates": 0}
                if k in chosen:
                    boxes, picks = chosen[k]
                    candidates, position = boxes.frames[i], picks[i]
                    entry["candidates"] = len(candidates)
                    if position is not None:
                        entry["box"] = [float(v) for v in candidates.xyxy[position]]
                        entry["score"] = float(candidates.scores[position])
                        entry["query_index"] = int(candidates.query_index[position])
                records[k].append(entry)
            index += 1
    return KeyframeRecords(object_texts, records, times)


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

    def add(self, result: Any) -> None:
        for k, record in self.by_frame.get(result.index, ()):
            record["mask_area"] = round(float(result.masks[k].mean()), 6)
            record["seeded"] = bool(result.seeded[k])

    def close(self) -> None:
        return None

    def abort(self) -> None:
        return None


def propagate(
    segmenter: Any,
    source: Any,
    prompts: Sequence[Any],
    policy: Any,
    sinks: Sequence[Any],
    *,
    on_frame: Callable[[Any], None] | None = None,
) -> Any:
    """One propagation of every object over every frame of ``source``, streamed into ``sinks``;
    returns the :class:`~tgs.segment.propagation.PropagationStats`."""
    from tgs.dense_outputs import run_sinks
    from tgs.segment.propagation import PropagationStats

    stats = PropagationStats()
    results = segmenter.engine.run(source, list(prompts), policy, stats=stats, on_frame=on_frame, with_probs=False)
    run_sinks(results, sinks)
    return stats
