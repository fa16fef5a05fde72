"""``tgs segment SOURCE`` on a live source: a live session fed into outputs that are valid at every
moment, and result.json when it ends.

``segment_live("tcp://host:5000", ["the person speaking"], out="live")`` writes::

    OUT/
      masks.jsonl      one flushed line per emitted frame (:mod:`tgs.masks_jsonl`): its time,
                       latency, skipped count and every expression's mask (COCO RLE), box, score
      overlay.mp4      a fragmented MP4 (playable while it grows and after a crash), at the
                       source's rate: a frame skipped by the real-time policy repeats the last
                       overlay frame, so the overlay keeps the stream's timeline (it is silent)
      masks/<k>/NNNNN.png  with ``png``: a PNG per emitted frame and expression
      result.json      when the run ends (end of stream, a dropped connection, Ctrl-C, SIGTERM):
                       the one builder's record (:func:`tgs.core.segment_result.result_record`)
                       with its ``live`` block: latency p50 / p95, skipped frames, the answers
                       over time with their spans, reconnect gaps (``docs/live.md``)

It is a composition, as :func:`tgs.core.segment.segment_video` is: the session
(:func:`tgs.core.segment.open_video` on a live source: a :class:`~tgs.core.session.VideoSession`
in the live mode, :mod:`tgs.core.live_mode`) whose frames stream into :func:`live_sinks`.
Unlike a file's outputs, the live ones are written under their final names from the first frame
(a rename would hide the whole recording until the end); result.json is written under a partial
name and renamed.

Stopping. ``session.stop()`` (thread-safe) closes the source; the frame being processed is
finished and written, ``frames()`` ends, and every output is closed normally. With
``signals=True`` (the CLI) SIGINT and SIGTERM do that; a second one raises KeyboardInterrupt,
which still ends the outputs (a live sink's abort keeps what it wrote) and writes result.json
before it propagates.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tgs import fast_paths
from tgs.core.live_mode import LiveSettings
from tgs.core.segment_call import recorded_warnings, warning_lines
from tgs.core.segment_result import (
    MASKS_DIR,
    MASKS_JSONL,
    OVERLAY_NAME,
    RESULT_NAME,
    previous_outputs,
    result_record,
    video_result,
    write_json,
)
from tgs.core.settings import Settings
from tgs.errors import RunError
from tgs.model_cache import ModelCache
from tgs.presets import Preset
from tgs.types import FrameResult, FrameSink

__all__ = ["LiveResult", "live_sinks", "segment_live", "stop_on_signals"]

logger = logging.getLogger(__name__)


def live_sinks(session: Any, out_dir: Path, *, png: bool = False) -> list[FrameSink]:
    """The outputs of a live session: masks.jsonl, the fragmented overlay (skipped frames held),
    and with ``png`` a PNG per emitted frame and expression. Every one is valid at every moment:
    written under its final name, line by line / fragment by fragment (``docs/live.md``)."""
    from tgs.dense_outputs import MaskPngSink, OverlayVideoSink
    from tgs.masks_jsonl import MasksJsonlSink

    count, mode = len(session.texts), session.mode
    sinks: list[FrameSink] = [
        MasksJsonlSink(out_dir / MASKS_JSONL, session.texts, fps=getattr(mode.source, "fps", None),
                       source=session.source),
        OverlayVideoSink(out_dir / OVERLAY_NAME, mode.fps, count, names=session.legend, fragmented=True,
                         hold_skipped=True),
    ]
    if png:
        sinks.append(MaskPngSink(out_dir / MASKS_DIR, count))
    return sinks


@dataclass(frozen=True)
class LiveResult:
    """What a live run wrote and measured: the output paths, the frame count, why it ended, and
    result.json's record (its ``live`` block: :attr:`live`)."""

    out_dir: Path
    masks_jsonl: Path
    overlay_video: Path
    result_json: Path
    frames_emitted: int
    end: str
    record: dict[str, Any]
    untrained: bool = False

    @property
    def live(self) -> dict[str, Any]:
        return self.record["live"]


