"""A video session: one video (or a benchmark sample) and its expressions, thought about once,
then grounded and segmented frame by frame; ``frames()`` yields one :class:`tgs.types.FrameResult`
per emitted frame whatever the mode, and every output is a sink of that type.

    with pipe.open_video("clip.mp4", ["the dog barking"]) as session:
        for frame in session.frames():
            frame.index, frame.time, frame.masks      # bool [N, H, W], one mask per expression

What happens when (every step is timed, ``session.timer``):

1. **Construction** probes the source (length, audio), builds the frozen
   :class:`~tgs.core.load_spec.LoadSpec` of the mode (the model-cache key) and checks that every
   model exists. Nothing is loaded or written yet.
2. **Entering** thinks (:mod:`tgs.core.video_think`: the thinker is loaded, asked once about
   every expression, and released unless a model cache keeps it), then loads Grounding DINO and
   the segmenter of the mode and chooses each expression's object text: the legend
   (:attr:`VideoSession.legend`) is known before any frame is grounded.
3. **frames()** runs the mode, a small strategy object (:mod:`tgs.core.video_modes`) that says
   how frames are produced: dense (every source frame: grounded at keyframes, one propagation;
   SAM 3 over every frame under ``segmenter=sam3``), sampled (``fps``: window by window, every
   sampled frame grounded and segmented), benchmark (a Ref-AVSBench media folder: its frames and
   audio.wav as one clip). A live mode plugs in the same way.
4. **summary()**, once the frames are consumed: what result.json needs
   (:func:`tgs.core.segment_result.result_record`).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tgs.core.load_spec import LoadSpec, ModelLoad
from tgs.core.segment_call import CallSettings, ProgressCallback, Timer, report, segment_load_spec
from tgs.core.video_modes import mode_for
from tgs.core.video_think import think_video, thinker_options_for
from tgs.errors import NoAudioWarning
from tgs.ground_segment import GroundSegmentStage, ObjectText
from tgs.model_cache import ModelCache
from tgs.types import FrameResult, Query, Thought

__all__ = ["SessionModels", "SessionSummary", "VideoSession"]


# --------------------------------------------------------------------------- models


@dataclass(frozen=True)
class SessionModels:
    """How a session gets its models: loaders (the thinker of a :class:`ModelLoad`, the
    (grounder, segmenter) pair of a :class:`LoadSpec`), what releases memory after Think, and
    an optional :class:`~tgs.model_cache.ModelCache` keyed by the spec (a cache keeps its
    models: nothing is released)."""

    load_thinker: Callable[[ModelLoad], Any]
    load_stages: Callable[[LoadSpec], tuple[Any, Any]]
    release: Callable[[], None]
    cache: ModelCache | None = None

    def thinker(self, spec: LoadSpec, timer: Timer, label: str) -> Any:
        def load() -> Any:
            return self.load_thinker(spec.thinker)  # type: ignore[arg-type]

        if self.cache is None:
            return timer.run("load_thinker", load)
        return timer.run("load_thinker", self.cache.thinker, spec.thinker_key, load, label)

    def stages(self, spec: LoadSpec, timer: Timer, label: str) -> tuple[Any, Any]:
        def load() -> tuple[Any, Any]:
            return self.load_stages(spec)

        if self.cache is None:
            return timer.run("load_models", load)
        return timer.run("load_models", self.cache.stages, spec.stages_key, load, label)

    def thought(self) -> None:
        """Think is over: release the thinker's memory unless a cache keeps it."""
        if self.cache is None:
            self.release()


# --------------------------------------------------------------------------- the session


@dataclass
class SessionSummary:
    """What result.json needs of a session once its frames are consumed (see
    :func:`tgs.core.segment_result.result_record`)."""

    call: CallSettings
    spec: LoadSpec
    video: Path
    duration: float
    has_audio: bool
    think_input: dict[str, Any]
    texts: list[str]
    thoughts: list[Thought]
    object_texts: list[ObjectText]
    records: list[list[dict[str, Any]]]
    record_times: list[float]
    frame_times: list[float]
    frame_size: tuple[int, int] | None
    fps: float | None
    dense: bool
    output: dict[str, Any]
    propagation: dict[str, Any] | None = None
    per_expression: list[dict[str, Any]] | None = None
    timings: dict[str, float] = field(default_factory=dict)
    live: dict[str, Any] | None = None
    source: str = ""


