"""A live run: a camera, a network stream or standard input segmented as its frames arrive,
into outputs that are valid at every moment, and a result.json when it ends.

``segment_live("tcp://host:5000", ["the person speaking"], out="live")`` writes::

    OUT/
      masks.jsonl      one flushed line per emitted frame (:mod:`tgs.masks_jsonl`): its time,
                       latency, skipped count and every expression's mask (COCO RLE), box, score
      overlay.mp4      a fragmented MP4 (playable while it grows and after a crash), at the
                       source's rate: a frame skipped by the real-time policy repeats the last
                       overlay frame, so the overlay keeps the stream's timeline (it is silent)
      masks/<k>/NNNNN.png  with ``png``: a PNG per emitted frame and expression
      result.json      when the run ends (end of stream, a dropped connection, Ctrl-C, SIGTERM):
                       latency p50 / p95, skipped frames, the answers over time with their
                       spans, reconnect gaps, fast paths, settings (``docs/live.md``)

It is a composition. :class:`LiveSession` (the session of a live source: what
:func:`tgs.core.segment.open_video` returns for one) loads the models of the dense mode's
:class:`~tgs.core.load_spec.LoadSpec` (the thinker is kept: it thinks in the background),
opens the source (:func:`tgs.sources.open_source`, after the models are loaded, so the
stream is not skipped while they load) and runs :class:`tgs.core.live.LiveRun`; its
``frames()`` yields one :class:`~tgs.types.FrameResult` per emitted frame. :func:`live_sinks`
are its outputs; :func:`segment_live` feeds one into the other and writes result.json.

Stopping. :meth:`LiveSession.stop` (thread-safe, also from a signal handler) closes the source;
the frame being processed is finished and written, ``frames()`` ends, and every output is
closed normally. With ``signals=True`` (the CLI) SIGINT and SIGTERM do that; a second one
raises KeyboardInterrupt, which still ends the outputs (a live sink's abort keeps what it
wrote) and writes result.json before it propagates.
"""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tgs import fast_paths
from tgs.core.segment_call import (
    CallSettings,
    Timer,
    call_settings,
    check_expressions,
    recorded_warnings,
    segment_load_spec,
    warning_lines,
)
from tgs.core.segment_result import MASKS_DIR, OVERLAY_NAME, RESULT_NAME, RESULT_SCHEMA, write_json
from tgs.core.settings import UNTRAINED_LABEL, Settings
from tgs.errors import RunError, SettingsError
from tgs.model_cache import ModelCache
from tgs.presets import Preset
from tgs.sources import ReconnectPolicy, detect_source
from tgs.types import FrameResult, FrameSink

__all__ = [
    "DEFAULT_LIVE_FPS",
    "MASKS_JSONL",
    "LiveResult",
    "LiveSession",
    "LiveSettings",
    "check_live_call",
    "is_live",
    "live_sinks",
    "open_live",
    "segment_live",
]

logger = logging.getLogger(__name__)

MASKS_JSONL = "masks.jsonl"

DEFAULT_LIVE_FPS = 25.0
"""The overlay's rate when the source does not say its own (some cameras, raw pipes)."""


REQUEST_SCHEMES = frozenset({"http", "https", "hls", "ftp", "sftp"})
"""URL schemes whose target may be a finite video (segmented as that file, ``tgs.runners.url_video``)
or a live stream (a live HLS playlist); the other stream protocols (rtsp, rtmp, srt, udp, tcp, ...)
are live."""


def is_live(source: str | Path, *, probe: bool = True) -> bool:
    """Whether ``source`` is segmented live: a camera, standard input or a stream URL; not a file,
    nor a URL of a request-based protocol (:data:`REQUEST_SCHEMES`) whose target has a duration (a
    finite video), which ``probe`` finds by opening it once (such a URL can be opened again).
    A URL that cannot be probed counts as finite: the file path reports why it cannot be read."""
    spec = str(source)
    kind = detect_source(spec)
    if kind != "stream":
        return kind != "file"
    if not probe or spec.split("://", 1)[0].lower() not in REQUEST_SCHEMES:
        return True
    return not _has_duration(spec)


