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
3. **frames()** runs the mode, a small strategy object (:class:`Mode`) that says how frames are
   produced: :class:`DenseMode` (every source frame: grounded at keyframes, one propagation;
   :class:`Sam3DenseMode` with SAM 3), :class:`SampledMode` (``fps``: window by window, every
   sampled frame grounded and segmented), :class:`BenchmarkMode` (a Ref-AVSBench media folder:
   its frames and audio.wav as one clip). A live mode plugs in the same way.
4. **summary()**, once the frames are consumed: what result.json needs
   (:func:`tgs.core.segment_result.result_record`).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from tgs.core.load_spec import LoadSpec, ModelLoad
from tgs.core.segment_call import (
    CallSettings,
    ProgressCallback,
    Timer,
    frame_progress,
    report,
    segment_load_spec,
)
from tgs.core.segment_result import MASKS_DIR, MASKS_JSON, frame_record
from tgs.core.stages import ground_and_segment
from tgs.core.video_think import think_record, think_video, thinker_options_for
from tgs.errors import MediaError, NoAudioWarning
from tgs.model_cache import ModelCache
from tgs.pipeline import GroundSegmentPipeline, ObjectText
from tgs.types import Clip, FrameResult, Query, Thought, stack_frames

__all__ = [
    "BenchmarkMode",
    "DenseMode",
    "Mode",
    "ModeSummary",
    "Sam3DenseMode",
    "SampledMode",
    "SessionModels",
    "SessionSummary",
    "VideoSession",
    "clip_frames",
    "ground_segment_frames",
    "loader_models",
    "mode_for",
    "video_windows",
]


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


def loader_models(cache: ModelCache | None = None) -> SessionModels:
    """The models loaded by :mod:`tgs.core.loading` (kept in ``cache`` when given)."""
    from tgs.core.loading import load_model, load_stages_from
    from tgs.model_cache import release_memory

    return SessionModels(load_model, load_stages_from, release_memory, cache)


# --------------------------------------------------------------------------- modes


@dataclass
class ModeSummary:
    """What a mode adds to result.json once its frames are consumed.

    records: per expression, result.json's ``frames`` (grounded keyframes or emitted frames);
    record_times: the time of each record row; frame_times: every emitted frame's time;
    output / propagation: result.json's blocks; per_expression: more fields per expression.
    """

    records: list[list[dict[str, Any]]]
    record_times: list[float]
    frame_times: list[float]
    output: dict[str, Any]
    propagation: dict[str, Any] | None = None
    per_expression: list[dict[str, Any]] | None = None


class Mode(Protocol):
    """How a session produces its frames. ``name`` is the LoadSpec mode (which models load);
    ``start`` opens the source once the models are loaded (fills ``fps`` / ``size`` /
    ``num_frames`` / ``times`` where known up front); ``frames`` yields the FrameResults;
    ``summary`` is called after them."""

    name: str
    fps: float | None
    size: tuple[int, int] | None
    num_frames: int | None
    times: np.ndarray | None

    def think_clip(self, session: VideoSession) -> Clip: ...

    def start(self, session: VideoSession) -> None: ...

    def frames(self, session: VideoSession) -> Iterator[FrameResult]: ...

    def summary(self, session: VideoSession) -> ModeSummary: ...


class _FileMode:
    """A video file's modes: the thinker sees its summary clip (:func:`think_plan`)."""

    name = ""
    fps: float | None = None
    size: tuple[int, int] | None = None
    num_frames: int | None = None
    times: np.ndarray | None = None
    loading = "loading Grounding DINO and SAM2"

    def think_clip(self, session: VideoSession) -> Clip:
        from tgs.core.video_think import summary_clip

        return summary_clip(session.video, session.duration, session.has_audio)

    def start(self, session: VideoSession) -> None:
        return None


