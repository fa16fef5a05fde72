"""Ground + Segment for one clip under a preset: object text -> boxes -> one box per frame -> masks.

:class:`GroundSegmentStage` holds no model code: it is handed a grounder and a segmenter
(objects with ``ground(clip, text) -> Boxes`` and ``segment(clip, boxes) -> Masks``) and
applies the preset's rules between them:

1. object text (:func:`choose_object_text`): which thinker tag, what a missing tag or a
   ``null`` answer becomes;
2. grounding on the original frames;
3. one box per frame by ``box_rule`` (first query above threshold, or best score);
4. the frames SAM2 sees (``sam_input``, ``sam_colours``), boxes scaled to them;
5. segmentation, then masks resized to ``mask_size`` and probabilities to ``probs_size``.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from tgs import fast_paths
from tgs.eval.protocol import is_null_split
from tgs.presets import SAM_SQUASH_SIZE, Preset
from tgs.resize import resize_like_cv2, resize_masks
from tgs.think.parser import NULL_ANSWER, PAPER_MISSING_TAG
from tgs.types import Boxes, Clip, FrameBoxes, Masks, ParseStatus, Query, Thought

__all__ = [
    "GroundSegmentResult",
    "GroundSegmentStage",
    "Grounder",
    "ObjectText",
    "Segmenter",
    "box_record",
    "choose_object_text",
    "sam_boxes",
    "sam_clip",
    "shared_method",
]

logger = logging.getLogger(__name__)


@runtime_checkable
class Grounder(Protocol):
    """Boxes every frame of a clip for a text: all boxes above threshold, query order, original pixels."""

    def ground(self, clip: Clip, text: str) -> Boxes: ...


@runtime_checkable
class Segmenter(Protocol):
    """Masks a clip from one xyxy box (clip pixels) or None per frame; masks at the clip size.

    A segmenter whose ``segment`` also takes ``scores`` (the video segmenter, to pick seed
    frames) receives the grounding score of each chosen box, None where there is no box.
    """

    def segment(self, clip: Clip, boxes: Sequence[np.ndarray | None]) -> Masks: ...


# --------------------------------------------------------------------------- object text


@dataclass(frozen=True)
class ObjectText:
    """What is grounded for a sample and why.

    text: the object text handed to the grounder; None means nothing is grounded and
        the masks are empty (a null answer under ``null_policy="empty"``, or the paper's
        null rule below).
    source: "tag" (the chosen thinker tag), "direct" (the expression, no thinker),
        "error_literal" (tag missing: the original's "Error"), "expression" (tag missing
        or empty: the raw expression) or "null" (null answer: nothing grounded).
    paper_null_override: the original's null rule fired: on the null split the chosen text
        is exactly "null". The original still grounds "null." but then sets the sample's
        S to 0, so nothing is grounded here and the masks are empty, which gives S = 0
        under the TGS-Agent protocol (sqrt(0) on every frame) with no special case in
        evaluation.
    """

    text: str | None
    source: str
    paper_null_override: bool = False


def choose_object_text(thought: Thought, query: Query, preset: Preset, *, warn: bool = True) -> ObjectText:
    """The object text of a sample under ``preset`` (see ``docs/presets.md``); warn: log when a
    missing tag falls back to the expression (a caller that asks again for the same query says no)."""
    if thought.status is ParseStatus.DIRECT:
        text, source = thought.object_text(preset.object_tag) or query.expression, "direct"
    elif preset.null_policy == "empty" and thought.is_null:
        return ObjectText(None, "null")
    else:
        tagged = thought.object_text(preset.object_tag)
        if preset.missing_tag == "error_literal":
            text, source = (tagged, "tag") if tagged is not None else (PAPER_MISSING_TAG, "error_literal")
        elif tagged is not None and tagged.strip():
            text, source = tagged, "tag"
        else:
            if warn:
                logger.warning(
                    "%s: no usable <%s> in the thinker answer (%s); grounding the expression %r instead",
                    query.uid, preset.object_tag, thought.status.value, query.expression,
                )
            text, source = query.expression, "expression"
    # The original compares the chosen text with "null" exactly, on the null split only, and
    # then sets the sample's S to 0 whatever was segmented: its prediction is in effect empty.
    on_null_split = query.split is not None and is_null_split(query.split)
    if preset.null_policy == "paper" and on_null_split and text == NULL_ANSWER:
        return ObjectText(None, "null", paper_null_override=True)
    return ObjectText(text, source)


# --------------------------------------------------------------------------- SAM2 input


def sam_clip(clip: Clip, preset: Preset) -> Clip:
    """The frames SAM2 sees under ``preset``: squashed to 224x224 and/or R and B swapped."""
    frames = clip.frames
    if preset.sam_input == "squash224":
        size = (SAM_SQUASH_SIZE, SAM_SQUASH_SIZE)
        frames = np.stack([resize_like_cv2(frame, size) for frame in frames])
    if preset.sam_colours == "swap_rb":
        frames = np.ascontiguousarray(frames[..., ::-1])
    if frames is clip.frames:
        return clip
    return Clip(frames=frames, audio=None, sample_rate=None, frame_times=clip.frame_times, source=clip.source)


def sam_boxes(
    boxes: Boxes, chosen: Sequence[int | None], to_size: tuple[int, int]
) -> list[np.ndarray | None]:
    """The chosen box of each frame as float32 xyxy [4] scaled from the frame size to ``to_size``."""
    (src_h, src_w), (dst_h, dst_w) = boxes.image_size, to_size
    scale = np.array([dst_w / src_w, dst_h / src_h, dst_w / src_w, dst_h / src_h], np.float64)
    out: list[np.ndarray | None] = []
    for frame, position in zip(boxes.frames, chosen):
        if position is None:
            out.append(None)
        else:
            out.append((frame.xyxy[position].astype(np.float64) * scale).astype(np.float32))
    return out


# --------------------------------------------------------------------------- the stage


def box_record(frame: FrameBoxes, position: int | None) -> dict[str, Any]:
    """One frame's chosen box as recorded (samples.jsonl, result.json): the box (original pixels),
    its score and query index (None when nothing was chosen) and the candidate count."""
    entry: dict[str, Any] = {"box": None, "score": None, "query_index": None, "candidates": len(frame)}
    if position is not None:
        entry["box"] = [float(v) for v in frame.xyxy[position]]
        entry["score"] = float(frame.scores[position])
        entry["query_index"] = int(frame.query_index[position])
    return entry


def shared_method(stage: object, name: str, path: str) -> Any:
    """``stage.<name>`` (its shared several-texts method), counted as the fast path ``path``
    taken; None when the stage has none: a fallback to its one-text method, logged once and
    counted (:mod:`tgs.fast_paths`)."""
    method = getattr(stage, name, None)
    if callable(method):
        fast_paths.ran(path)
        return method
    fast_paths.fell_back(path, f"{type(stage).__name__} has no {name}(); one text at a time")
    return None


@dataclass(frozen=True, eq=False)
class GroundSegmentResult:
    """Everything Ground + Segment produced for one sample.

    boxes: all candidates per frame (original pixels); chosen: per frame, the position
    of the box used in ``boxes.frames[i]`` or None; masks: at the preset's ``mask_size``;
    timings: seconds per step ("ground", "select", "prepare", "segment", "resize");
    extra: more fields of the sample record (``segmenter=sam3``: ``{"sam3": every candidate
    masklet, the rule, the threshold, the chosen identities}``).
    """

    uid: str
    object_text: ObjectText
    thought_status: str
    boxes: Boxes
    chosen: tuple[int | None, ...]
    masks: Masks
    timings: Mapping[str, float] = field(default_factory=dict)
    extra: Mapping[str, Any] | None = None

    def frame_records(self) -> list[dict[str, Any]]:
        """Per frame: the chosen box (original pixels), its score and query index, and the candidate count."""
        return [box_record(frame, position) for frame, position in zip(self.boxes.frames, self.chosen)]

    def candidates_record(self) -> dict[str, Any]:
        """Every candidate box of every frame, for the ``boxes`` stream."""
        return {
            "uid": self.uid,
            "text": self.boxes.text,
            "image_size": list(self.boxes.image_size),
            "frames": [
                {
                    "xyxy": [[float(v) for v in box] for box in frame.xyxy],
                    "scores": [float(v) for v in frame.scores],
                    "query_index": [int(v) for v in frame.query_index],
                }
                for frame in self.boxes.frames
            ],
        }

    def sample_record(self) -> dict[str, Any]:
        """The ``samples.jsonl`` fields describing this result (status and uid are the runner's)."""
        return {
            "object_text": self.object_text.text,
            "object_source": self.object_text.source,
            "thought_status": self.thought_status,
            "paper_null_override": self.object_text.paper_null_override,
            "frames": self.frame_records(),
            "mask_size": list(self.masks.masks.shape[1:]),
            "timings": {k: round(v, 6) for k, v in self.timings.items()},
            **(self.extra or {}),
        }


@dataclass(frozen=True, eq=False)
class _Shared:
    """One text's part of a shared Ground + Segment call: boxes, chosen boxes, SAM-size masks, timings."""

    boxes: Boxes
    chosen: tuple[int | None, ...]
    masks: Masks
    timings: dict[str, float]
    extra: dict[str, Any] | None = None


class GroundSegmentStage:
    """The Ground + Segment stage: a grounder and a segmenter composed under a preset's rules;
    one call per clip (:meth:`run`) or per video's expressions (:meth:`run_many`)."""

    def __init__(self, grounder: Grounder, segmenter: Segmenter, preset: Preset) -> None:
        self.grounder = grounder
        self.segmenter = segmenter
        self.preset = preset
        # SAM 3 (tgs.segment.sam3): one object is both stages; it returns candidates, the preset picks
        self._sam3 = grounder if grounder is segmenter and hasattr(grounder, "candidates_many") else None
        segment = getattr(segmenter, "segment", None)
        self._segment_takes_scores = segment is not None and "scores" in inspect.signature(segment).parameters
        self._told: set[tuple[str, str]] = set()  # queries whose object-text fallback was logged

    def object_text(self, thought: Thought, query: Query) -> ObjectText:
        """:func:`choose_object_text` under the preset; its fallback is logged once per query, so a
        video grounded window by window (or chosen up front, then grounded) says it once."""
        told = (query.uid, query.expression)
        text = choose_object_text(thought, query, self.preset, warn=told not in self._told)
        self._told.add(told)
        return text

    def ground_select(self, clip: Clip, texts: Sequence[str]) -> list[tuple[Boxes, tuple[int | None, ...]]]:
        """Grounding only: per text, every frame's candidates and the box chosen by the preset's
        ``box_rule`` (the keyframes of dense output, which a propagation segments). Grounding
        DINO's image work is shared by the texts (``ground_many``) under
        ``share_across_expressions`` when there are several."""
        share = self.preset.share_across_expressions and len(texts) > 1
        timings: list[dict[str, float]] = [{} for _ in texts]
        return [(b, c) for b, c, _ in self._ground_select(clip, list(texts), timings, share)]

    def _ground_select(
        self, clip: Clip, texts: list[str], timings: list[dict[str, float]], share: bool
    ) -> list[tuple[Boxes, tuple[int | None, ...], dict[str, float]]]:
        """(boxes, chosen, timings) per text: ground (shared when ``share``), check, select."""
        ground_many = shared_method(self.grounder, "ground_many", "ground.many") if share else None
        if ground_many is not None:
            start = time.perf_counter()
            all_boxes = list(ground_many(clip, texts))
            seconds = (time.perf_counter() - start) / len(texts)  # a shared step is split equally
            for t in timings:
                t["ground"] = seconds
        else:
            all_boxes = [self._timed(t, "ground", self.grounder.ground, clip, text) for t, text in zip(timings, texts)]
        out = []
        for boxes, t in zip(all_boxes, timings):
            self._check_boxes(boxes, clip)
            out.append((boxes, tuple(self._timed(t, "select", boxes.select, self.preset.box_rule)), t))
        return out

    def run(self, clip: Clip, thought: Thought, query: Query) -> GroundSegmentResult:
        """Ground and segment one clip; masks bool [T, h, w] at the preset's ``mask_size``."""
        if thought.uid != query.uid:
            raise ValueError(f"thought for {thought.uid!r} given with query {query.uid!r}")
        timings: dict[str, float] = {}
        object_text = self.object_text(thought, query)
        out_size, probs_size = self._output_sizes(clip)
        if object_text.text is None:
            return self._nothing_grounded(clip, thought, query, object_text)
        if self._sam3 is not None:
            part = self._sam3_parts(clip, [object_text.text])[0]
            timings = dict(part.timings)
            masks = self._timed(timings, "resize", resize_masks, part.masks, out_size, probs_size)
            return GroundSegmentResult(
                uid=query.uid, object_text=object_text, thought_status=thought.status.value, boxes=part.boxes,
                chosen=part.chosen, masks=masks, timings=timings, extra=part.extra,
            )
        boxes = self._timed(timings, "ground", self.grounder.ground, clip, object_text.text)
        self._check_boxes(boxes, clip)
        chosen = tuple(self._timed(timings, "select", boxes.select, self.preset.box_rule))
        seen = self._timed(timings, "prepare", sam_clip, clip, self.preset)
        prompts = sam_boxes(boxes, chosen, seen.size)
        masks = self._timed(timings, "segment", self._segment, seen, prompts, boxes, chosen)
        self._check_masks(masks, seen)
        masks = self._timed(timings, "resize", resize_masks, masks, out_size, probs_size)
        return GroundSegmentResult(
            uid=query.uid,
            object_text=object_text,
            thought_status=thought.status.value,
            boxes=boxes,
            chosen=chosen,
            masks=masks,
            timings=timings,
        )

    def run_many(self, clip: Clip, pairs: Sequence[tuple[Thought, Query]]) -> list[GroundSegmentResult]:
        """Ground and segment every (thought, query) pair of one clip; one result per pair, in order.

        Equal to ``[run(clip, t, q) for t, q in pairs]``. With the preset's
        ``share_across_expressions`` the work that depends on the frames only is done once:
        SAM2's input frames (:func:`sam_clip`), Grounding DINO's image backbone
        (``grounder.ground_many``) and SAM2's image embeddings (``segmenter.segment_many``),
        each used when the stage has it (else its one-text method in a loop: a fallback,
        logged once and counted, :mod:`tgs.fast_paths`). Timings of a shared step are split
        equally between the expressions that used it. Without sharing it is the loop over
        :meth:`run`.
        """
        for thought, query in pairs:
            if thought.uid != query.uid:
                raise ValueError(f"thought for {thought.uid!r} given with query {query.uid!r}")
        if not self.preset.share_across_expressions:
            return [self.run(clip, thought, query) for thought, query in pairs]
        fast_paths.ran("ground_segment.shared")
        object_texts = [self.object_text(thought, query) for thought, query in pairs]
        grounded = [i for i, o in enumerate(object_texts) if o.text is not None]
        texts = [object_texts[i].text for i in grounded]
        shared = dict(zip(grounded, self._ground_segment_shared(clip, texts))) if grounded else {}  # type: ignore[arg-type]
        out_size, probs_size = self._output_sizes(clip)
        results = []
        for i, ((thought, query), object_text) in enumerate(zip(pairs, object_texts)):
            if i not in shared:
                results.append(self._nothing_grounded(clip, thought, query, object_text))
                continue
            part = shared[i]
            timings = dict(part.timings)
            masks = self._timed(timings, "resize", resize_masks, part.masks, out_size, probs_size)
            results.append(
                GroundSegmentResult(
                    uid=query.uid,
                    object_text=object_text,
                    thought_status=thought.status.value,
                    boxes=part.boxes,
                    chosen=part.chosen,
                    masks=masks,
                    timings=timings,
                    extra=part.extra,
                )
            )
        return results

    def _ground_segment_shared(self, clip: Clip, texts: list[str]) -> list[_Shared]:
        """Boxes, chosen boxes and SAM-size masks for several texts on one clip, frame work shared."""
        if self._sam3 is not None:
            return self._sam3_parts(clip, texts)
        n = len(texts)
        timings: list[dict[str, float]] = [{} for _ in texts]

        def share(name: str, seconds: float) -> None:
            for t in timings:
                t[name] = seconds / n

        grounded = self._ground_select(clip, texts, timings, share=True)
        all_boxes = [boxes for boxes, _, _ in grounded]
        chosen = [c for _, c, _ in grounded]
        start = time.perf_counter()
        seen = sam_clip(clip, self.preset)
        share("prepare", time.perf_counter() - start)
        prompts = [sam_boxes(boxes, c, seen.size) for boxes, c in zip(all_boxes, chosen)]
        segment_many = shared_method(self.segmenter, "segment_many", "segment.many")
        if segment_many is not None:
            start = time.perf_counter()
            scores = (
                [self._chosen_scores(boxes, c) for boxes, c in zip(all_boxes, chosen)]
                if self._segment_takes_scores
                else None
            )
            all_masks = list(segment_many(seen, prompts, scores))
            share("segment", time.perf_counter() - start)
        else:
            all_masks = [
                self._timed(t, "segment", self._segment, seen, p, boxes, c)
                for t, p, boxes, c in zip(timings, prompts, all_boxes, chosen)
            ]
        if len(all_boxes) != n or len(all_masks) != n:
            raise ValueError(f"stages returned {len(all_boxes)} boxes and {len(all_masks)} masks for {n} texts")
        for masks in all_masks:
            self._check_masks(masks, seen)
        return [_Shared(*parts) for parts in zip(all_boxes, chosen, all_masks, timings)]

    def _sam3_parts(self, clip: Clip, texts: list[str]) -> list[_Shared]:
        """SAM 3: every candidate of each text (frame work shared by the texts), then the preset's
        rule (``sam3_choice``) and threshold; masks at the clip size, the candidates in ``extra``."""
        from tgs.segment.sam3 import IMAGE_CANDIDATE_SCORE

        preset = self.preset
        start = time.perf_counter()
        found = self._sam3.candidates_many(  # type: ignore[union-attr]
            clip, texts, min(IMAGE_CANDIDATE_SCORE, preset.sam3_threshold)
        )
        seconds = (time.perf_counter() - start) / max(1, len(texts))
        parts = []
        for candidates in found:
            start = time.perf_counter()
            boxes, chosen, masks, record = candidates.resolve(preset.sam3_choice, preset.sam3_threshold)
            timings = {"ground_segment": seconds, "select": time.perf_counter() - start}
            parts.append(_Shared(boxes, chosen, masks, timings, {"sam3": record}))
        return parts

    def _nothing_grounded(
        self, clip: Clip, thought: Thought, query: Query, object_text: ObjectText
    ) -> GroundSegmentResult:
        """The result when nothing is grounded (a null answer): no boxes, zero masks and probabilities."""
        out_size, probs_size = self._output_sizes(clip)
        return GroundSegmentResult(
            uid=query.uid,
            object_text=object_text,
            thought_status=thought.status.value,
            boxes=Boxes.empty(clip.num_frames, clip.size),
            chosen=(None,) * clip.num_frames,
            masks=Masks(
                np.zeros((clip.num_frames, *out_size), np.bool_),
                np.zeros((clip.num_frames, *probs_size), np.float32),
            ),
            timings={},
        )

    @staticmethod
    def _chosen_scores(boxes: Boxes, chosen: Sequence[int | None]) -> list[float | None]:
        return [None if p is None else float(f.scores[p]) for f, p in zip(boxes.frames, chosen)]

    def _segment(
        self, clip: Clip, prompts: list[np.ndarray | None], boxes: Boxes, chosen: Sequence[int | None]
    ) -> Masks:
        if not self._segment_takes_scores:
            return self.segmenter.segment(clip, prompts)
        return self.segmenter.segment(clip, prompts, scores=self._chosen_scores(boxes, chosen))  # type: ignore[call-arg]

    def _output_sizes(self, clip: Clip) -> tuple[tuple[int, int], tuple[int, int]]:
        """(mask size, probability map size) under the preset, as (height, width)."""
        square = (SAM_SQUASH_SIZE, SAM_SQUASH_SIZE)
        masks = square if self.preset.mask_size == "224" else clip.size
        return masks, square if self.preset.probs_size == "224" else masks

    @staticmethod
    def _timed(timings: dict[str, float], name: str, fn: Any, *args: Any) -> Any:
        start = time.perf_counter()
        out = fn(*args)
        timings[name] = time.perf_counter() - start
        return out

    @staticmethod
    def _check_boxes(boxes: Boxes, clip: Clip) -> None:
        if len(boxes) != clip.num_frames or tuple(boxes.image_size) != clip.size:
            raise ValueError(
                f"grounder returned boxes for {len(boxes)} frames of size {tuple(boxes.image_size)}, "
                f"expected {clip.num_frames} frames of size {clip.size}"
            )

    @staticmethod
    def _check_masks(masks: Masks, clip: Clip) -> None:
        expected = (clip.num_frames, *clip.size)
        if tuple(masks.masks.shape) != expected:
            raise ValueError(f"segmenter returned masks {tuple(masks.masks.shape)}, expected {expected}")