def _has_duration(url: str, timeout_s: float = 10.0) -> bool:
    import av

    try:
        with av.open(url, timeout=timeout_s) as container:
            return container.duration is not None and container.duration > 0
    except Exception as exc:  # any failure: the file path opens it again and names the error
        logger.info("%s: cannot probe its duration (%s); reading it as a finite video", url, exc)
        return True


@dataclass(frozen=True)
class LiveSettings:
    """How a live source is read and thought about.

    every_frame: hand out every decoded frame (``every-frame`` policy: never skips, falls
        behind a source faster than the machine); default the real-time policy (the newest
        frame, the others counted as skipped).
    rethink_every: seconds of stream time between thinks (None: each completed think window).
    think_seconds: the think window (the last 10 s at 1 fps with its audio, as in training).
    reconnect: retry a dropped network source with backoff (None: a drop ends the run).
    audio_device: a separate microphone (``alsa:default``, ``pulse:default``, ...), else the
        stream's own audio.
    png: also write a PNG mask per emitted frame and expression.
    wait_for_think: apply each think's answers on the frame its window ended on (the frames
        stall while the thinker runs; reproducible runs and tests).
    """

    every_frame: bool = False
    rethink_every: float | None = None
    think_seconds: float = 10.0
    reconnect: ReconnectPolicy | None = None
    audio_device: str | None = None
    png: bool = False
    wait_for_think: bool = False

    def __post_init__(self) -> None:
        if self.rethink_every is not None and not (math.isfinite(self.rethink_every) and self.rethink_every > 0):
            raise SettingsError(f"--rethink-every: expected seconds > 0, got {self.rethink_every}",
                                fix="e.g. --rethink-every 5")
        if not (math.isfinite(self.think_seconds) and self.think_seconds > 0):
            raise SettingsError(f"think_seconds: expected seconds > 0, got {self.think_seconds}")

    @property
    def policy(self) -> str:
        return "every-frame" if self.every_frame else "realtime"

    def options(self) -> Any:  # tgs.core.live.LiveOptions
        from tgs.core.live import LiveOptions

        return LiveOptions(rethink_every=self.rethink_every, think_seconds=self.think_seconds,
                           wait_for_think=self.wait_for_think)

    def record(self) -> dict[str, Any]:
        policy = self.reconnect
        return {
            "policy": self.policy,
            "rethink_every": self.rethink_every if self.rethink_every is not None else self.think_seconds,
            "think_seconds": self.think_seconds,
            "reconnect": None if policy is None else {"first_delay_s": policy.first_delay_s,
                                                      "max_delay_s": policy.max_delay_s,
                                                      "give_up_after_s": policy.give_up_after_s},
            "audio_device": self.audio_device,
            "png": self.png,
            "wait_for_think": self.wait_for_think,
        }


@dataclass(frozen=True)
class LiveRequest:
    """A live call's arguments, checked (:func:`check_live_call`)."""

    source: str
    kind: str
    texts: list[str]
    out_dir: Path


def check_live_call(
    source: str | Path,
    expressions: str | Sequence[str],
    *,
    thinker: str = "ref-thinker",
    settings: Settings | None = None,
    out: Path | None = None,
    thinker_options: Mapping[str, Any] | None = None,
    outputs: bool = True,
) -> LiveRequest:
    """Every check of a live call that needs neither a model nor the source: the expressions, the
    thinker's options, the device, the output folder (``outputs=False``: a session that writes
    nothing itself). The source itself is opened (and refused, naming it) once the models are
    loaded. SettingsError or ValueError."""
    from tgs.core.loading import check_thinker_options
    from tgs.devices import resolve_device
    from tgs.paths import check_output_folder
    from tgs.think.registry import canonical_name

    spec = str(source)
    kind = detect_source(spec)
    if kind == "file":
        raise SettingsError(f"{spec} is a file, not a live source", fix="segment files with segment_video")
    texts = check_expressions(expressions)
    check_thinker_options(canonical_name(thinker), dict(thinker_options or {}))
    resolve_device((settings or Settings()).device)
    out_dir = Path(out) if out is not None else Path("segment_live")
    if outputs:
        check_output_folder(out_dir, [], (OVERLAY_NAME, MASKS_JSONL, MASKS_DIR, RESULT_NAME))
    return LiveRequest(source=spec, kind=kind, texts=texts, out_dir=out_dir)


