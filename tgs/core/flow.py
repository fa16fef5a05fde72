"""The pipeline core: a video and its expressions in, one typed result per expression out.

Every command, the demo and the Python API go through :class:`Pipeline`::

    from tgs.core import Pipeline, Settings

    pipe = Pipeline.load(thinker="ref-thinker", preset="best", settings=Settings(sources={...}))
    for result in pipe(clip, ["the dog barking", "the person talking"]):
        result.thought.s_object, result.masks   # bool [T, H, W]

The video is the unit of work: the expressions of one clip are handed to the thinker
together (``think_each`` over items that share one :class:`~tgs.types.Clip` object, so a
thinker can encode the clip and prefill the common prompt once) and to Ground + Segment
together (``GroundSegmentStage.run_many``: the image backbones run once per frame).
``preset.share_across_expressions`` = False gives the one-expression-at-a-time path, the
reference the sharing is tested equal against; which path ran is counted
(:mod:`tgs.fast_paths`).

:meth:`Pipeline.run` is a generator over videos, like sam2's ``propagate_in_video`` over
frames: it yields :class:`ExpressionResult` objects as each video finishes, and sinks
(the run directory, PNG masks, the overlay video, result.json) consume them. A failure is
a value: an expression whose clip cannot be decoded, whose thought failed or whose
Ground + Segment failed comes out with ``error`` set, and the others go on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tgs.core.segment_call import DEFAULT_KEYFRAME_FPS
from tgs.core.settings import Settings
from tgs.core.stages import ground_and_segment, share_enabled, think_items
from tgs.ground_segment import GroundSegmentResult, GroundSegmentStage
from tgs.presets import Preset, get_preset
from tgs.think.base import Thinker
from tgs.types import Boxes, Clip, Query, Thought

__all__ = ["ExpressionResult", "Pipeline", "VideoItems", "share_enabled"]

logger = logging.getLogger(__name__)

ClipSource = Clip | Callable[[], Clip]


@dataclass(frozen=True, eq=False)
class LoadedFrom:
    """What :meth:`Pipeline.load` was given: the thinker's name, the settings, the thinker's
    options, and the frozen spec of what it loaded (the model-cache key of its stages)."""

    thinker: str
    settings: Settings
    thinker_options: dict[str, Any]
    spec: Any


@dataclass(frozen=True, eq=False)
class VideoItems:
    """One unit of work: a clip (or a zero-argument loader of it) and its expressions.

    thoughts: given thoughts, one per query (a reused Think run); None: think here, or
        ground the expressions when the pipeline has no thinker.
    """

    clip: ClipSource
    queries: tuple[Query, ...]
    thoughts: tuple[Thought | Exception, ...] | None = None
    key: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "queries", tuple(self.queries))
        if self.thoughts is not None:
            object.__setattr__(self, "thoughts", tuple(self.thoughts))
            if len(self.thoughts) != len(self.queries):
                raise ValueError(f"{len(self.thoughts)} thoughts given for {len(self.queries)} queries")

    def load(self) -> Clip:
        return self.clip if isinstance(self.clip, Clip) else self.clip()


@dataclass(frozen=True, eq=False)
class ExpressionResult:
    """What the pipeline made of one expression.

    thought: the thinker's answer (a direct thought when nothing thinks), None if Think failed.
    ground_segment: boxes, chosen box per frame and masks (None when Ground + Segment did
        not run or failed); :attr:`masks`, :attr:`probs`, :attr:`boxes`, :attr:`chosen` and
        :attr:`object_text` read them.
    error: why this expression has no result (decoding, Think or Ground + Segment).
    timings: seconds per step; shared steps (decoding, a video's Think) are split evenly
        over the video's expressions.
    """

    query: Query
    thought: Thought | None = None
    ground_segment: GroundSegmentResult | None = None
    error: Exception | None = None
    timings: Mapping[str, float] = field(default_factory=dict)
    key: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def uid(self) -> str:
        return self.query.uid

    # The Ground + Segment outputs, one attribute away (None when Ground + Segment did not run or failed).
    @property
    def masks(self) -> np.ndarray | None:
        """bool [T, H, W]: the expression's mask on each frame, at the preset's ``mask_size``."""
        return None if self.ground_segment is None else self.ground_segment.masks.masks

    @property
    def probs(self) -> np.ndarray | None:
        """float32 [T, h, w] in [0, 1]: the mask probabilities (the F metric's input), at the
        preset's ``probs_size``; None also when the segmenter gives none."""
        return None if self.ground_segment is None else self.ground_segment.masks.probs

    @property
    def boxes(self) -> Boxes | None:
        """Every grounded candidate box of every frame (original pixels, detector query order)."""
        return None if self.ground_segment is None else self.ground_segment.boxes

    @property
    def chosen(self) -> tuple[int | None, ...] | None:
        """Per frame, the position in ``boxes.frames[i]`` of the box that prompted the segmenter, or None."""
        return None if self.ground_segment is None else self.ground_segment.chosen

    @property
    def object_text(self) -> str | None:
        """The text that was grounded (None: nothing was, e.g. a null answer)."""
        return None if self.ground_segment is None else self.ground_segment.object_text.text


class Pipeline:
    """Think -> Ground -> Segment over videos, each stage optional.

    thinker: any thinker (None: no Think; thoughts are given, or the expressions are grounded).
    ground_segment: a :class:`~tgs.ground_segment.GroundSegmentStage` (None: Think only).
    """

    def __init__(
        self, thinker: Thinker | None = None, ground_segment: GroundSegmentStage | None = None
    ) -> None:
        self.thinker = thinker
        self.ground_segment = ground_segment
        self.loaded_from: LoadedFrom | None = None  # set by :meth:`load`: what a video session reuses

    @classmethod
    def load(
        cls,
        *,
        thinker: str | None = "ref-thinker",
        preset: str | Preset = "best",
        settings: Settings | None = None,
        thinker_options: Mapping[str, Any] | None = None,
        batch_size: int | None = None,
        frame_batch_size: int = 1,
        ground_segment: bool = True,
    ) -> Pipeline:
        """Load the stages once: the thinker (None or "direct": none) and Ground + Segment.

        Every model is checked before any loads (missing ones are listed together).
        """
        from tgs.core.load_spec import load_spec
        from tgs.core.loading import load_model, load_stages_from

        resolved = preset if isinstance(preset, Preset) else get_preset(preset)
        direct = thinker is None or thinker == "direct"
        spec = load_spec(
            resolved if ground_segment else None, settings or Settings(), "benchmark",
            thinker=None if direct else thinker, thinker_options=thinker_options, batch_size=batch_size,
            share=share_enabled(resolved), direct=direct, frame_batch_size=frame_batch_size,
        )
        spec.require()
        loaded = None if spec.thinker is None else load_model(spec.thinker)
        stages = None
        if ground_segment:
            grounder, segmenter = load_stages_from(spec)
            stages = GroundSegmentStage(grounder, segmenter, resolved)
        pipe = cls(loaded, stages)
        pipe.loaded_from = LoadedFrom("direct" if direct else str(thinker), settings or Settings(),
                                      dict(thinker_options or {}), spec)
        return pipe

    @property
    def preset(self) -> Preset | None:
        return None if self.ground_segment is None else self.ground_segment.preset

    def open_video(
        self,
        source: str | Path,
        expressions: str | Sequence[str],
        *,
        fps: float | None = None,
        keyframe_fps: float = DEFAULT_KEYFRAME_FPS,
        chunk_seconds: float | None = None,
        progress: Callable[..., Any] | None = None,
        live: Any | None = None,
    ) -> Any:
        """A :class:`~tgs.core.session.VideoSession` on ``source`` with this pipeline's models::

            with pipe.open_video("clip.mp4", ["the dog barking"]) as session:
                for frame in session.frames():      # a tgs.types.FrameResult per frame
                    frame.index, frame.time, frame.masks

        A video file gives a mask on every source frame (``fps=None``: ground at ``keyframe_fps``
        keyframes, one propagation) or on frames sampled at ``fps``; a Ref-AVSBench media folder
        is a benchmark sample. The thinker and, where the mode's models are the ones loaded,
        Grounding DINO and the segmenter are this pipeline's; a mode that needs another
        segmenter (dense output propagates with a SAM2 video model) loads it once and keeps it
        (:class:`~tgs.model_cache.ModelCache`, keyed by the mode's LoadSpec).

        A live source (a camera, a stream URL, ``-``) gives the live mode (``live``: its
        :class:`~tgs.core.live_mode.LiveSettings`): masks as the frames arrive, until the source
        ends or ``session.stop()`` (docs/live.md)::

            with pipe.open_video("rtsp://cam/1", ["the person speaking"]) as session:
                for frame in session.frames():
                    frame.masks, frame.latency, frame.skipped
        """
        from tgs.core.segment import pipeline_session

        return pipeline_session(self, source, expressions, fps=fps, keyframe_fps=keyframe_fps,
                                chunk_seconds=chunk_seconds, progress=progress, live=live)

    # ------------------------------------------------------------------ stages
    def think(self, clip: Clip | None, queries: Sequence[Query]) -> list[Thought | Exception]:
        """One thought (or the exception that failed it) per query; all queries share ``clip``.

        Without a thinker the thought is the expression itself (the paper's direct baseline).
        """
        return self.think_items([(q, clip) for q in queries])

    def ground_and_segment(
        self, clip: Clip, pairs: Sequence[tuple[Thought, Query]]
    ) -> list[GroundSegmentResult | Exception]:
        """Ground + Segment of every (thought, query) of one clip; failures per pair
        (:func:`tgs.core.stages.ground_and_segment`: shared under ``share_across_expressions``)."""
        if self.ground_segment is None:
            raise RuntimeError("this pipeline was loaded without Ground + Segment")
        return ground_and_segment(self.ground_segment, clip, pairs)

    # ------------------------------------------------------------------ videos
    def run_video(self, video: VideoItems) -> list[ExpressionResult]:
        """Every expression of one video: decoded once, thought about together, grounded together."""
        return self.run_videos([video])

    def run_videos(self, videos: Sequence[VideoItems]) -> list[ExpressionResult]:
        """Several videos as one batch: each decoded once, one Think call over all their
        expressions (a thinker batches them, and shares the work of each clip among its
        expressions), then Ground + Segment video by video. Results in the order given."""
        clips: list[Clip | Exception] = []
        decode: list[float] = []
        for video in videos:
            start = time.perf_counter()
            try:
                clips.append(video.load())
            except Exception as exc:  # a missing or corrupt file fails that video's expressions
                clips.append(exc)
            decode.append((time.perf_counter() - start) / max(1, len(video.queries)))
        thoughts, think_seconds = self._think_videos(videos, clips)
        out: list[ExpressionResult] = []
        for video, clip, seconds, video_thoughts in zip(videos, clips, decode, thoughts):
            timings = {"decode": seconds}
            if think_seconds is not None:
                timings["think"] = think_seconds
            if isinstance(clip, Exception):
                out.extend(ExpressionResult(q, error=clip, timings=timings, key=video.key) for q in video.queries)
            else:
                out.extend(self._ground_segment_video(video, clip, video_thoughts, timings))
        return out

    def _think_videos(
        self, videos: Sequence[VideoItems], clips: Sequence[Clip | Exception]
    ) -> tuple[list[list[Thought | Exception]], float | None]:
        """Per video, its thoughts (given, thought here, or direct); seconds of Think per expression."""
        asked = [(v, c) for v, c in zip(videos, clips) if v.thoughts is None and not isinstance(c, Exception)]
        items = [(q, c) for v, c in asked for q in v.queries]
        start = time.perf_counter()
        answers = iter(self.think_items(items)) if items else iter(())
        seconds = (time.perf_counter() - start) / len(items) if items and self.thinker is not None else None
        out: list[list[Thought | Exception]] = []
        for video, clip in zip(videos, clips):
            if video.thoughts is not None:
                out.append(list(video.thoughts))
            elif isinstance(clip, Exception):
                out.append([clip] * len(video.queries))
            else:
                out.append([next(answers) for _ in video.queries])
        return out, seconds

    def think_items(self, items: Sequence[tuple[Query, Clip | None]]) -> list[Thought | Exception]:
        """One thought (or exception) per (query, clip) item, in one thinker call
        (:func:`tgs.core.stages.think_items`)."""
        return think_items(self.thinker, items)

    def _ground_segment_video(
        self, video: VideoItems, clip: Clip, thoughts: Sequence[Thought | Exception], timings: dict[str, float]
    ) -> list[ExpressionResult]:
        results: dict[int, GroundSegmentResult | Exception] = {}
        if self.ground_segment is not None:
            ready = [(i, t) for i, t in enumerate(thoughts) if not isinstance(t, Exception)]
            pairs = [(t, video.queries[i]) for i, t in ready]
            outcomes = self.ground_and_segment(clip, pairs)  # type: ignore[arg-type]
            results = {i: o for (i, _), o in zip(ready, outcomes)}
        out = []
        for i, (query, thought) in enumerate(zip(video.queries, thoughts)):
            if isinstance(thought, Exception):
                out.append(ExpressionResult(query, error=thought, timings=dict(timings), key=video.key))
                continue
            outcome = results.get(i)
            if isinstance(outcome, Exception):
                out.append(ExpressionResult(query, thought, error=outcome, timings=dict(timings), key=video.key))
            else:
                out.append(ExpressionResult(query, thought, outcome, timings=dict(timings), key=video.key))
        return out

    def run(self, videos: Iterable[VideoItems]) -> Iterator[ExpressionResult]:
        """Per-expression results, video after video (a generator: sinks consume as they come)."""
        for video in videos:
            yield from self.run_video(video)

    def __call__(self, video: Clip | str | Path, expressions: Sequence[str | Query]) -> list[ExpressionResult]:
        """Results for ``expressions`` about one video (a decoded Clip or a file, read at 1 fps).

        A file is decoded whole (frames at 1 fps, audio at 16 kHz): for short clips; a long
        video goes through :func:`tgs.core.segment.segment_video`, which streams it.
        """
        clip = video if isinstance(video, Clip) else _clip_from_file(Path(video))
        queries = [
            e if isinstance(e, Query) else Query(uid=f"expr{k}", expression=str(e)) for k, e in enumerate(expressions)
        ]
        return self.run_video(VideoItems(clip, tuple(queries), key=str(video) if not isinstance(video, Clip) else ""))


def _clip_from_file(path: Path, fps: float = 1.0) -> Clip:
    """A whole short video file as one Clip: frames at ``fps``, mono audio at 16 kHz (None without a track)."""
    from tgs.data.audio_stream import stream_audio_mono
    from tgs.data.media import REF_AVS_SAMPLE_RATE, load_video_frames

    frames, times = load_video_frames(path, None, fps)
    audio = stream_audio_mono(path, REF_AVS_SAMPLE_RATE)  # None (with a NoAudioWarning) without a track
    if audio is not None and audio.shape[0] == 0:
        audio = None
    return Clip(frames, audio, REF_AVS_SAMPLE_RATE if audio is not None else None, times, str(path))
