"""The background thinker of a live stream: the last think window, thought about on a schedule.

A live stream has no end to summarise, so the thinker sees what it was trained on: the
last ``window_seconds`` (10 s) of the stream, frames at 1 fps and the 16 kHz audio of the
same span (the source's :meth:`think_window`, cut from its ring buffers). Every
``every`` seconds of stream time (default: each completed window) :class:`Rethinker`
takes that window on the frame loop's thread, which only copies it, and asks the thinker
on a worker thread, with the same Think call as the file mode
(:func:`tgs.core.stages.think_items`: every expression of the window in one call, sharing
the clip). The frame loop never waits for it: :meth:`Rethinker.poll`, called once per
frame, starts a think when one is due and none is running, and returns the answers that
finished since the last poll. A think still running when the next one is due delays it to
the first frame after it finished; slots that pass entirely meanwhile are skipped (counted
as ``missed``), never queued: an answer about an old window is worth less than one about
the newest.

Each answer is an :class:`Answer` per expression with its window's time span, the object
text the preset's rules choose from the thought (the Ground + Segment stage's
:meth:`~tgs.ground_segment.GroundSegmentStage.object_text`, which logs a missing-tag fallback
once per expression, not once per window) and the thought. :class:`AnswerLog` keeps the
answers over time as spans: consecutive windows that chose the same object text form one
span, so the record grows with the changes of mind, not with the stream's length; every
answer also goes to ``on_answer`` (e.g. an ``answers.jsonl`` sink) as it comes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from tgs.core.stages import think_items
from tgs.data.media import REF_AVS_SAMPLE_RATE
from tgs.ground_segment import ObjectText
from tgs.think.base import Thinker
from tgs.types import Clip, Query, Thought

__all__ = ["Answer", "AnswerLog", "Rethinker", "window_clip"]

logger = logging.getLogger(__name__)

def window_clip(window: Any, source: str = "live") -> Clip:
    """The :class:`~tgs.types.Clip` of a think window (frames at 1 fps, 16 kHz audio or none)."""
    audio = np.asarray(window.audio, dtype=np.float32) if window.audio is not None else None
    if audio is not None and audio.shape[0] == 0:
        audio = None
    return Clip(
        frames=np.ascontiguousarray(window.frames, dtype=np.uint8),
        audio=audio,
        sample_rate=int(getattr(window, "sample_rate", REF_AVS_SAMPLE_RATE)) if audio is not None else None,
        frame_times=np.asarray(window.frame_times, dtype=np.float64),
        source=f"{source} [{window.start:.2f}s, {window.end:.2f}s]",
    )


@dataclass(frozen=True, eq=False)
class Answer:
    """One expression's answer about one think window.

    expression: the expression's position; start / end: the window's span (stream seconds);
    object_text: what the preset's rules ground (``text`` None: nothing, a null answer);
    None with ``error`` set when the think failed (the expression keeps its object text).
    """

    expression: int
    start: float
    end: float
    object_text: ObjectText | None
    thought: Thought | None
    error: str | None = None

    @property
    def text(self) -> str | None:
        return None if self.object_text is None else self.object_text.text

    def record(self) -> dict[str, Any]:
        """A JSON-ready line (``answers.jsonl``)."""
        thought = self.thought
        return {
            "expression": self.expression,
            "start": round(self.start, 6),
            "end": round(self.end, 6),
            "object_text": self.text,
            "object_source": None if self.object_text is None else self.object_text.source,
            "status": None if thought is None else thought.status.value,
            "reasoning": None if thought is None else thought.reasoning,
            "raw": None if thought is None else thought.raw,
            "error": self.error,
        }


class AnswerLog:
    """Per expression, the answers over time as spans of windows that chose the same object
    text: ``{"start", "end", "object_text", "object_source", "windows", "thought"}`` (the
    thought that first chose the text: status, reasoning, raw; ``failed`` counts the failed
    thinks inside the span, which kept the text)."""

    def __init__(self, count: int) -> None:
        self.spans: list[list[dict[str, Any]]] = [[] for _ in range(count)]

    def add(self, answer: Answer) -> bool:
        """Record ``answer``; True when it changes the expression's object text (a new span)."""
        spans = self.spans[answer.expression]
        last = spans[-1] if spans else None
        if answer.object_text is None:  # failed: the current span (if any) goes on
            if last is not None:
                last["end"] = round(answer.end, 6)
                last["failed"] += 1
            return False
        if last is not None and last["object_text"] == answer.text:
            last["end"] = round(answer.end, 6)
            last["windows"] += 1
            return False
        line = answer.record()
        spans.append({
            "start": line["start"], "end": line["end"], "object_text": line["object_text"],
            "object_source": line["object_source"], "windows": 1, "failed": 0,
            "thought": {"status": line["status"], "reasoning": line["reasoning"], "raw": line["raw"]},
        })
        return True

    def current(self, expression: int) -> dict[str, Any] | None:
        spans = self.spans[expression]
        return spans[-1] if spans else None