def _check_trackable(spec: Any) -> None:
    if spec.grounds_itself:
        raise SettingsError(
            "live input tracks each object frame by frame with a SAM2-family video model; "
            "SAM 3 (--preset sam3) does not run on a live source yet",
            fix="use --preset best (EdgeTAM on a CPU, SAM2.1 on a GPU), or --sam2 with a propagation model key",
        )


class LiveSession:
    """A live source and its expressions: models loaded on entering, then ``frames()`` yields a
    :class:`~tgs.types.FrameResult` per emitted frame until the source ends or :meth:`stop`.

    source: a camera, a stream URL or ``-``; texts: the checked expressions; call: the call's
    settings (:func:`~tgs.core.segment_call.call_settings`); live: :class:`LiveSettings`;
    models: where the models come from (:class:`tgs.core.session.SessionModels`).
    open_source: how the source is opened (default :func:`tgs.sources.open_source`; a test or
    a benchmark may hand in another LiveSource-like object maker).
    """

    def __init__(
        self, source: str, texts: Sequence[str], call: CallSettings, live: LiveSettings, models: Any, *,
        open_source: Callable[..., Any] | None = None,
    ) -> None:
        self.source_spec, self.texts, self.call, self.live, self.models = str(source), list(texts), call, live, models
        self.kind = detect_source(self.source_spec)
        self.timer = Timer()
        self.started = time.perf_counter()
        self.spec = segment_load_spec(call.thinker, call.preset, call.settings, dense=True,
                                      thinker_options=call.thinker_options)
        _check_trackable(self.spec)
        self.spec.require()  # every missing model, before loading any
        self._open_source = open_source
        self.source: Any = None
        self.run: Any = None  # tgs.core.live.LiveRun, once entered
        self.stop_reason: str | None = None
        self.first_arrival: float | None = None
        self.last_arrival: float | None = None
        self.frames_emitted = 0
        self._stopper: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> LiveSession:
        from tgs.core.live import LiveRun
        from tgs.segment.online import OnlineTracker
        from tgs.segment.propagation import PropagationPolicy
        from tgs.sources import open_source

        call, timer = self.call, self.timer
        thinker = None if call.thinker == "direct" else self.models.thinker(self.spec, timer, call.thinker)
        label = f"({call.preset.name} preset, {self.spec.segmenter.key})"
        grounder, segmenter = self.models.stages(self.spec, timer, label)
        policy = PropagationPolicy(max_conditioning_frames=call.preset.propagation_max_conditioning_frames)
        tracker = OnlineTracker.from_segmenter(segmenter, policy)  # the dense mode's video model, one frame a step
        opener = self._open_source or open_source
        self.source = timer.run("open_source", opener, self.source_spec, audio_device=self.live.audio_device,
                                policy=self.live.policy, reconnect=self.live.reconnect,
                                think_seconds=self.live.think_seconds)
        try:
            self.run = LiveRun(self.source, thinker=thinker, grounder=grounder, tracker=tracker,
                               expressions=self.texts, preset=call.preset, options=self.live.options())
        except BaseException:
            self.source.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.source is not None:
            self.source.close()
        if self._stopper is not None:
            self._stopper.join()

    def stop(self, reason: str = "stopped") -> None:
        """End the run after the frame being processed (thread-safe; callable from a signal
        handler: the source is closed on a helper thread, never inside the handler)."""
        if self.stop_reason is not None or self.source is None:
            self.stop_reason = self.stop_reason or reason
            return
        self.stop_reason = reason
        self._stopper = threading.Thread(target=self.source.close, name="tgs-live-stop", daemon=True)
        self._stopper.start()

    def frames(self) -> Iterator[FrameResult]:
        """One FrameResult per emitted frame, until the source ends or :meth:`stop`."""
        if self.run is None:
            raise RuntimeError("frames(): enter the session first (`with ... as session:`)")
        for frame in self.run.frames():
            if self.first_arrival is None:
                self.first_arrival = frame.arrival
            self.last_arrival = frame.arrival
            self.frames_emitted += 1
            for step, seconds in frame.timings.items():  # "ground", "track", ...: result.json's timings
                self.timer.add(step, seconds)
            yield frame

    # ------------------------------------------------------------------ what it is

    @property
    def fps(self) -> float:
        """The overlay's rate: the source's nominal rate, else :data:`DEFAULT_LIVE_FPS`."""
        rate = getattr(self.source, "fps", None)
        return float(rate) if rate else DEFAULT_LIVE_FPS

    @property
    def legend(self) -> list[str]:
        """Per expression, its overlay label (the expression: its object text changes over time)."""
        prefix = "UNTRAINED: " if self.call.settings.untrained else ""
        many = len(self.texts) > 1
        return [prefix + (f"{k + 1}: {t}" if many else t) for k, t in enumerate(self.texts)]

    @property
    def end_reason(self) -> str:
        if self.stop_reason is not None:
            return self.stop_reason
        return str(getattr(self.source, "end_reason", None) or "end of stream")

    def status(self) -> dict[str, Any]:
        """What the console shows while the run goes on (cheap: running counts only)."""
        run, stats = self.run, getattr(self.source, "stats", None)
        latency = run.latency if run is not None else None
        wall = (self.last_arrival - self.first_arrival) if self.first_arrival is not None else 0.0
        texts = [None if e.object_text is None else e.object_text.text for e in run.expressions] if run else []
        return {
            "emitted": self.frames_emitted,
            "decoded": None if stats is None else int(stats.frames_decoded),
            "skipped": 0 if latency is None else latency.skipped,
            "latency_last": None if latency is None or not latency.recent else latency.recent[-1],
            "latency_p50": None if latency is None else latency.quantile(0.5),
            "latency_p95": None if latency is None else latency.quantile(0.95),
            "emitted_fps": (self.frames_emitted - 1) / wall if wall > 0 else None,
            "reconnects": 0 if stats is None else int(stats.reconnects),
            "object_texts": texts,
            "thinking": bool(run is not None and run.rethinker is not None and run.rethinker.busy),
        }

    def record(self) -> dict[str, Any]:
        """result.json's ``live`` block and the expressions' answers over time."""
        assert self.run is not None
        run_record = self.run.record()
        think = run_record.pop("think")
        answers = think.pop("answers")
        stats = getattr(self.source, "stats", None)
        wall = (self.last_arrival - self.first_arrival) if self.first_arrival is not None else 0.0
        gaps = [{"start": round(g.start, 6), "end": round(g.end, 6), "reason": g.reason, "attempts": g.attempts}
                for g in getattr(self.source, "gaps", [])]
        live = {
            **self.live.record(),
            **run_record,
            "reconnects": None if stats is None else int(stats.reconnects),
            # the source's own counts: decoded == emitted + skipped + unread, where skipped also has the
            # frames replaced after the last emitted one and unread those queued when the run stopped
            "source_frames": None if stats is None else {
                name: int(getattr(stats, name, 0))
                for name in ("frames_decoded", "frames_emitted", "frames_skipped", "frames_unread")},
            "emitted_fps": round((self.frames_emitted - 1) / wall, 6) if wall > 0 else None,
            "wall_s": round(wall, 6),
            "tracker": {name: int(getattr(self.run.tracker.stats, name)) for name in
                        ("frames_tracked", "peak_stored_frames", "peak_conditioning_frames")},
            "gaps": gaps,
            "end": self.end_reason,
            "think": think,
        }
        return {"live": live, "answers": answers}