@contextlib.contextmanager
def stop_on_signals(session: Any) -> Iterator[None]:
    """SIGINT / SIGTERM stop ``session`` cleanly (``session.stop``); a second one raises
    KeyboardInterrupt. Installed only in the main thread (where Python runs signal handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    names = {signal.SIGINT: "interrupted (SIGINT)", signal.SIGTERM: "terminated (SIGTERM)"}

    def handler(signum: int, _frame: Any) -> None:
        if session.mode.stop_reason is not None:
            raise KeyboardInterrupt
        logger.info("stopping the live run (%s)", names[signal.Signals(signum)])
        session.stop(names[signal.Signals(signum)])

    previous = {sig: signal.signal(sig, handler) for sig in names}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _clear_previous(out_dir: Path) -> None:
    """What a previous call wrote in OUT and this one replaces: result.json first (it must never
    describe the new files), the live outputs, a file run's overlay, masks.json and mask PNGs."""
    (out_dir / RESULT_NAME).unlink(missing_ok=True)
    (out_dir / MASKS_JSONL).unlink(missing_ok=True)
    for path in previous_outputs(out_dir):
        path.unlink(missing_ok=True)


def segment_live(
    source: str | Path,
    expressions: str | Sequence[str],
    *,
    thinker: str = "ref-thinker",
    preset: str | Preset = "best",
    settings: Settings | None = None,
    out: Path | None = None,
    live: LiveSettings | None = None,
    thinker_options: Mapping[str, Any] | None = None,
    cache: ModelCache | None = None,
    signals: bool = False,
    on_start: Callable[[Any], None] | None = None,
    on_frame: Callable[[FrameResult], None] | None = None,
    open_source: Callable[..., Any] | None = None,
) -> LiveResult:
    """Segment a live source until it ends (or is stopped) into ``out`` (see the module docstring).

    source: a camera (``/dev/video0``, ``v4l2:...``), a stream URL (rtsp, rtmp, srt, udp, tcp,
    a live HLS playlist) or ``-`` (standard input). live: :class:`~tgs.core.live_mode.LiveSettings`.
    signals: SIGINT / SIGTERM stop the run cleanly (main thread only; the CLI). on_start(session):
    once the source is open (e.g. a console status); on_frame(frame): after each frame reached
    every output. Raises SettingsError / ValueError / MissingWeightsError before anything is
    loaded or written; MediaError when the source cannot be opened (nothing written); RunError
    when another call writes into ``out``.
    """
    from tgs.core.segment import open_video
    from tgs.output_folder import lock_folder
    from tgs.paths import check_output_folder

    live = live or LiveSettings()
    out_dir = Path(out) if out is not None else Path("segment_live")
    with recorded_warnings() as caught, fast_paths.counting():
        session = open_video(source, expressions, thinker=thinker, preset=preset, settings=settings,
                             thinker_options=thinker_options, cache=cache, live=live, open_source=open_source)
        check_output_folder(out_dir, [], (OVERLAY_NAME, MASKS_JSONL, MASKS_DIR, RESULT_NAME))
        lock = lock_folder(out_dir, "output folder", RunError, reentrant=False)
        try:
            with session:
                _clear_previous(out_dir)
                sinks = live_sinks(session, out_dir, png=live.png)
                if on_start is not None:
                    on_start(session)
                with stop_on_signals(session) if signals else contextlib.nullcontext():
                    try:
                        _feed(session, sinks, on_frame)
                    finally:  # also on a second Ctrl-C or an error: result.json says what was written
                        session.timer.add("total", time.perf_counter() - session.started)
                        summary = session.summary()
                        result = video_result(summary, out_dir, session.timer.seconds, warning_lines(caught))
                        record = result_record(result, summary)
                        write_json(out_dir / RESULT_NAME, record)
        finally:
            if lock is not None:
                lock.close()
    return LiveResult(out_dir=out_dir, masks_jsonl=out_dir / MASKS_JSONL, overlay_video=out_dir / OVERLAY_NAME,
                      result_json=out_dir / RESULT_NAME, frames_emitted=session.mode.frames_emitted,
                      end=session.mode.end_reason, record=record, untrained=session.call.settings.untrained)


def _feed(session: Any, sinks: Sequence[FrameSink], on_frame: Callable[[FrameResult], None] | None) -> None:
    """Every frame into every sink; the sinks closed at the end, aborted on an exception (a live
    sink's abort keeps every complete line / fragment)."""
    mode = session.mode
    start = time.perf_counter()
    try:
        for frame in session.frames():
            write = time.perf_counter()
            for sink in sinks:
                sink.add(frame)
            session.timer.add("write", time.perf_counter() - write)
            if on_frame is not None:
                on_frame(frame)
    except BaseException as exc:
        mode.stop_reason = mode.stop_reason or (
            "interrupted" if isinstance(exc, KeyboardInterrupt) else f"error: {type(exc).__name__}: {exc}")
        for sink in sinks:
            sink.abort()
        raise
    finally:
        session.timer.add("frames", time.perf_counter() - start)
    for sink in sinks:
        sink.close()