class SampledMode(_FileMode):
    """``fps``: frames sampled at that rate, each grounded and segmented, window by window."""

    name = "sampled"

    def __init__(self) -> None:
        self.records: list[list[dict[str, Any]]] = []
        self.times_seen: list[float] = []
        self.candidates: list[Any] = []

    def start(self, session: VideoSession) -> None:
        self.fps = session.call.fps
        self.records = [[] for _ in session.texts]

    def frames(self, session: VideoSession) -> Iterator[FrameResult]:
        from tgs.data.media import sample_times

        call = session.call
        expected = max(1, len(sample_times(session.duration, None, call.fps)))
        frames = ground_segment_frames(
            session.video, session.stages, session.pairs, fps=call.fps,
            window_frames=call.window_frames, timer=session.timer, candidates=self.candidates,
        )
        for done, frame in enumerate(frames, start=1):
            self.size = frame.size  # a sampled video's frame size is known once decoded
            self.times_seen.append(round(frame.time, 6))
            for k in range(len(self.records)):
                self.records[k].append(frame_record(frame, k, png=True))
            yield frame
            report(session.progress, 0.25 + 0.73 * min(done / expected, 1.0),
                   f"ground + segment: {done} of ~{expected} frames")

    def summary(self, session: VideoSession) -> ModeSummary:
        per_expression = None
        if session.spec.grounds_itself:
            per_expression = [{"sam3": None if c is None else c.record()} for c in self.candidates]
        return ModeSummary(
            records=self.records, record_times=list(self.times_seen), frame_times=list(self.times_seen),
            output={"mode": "sampled", "num_frames": len(self.times_seen), "fps": session.call.fps,
                    "masks_json": None, "png": True},
            per_expression=per_expression,
        )


class _DenseBase(_FileMode):
    """Every decoded source frame of a video file (:class:`~tgs.segment.frame_source.VideoFrameSource`)."""

    name = "dense"

    def start(self, session: VideoSession) -> None:
        from tgs.segment.frame_source import VideoFrameSource

        self.source = session.timer.run("probe", VideoFrameSource, session.video)
        self.fps, self.size = self.source.fps, self.source.size
        self.num_frames, self.times = self.source.num_frames, self.source.times

    def _output(self, session: VideoSession) -> dict[str, Any]:
        """result.json's ``output`` of dense output: every source frame has a mask."""
        return {
            "mode": "dense",
            "num_frames": self.source.num_frames,
            "fps": round(float(self.source.fps), 6),
            "duration_s": round(float(self.source.duration), 6),
            "masks_json": MASKS_JSON,
            "png": session.png,
        }

    def _frame_times(self) -> list[float]:
        return [round(float(t), 6) for t in self.source.times]


class DenseMode(_DenseBase):
    """Dense output (:mod:`tgs.core.dense`): ground at keyframes, one propagation of every
    expression through every source frame."""

    @property
    def loading(self) -> str:  # type: ignore[override]
        return f"loading Grounding DINO and the propagation model ({self.key})"

    def __init__(self, key: str) -> None:
        self.key = key

    def frames(self, session: VideoSession) -> Iterator[FrameResult]:
        from tgs.core.dense import (
            KeyframeMaskSink,
            ground_keyframes,
            keyframe_frames,
            object_prompts,
            propagation_policy,
        )
        from tgs.segment.propagation import PropagationStats

        call, timer = session.call, session.timer
        report(session.progress, 0.25,
               f"grounding {len(session.texts)} expression(s) at {call.fps:g} keyframe(s) per second")
        self.keyframes = ground_keyframes(
            video_windows(session.video, call.fps, call.window_frames, timer), session.stages,
            session.object_texts, self.source.times, timer.add,
        )
        self.prompts = object_prompts(self.keyframes)
        self.policy = propagation_policy(call.preset)
        records = KeyframeMaskSink(self.keyframes, session.png, MASKS_DIR)
        total = self.source.num_frames
        on_frame = frame_progress(session.progress, total, 0.3, 0.68, "propagating")
        report(session.progress, 0.3, f"propagating {len(session.texts)} object(s) through {total} frames")
        self.stats = PropagationStats()
        start = time.perf_counter()
        frames = session.stages.segmenter.propagate(self.source, self.prompts, self.policy, stats=self.stats,
                                                    on_frame=on_frame)
        for frame in keyframe_frames(frames, self.keyframes):
            records.add(frame)
            yield frame
        timer.add("propagate", time.perf_counter() - start)
        segmenter = session.stages.segmenter
        self.seed_frames = [segmenter.seed_frames_of(p, self.policy) for p in self.prompts]

    def summary(self, session: VideoSession) -> ModeSummary:
        policy, stats = self.policy, self.stats
        return ModeSummary(
            records=self.keyframes.records, record_times=self.keyframes.times, frame_times=self._frame_times(),
            output=self._output(session),
            propagation={
                "model": self.key,
                "source": session.spec.describe().get(self.key),
                "policy": {"seed_frames": policy.seed_frames, "min_seed_score": policy.min_seed_score,
                           "reseed_iou": policy.reseed_iou,
                           "max_conditioning_frames": policy.max_conditioning_frames},
                "seed_frames": self.seed_frames,
                "frames_tracked": stats.frames_tracked,
                "reseeds": stats.reseeds,
                "peak_stored_frames": stats.peak_stored_frames,
                "peak_conditioning_frames": stats.peak_conditioning_frames,
                "process_seconds": {k: round(v, 6) for k, v in stats.seconds.items()},
            },
        )