# --------------------------------------------------------------------------- outputs


def live_sinks(session: LiveSession, out_dir: Path, *, png: bool = False) -> list[FrameSink]:
    """The outputs of a live session: masks.jsonl, the fragmented overlay (skipped frames held),
    and with ``png`` a PNG per emitted frame and expression. Every one is valid at every moment:
    written under its final name, line by line / fragment by fragment (``docs/live.md``)."""
    from tgs.dense_outputs import MaskPngSink, OverlayVideoSink
    from tgs.masks_jsonl import MasksJsonlSink

    count = len(session.texts)
    sinks: list[FrameSink] = [
        MasksJsonlSink(out_dir / MASKS_JSONL, session.texts, fps=getattr(session.source, "fps", None),
                       source=session.source_spec),
        OverlayVideoSink(out_dir / OVERLAY_NAME, session.fps, count, names=session.legend, fragmented=True,
                         hold_skipped=True),
    ]
    if png:
        sinks.append(MaskPngSink(out_dir / MASKS_DIR, count))
    return sinks


# --------------------------------------------------------------------------- the run


@dataclass(frozen=True)
class LiveResult:
    """What a live run wrote and measured: the output paths, the frame counts, why it ended,
    and result.json's record."""

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


def open_live(
    source: str | Path,
    expressions: str | Sequence[str],
    *,
    models: Any,
    thinker: str = "ref-thinker",
    preset: str | Preset = "best",
    settings: Settings | None = None,
    thinker_options: Mapping[str, Any] | None = None,
    live: LiveSettings | None = None,
    open_source: Callable[..., Any] | None = None,
) -> LiveSession:
    """The :class:`LiveSession` of a checked call (what ``open_video`` returns for a live source);
    models: a :class:`tgs.core.session.SessionModels`. Nothing is loaded or opened before entering."""
    request = check_live_call(source, expressions, thinker=thinker, settings=settings,
                              thinker_options=thinker_options, outputs=False)
    call = call_settings(thinker, preset, settings, 1.0, None, thinker_options)
    return LiveSession(request.source, request.texts, call, live or LiveSettings(), models, open_source=open_source)


