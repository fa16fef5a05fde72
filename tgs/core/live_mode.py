"""The live mode of a video session: a camera, a network stream or standard input, segmented as
its frames arrive (:class:`LiveMode`, the session's mode for a live source).

``open_video("rtsp://...", ["the person speaking"])`` gives a
:class:`~tgs.core.session.VideoSession` whose mode is :class:`LiveMode`. The session loads the
models of the dense mode's :class:`~tgs.core.load_spec.LoadSpec` (a SAM2-family video model
tracks the objects) and keeps the thinker, which thinks in the background instead of once up
front; :meth:`LiveMode.start` opens the source (:func:`tgs.sources.open_source`, after the
models are loaded, so no frame is skipped while they load) and wraps it in a
:class:`tgs.core.live.LiveRun`: think on the last window every ``rethink_every`` seconds,
ground a decided object text on the frame, track every expression on every emitted frame.
``frames()`` yields one :class:`~tgs.types.FrameResult` per emitted frame (with ``arrival``,
``latency`` and ``skipped``) until the source ends or :meth:`LiveMode.stop` closes it.

Nothing here grows with the stream: result.json's live block carries counts, latency quantiles
over a bounded window and the answers as spans (no per-frame list).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tgs.core.video_modes import ModeSummary
from tgs.errors import SettingsError
from tgs.sources import ReconnectPolicy, detect_source, is_finite
from tgs.types import Clip, FrameResult

if TYPE_CHECKING:
    from tgs.core.session import VideoSession

__all__ = ["DEFAULT_LIVE_FPS", "REQUEST_SCHEMES", "LiveMode", "LiveSettings", "check_trackable", "is_live"]

logger = logging.getLogger(__name__)

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
            return is_finite(container)
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
    png: also write a PNG mask per emitted frame and expression (``tgs segment``).
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


def check_trackable(spec: Any) -> None:
    """The live mode tracks with a SAM2-family video model: SAM 3 (which grounds itself) is refused."""
    if spec.grounds_itself:
        raise SettingsError(
            "live input tracks each object frame by frame with a SAM2-family video model; "
            "SAM 3 (--preset sam3) does not run on a live source yet",
            fix="use --preset best (EdgeTAM on a CPU, SAM2.1 on a GPU), or --sam2 with a propagation model key",
        )


class LiveMode:
    """The session's mode for a live source (see the module docstring).

    settings: :class:`LiveSettings`; open_source: how the source is opened (default
    :func:`tgs.sources.open_source`; a test or a benchmark may hand in another LiveSource maker).
    """

    name = "live"
    loading = "loading Grounding DINO and the video model, then opening the source"
    num_frames: int | None = None
    times = None
    background_think = True  # the session keeps its thinker for the LiveRun instead of thinking once

    def __init__(self, settings: LiveSettings, open_source: Any = None) -> None:
        self.settings = settings
        self.open_source = open_source
        self.source: Any = None
        self.run: Any = None  # tgs.core.live.LiveRun, once started
        self.stop_reason: str | None = None
        self.first_arrival: float | None = None
        self.last_arrival: float | None = None
        self.frames_emitted = 0
        self._stopper: threading.Thread | None = None

    # ------------------------------------------------------------------ the Mode protocol

    @property
    def fps(self) -> float:  # type: ignore[override]
        """The overlay's rate: the source's nominal rate, else :data:`DEFAULT_LIVE_FPS`."""
        rate = getattr(self.source, "fps", None)
        return float(rate) if rate else DEFAULT_LIVE_FPS

    @property
    def size(self) -> tuple[int, int] | None:  # type: ignore[override]
        return getattr(self.source, "size", None)

    def think_clip(self, session: VideoSession) -> Clip:
        raise RuntimeError("a live session thinks in the background on the source's think window")

    def start(self, session: VideoSession) -> None:
        """Open the source and the live run on the session's loaded models."""
        from tgs.core.live import LiveOptions, LiveRun
        from tgs.sources import open_source

        s = self.settings
        opener = self.open_source or open_source
        self.source = session.timer.run("open_source", opener, session.source, audio_device=s.audio_device,
                                        policy=s.policy, reconnect=s.reconnect, think_seconds=s.think_seconds)
        session.has_audio = bool(getattr(self.source, "has_audio", False))  # the stream's or --audio's
        try:
            options = LiveOptions(rethink_every=s.rethink_every, think_seconds=s.think_seconds,
                                  wait_for_think=s.wait_for_think)
            self.run = LiveRun(self.source, thinker=session.thinker, stage=session.stages,  # type: ignore[arg-type]
                               expressions=session.texts, options=options)
        except BaseException:
            self.source.close()
            raise

    def frames(self, session: VideoSession) -> Iterator[FrameResult]:
        for frame in self.run.frames():
            if self.first_arrival is None:
                self.first_arrival = frame.arrival
            self.last_arrival = frame.arrival
            self.frames_emitted += 1
            for step, seconds in frame.timings.items():  # "ground", "track", ...: result.json's timings
                session.timer.add(step, seconds)
            yield frame

    # ------------------------------------------------------------------ stopping

    def stop(self, reason: str = "stopped") -> None:
        """End the frames after the one being processed (thread-safe; callable from a signal
        handler: the source is closed on a helper thread, never inside the handler)."""
        if self.stop_reason is not None or self.source is None:
            self.stop_reason = self.stop_reason or reason
            return
        self.stop_reason = reason
        self._stopper = threading.Thread(target=self.source.close, name="tgs-live-stop", daemon=True)
        self._stopper.start()

    def close(self) -> None:
        """Close the source (idempotent)."""
        if self.source is not None:
            self.source.close()
        if self._stopper is not None:
            self._stopper.join()

    @property
    def end_reason(self) -> str:
        if self.stop_reason is not None:
            return self.stop_reason
        return str(getattr(self.source, "end_reason", None) or "end of stream")

    # ------------------------------------------------------------------ what it reports

    def _wall(self) -> float:
        return (self.last_arrival - self.first_arrival) if self.first_arrival is not None else 0.0  # type: ignore[operator]

    def status(self) -> dict[str, Any]:
        """What the console shows while the run goes on (cheap: running counts only)."""
        run, stats = self.run, getattr(self.source, "stats", None)
        latency = run.latency if run is not None else None
        wall = self._wall()
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

    def summary(self, session: VideoSession) -> ModeSummary:
        """result.json's live block and, per expression, its answers over time (no per-frame lists:
        a live run's record does not grow with the stream)."""
        run, stats = self.run, getattr(self.source, "stats", None)
        record = run.record()
        think = record.pop("think")
        answers = think.pop("answers")
        wall = self._wall()
        live = {
            "kind": getattr(self.source, "kind", None),
            **self.settings.record(),
            **record,
            "reconnects": None if stats is None else int(stats.reconnects),
            # the source's own counts: decoded == emitted + skipped + unread, where skipped also has the
            # frames replaced after the last emitted one and unread those queued when the run stopped
            "source_frames": None if stats is None else {
                name: int(getattr(stats, name, 0))
                for name in ("frames_decoded", "frames_emitted", "frames_skipped", "frames_unread")},
            "emitted_fps": round((self.frames_emitted - 1) / wall, 6) if wall > 0 else None,
            "wall_s": round(wall, 6),
            "tracker": {name: int(getattr(run.tracker.stats, name)) for name in
                        ("frames_tracked", "peak_stored_frames", "peak_conditioning_frames")},
            "gaps": [{"start": round(g.start, 6), "end": round(g.end, 6), "reason": g.reason, "attempts": g.attempts}
                     for g in getattr(self.source, "gaps", [])],
            "end": self.end_reason,
            "think": think,
        }
        per_expression = []
        for k, expr in enumerate(run.expressions):
            current = expr.object_text
            per_expression.append({"object_text": None if current is None else current.text,
                                   "object_source": None if current is None else current.source,
                                   "answers": answers[k]})
        return ModeSummary(
            records=[[] for _ in session.texts], record_times=[], frame_times=[],
            output={"mode": "live", "num_frames": self.frames_emitted, "fps": self.fps, "masks_json": None,
                    "png": self.settings.png},
            per_expression=per_expression, live=live,
        )