class VideoSession:
    """Think, Ground and Segment one video for several expressions; see the module docstring.

    video: a video file (dense / sampled), a Ref-AVSBench media folder (benchmark) or a live
        source (a camera, a stream URL, ``-``: live, :mod:`tgs.core.live_mode`).
    texts: the checked expressions; call: the call's settings (:func:`~tgs.core.segment_call.call_settings`).
    mode: "dense", "sampled", "benchmark" (:func:`mode_for`) or "live".
    models: where the models come from (:class:`SessionModels`).
    png: whether PNG masks are written (the records name them).
    live: the live mode's :class:`~tgs.core.live_mode.LiveSettings` (and ``open_source``, how its
        source is opened); a live session thinks in the background, so its thinker is kept.
    """

    def __init__(
        self, video: Path | str, texts: Sequence[str], call: CallSettings, mode: str, models: SessionModels, *,
        progress: ProgressCallback | None = None, png: bool = True, live: Any = None, open_source: Any = None,
    ) -> None:
        from tgs.data.media import video_duration
        from tgs.video_out import copy_audio_from

        self.source = str(video)  # as given (a stream URL keeps its "//")
        self.video, self.texts, self.call, self.models = Path(video), list(texts), call, models
        self.progress, self.png = progress, png
        self.timer = Timer()
        self.started = time.perf_counter()
        self.thinker: Any = None  # kept by a live session, which thinks in the background
        stem = self.video.stem or "video"
        self.queries = [Query(uid=f"{stem}_{k}", expression=text) for k, text in enumerate(self.texts)]
        report(progress, 0.0, f"reading {self.source if mode == 'live' else self.video.name}")
        if mode == "live":
            self._init_live(live, open_source)
            return
        if mode == "benchmark":  # a Ref-AVSBench clip: one extracted frame per second
            self.duration = float(len(list((self.video / "frames").glob("*.jpg"))))
            self.source_audio = None
            self.has_audio = (self.video / "audio.wav").is_file()
        else:
            self.duration = self.timer.run("probe", video_duration, self.video)
            self.source_audio = self.timer.run("probe", copy_audio_from, self.video)
            self.has_audio = self.source_audio is not None
            if self.source_audio is None:
                message = f"{self.video} has no audio track: the thinker hears nothing and the overlay video is silent"
                warnings.warn(message, NoAudioWarning, stacklevel=2)
        self.spec = segment_load_spec(
            call.thinker, call.preset, call.settings, dense=mode == "dense",
            thinker_options=thinker_options_for(call.thinker, call.thinker_options, self.duration),
        ) if mode != "benchmark" else self._benchmark_spec()
        self.spec.require()  # every missing model, before loading any
        self.mode = mode_for(mode, self.spec)
        self.thoughts: list[Thought] = []
        self.think_input: dict[str, Any] = {}
        self.object_texts: list[ObjectText] = []
        self.stages: GroundSegmentStage | None = None  # type: ignore[assignment]
        self._consumed = False
        self._frames: Generator[FrameResult, None, None] | None = None

    def _init_live(self, live: Any, open_source: Any) -> None:
        """A live source: nothing to probe (it is opened once the models are loaded); the dense
        mode's models, the thinker's options for the think window it sees."""
        from tgs.core.live_mode import LiveMode, LiveSettings, check_trackable

        settings = live or LiveSettings()
        call = self.call
        self.duration = 0.0
        self.source_audio = None
        self.has_audio = False  # known once the mode has opened the source
        self.spec = segment_load_spec(
            call.thinker, call.preset, call.settings, dense=True,
            thinker_options=thinker_options_for(call.thinker, call.thinker_options, settings.think_seconds),
        )
        check_trackable(self.spec)
        self.spec.require()  # every missing model, before loading any
        self.mode = LiveMode(settings, open_source)
        self.thoughts = []
        self.think_input = {"window_seconds": settings.think_seconds, "every": settings.rethink_every}
        self.object_texts = []
        self.stages = None  # type: ignore[assignment]
        self._consumed = False

    def _benchmark_spec(self) -> LoadSpec:
        from tgs.core.load_spec import load_spec
        from tgs.core.stages import share_enabled

        call = self.call
        return load_spec(call.preset, call.settings, "benchmark", thinker=call.thinker,
                         thinker_options=call.thinker_options, share=share_enabled(call.preset),
                         direct=call.thinker == "direct")

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> VideoSession:
        self.think()
        self.load()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._frames is not None:  # a consumer that stopped early: the mode's decoder stops now
            self._frames.close()
            self._frames = None
        close = getattr(self.mode, "close", None)
        if close is not None:  # a live source: its reader stops
            close()
        self.stages = None  # type: ignore[assignment]
        self.thinker = None

    def stop(self, reason: str = "stopped") -> None:
        """A live session: end ``frames()`` after the frame being processed (thread-safe)."""
        stop = getattr(self.mode, "stop", None)
        if stop is None:
            raise RuntimeError(f"stop(): a {self.mode.name} session ends with its video")
        stop(reason)

    def think(self) -> list[Thought]:
        """Think once about the video (every expression in one thinker call); a live session only
        loads its thinker, which thinks in the background on the stream's last window."""
        call, timer = self.call, self.timer
        if getattr(self.mode, "background_think", False):
            if call.thinker != "direct":
                self.thinker = self.models.thinker(self.spec, timer, call.thinker)
            return []
        report(self.progress, 0.02, f"thinking ({call.thinker}, {len(self.texts)} expression(s))")
        thinker = self.models.thinker(self.spec, timer, call.thinker)
        clip = None
        if call.thinker != "direct":
            clip = timer.run("think_input", self.mode.think_clip, self)
        self.thoughts = think_video(thinker, clip, self.queries, self.video, timer.run)
        self.think_input = self.mode.think_record(self, clip)
        del thinker, clip
        self.models.thought()
        return self.thoughts

    def load(self) -> None:
        """Load Grounding DINO and the mode's segmenter, choose the object texts, open the source."""
        report(self.progress, 0.2, self.mode.loading)  # type: ignore[attr-defined]
        label = f"({self.call.preset.name} preset, {self.spec.segmenter.key})"  # type: ignore[union-attr]
        grounder, segmenter = self.models.stages(self.spec, self.timer, label)
        self.stages = GroundSegmentStage(grounder, segmenter, self.call.preset)
        self.object_texts = [self.stages.object_text(t, q) for t, q in self.pairs]
        self.mode.start(self)

    @property
    def pairs(self) -> list[tuple[Thought, Query]]:
        return list(zip(self.thoughts, self.queries))

    @property
    def legend(self) -> list[str]:
        """Per expression, its overlay label: what is grounded (known before any frame is)."""
        prefix = "UNTRAINED: " if self.call.settings.untrained else ""
        labels = []
        if self.mode.name == "live":  # its object texts change over time: the expressions
            shown = list(self.texts)
        else:
            shown = [o.text or "no object (null answer)" for o in self.object_texts]
        for k, what in enumerate(shown):
            if len(self.texts) > 1:
                what = f"{k + 1}: {what}"
            labels.append(prefix + what)
        return labels

    def frames(self) -> Iterator[FrameResult]:
        """One FrameResult per emitted frame, in order (once per session); leaving the session
        closes it, so a consumer that stops early stops the mode's decoder too."""
        if self.stages is None:
            raise RuntimeError("frames(): enter the session first (`with ... as session:`)")
        if self._consumed:
            raise RuntimeError("frames(): a session's frames are produced once")
        self._consumed = True
        self._frames = self._produce()
        return self._frames

    def _produce(self) -> Generator[FrameResult, None, None]:
        yield from self.mode.frames(self)

    def summary(self) -> SessionSummary:
        """What result.json needs, once the frames are consumed."""
        mode = self.mode.summary(self)
        return SessionSummary(
            call=self.call, spec=self.spec, video=self.video, duration=self.duration, has_audio=self.has_audio,
            think_input=self.think_input, texts=self.texts, thoughts=self.thoughts,
            object_texts=self.object_texts, records=mode.records, record_times=mode.record_times,
            frame_times=mode.frame_times, frame_size=self.mode.size, fps=self.mode.fps,
            dense=self.mode.name == "dense", output=mode.output, propagation=mode.propagation,
            per_expression=mode.per_expression, timings=dict(self.timer.seconds), live=mode.live,
            source=self.source,
        )