@contextlib.contextmanager
def stop_on_signals(session: LiveSession) -> Iterator[None]:
    """SIGINT / SIGTERM stop ``session`` cleanly (:meth:`LiveSession.stop`); a second one raises
    KeyboardInterrupt. Installed only in the main thread (where Python runs signal handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    names = {signal.SIGINT: "interrupted (SIGINT)", signal.SIGTERM: "terminated (SIGTERM)"}

    def handler(signum: int, _frame: Any) -> None:
        if session.stop_reason is not None:
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
    from tgs.core.segment_result import previous_outputs

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
    on_start: Callable[[LiveSession], None] | None = None,
    on_frame: Callable[[FrameResult], None] | None = None,
    open_source: Callable[..., Any] | None = None,
) -> LiveResult:
    """Segment a live source until it ends (or is stopped) into ``out`` (see the module docstring).

    source: a camera (``/dev/video0``, ``v4l2:...``), a stream URL (rtsp, rtmp, srt, udp, tcp,
    http/HLS) or ``-`` (standard input). live: :class:`LiveSettings`. signals: SIGINT / SIGTERM
    stop the run cleanly (main thread only; the CLI). on_start(session): once the source is
    open (e.g. a console status); on_frame(frame): after each frame reached every output.
    Raises SettingsError / ValueError / MissingWeightsError before anything is loaded or
    written; MediaError when the source cannot be opened (nothing written); RunError when
    another call writes into ``out``.
    """
    from tgs.output_folder import lock_folder

    live = live or LiveSettings()
    with recorded_warnings() as caught, fast_paths.counting():
        from tgs.core.session import loader_models

        out_dir = check_live_call(source, expressions, thinker=thinker, settings=settings, out=out,
                                  thinker_options=thinker_options).out_dir
        session = open_live(source, expressions, models=loader_models(cache), thinker=thinker, preset=preset,
                            settings=settings, thinker_options=thinker_options, live=live, open_source=open_source)
        call = session.call
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
                        record = live_record(session, warning_lines(caught))
                        write_json(out_dir / RESULT_NAME, record)
        finally:
            if lock is not None:
                lock.close()
    return LiveResult(out_dir=out_dir, masks_jsonl=out_dir / MASKS_JSONL, overlay_video=out_dir / OVERLAY_NAME,
                      result_json=out_dir / RESULT_NAME, frames_emitted=session.frames_emitted,
                      end=session.end_reason, record=record, untrained=call.settings.untrained)


def _feed(session: LiveSession, sinks: Sequence[FrameSink], on_frame: Callable[[FrameResult], None] | None) -> None:
    """Every frame into every sink; the sinks closed at the end, aborted on an exception (a live
    sink's abort keeps every complete line / fragment)."""
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
        session.stop_reason = session.stop_reason or (
            "interrupted" if isinstance(exc, KeyboardInterrupt) else f"error: {type(exc).__name__}: {exc}")
        for sink in sinks:
            sink.abort()
        raise
    finally:
        session.timer.add("frames", time.perf_counter() - start)
    for sink in sinks:
        sink.close()


def live_record(session: LiveSession, warnings: Sequence[str]) -> dict[str, Any]:
    """result.json of a live run (schema :data:`~tgs.core.segment_result.RESULT_SCHEMA`, ``output.mode``
    "live"; ``docs/live.md``)."""
    from tgs import __version__
    from tgs.core.loading import public_options
    from tgs.viz import expression_color

    call, source = session.call, session.source
    models = session.spec.describe()
    thinker_key = None if session.spec.thinker is None else session.spec.thinker.key
    body = session.record()
    size = getattr(source, "size", None)
    run = session.run
    expressions = []
    for k, text in enumerate(session.texts):
        current = None if run is None else run.expressions[k].object_text
        expressions.append({
            "index": k, "expression": text, "color": list(expression_color(k)),
            "object_text": None if current is None else current.text,
            "object_source": None if current is None else current.source,
            "answers": body["answers"][k],
        })
    untrained = call.settings.untrained
    return {
        "schema": RESULT_SCHEMA,
        "tool": "tgs",
        "version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "untrained": untrained,
        "label": UNTRAINED_LABEL if untrained else None,
        "source": {
            "spec": session.source_spec, "kind": session.kind,
            "fps": getattr(source, "fps", None), "height": None if size is None else size[0],
            "width": None if size is None else size[1], "has_audio": bool(getattr(source, "has_audio", False)),
        },
        "expressions": expressions,
        "thinker": {"name": call.thinker, "source": None if thinker_key is None else models.get(thinker_key),
                    "options": public_options(call.thinker_options)},
        "preset": call.preset.to_dict(),
        "models": models,
        "settings": {"device": call.settings.device, "dtype": call.settings.dtype},
        "live": body["live"],
        "outputs": {"masks_jsonl": MASKS_JSONL, "overlay_video": OVERLAY_NAME, "overlay_fragmented": True,
                    "overlay_fps": session.fps, "overlay_has_audio": False,
                    "masks_dir": MASKS_DIR if session.live.png else None, "masks_json": None},
        "output": {"mode": "live", "num_frames": session.frames_emitted, "fps": session.fps,
                   "masks_json": None, "png": session.live.png},
        "timings": {**{k: round(v, 6) for k, v in session.timer.seconds.items()},
                    "fast_paths": fast_paths.current().as_record()},
        "warnings": list(warnings),
    }

