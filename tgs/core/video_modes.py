"""How a video session produces its frames: one small strategy object per mode.

- :class:`DenseMode`: every source frame of a video file, grounded at keyframes
  (:mod:`tgs.core.dense`), every expression propagated once through the whole video;
- :class:`Sam3DenseMode`: the same output with SAM 3 over every frame (no Grounding DINO);
- :class:`SampledMode`: frames sampled at ``fps``, window by window, each grounded and segmented;
- :class:`BenchmarkMode`: a Ref-AVSBench media folder (its frames and audio.wav) as one clip.

A mode says what the thinker sees (``think_clip``), opens its source once the models are loaded
(``start``), yields one :class:`tgs.types.FrameResult` per emitted frame (``frames``) and, after
them, what result.json adds (``summary``, a :class:`ModeSummary`). The live mode
(:class:`tgs.core.live_mode.LiveMode`, a camera, a stream or standard input) plugs in the same way.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from tgs.core.load_spec import LoadSpec
from tgs.core.segment_call import Timer, frame_progress, report
from tgs.core.segment_result import MASKS_DIR, MASKS_JSON, frame_record
from tgs.core.stages import ground_and_segment
from tgs.errors import MediaError
from tgs.ground_segment import GroundSegmentStage
from tgs.types import Clip, FrameResult, Query, Thought, stack_frames

if TYPE_CHECKING:
    from tgs.core.session import VideoSession

__all__ = [
    "BenchmarkMode",
    "DenseMode",
    "Mode",
    "ModeSummary",
    "Sam3DenseMode",
    "SampledMode",
    "clip_frames",
    "ground_segment_frames",
    "mode_for",
    "video_windows",
]


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
    live: dict[str, Any] | None = None  # a live source's block (tgs.core.live_mode)


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

    def think_record(self, session: VideoSession, clip: Clip | None) -> dict[str, Any]: ...

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

    def think_record(self, session: VideoSession, clip: Clip | None) -> dict[str, Any]:
        """What the thinker saw of the video: its summary clip (:func:`think_plan`)."""
        from tgs.core.video_think import think_record

        return think_record(clip, session.duration)

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

    def think_record(self, session: VideoSession, clip: Clip | None) -> dict[str, Any]:
        """What the thinker saw of the sample: the whole clip."""
        from tgs.core.video_think import think_record

        return think_record(clip, None)

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
    stages: GroundSegmentStage,
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