class Sam3DenseMode(_DenseBase):
    """Dense output with SAM 3 (``segmenter=sam3``): every source frame through ``Sam3VideoModel``
    with every object text a prompt of one bounded-memory session (:mod:`tgs.segment.sam3_stream`),
    the preset's rule over the whole video (``keyframe_best``: the thinker's summary frames), then
    the chosen masklets streamed as frames. The records hold the frames the thinker saw (every
    frame if none)."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.loading = f"loading SAM 3 ({key})"

    def frames(self, session: VideoSession) -> Iterator[FrameResult]:
        from tgs.segment.sam3_stream import StreamStats, chosen_frames, track_candidates

        preset, source, timer = session.call.preset, self.source, session.timer
        total = source.num_frames
        prompts = list(dict.fromkeys(o.text for o in session.object_texts if o.text is not None))
        thinker_times = np.asarray(session.think_input.get("frame_times") or [], np.float64)
        keyframes = sorted({min(int(np.searchsorted(source.times, t - 1e-6)), total - 1) for t in thinker_times})
        self.keyframes = keyframes or None
        self.stats = StreamStats()
        on_frame = frame_progress(session.progress, total, 0.25, 0.5, "SAM 3")
        report(session.progress, 0.25, f"SAM 3 on {total} frames, {len(prompts)} prompt(s)")
        start = time.perf_counter()
        found = dict(zip(prompts, track_candidates(session.stages.grounder, source.frames(0, total), source.size,
                                                   prompts, stats=self.stats, on_frame=on_frame)))
        timer.add("ground_segment", time.perf_counter() - start)
        self.chosen: list[Any] = []
        self.candidates: list[dict[str, Any] | None] = []
        for o in session.object_texts:
            if o.text is None:
                self.chosen.append(None)
                self.candidates.append(None)
                continue
            ids = found[o.text].choose(preset.sam3_choice, preset.sam3_threshold, total, self.keyframes)
            self.chosen.append((found[o.text], ids))
            self.candidates.append(found[o.text].record(preset.sam3_choice, preset.sam3_threshold, ids))
        report(session.progress, 0.75, f"writing {total} frames")
        yield from chosen_frames(source.frames(0, total), self.chosen, source.size, source.times)

    def summary(self, session: VideoSession) -> ModeSummary:
        source, chosen = self.source, self.chosen
        frames_at = self.keyframes if self.keyframes is not None else list(range(source.num_frames))
        records: list[list[dict[str, Any]]] = [[] for _ in session.texts]
        for k in range(len(session.texts)):
            for f in frames_at:
                box, score = None, None
                if chosen[k] is not None:
                    hits = [chosen[k][0].tracks[i][f] for i in chosen[k][1] if f in chosen[k][0].tracks[i]]
                    if hits:
                        score, box, _ = max(hits, key=lambda h: h[0])
                records[k].append({"frame": f, "time": round(float(source.times[f]), 6), "box": box,
                                   "score": score, "mask": f"{MASKS_DIR}/{k}/{f:05d}.png" if session.png else None})
        stats = self.stats
        return ModeSummary(
            records=records, record_times=[round(float(source.times[f]), 6) for f in frames_at],
            frame_times=self._frame_times(), output=self._output(session),
            propagation={
                "model": self.key, "source": session.spec.describe().get(self.key), "bounded": True,
                "keyframes": self.keyframes, "frames_tracked": stats.frames_done,
                "peak_stored_frames": stats.peak_stored_frames, "peak_pixel_frames": stats.peak_pixel_frames,
                "process_seconds": {"track": round(stats.seconds, 6)},
            },
            per_expression=[{"sam3": c} for c in self.candidates],
        )


class BenchmarkMode:
    """A Ref-AVSBench sample: its media folder (``frames/0.jpg ...`` and ``audio.wav``) as one
    clip, thought about whole (as ``tgs run`` does) and grounded and segmented together; one frame
    per extracted frame, stamped at k seconds."""

    name = "benchmark"
    loading = "loading Grounding DINO and SAM2"
    size: tuple[int, int] | None = None
    times: np.ndarray | None = None

    def __init__(self) -> None:
        self.fps: float | None = 1.0
        self.num_frames: int | None = None
        self.records: list[list[dict[str, Any]]] = []
        self.times_seen: list[float] = []
        self._clip: Clip | None = None

    def clip(self, session: VideoSession) -> Clip:
        from tgs.data.media import REF_AVS_SAMPLE_RATE, load_audio, load_frames_dir

        if self._clip is None:
            folder = session.video
            count = len(list((folder / "frames").glob("*.jpg")))
            frames = load_frames_dir(folder / "frames", max(count, 1))
            audio_path = folder / "audio.wav"
            audio = load_audio(audio_path, REF_AVS_SAMPLE_RATE) if audio_path.is_file() else None
            if audio is not None and audio.size == 0:
                audio = None
            self._clip = Clip(frames, audio, REF_AVS_SAMPLE_RATE if audio is not None else None,
                              np.arange(frames.shape[0], dtype=np.float64), str(folder))
        return self._clip

    def think_clip(self, session: VideoSession) -> Clip:
        return self.clip(session)

    def start(self, session: VideoSession) -> None:
        clip = self.clip(session)
        self.size, self.num_frames, self.times = clip.size, clip.num_frames, clip.frame_times
        self.records = [[] for _ in session.texts]

    def frames(self, session: VideoSession) -> Iterator[FrameResult]:
        outcomes = ground_and_segment(session.stages, self.clip(session), session.pairs)
        for frame in clip_frames(self.clip(session), outcomes, 0, session.timer):
            self.times_seen.append(round(frame.time, 6))
            for k in range(len(self.records)):
                self.records[k].append(frame_record(frame, k, png=True))
            yield frame

    def summary(self, session: VideoSession) -> ModeSummary:
        return ModeSummary(
            records=self.records, record_times=list(self.times_seen), frame_times=list(self.times_seen),
            output={"mode": "benchmark", "num_frames": len(self.times_seen), "fps": 1.0, "masks_json": None,
                    "png": True},
        )


def mode_for(name: str, spec: LoadSpec) -> Mode:
    """The mode of a session: "dense" (SAM 3 when the spec's segmenter grounds itself), "sampled"
    or "benchmark"."""
    if name == "dense":
        key = spec.segmenter.key  # type: ignore[union-attr]
        return Sam3DenseMode(key) if spec.grounds_itself else DenseMode(key)  # type: ignore[arg-type]
    if name == "sampled":
        return SampledMode()
    if name == "benchmark":
        return BenchmarkMode()
    raise ValueError(f"mode: expected 'dense', 'sampled' or 'benchmark', got {name!r}")


# --------------------------------------------------------------------------- windows


def video_windows(video: Path, fps: float, window_frames: int, timer: Timer) -> Iterator[Clip]:
    """The sampled frames of ``video`` as clips of ``window_frames`` frames (no audio)."""
    from tgs.data.media import iter_video_frames

    frames = iter_video_frames(video, fps)
    window: list[tuple[float, np.ndarray]] = []
    size: tuple[int, int] | None = None
    while True:
        start = time.perf_counter()
        item = next(frames, None)
        timer.add("decode", time.perf_counter() - start)
        if item is not None:
            window.append(item)
        if window and (item is None or len(window) == window_frames):
            clip = _window_clip(video, window, size)
            size = clip.size
            yield clip
            window = []
        if item is None:
            return


def _window_clip(video: Path, window: list[tuple[float, np.ndarray]], size: tuple[int, int] | None) -> Clip:
    fix = "re-encode the video at one frame size"
    try:
        frames = stack_frames([frame for _, frame in window])
    except ValueError as exc:
        raise MediaError(f"{video}: frame size changes mid-video ({exc})", path=video, fix=fix) from exc
    if size is not None and tuple(frames.shape[1:3]) != size:
        raise MediaError(
            f"{video}: frame size changes mid-video ({size} -> {tuple(frames.shape[1:3])})", path=video, fix=fix
        )
    times = np.array([t for t, _ in window], dtype=np.float64)
    return Clip(frames=frames, audio=None, sample_rate=None, frame_times=times, source=str(video))


def ground_segment_frames(
    video: Path,
    stages: GroundSegmentPipeline,
    pairs: Sequence[tuple[Thought, Query]],
    *,
    fps: float,
    window_frames: int,
    timer: Timer | None = None,
    candidates: list[Any] | None = None,
) -> Iterator[FrameResult]:
    """Ground + Segment of a user video: one :class:`tgs.types.FrameResult` per sampled frame.

    Every (thought, query) pair is grounded and segmented on windows of ``window_frames``
    sampled frames (all pairs of a window together, :func:`tgs.core.stages.ground_and_segment`), and each
    frame comes out with every pair's mask (at the frame size), box, score and ``details``.
    candidates: filled with, per pair, every candidate over the windows when Ground + Segment
    reports them (SAM 3: a :class:`tgs.segment.sam3.WindowedCandidates`, which numbers each
    window's identities after the earlier windows', the frames' ``query_index`` shifted alike),
    else None.
    """
    timer = timer or Timer()
    index = 0
    for clip in video_windows(video, fps, window_frames, timer):
        outcomes = ground_and_segment(stages, clip, pairs)
        yield from clip_frames(clip, outcomes, index, timer, candidates)
        index += clip.num_frames


def clip_frames(
    clip: Clip, outcomes: Sequence[Any], first: int, timer: Timer, candidates: list[Any] | None = None
) -> Iterator[FrameResult]:
    """The frames of one grounded and segmented clip (``outcomes``: one GroundSegmentResult or
    exception per pair), numbered from ``first``; masks fitted to the frame size."""
    from tgs.viz import fit_mask

    if candidates is not None and not candidates:
        candidates.extend([None] * len(outcomes))
    per_pair = []
    for k, outcome in enumerate(outcomes):
        if isinstance(outcome, Exception):
            raise outcome
        for name, seconds in outcome.timings.items():
            timer.add(name, seconds)
        records = outcome.frame_records()
        if candidates is not None and outcome.extra is not None and "sam3" in outcome.extra:
            _add_window_candidates(candidates, k, outcome.extra["sam3"], first, records)
        masks = outcome.masks.masks
        if masks.shape[1:] != clip.size:  # the paper preset keeps masks at 224x224
            masks = np.stack([fit_mask(m, clip.size) for m in masks])
        grounded = outcome.object_text.text is not None
        per_pair.append((masks, records, grounded))
    count = len(per_pair)
    for i in range(clip.num_frames):
        details = [records[i] for _, records, _ in per_pair]
        yield FrameResult(
            index=first + i,
            time=float(clip.frame_times[i]),
            image=clip.frames[i],
            masks=np.stack([masks[i] for masks, _, _ in per_pair]) if count else np.zeros((0, *clip.size), np.bool_),
            boxes=[None if d["box"] is None else tuple(d["box"]) for d in details],  # type: ignore[misc]
            scores=np.array([np.nan if d["score"] is None else d["score"] for d in details], np.float32),
            grounded=np.array([g for _, _, g in per_pair], np.bool_),
            seeded=np.zeros(count, np.bool_),
            details=details,
        )


def _add_window_candidates(
    candidates: list[Any], k: int, record: dict[str, Any], first_frame: int, frame_records: list[dict[str, Any]],
) -> None:
    """Pair k's SAM 3 block of the window starting at sampled frame ``first_frame`` joins its
    :class:`~tgs.segment.sam3.WindowedCandidates`; its frames' identities take the same offset."""
    from tgs.segment.sam3 import WindowedCandidates

    if candidates[k] is None:
        candidates[k] = WindowedCandidates()
    offset = candidates[k].add(record, first_frame)
    for entry in frame_records:
        if entry["query_index"] is not None:
            entry["query_index"] += offset


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


class VideoSession:
    """Think, Ground and Segment one video for several expressions; see the module docstring.

    video: a video file (dense / sampled) or a Ref-AVSBench media folder (benchmark).
    texts: the checked expressions; call: the call's settings (:func:`~tgs.core.segment_call.call_settings`).
    mode: "dense", "sampled" or "benchmark" (:func:`mode_for`).
    models: where the models come from (:class:`SessionModels`).
    png: whether PNG masks are written (the records name them).
    """

    def __init__(
        self, video: Path, texts: Sequence[str], call: CallSettings, mode: str, models: SessionModels, *,
        progress: ProgressCallback | None = None, png: bool = True,
    ) -> None:
        from tgs.data.media import video_duration
        from tgs.video_out import copy_audio_from

        self.video, self.texts, self.call, self.models = Path(video), list(texts), call, models
        self.progress, self.png = progress, png
        self.timer = Timer()
        self.started = time.perf_counter()
        stem = self.video.stem or "video"
        self.queries = [Query(uid=f"{stem}_{k}", expression=text) for k, text in enumerate(self.texts)]
        report(progress, 0.0, f"reading {self.video.name}")
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
                warnings.warn(message, NoAudioWarning, stacklevel=3)
        self.spec = segment_load_spec(
            call.thinker, call.preset, call.settings, dense=mode == "dense",
            thinker_options=thinker_options_for(call.thinker, call.thinker_options, self.duration),
        ) if mode != "benchmark" else self._benchmark_spec()
        self.spec.require()  # every missing model, before loading any
        self.mode = mode_for(mode, self.spec)
        self.thoughts: list[Thought] = []
        self.think_input: dict[str, Any] = {}
        self.object_texts: list[ObjectText] = []
        self.stages: GroundSegmentPipeline | None = None  # type: ignore[assignment]
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
        self.stages = None  # type: ignore[assignment]

    def think(self) -> list[Thought]:
        """Think once about the video (every expression in one thinker call)."""
        call, timer = self.call, self.timer
        report(self.progress, 0.02, f"thinking ({call.thinker}, {len(self.texts)} expression(s))")
        thinker = self.models.thinker(self.spec, timer, call.thinker)
        clip = None
        if call.thinker != "direct":
            clip = timer.run("think_input", self.mode.think_clip, self)
        self.thoughts = think_video(thinker, clip, self.queries, self.video, timer.run)
        self.think_input = think_record(clip, self.duration) if self.mode.name != "benchmark" or clip is None \
            else _clip_think_record(clip)
        del thinker, clip
        self.models.thought()
        return self.thoughts

    def load(self) -> None:
        """Load Grounding DINO and the mode's segmenter, choose the object texts, open the source."""
        report(self.progress, 0.2, self.mode.loading)  # type: ignore[attr-defined]
        label = f"({self.call.preset.name} preset, {self.spec.segmenter.key})"  # type: ignore[union-attr]
        grounder, segmenter = self.models.stages(self.spec, self.timer, label)
        self.stages = GroundSegmentPipeline(grounder, segmenter, self.call.preset)
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
        for k, o in enumerate(self.object_texts):
            what = o.text or "no object (null answer)"
            if len(self.texts) > 1:
                what = f"{k + 1}: {what}"
            labels.append(prefix + what)
        return labels

    def frames(self) -> Iterator[FrameResult]:
        """One FrameResult per emitted frame, in order (once per session)."""
        if self.stages is None:
            raise RuntimeError("frames(): enter the session first (`with ... as session:`)")
        if self._consumed:
            raise RuntimeError("frames(): a session's frames are produced once")
        self._consumed = True
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
            per_expression=mode.per_expression, timings=dict(self.timer.seconds),
        )


def _clip_think_record(clip: Clip) -> dict[str, Any]:
    """What the thinker saw of a benchmark sample: the whole clip."""
    heard = 0.0 if clip.audio is None else clip.audio.shape[0] / float(clip.sample_rate or 1)
    return {"frame_times": [round(float(t), 6) for t in clip.frame_times],
            "audio": None if clip.audio is None else "whole", "audio_seconds": round(heard, 6)}