class Rethinker:
    """Thinks about the last window of a stream on a worker thread, on a schedule.

    thinker: a loaded thinker (the Think stage); queries: one per expression; object_text: the
    object text of a (thought, query) under the preset's rules (the Ground + Segment stage's
    :meth:`~tgs.ground_segment.GroundSegmentStage.object_text`). first: stream time of the
    first think (default: the first completed window, ``window_seconds``); every: seconds of stream time between thinks (default:
    ``window_seconds``, each completed window). wait: each think is waited for in the
    :meth:`poll` that started it (its answers apply to the frame its window ended on): for
    runs that must be reproducible (files under the every-frame policy, tests), at the cost
    of stalling the frames for each think. :meth:`close` waits for a think still running (up
    to a timeout), so ``started == finished + failed + abandoned`` in :meth:`record`.
    """

    def __init__(
        self,
        thinker: Thinker,
        queries: Sequence[Query],
        object_text: Callable[[Thought, Query], ObjectText],
        *,
        window_seconds: float = 10.0,
        every: float | None = None,
        first: float | None = None,
        wait: bool = False,
        source: str = "live",
        on_answer: Callable[[Answer], None] | None = None,
    ) -> None:
        if window_seconds <= 0 or (every is not None and every <= 0) or (first is not None and first < 0):
            raise ValueError(f"rethink: expected window_seconds > 0, every > 0 and first >= 0, got "
                             f"{window_seconds}, {every}, {first}")
        self.thinker = thinker
        self.queries = list(queries)
        self.object_text = object_text
        self.window_seconds = float(window_seconds)
        self.every = float(every if every is not None else window_seconds)
        self.due = float(first if first is not None else window_seconds)
        self.wait_each = wait
        self.source = source
        self.on_answer = on_answer
        self.log = AnswerLog(len(self.queries))
        self.counts = {"started": 0, "finished": 0, "failed": 0, "abandoned": 0, "missed": 0}
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tgs-rethink")
        self._running: Future | None = None
        self._window: tuple[float, float] | None = None
        self._closed = False

    # ------------------------------------------------------------------ frame loop side

    def poll(self, now: float, take_window: Callable[[float], Any]) -> list[Answer]:
        """Called once per frame (stream time ``now``): the answers finished since the last
        poll, after starting a think when one is due and none runs. ``take_window(seconds)``
        returns the source's think window (None before any frame)."""
        if self._closed:
            return []
        answers = self._collect() if self._running is not None and self._running.done() else []
        if self._running is None and now + 1e-9 >= self.due:
            window = take_window(self.window_seconds)
            if window is not None and len(window.frame_times):
                self._start(window)
                missed = math.floor((now - self.due) / self.every + 1e-9)
                self.counts["missed"] += max(0, missed)
                self.due += self.every * (max(0, missed) + 1)
                if self.wait_each:
                    answers += self.wait()
        return answers

    def wait(self) -> list[Answer]:
        """Block until the running think (if any) finishes; its answers."""
        if self._running is None:
            return []
        self._running.exception()  # waits; the outcome is read by _collect
        return self._collect()

    def join(self, timeout: float | None = None) -> bool:
        """Block until the running think (if any) has finished, leaving its answers to the next
        :meth:`poll`; False when ``timeout`` passed first."""
        if self._running is None:
            return True
        try:
            self._running.exception(timeout)
        except TimeoutError:
            return False
        return True

    @property
    def busy(self) -> bool:
        return self._running is not None

    def close(self, timeout: float | None = 10.0) -> list[Answer]:
        """Stop: no new think starts; a think still running is waited for up to ``timeout``
        seconds (None: for as long as it takes) and its answers are recorded and returned
        (the frames have ended: they apply to none). One that outlasts the timeout is
        abandoned: logged, counted (``abandoned``), and left to finish on its thread, unread.
        Closing again does nothing."""
        if self._closed:
            return []
        self._closed = True
        answers: list[Answer] = []
        if self._running is not None:
            if self.join(timeout):
                answers = self._collect()
            else:
                start, end = self._window  # type: ignore[misc]
                logger.warning("the think over [%.1fs, %.1fs] was still running %s s after the stream ended; "
                               "abandoned, its answers are not recorded", start, end, timeout)
                self.counts["abandoned"] += 1
                self._running = None
        self._pool.shutdown(wait=False, cancel_futures=True)
        return answers

    # ------------------------------------------------------------------ internals

    def _start(self, window: Any) -> None:
        clip = window_clip(window, self.source)
        self._window = (float(window.start), float(window.end))
        self.counts["started"] += 1
        logger.debug("thinking about %s", clip.source)
        self._running = self._pool.submit(think_items, self.thinker, [(q, clip) for q in self.queries])

    def _collect(self) -> list[Answer]:
        future, (start, end) = self._running, self._window  # type: ignore[misc]
        self._running = None
        try:
            outcomes: list[Thought | Exception] = future.result()  # type: ignore[union-attr]
        except Exception as exc:  # the whole call failed: every expression keeps its text
            outcomes = [exc] * len(self.queries)
        answers = []
        for k, (query, outcome) in enumerate(zip(self.queries, outcomes, strict=True)):
            if isinstance(outcome, Exception):
                logger.warning("the thinker failed on %r over [%.1fs, %.1fs]: %s; keeping its object text",
                               query.expression, start, end, outcome)
                answers.append(Answer(k, start, end, None, None, error=f"{type(outcome).__name__}: {outcome}"))
            else:
                answers.append(Answer(k, start, end, self.object_text(outcome, query), outcome))
        failed = any(a.error is not None for a in answers)
        self.counts["failed" if failed else "finished"] += 1
        for answer in answers:
            self.log.add(answer)
            if self.on_answer is not None:
                self.on_answer(answer)
        return answers

    def record(self) -> dict[str, Any]:
        """For result.json: the schedule, the think counts and the answers over time."""
        return {
            "window_seconds": self.window_seconds,
            "every": self.every,
            "thinks": dict(self.counts),
            "answers": self.log.spans,
        }
