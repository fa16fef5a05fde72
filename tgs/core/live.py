"""The live mode of a video session: masks as the frames of a live source arrive.

:class:`LiveRun` consumes a live source (:class:`tgs.sources.LiveSource`: a camera, a
network stream, a pipe; any object with its ``frames()`` / ``think_window()``) and yields
one :class:`~tgs.types.FrameResult` per emitted frame, every expression's mask on it:

1. **Think** in the background (:class:`~tgs.core.rethink.Rethinker`): the last think
   window (10 s at 1 fps, with its audio), every ``rethink_every`` seconds of stream time.
   Until an expression's first answer its masks are empty (the frames keep flowing). With
   no thinker (``"direct"``) the expression itself is the object text from the first frame.
2. **Ground** an expression's object text on the current frame (the Ground + Segment
   stage's :meth:`~tgs.ground_segment.GroundSegmentStage.ground_select`: Grounding DINO, the
   preset's box rule; a box scoring at least ``propagation_min_seed_score`` seeds) when its
   text is decided or changes, and again every ``reground_every`` seconds while it has no
   object (nothing found, or the tracked mask went empty: the object left). Several
   expressions grounded on one frame share the image work (``ground_many``, the counted
   ``ground.many`` fast path) under the preset's ``share_across_expressions``. Object texts
   come from the same stage (:meth:`~tgs.ground_segment.GroundSegmentStage.object_text`: a
   missing-tag fallback is logged once per expression, not once per think window).
3. **Seed** the found box into the :class:`~tgs.segment.online.OnlineTracker` (the stage's
   video segmenter's :meth:`~tgs.segment.Sam2VideoSegmenter.online_tracker`, under the
   preset's :func:`~tgs.core.dense.propagation_policy`; a changed text or a found-again
   object starts that expression's track afresh; the others are untouched) and **track**
   every expression on every emitted frame, state pruned.

Per frame the result carries ``arrival`` (when the source decoded it), ``latency``
(arrival to mask), ``skipped`` (frames the source's real-time policy dropped just before
it) and ``timings`` ("ground", "track", "postprocess"). Memory is flat: nothing grows
with the stream but the answers record, whose spans grow with the thinker's changes of
mind (:class:`~tgs.core.rethink.AnswerLog`); latency quantiles come from a bounded window
of the most recent frames (:class:`LatencyStats`).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tgs.core.dense import propagation_policy
from tgs.core.rethink import Answer, Rethinker
from tgs.ground_segment import GroundSegmentStage, ObjectText
from tgs.presets import Preset
from tgs.segment.online import OnlineSegmenter, OnlineTracker
from tgs.segment.propagation import mask_box
from tgs.think.base import direct_thought
from tgs.types import Clip, FrameResult, Query

__all__ = ["LatencyStats", "LiveOptions", "LiveRun"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LiveOptions:
    """How a live run thinks and grounds.

    rethink_every: seconds of stream time between thinks (None: ``think_seconds``, each
        completed window; the CLI's ``--rethink-every``).
    think_seconds: the span of the think window (None: the source's ``think_seconds``, 10 s at
        1 fps by default, as in training; at most that, the span its rings keep).
    first_think: stream time of the first think (None: ``think_seconds``, the first
        completed window; earlier thinks see a shorter window).
    reground_every: seconds of stream time between groundings of an expression that has
        no object (nothing found yet, or its tracked mask went empty).
    wait_for_think: wait for each think on the frame its window ended on, so its answers
        apply there: reproducible (files under the every-frame policy, tests), but the
        frames stall while the thinker runs. Off (default), thinking never stalls the frames
        and an answer applies to the first frame after it finished.
    latency_window: the p50 / p95 latencies are over this many most recent frames (a
        bounded deque: memory flat over hours); the max, mean and counts are over all.
    close_timeout: seconds the end of the run waits for a think still running (its answers
        are recorded) before abandoning it (logged, counted as ``abandoned``); None: no limit.
    """

    rethink_every: float | None = None
    think_seconds: float | None = None
    first_think: float | None = None
    reground_every: float = 1.0
    wait_for_think: bool = False
    latency_window: int = 4096
    close_timeout: float | None = 10.0

    def __post_init__(self) -> None:
        if (self.think_seconds is not None and self.think_seconds <= 0) or self.reground_every <= 0 \
                or self.latency_window < 1 or (self.close_timeout is not None and self.close_timeout < 0):
            raise ValueError("live options: think_seconds and reground_every must be > 0, latency_window >= 1, "
                             "close_timeout >= 0")
        if self.rethink_every is not None and self.rethink_every <= 0:
            raise ValueError(f"--rethink-every: expected seconds > 0, got {self.rethink_every}")


class LatencyStats:
    """Arrival-to-mask latency and skipped frames of a run, in bounded memory.

    p50 / p95 are over the last ``window`` emitted frames (numpy on a deque of that many
    floats); count, mean, max and the skipped total are running values over the whole run.
    """

    def __init__(self, window: int = 4096) -> None:
        self.recent: deque[float] = deque(maxlen=window)
        self.frames = 0
        self.skipped = 0
        self.total = 0.0
        self.max = 0.0

    def add(self, latency: float, skipped: int) -> None:
        self.recent.append(latency)
        self.frames += 1
        self.skipped += int(skipped)
        self.total += latency
        self.max = max(self.max, latency)

    def quantile(self, q: float) -> float | None:
        return float(np.quantile(np.fromiter(self.recent, float), q)) if self.recent else None

    def record(self) -> dict[str, Any]:
        """For result.json (seconds)."""
        decoded = self.frames + self.skipped

        def rounded(value: float | None) -> float | None:
            return None if value is None else round(value, 6)

        return {
            "frames_emitted": self.frames,
            "frames_skipped": self.skipped,
            "skipped_ratio": round(self.skipped / decoded, 6) if decoded else 0.0,
            "latency_s": {
                "p50": rounded(self.quantile(0.5)),
                "p95": rounded(self.quantile(0.95)),
                "mean": rounded(self.total / self.frames) if self.frames else None,
                "max": rounded(self.max) if self.frames else None,
                "quantiles_over_last": len(self.recent),
            },
        }


@dataclass
class _Expression:
    """One expression's live state."""

    query: Query
    object_text: ObjectText | None = None  # None: no answer yet
    tracking: bool = False  # the tracker has it
    lost: bool = False  # tracked, but its mask is empty: grounded again every reground_every
    next_ground: float = 0.0  # stream time of the next grounding while it has no object
    changed: bool = False  # its text was (re)decided: ground on this frame
    answer: tuple[float, float] | None = None  # the window of the answer in force


class LiveRun:
    """The live mode: think, ground, seed and track on a live source; :meth:`frames` yields
    one :class:`~tgs.types.FrameResult` per emitted frame (see the module docstring).

    source: a :class:`tgs.sources.LiveSource` (its policy, ``realtime`` or ``every-frame``,
    decides which frames are emitted and the ``skipped`` counts). thinker: a loaded thinker,
    or None for the direct baseline (the expression is the object text). stage: the
    :class:`~tgs.ground_segment.GroundSegmentStage` (a grounder, a SAM2-family video
    segmenter, a preset): it chooses object texts and grounds them with the preset's box rule,
    and its segmenter's :meth:`~tgs.segment.Sam2VideoSegmenter.online_tracker` (under the
    preset's propagation switches) tracks them. expressions: strings (numbered ``expr0``,
    ``expr1``, ...) or :class:`~tgs.types.Query` objects. preset: None for the stage's; another
    one is composed with the stage's grounder and segmenter (its object-text rules,
    ``box_rule``, ``propagation_min_seed_score``, ``share_across_expressions`` and
    ``propagation_max_conditioning_frames`` apply). options: :class:`LiveOptions`
    (``rethink_every``, ``think_seconds``, ``first_think``, ``reground_every``,
    ``wait_for_think``, ``latency_window``, ``close_timeout``). The frame policy is the source's (``open_source(policy=...)``:
    ``realtime`` skips to the newest frame, ``every-frame`` never skips). on_answer: called
    with every thinker answer as it is applied (an ``answers.jsonl`` sink).
    """

    def __init__(
        self,
        source: Any,
        *,
        thinker: Any | None,
        stage: GroundSegmentStage,
        expressions: Sequence[str | Query],
        preset: Preset | None = None,
        options: LiveOptions | None = None,
        on_answer: Callable[[Answer], None] | None = None,
    ) -> None:
        if not expressions:
            raise ValueError("live mode: give at least one expression")
        if preset is not None and preset != stage.preset:
            stage = GroundSegmentStage(stage.grounder, stage.segmenter, preset)
        if not isinstance(stage.segmenter, OnlineSegmenter):
            raise ValueError("live mode needs a SAM2-family video segmenter (e.g. the edgetam or sam2.1 "
                             "propagation model); this pipeline's segmenter cannot track a stream")
        self.source = source
        self.stage = stage
        self.tracker: OnlineTracker = stage.segmenter.online_tracker(propagation_policy(stage.preset))
        self.preset = stage.preset
        self.options = options or LiveOptions()
        self.expressions = [_Expression(e if isinstance(e, Query) else Query(uid=f"expr{k}", expression=str(e)))
                            for k, e in enumerate(expressions)]
        self.latency = LatencyStats(self.options.latency_window)
        self.counts = {"groundings": 0, "seeds": 0, "lost": 0}
        direct = thinker is None or getattr(thinker, "name", None) == "direct"
        self.rethinker: Rethinker | None = None
        if direct:
            for expr in self.expressions:
                self._decide(expr, stage.object_text(direct_thought(expr.query), expr.query), None)
        else:
            o = self.options
            kept = float(getattr(source, "think_seconds", 10.0))
            seconds = o.think_seconds if o.think_seconds is not None else kept
            if seconds > kept + 1e-9:
                raise ValueError(f"live mode: a {seconds:g}-s think window, but the source keeps {kept:g} s "
                                 f"(open it with think_seconds={seconds:g})")
            self.rethinker = Rethinker(
                thinker, [e.query for e in self.expressions], stage.object_text, window_seconds=seconds,
                every=o.rethink_every, first=o.first_think, wait=o.wait_for_think,
                source=str(getattr(source, "spec", "live")), on_answer=on_answer,
            )

    @classmethod
    def from_pipeline(cls, source: Any, pipeline: Any, expressions: Sequence[str | Query], *,
                      options: LiveOptions | None = None,
                      on_answer: Callable[[Answer], None] | None = None) -> LiveRun:
        """A run on a loaded :class:`tgs.core.Pipeline` (its thinker and its Ground + Segment
        stage: grounder, SAM2-family video segmenter, preset)."""
        if pipeline.ground_segment is None:
            raise ValueError("live mode needs Ground + Segment: load the pipeline with its grounder and a "
                             "SAM2-family video segmenter")
        return cls(source, thinker=pipeline.thinker, stage=pipeline.ground_segment, expressions=expressions,
                   options=options, on_answer=on_answer)

    # ------------------------------------------------------------------ the frame loop

    def frames(self) -> Iterator[FrameResult]:
        """One FrameResult per frame the source emits, until it ends; the background thinker
        stops when the loop ends (or the consumer stops iterating)."""
        try:
            for frame in self.source.frames():
                yield self._frame(frame)
        finally:
            if self.rethinker is not None:
                self.rethinker.close(self.options.close_timeout)

    def _frame(self, frame: Any) -> FrameResult:
        now, image = float(frame.time), frame.image
        timings: dict[str, float] = {}
        if self.tracker.size is not None and self.tracker.size != image.shape[:2]:
            self._restart(image.shape[:2])
        if self.rethinker is not None:
            for answer in self.rethinker.poll(now, self.source.think_window):
                if answer.object_text is not None:
                    self._decide(self.expressions[answer.expression], answer.object_text, (answer.start, answer.end))
        n = len(self.expressions)
        boxes: list[tuple[float, float, float, float] | None] = [None] * n
        scores = np.full((n,), np.nan, dtype=np.float32)
        grounded = np.zeros((n,), dtype=np.bool_)
        details: list[dict[str, Any] | None] = [None] * n
        seeds = self._ground(image, now, boxes, scores, grounded, details, timings)
        start = time.perf_counter()
        tracked = self.tracker.step(image, seeds)
        timings["track"] = time.perf_counter() - start
        start = time.perf_counter()
        height, width = image.shape[:2]
        masks = np.zeros((n, height, width), dtype=np.bool_)
        seeded = np.zeros((n,), dtype=np.bool_)
        for k, expr in enumerate(self.expressions):
            details[k] = {**(details[k] or {}), "object_text": None if expr.object_text is None else expr.object_text.text,
                          "answer": None if expr.answer is None else [round(v, 6) for v in expr.answer]}
            obj = tracked.get(k)
            if obj is None:
                continue
            masks[k], seeded[k] = obj.mask, obj.seeded
            if not obj.seeded:  # tracked (a seeded frame reports its grounded box and score)
                scores[k] = obj.presence
                box = mask_box(obj.mask)
                boxes[k] = None if box is None else tuple(float(v) for v in box)  # type: ignore[assignment]
            if obj.mask.any():
                expr.lost = False
            elif not expr.lost:  # the object left (or hides): tracked on, and grounded again from now on
                expr.lost = True
                expr.next_ground = now + self.options.reground_every
                self.counts["lost"] += 1
        timings["postprocess"] = time.perf_counter() - start
        latency = time.monotonic() - frame.arrival
        self.latency.add(latency, frame.skipped)
        return FrameResult(
            index=int(frame.index), time=now, image=image, masks=masks, boxes=boxes, scores=scores,
            grounded=grounded, seeded=seeded, details=details, timings=timings, arrival=frame.arrival,
            latency=latency, skipped=int(frame.skipped),
        )

    def _restart(self, size: tuple[int, int]) -> None:
        """The stream's frame size changed (a reconnect to another rendition): a new tracker,
        every expression grounded again on this frame."""
        logger.warning("live source: frame size changed from %s to %s; grounding every expression again",
                       self.tracker.size, tuple(size))
        self.tracker = self.tracker.fresh()
        for expr in self.expressions:
            expr.tracking = expr.lost = False
            expr.changed = expr.object_text is not None

    def _decide(self, expr: _Expression, object_text: ObjectText, window: tuple[float, float] | None) -> None:
        """An answer for ``expr``: a new object text is grounded on this frame, the same one
        keeps its track."""
        expr.answer = window
        if expr.object_text is not None and expr.object_text.text == object_text.text:
            return
        expr.object_text = object_text
        expr.changed = True

    def _ground(self, image: np.ndarray, now: float, boxes: list, scores: np.ndarray, grounded: np.ndarray,
                details: list, timings: dict[str, float]) -> dict[int, np.ndarray | None]:
        """Ground the expressions due on this frame; the tracker seeds ({k: box, or None to drop})."""
        seeds: dict[int, np.ndarray | None] = {}
        due = []
        for k, expr in enumerate(self.expressions):
            if expr.object_text is None:
                continue
            if expr.changed:
                expr.changed = False
                if expr.tracking:  # the old object is no longer the one referred to
                    seeds[k] = None
                    expr.tracking = False
                if expr.object_text.text is not None:
                    due.append(k)
            elif (not expr.tracking or expr.lost) and expr.object_text.text is not None \
                    and now + 1e-9 >= expr.next_ground:
                due.append(k)
        if not due:
            return seeds
        start = time.perf_counter()
        clip = Clip(image[None], None, None, np.array([now], dtype=np.float64), str(getattr(self.source, "spec", "")))
        texts = [self.expressions[k].object_text.text for k in due]  # type: ignore[union-attr]
        found = self.stage.ground_select(clip, texts)  # type: ignore[arg-type]
        timings["ground"] = time.perf_counter() - start
        self.counts["groundings"] += len(due)
        for k, (result, chosen) in zip(due, found, strict=True):
            expr = self.expressions[k]
            grounded[k] = True
            candidates, position = result.frames[0], chosen[0]
            details[k] = {"candidates": len(candidates), "query_index": None}
            if position is not None and float(candidates.scores[position]) >= self.preset.propagation_min_seed_score:
                box = candidates.xyxy[position].astype(np.float32)
                seeds[k] = box
                boxes[k] = tuple(float(v) for v in box)
                scores[k] = float(candidates.scores[position])
                details[k]["query_index"] = int(candidates.query_index[position])
                expr.tracking, expr.lost = True, False
                self.counts["seeds"] += 1
            else:
                expr.next_ground = now + self.options.reground_every
        return seeds

    # ------------------------------------------------------------------ results

    def record(self) -> dict[str, Any]:
        """The live block of result.json: latency and skips, groundings, and the answers over
        time (with the think schedule) when a thinker runs."""
        out: dict[str, Any] = {**self.latency.record(), **self.counts,
                               "reground_every": self.options.reground_every}
        source_stats = getattr(self.source, "stats", None)
        if source_stats is not None:  # decoded == emitted + skipped + unread (decoded as the run ended)
            out["frames_decoded"] = int(source_stats.frames_decoded)
            out["frames_unread"] = int(getattr(source_stats, "frames_unread", 0))
        if self.rethinker is not None:
            out["think"] = self.rethinker.record()
        else:
            out["think"] = {"answers": [[{"start": 0.0, "end": None, "object_text": e.object_text.text,  # type: ignore[union-attr]
                                          "object_source": "direct"}] for e in self.expressions]}
        return out
