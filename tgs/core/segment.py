"""Segment any video file with one or several expressions: Think once about the whole video,
ground the expressions at keyframes, and give a mask on every source frame.

``segment_video(video, ["expr 1", "expr 2"])`` runs the whole TGS pipeline on one video
file (mp4, mkv, webm, avi, ...; any size, frame rate and length; with or without audio)
and writes (dense output, the default)::

    OUT/
      overlay.mp4          every source frame with every expression's mask drawn, one colour
                           per expression and a legend, at the source's frame rate, size and
                           duration, with the source's audio track kept
      masks/<k>/00000.png  per expression k (0-based, in the order given) one 8-bit PNG per
                           source frame, 0 / 255, at the source frame size (``png=False``: none)
      masks.json           every mask of every frame in COCO RLE (``tgs.dense_outputs``)
      result.json          per expression: reasoning chain, f_object / s_object, boxes and
                           scores at the grounded keyframes; timings, settings (schema 3,
                           ``docs/segment.md``)

One call writes into OUT at a time (``OUT/.lock``); the outputs are written into
``OUT/.partial/`` and replace the previous call's only once all are complete, result.json
last (:class:`tgs.output_folder.StagedOutputs`; a rerun removes only the files a call
writes, :func:`_previous_outputs`). Every warning raised during the call is listed in
result.json's ``warnings``.

Dense output grounds at the keyframes (``keyframe_fps``, 1 per second) and propagates every
expression through every frame in one SAM2-family propagation (:mod:`tgs.core.dense`).
``fps=N`` gives the sampled output instead: frames sampled at N per second, each grounded
and segmented (the windows below), the overlay at N fps, one PNG per sampled frame.

How the video is read (documented in ``docs/segment.md``):

- **Sampling**: frame k is the frame on screen at ``k / fps`` s, decoded as a stream.
- **Think** sees a summary of the whole video (:func:`think_plan`), the same for every
  expression: :data:`THINK_FRAMES` frames spread evenly over it and either the whole
  audio track (videos up to 10 s) or the second of audio starting at each summary frame.
  All expressions are handed to the thinker together with that one clip (it shares the
  clip's work among them). The thinker is released before Ground + Segment load (unless
  the caller passes a :class:`~tgs.model_cache.ModelCache`).
- **Ground + Segment** (:func:`ground_segment_frames`, the one separated step) run on
  windows of ``chunk_seconds`` (a Ref-AVS clip by default), every expression of a window
  together (``Pipeline.ground_and_segment``); it yields one :class:`VideoFrame` per sampled
  frame, which the sinks consume: the mask PNGs, the per-frame records, the overlay video.
- **Memory** is bounded by the window, not the video's length.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from tgs import fast_paths
from tgs.core.flow import Pipeline, share_enabled
from tgs.core.load_spec import LoadSpec, load_spec
from tgs.core.loading import load_model, load_stages_from, public_options
from tgs.core.settings import UNTRAINED_LABEL, Settings
from tgs.errors import MediaError, NoAudioWarning, RunError, SettingsError, TGSError, ThinkerError
from tgs.ground_segment import GroundSegmentStage
from tgs.model_cache import ModelCache, release_memory
from tgs.output_folder import STAGING, StagedOutputs, partial_path
from tgs.presets import Preset, get_preset
from tgs.think.registry import canonical_name
from tgs.types import Clip, Query, Thought, stack_frames

__all__ = [
    "DEFAULT_CHUNK_SECONDS",
    "DIGEST_SECONDS",
    "RESULT_SCHEMA",
    "THINK_FRAMES",
    "UNTRAINED_LABEL",
    "ExpressionOutput",
    "ObjectFrame",
    "SegmentRequest",
    "SegmentVideoResult",
    "VideoFrame",
    "check_segment_call",
    "ground_segment_frames",
    "segment_load_spec",
    "segment_video",
    "think_plan",
]

logger = logging.getLogger(__name__)

DEFAULT_CHUNK_SECONDS = 10.0
"""Ground + Segment window length (s) when none is given: one Ref-AVS clip."""

THINK_FRAMES = 10
"""Frames the thinker sees, spread over the whole video: Ref-Thinker's trained input."""

DIGEST_SECONDS = 10.0
"""Videos up to this long are heard whole by the thinker; longer ones through snippets."""

DIGEST_SNIPPET_SECONDS = 1.0
"""Audio heard per summary frame of a long video (one Ref-AVS second per frame)."""

RESULT_SCHEMA = 3
"""result.json schema: 3 = dense or sampled output (``output`` block, keyframe ``frame`` indices,
``propagation``); 2 = several expressions (``expressions`` list, ``masks/<k>/``); 1 had one."""

OVERLAY_NAME = "overlay.mp4"
MASKS_DIR = "masks"
MASKS_JSON = "masks.json"
RESULT_NAME = "result.json"

DEFAULT_KEYFRAME_FPS = 1.0
"""Keyframes grounded per second of video in dense output (the Ref-AVS sampling rate)."""

_MASK_FILE = re.compile(r"^\d{5}\.png$")
_LEGACY_PARTIALS = (".overlay.partial.mp4", ".masks.json.partial", "result.json.tmp")
"""Partial files that versions before ``OUT/.partial/`` wrote beside the outputs (a killed call left them)."""

ProgressCallback = Callable[..., Any]
"""Called as ``progress(fraction, desc=...)`` with fraction in [0, 1] (a ``gradio.Progress`` fits)."""


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class ExpressionOutput:
    """What one expression of a ``segment_video`` call gave.

    boxes / scores: per sampled frame (dense output: per grounded keyframe), the chosen box
        (x0, y0, x1, y1) in source pixels and its grounding score, None where nothing was boxed.
    masks_dir: ``OUT/masks/<index>`` with one PNG per output frame (every source frame in
        dense output, unless PNGs were skipped).
    keyframes: dense output: the source frame index of each entry of ``boxes``.
    color: its colour in the overlay (RGB).
    """

    index: int
    expression: str
    thought: Thought
    object_text: str | None
    masks_dir: Path
    color: tuple[int, int, int]
    boxes: list[tuple[float, float, float, float] | None] = field(default_factory=list)
    scores: list[float | None] = field(default_factory=list)
    keyframes: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class SegmentVideoResult:
    """Where the outputs went and what the pipeline found, per expression.

    mode: "dense" (a mask on every source frame) or "sampled" (``fps`` given).
    frame_times: per output frame (every source frame, or every sampled one), its presentation time (s).
    masks_json: dense output: ``OUT/masks.json`` (COCO RLE of every mask).
    timings: seconds per step ("probe", "think", "ground", "segment", "encode", "total", ...).
    ``thought``, ``boxes``, ``scores``, ``object_text`` are the first expression's (a
    one-expression call's result).
    """

    out_dir: Path
    overlay_video: Path
    masks_dir: Path
    result_json: Path
    expressions: tuple[ExpressionOutput, ...]
    timings: dict[str, float]
    frame_times: list[float] = field(default_factory=list)
    untrained: bool = False
    warnings: list[str] = field(default_factory=list)
    mode: str = "sampled"
    masks_json: Path | None = None
    fps: float | None = None

    @property
    def num_frames(self) -> int:
        return len(self.frame_times)

    @property
    def thought(self) -> Thought:
        return self.expressions[0].thought

    @property
    def boxes(self) -> list[tuple[float, float, float, float] | None]:
        return self.expressions[0].boxes

    @property
    def scores(self) -> list[float | None]:
        return self.expressions[0].scores

    @property
    def object_text(self) -> str | None:
        return self.expressions[0].object_text


# --------------------------------------------------------------------------- per-frame results


@dataclass(frozen=True, eq=False)
class ObjectFrame:
    """One expression's result on one frame: mask bool [H, W] at the frame size, chosen box and score."""

    mask: np.ndarray
    box: list[float] | None
    score: float | None
    query_index: int | None
    candidates: int


@dataclass(frozen=True, eq=False)
class VideoFrame:
    """One sampled frame and every expression's result on it (in the order of the expressions).

    image: uint8 [H, W, 3] RGB at source size; time: presentation time (s).
    """

    index: int
    time: float
    image: np.ndarray
    objects: tuple[ObjectFrame, ...]


# --------------------------------------------------------------------------- settings


def _resolve_preset(preset: str | Preset) -> Preset:
    return preset if isinstance(preset, Preset) else get_preset(preset)


def segment_load_spec(
    thinker: str, preset: str | Preset, settings: Settings, *, dense: bool,
    thinker_options: Mapping[str, Any] | None = None,
) -> LoadSpec:
    """Every model a ``segment_video`` call loads: dense output (``fps=None``) or sampled (``fps``).

    What the call's pre-flight checks, its loaders load, its model cache keys on and its
    result.json records; ``tgs quickstart`` and the demo check the same before they start.
    """
    resolved = _resolve_preset(preset)
    return load_spec(resolved, settings, "dense" if dense else "sampled", thinker=thinker,
                     thinker_options=thinker_options, share=share_enabled(resolved))  # fmt: skip


def _check_expressions(expressions: str | Sequence[str]) -> list[str]:
    items = [expressions] if isinstance(expressions, str) else list(expressions)
    if not items:
        raise SettingsError("expressions: expected at least one referring expression, e.g. 'the dog barking'")
    out = []
    for k, text in enumerate(items):
        if not isinstance(text, str) or not text.strip():
            which = f"expression {k + 1} of {len(items)}" if len(items) > 1 else "the expression"
            raise SettingsError(
                f"{which} is empty: expected a referring expression, e.g. 'the dog barking'",
                fix="give it some text, or leave it out (expressions are counted from 1 in the order given)"
                if len(items) > 1 else "give some text",
            )
        out.append(text.strip())
    return out


@dataclass(frozen=True)
class SegmentRequest:
    """A ``segment_video`` call's arguments, checked (:func:`check_segment_call`)."""

    video: Path
    texts: list[str]
    out_dir: Path
    dense: bool


def check_segment_call(
    video: Path,
    expressions: str | Sequence[str],
    *,
    thinker: str = "ref-thinker",
    settings: Settings | None = None,
    out: Path | None = None,
    fps: float | None = None,
    keyframe_fps: float = 1.0,
    chunk_seconds: float | None = None,
    thinker_options: Mapping[str, Any] | None = None,
) -> SegmentRequest:
    """Every check of a ``segment_video`` call that needs no model and writes nothing, so a bad
    argument is refused before any work: the expressions (which one is empty), the thinker and
    its options, the rates, the device, the video (exists, is a file, opens) and the output
    folder (not a file, not one of the inputs). SettingsError, MediaError or ValueError.

    ``tgs segment`` calls it before it starts its progress bar; ``segment_video`` calls it first.
    """
    from tgs.core.loading import check_thinker_options
    from tgs.data.media import source_frame_rate
    from tgs.devices import resolve_device
    from tgs.paths import check_output_folder

    video = Path(video)
    texts = _check_expressions(expressions)
    check_thinker_options(canonical_name(thinker), dict(thinker_options or {}))
    dense = fps is None
    name, rate = ("keyframe_fps", keyframe_fps) if dense else ("fps", fps)
    if not (isinstance(rate, (int, float)) and math.isfinite(rate) and rate > 0):
        raise ValueError(f"{name}: expected a positive number of frames per second, got {rate!r}")
    if chunk_seconds is not None and not (math.isfinite(float(chunk_seconds)) and float(chunk_seconds) > 0):
        raise ValueError(f"chunk_seconds: expected a positive number of seconds, got {chunk_seconds!r}")
    resolve_device((settings or Settings()).device)  # a bad or unavailable device
    source_frame_rate(video)  # MediaError: missing, a folder, not a media file
    out_dir = Path(out) if out is not None else Path(f"segment_{video.stem or 'video'}")
    check_output_folder(out_dir, [video], (OVERLAY_NAME, MASKS_DIR, MASKS_JSON, RESULT_NAME, STAGING))
    return SegmentRequest(video=video, texts=texts, out_dir=out_dir, dense=dense)


@dataclass(frozen=True)
class _Call:
    thinker: str
    preset: Preset
    settings: Settings
    fps: float
    chunk_seconds: float
    window_frames: int
    thinker_options: dict[str, Any]


def _call(thinker: str, preset: str | Preset, settings: Settings | None, fps: float, chunk_seconds: float | None,
          thinker_options: Mapping[str, Any] | None) -> _Call:
    """The settings of a call whose arguments :func:`check_segment_call` accepted; fps: the rate sampled."""
    chunk = DEFAULT_CHUNK_SECONDS if chunk_seconds is None else float(chunk_seconds)
    return _Call(
        thinker=canonical_name(thinker),
        preset=_resolve_preset(preset),
        settings=settings or Settings(),
        fps=float(fps),
        chunk_seconds=chunk,
        window_frames=max(1, round(chunk * fps)),
        thinker_options=dict(thinker_options or {}),
    )


# --------------------------------------------------------------------------- helpers


class _Timer:
    """Accumulates seconds per named step."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def run(self, name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.add(name, time.perf_counter() - start)


def _report(progress: ProgressCallback | None, fraction: float, desc: str) -> None:
    logger.info("%s (%.0f%%)", desc, 100 * fraction)
    if progress is not None:
        progress(min(max(fraction, 0.0), 1.0), desc=desc)


def _previous_outputs(out: Path) -> list[Path]:
    """What a previous call wrote in OUT, the files a new call replaces or removes: overlay.mp4,
    masks.json and the mask PNGs, i.e. files named ``00000.png`` (five digits) in ``masks/``
    (schema 1) and in its numbered folders ``masks/<k>/``; also the partial files that earlier
    versions left beside the outputs when killed. Nothing else in OUT is touched."""
    found = [out / OVERLAY_NAME, out / MASKS_JSON, *(out / name for name in _LEGACY_PARTIALS)]
    masks = out / MASKS_DIR
    if masks.is_dir():
        for path in masks.iterdir():
            if path.is_dir() and path.name.isdigit():
                found.extend(p for p in path.iterdir() if _MASK_FILE.match(p.name) and p.is_file())
            elif _MASK_FILE.match(path.name) and path.is_file():
                found.append(path)
    return [p for p in found if p.is_file()]


class _Outputs:
    """Where a call's outputs are written (staged, :class:`tgs.output_folder.StagedOutputs`) and
    where they end up (OUT): published together by :meth:`publish`, result.json last."""

    def __init__(self, out_dir: Path, staged: StagedOutputs) -> None:
        self.out_dir = out_dir
        self.staged = staged
        self.overlay = staged.path(OVERLAY_NAME)
        self.masks = staged.path(MASKS_DIR)
        self.masks_json = staged.path(MASKS_JSON)
        self.result_json = staged.path(RESULT_NAME)

    def publish(self, record: Mapping[str, Any]) -> None:
        _write_json(self.result_json, record)
        self.staged.publish(replaced=_previous_outputs(self.out_dir))


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    tmp = partial_path(path)
    tmp.write_text(json.dumps(dict(data), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


@contextmanager
def _recorded_warnings() -> Iterator[list[warnings.WarningMessage]]:
    """The warnings raised inside, recorded as they come (for result.json: :func:`_warning_lines`);
    on leaving, each distinct one is issued again, so the caller's filters and display apply to it.

    Every warning is recorded, also one the caller ignores (e.g. a batch that notes a missing
    audio track in its own index): result.json lists what happened, the console what is wanted.
    """
    recorded: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            recorded = caught
            yield caught
    finally:
        distinct = {(w.category, " ".join(str(w.message).split())): w for w in recorded}
        for w in distinct.values():
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)


def _warning_lines(caught: Sequence[warnings.WarningMessage]) -> list[str]:
    """Each distinct warning once, as one plain line (no source path, no code)."""
    return list(dict.fromkeys(" ".join(str(w.message).split()) for w in caught))


# --------------------------------------------------------------------------- think


def _thinker_options(call: _Call, digest: bool) -> dict[str, Any]:
    options = dict(call.thinker_options)
    if call.thinker == "omni" and digest:
        options.setdefault("fps", 1.0)  # the 10 s digest: one frame per second of the audio it hears
    return options


def think_plan(duration: float) -> tuple[list[float], list[tuple[float, float]] | None]:
    """(target times of the summary frames, audio segments heard; None = the whole track).

    THINK_FRAMES frames spread evenly over the video (frame k on screen at ``k * duration / 10``).
    A video up to DIGEST_SECONDS long is heard whole; a longer one through the
    DIGEST_SNIPPET_SECONDS of audio that start at each summary frame, so the thinker gets
    a 10-second digest, frame k paired with audio second k as in a Ref-AVS clip.
    """
    from tgs.data.media import sample_times

    times = sample_times(duration, THINK_FRAMES)
    if duration <= DIGEST_SECONDS:
        return times, None
    return times, [(t, t + DIGEST_SNIPPET_SECONDS) for t in times]


def _summary_clip(video: Path, duration: float, has_audio: bool) -> Clip:
    """The clip the thinker sees: see :func:`think_plan`."""
    from tgs.data.audio_stream import stream_audio_mono
    from tgs.data.media import REF_AVS_SAMPLE_RATE, load_video_frames

    _, segments = think_plan(duration)
    frames, times = load_video_frames(video, THINK_FRAMES)
    audio = stream_audio_mono(video, REF_AVS_SAMPLE_RATE, segments=segments) if has_audio else None
    if audio is not None and audio.shape[0] == 0:
        audio = None
    return Clip(
        frames=frames,
        audio=audio,
        sample_rate=REF_AVS_SAMPLE_RATE if audio is not None else None,
        frame_times=times,
        source=str(video),
    )


def _think(call: _Call, spec: LoadSpec, video: Path, duration: float, has_audio: bool, queries: list[Query],
           timer: _Timer, cache: ModelCache | None) -> tuple[list[Thought], dict[str, Any]]:
    """(one thought per query, what the thinker saw): the spec's thinker loaded (or taken from
    ``cache``), asked once.

    Without a cache the thinker is released before Ground + Segment load.
    """

    def load() -> Any:
        return load_model(spec.thinker)  # type: ignore[arg-type]

    if cache is None:
        thinker = timer.run("load_thinker", load)
    else:
        thinker = timer.run("load_thinker", cache.thinker, spec.thinker_key, load, call.thinker)
    clip = None
    if call.thinker != "direct":
        clip = timer.run("think_input", _summary_clip, video, duration, has_audio)
    outcomes = timer.run("think", Pipeline(thinker).think, clip, queries)
    thoughts = []
    for outcome in outcomes:
        if isinstance(outcome, TGSError):
            raise outcome
        if isinstance(outcome, Exception):
            raise ThinkerError(f"the {thinker.name} thinker failed on {video}: {outcome}", path=video) from outcome
        thoughts.append(outcome)
    seen = _think_record(clip, duration)
    del thinker, clip
    if cache is None:
        release_memory()
    return thoughts, seen


def _think_record(clip: Clip | None, duration: float) -> dict[str, Any]:
    """What the thinker saw, for result.json."""
    if clip is None:
        return {"frame_times": [], "audio": None, "audio_seconds": 0.0}
    _, segments = think_plan(duration)
    heard = 0.0 if clip.audio is None else clip.audio.shape[0] / float(clip.sample_rate or 1)
    return {
        "frame_times": [round(float(t), 6) for t in clip.frame_times],
        "audio": None if clip.audio is None else ("whole" if segments is None else "snippets"),
        "audio_seconds": round(heard, 6),
    }


# --------------------------------------------------------------------------- ground + segment


def _windows(video: Path, fps: float, window_frames: int, timer: _Timer) -> Iterator[Clip]:
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
    pipeline: Pipeline,
    pairs: Sequence[tuple[Thought, Query]],
    *,
    fps: float,
    window_frames: int,
    timer: _Timer | None = None,
    object_texts: list[Any] | None = None,
    candidates: list[Any] | None = None,
) -> Iterator[VideoFrame]:
    """Ground + Segment of a user video: one :class:`VideoFrame` per sampled frame, as a stream.

    The one step between Think and the sinks: every (thought, query) pair is grounded and
    segmented on windows of ``window_frames`` sampled frames (all pairs of a window
    together), and each frame comes out with every pair's mask (at the frame size), box and
    score. object_texts: filled with each pair's :class:`tgs.ground_segment.ObjectText` (first window).
    candidates: filled with, per pair, every candidate over the windows when Ground + Segment
    reports them (SAM 3: a :class:`tgs.segment.sam3.WindowedCandidates`, which numbers each
    window's identities after the earlier windows', the frames' ``query_index`` shifted alike),
    else None.
    """
    from tgs.viz import fit_mask

    timer = timer or _Timer()
    index = 0
    for clip in _windows(video, fps, window_frames, timer):
        outcomes = pipeline.ground_and_segment(clip, pairs)
        if candidates is not None and not candidates:
            candidates.extend([None] * len(outcomes))
        per_pair = []
        for outcome in outcomes:
            if isinstance(outcome, Exception):
                raise outcome
            for name, seconds in outcome.timings.items():
                timer.add(name, seconds)
            records = outcome.frame_records()
            if candidates is not None and outcome.extra is not None and "sam3" in outcome.extra:
                _add_window_candidates(candidates, len(per_pair), outcome.extra["sam3"], index, records)
            masks = outcome.masks.masks
            if masks.shape[1:] != clip.size:  # the paper preset keeps masks at 224x224
                masks = np.stack([fit_mask(m, clip.size) for m in masks])
            per_pair.append((masks, records))
        if object_texts is not None and not object_texts:
            object_texts.extend(o.object_text for o in outcomes)  # type: ignore[union-attr]
        for i in range(clip.num_frames):
            objects = tuple(
                ObjectFrame(masks[i], rec[i]["box"], rec[i]["score"], rec[i]["query_index"], rec[i]["candidates"])
                for masks, rec in per_pair
            )
            yield VideoFrame(index, float(clip.frame_times[i]), clip.frames[i], objects)
            index += 1


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


# --------------------------------------------------------------------------- sinks


class _MaskPngSink:
    """``masks/<k>/00000.png`` per expression k and frame."""

    def __init__(self, masks_dir: Path, count: int, timer: _Timer) -> None:
        self.dirs = [masks_dir / str(k) for k in range(count)]
        for folder in self.dirs:
            folder.mkdir(parents=True, exist_ok=True)
        self.timer = timer

    def add(self, frame: VideoFrame) -> None:
        from tgs.viz import save_mask_pngs

        for folder, obj in zip(self.dirs, frame.objects):
            self.timer.run("masks", save_mask_pngs, obj.mask[None], folder, first_index=frame.index)


class _RecordSink:
    """Per expression, the per-frame records of result.json."""

    def __init__(self, count: int) -> None:
        self.records: list[list[dict[str, Any]]] = [[] for _ in range(count)]
        self.times: list[float] = []
        self.frame_size: tuple[int, int] | None = None

    def add(self, frame: VideoFrame) -> None:
        self.times.append(round(frame.time, 6))
        self.frame_size = (int(frame.image.shape[0]), int(frame.image.shape[1]))
        for k, obj in enumerate(frame.objects):
            self.records[k].append(
                {
                    "index": frame.index,
                    "time": round(frame.time, 6),
                    "box": obj.box,
                    "score": obj.score,
                    "query_index": obj.query_index,
                    "candidates": obj.candidates,
                    "mask_area": round(float(obj.mask.mean()), 6),
                    "mask": f"{MASKS_DIR}/{k}/{frame.index:05d}.png",
                }
            )


def _drawn(
    frames: Iterator[VideoFrame], sinks: Sequence[Any], labels: Sequence[str], timer: _Timer,
    progress: Callable[[int], None],
) -> Iterator[np.ndarray]:
    """The overlay frames (every expression in its colour, with a legend), feeding the other sinks on the way."""
    from tgs.viz import overlay_objects

    done = 0
    while True:
        start = time.perf_counter()
        frame = next(frames, None)
        if frame is None:
            return
        for sink in sinks:
            sink.add(frame)
        timer.add("busy", time.perf_counter() - start)
        start = time.perf_counter()
        image = overlay_objects(
            frame.image, [o.mask for o in frame.objects], [o.box for o in frame.objects], labels
        )
        timer.add("draw", time.perf_counter() - start)
        timer.add("busy", time.perf_counter() - start)
        done += 1
        progress(done)
        yield image


# --------------------------------------------------------------------------- the call


@fast_paths.counting()  # this call's fast paths and fallbacks: result.json's timings.fast_paths
def segment_video(
    video: Path,
    expressions: str | Sequence[str],
    *,
    thinker: str = "ref-thinker",
    preset: str | Preset = "best",
    settings: Settings | None = None,
    out: Path | None = None,
    fps: float | None = None,
    thinker_options: Mapping[str, Any] | None = None,
    chunk_seconds: float | None = None,
    progress: ProgressCallback | None = None,
    cache: ModelCache | None = None,
    keyframe_fps: float = DEFAULT_KEYFRAME_FPS,
    png: bool = True,
) -> SegmentVideoResult:
    """Run Think, Ground and Segment on one video file for one or several expressions.

    expressions: one referring expression or several (each gets its colour, its masks
        folder ``masks/<k>`` and its entry in result.json, in the order given).
    thinker: "ref-thinker", "omni", "api" or "direct" (the expression itself).
    preset: "best", "paper" or a :class:`~tgs.presets.Preset`.
    settings: device, dtype and model sources (:class:`~tgs.core.settings.Settings`;
        ``Settings.tiny()``: random untrained models, outputs labelled UNTRAINED).
    out: output folder (default ``./segment_<video stem>``), one call at a time (a second
        one is refused, naming the first's pid). The outputs are written into ``OUT/.partial/``
        and replace a previous call's (its overlay, masks.json and mask PNGs; nothing else)
        only once all are complete, result.json last; a killed call leaves the previous
        outputs as they were, and the next call removes its partial files.
    fps: None (default): dense output, a mask on every source frame (grounded at
        ``keyframe_fps`` keyframes, propagated through every frame); a number: sampled
        output, every output has one entry per frame sampled at that rate.
    keyframe_fps: dense output: frames grounded per second (the propagation's keyframes).
    png: dense output: write the PNG masks (``masks.json`` has them all anyway).
    thinker_options: the thinker's options (``tgs.core.loading.thinker_options``).
    chunk_seconds: Ground (+ Segment) window (default 10 s).
    progress: called as ``progress(fraction, desc=...)``.
    cache: a :class:`~tgs.model_cache.ModelCache` to take models from and keep them in.

    Raises SettingsError / ValueError (bad arguments, :func:`check_segment_call`), MediaError
    (unreadable video), MissingWeightsError (every missing model), all before anything is
    loaded or written; RunError when another call writes into ``out``. Warnings (e.g.
    NoAudioWarning for a video without audio, which runs) are issued and listed in
    result.json's ``warnings``.
    """
    with _recorded_warnings() as caught:
        return _segment_video(
            check_segment_call(
                video, expressions, thinker=thinker, settings=settings, out=out, fps=fps, keyframe_fps=keyframe_fps,
                chunk_seconds=chunk_seconds, thinker_options=thinker_options,
            ),
            caught, thinker=thinker, preset=preset, settings=settings, fps=fps, thinker_options=thinker_options,
            chunk_seconds=chunk_seconds, progress=progress, cache=cache, keyframe_fps=keyframe_fps, png=png,
        )


def _segment_video(
    request: SegmentRequest, caught: list[warnings.WarningMessage], *, thinker: str, preset: str | Preset,
    settings: Settings | None, fps: float | None, thinker_options: Mapping[str, Any] | None,
    chunk_seconds: float | None, progress: ProgressCallback | None, cache: ModelCache | None, keyframe_fps: float,
    png: bool,
) -> SegmentVideoResult:
    from tgs.data.media import cap_sampling_rate, sample_times, video_duration
    from tgs.video_out import copy_audio_from

    started = time.perf_counter()
    video, texts, dense = request.video, request.texts, request.dense
    if dense:
        with warnings.catch_warnings():  # keyframes above the source rate: capped quietly
            warnings.simplefilter("ignore")
            rate = cap_sampling_rate(video, keyframe_fps)
    else:
        rate = cap_sampling_rate(video, fps)  # never above the source's frame rate (warns)
    call = _call(thinker, preset, settings, rate, chunk_seconds, thinker_options)
    timer = _Timer()

    _report(progress, 0.0, f"reading {video.name}")
    duration = timer.run("probe", video_duration, video)
    source_audio = timer.run("probe", copy_audio_from, video)
    if source_audio is None:
        message = f"{video} has no audio track: the thinker hears nothing and the overlay video is silent"
        warnings.warn(message, NoAudioWarning, stacklevel=2)
    spec = segment_load_spec(call.thinker, call.preset, call.settings, dense=dense,
                             thinker_options=_thinker_options(call, duration > DIGEST_SECONDS))  # fmt: skip
    spec.require()  # every missing model, before loading any
    expected = max(1, len(sample_times(duration, None, call.fps)))

    out_dir = request.out_dir
    stem = video.stem or "video"
    queries = [Query(uid=f"{stem}_{k}", expression=text) for k, text in enumerate(texts)]
    with StagedOutputs(out_dir, marker=RESULT_NAME, error=RunError) as staged:
        outputs = _Outputs(out_dir, staged)
        _report(progress, 0.02, f"thinking ({call.thinker}, {len(texts)} expression(s))")
        thoughts, think_input = _think(call, spec, video, duration, source_audio is not None, queries, timer, cache)
        seen = _Seen(video, duration, think_input, source_audio, caught)
        if dense and spec.grounds_itself:  # SAM 3 streams every frame itself
            return _sam3_dense_call(call, texts, thoughts, queries, outputs, seen, timer, started, progress, cache,
                                    spec, png)
        if dense:
            return _dense_call(call, texts, thoughts, queries, outputs, seen, timer, started, progress, cache, spec,
                               png)
        _report(progress, 0.2, "loading SAM 3" if spec.grounds_itself else "loading Grounding DINO and SAM2")
        pipeline = _stage_pipeline(call, spec, timer, cache)
        records, object_texts, candidates = _ground_segment(
            call, video, pipeline, list(zip(thoughts, queries)), outputs, source_audio, timer,
            progress=lambda done: _report(
                progress, 0.25 + 0.73 * min(done / expected, 1.0), f"ground + segment: {done} of ~{expected} frames"
            ),
        )
        timer.add("total", time.perf_counter() - started)
        result = _result(call, out_dir, texts, thoughts, records, object_texts, timer, seen)
        outputs.publish(_result_record(
            result, records, object_texts, call, seen, spec,
            output={"mode": "sampled", "num_frames": len(records.times), "fps": call.fps, "masks_json": None,
                    "png": True},
            propagation=None,
            per_expression=[{"sam3": None if c is None else c.record()} for c in candidates] if spec.grounds_itself
            else None,
        ))
    _report(progress, 1.0, f"done: {out_dir}")
    return result


@dataclass(frozen=True)
class _Seen:
    """What a call read besides the models' answers, for result.json: the video, what the thinker
    saw, the audio kept, and the warnings raised so far (a live list)."""

    video: Path
    duration: float
    think_input: dict[str, Any]
    source_audio: Any
    caught: list[warnings.WarningMessage]


def _dense_sinks(
    call: _Call, texts: list[str], object_texts: Sequence[Any], outputs: _Outputs, seen: _Seen, source: Any, png: bool
) -> list[Any]:
    """The sinks of every dense output, in order: a PNG per frame and expression (``png``), every
    mask in masks.json, the overlay video with its legend (one entry per expression)."""
    from tgs.dense_outputs import CocoRleSink, MaskPngSink, OverlayVideoSink

    count = len(texts)
    legend = _Labels("UNTRAINED: " if call.settings.untrained else "", texts, list(object_texts))
    sinks: list[Any] = [MaskPngSink(outputs.masks, count)] if png else []
    sinks.append(CocoRleSink(outputs.masks_json, count, source.size, names=texts, fps=source.fps,
                             times=source.times, num_frames=source.num_frames))
    sinks.append(OverlayVideoSink(outputs.overlay, source.fps, count, names=[legend[k] for k in range(count)],
                                  audio=seen.source_audio))
    return sinks


def _frame_progress(
    progress: ProgressCallback | None, total: int, start: float, span: float, what: str
) -> Callable[[Any], None]:
    """The ``on_frame`` callback of a dense pass over ``total`` frames: the progress bar moves
    from ``start`` by ``span``, about a hundred updates over the video (and at its last frame)."""
    step = max(1, total // 100)

    def on_frame(stats: Any) -> None:
        done = stats.frames_done
        if progress is not None and (done % step == 0 or done == total):
            progress(start + span * min(done / total, 1.0), desc=f"{what}: frame {done} of {total}")

    return on_frame


def _dense_output(source: Any, png: bool) -> dict[str, Any]:
    """result.json's ``output`` of a dense call: every source frame has a mask."""
    return {
        "mode": "dense",
        "num_frames": source.num_frames,
        "fps": round(float(source.fps), 6),
        "duration_s": round(float(source.duration), 6),
        "masks_json": MASKS_JSON,
        "png": png,
    }


def _dense_call(
    call: _Call, texts: list[str], thoughts: list[Thought], queries: list[Query], outputs: _Outputs, seen: _Seen,
    timer: _Timer, started: float, progress: ProgressCallback | None, cache: ModelCache | None, spec: LoadSpec,
    png: bool,
) -> SegmentVideoResult:
    """Dense output (see :mod:`tgs.core.dense`): ground at keyframes, one propagation, sinks."""
    from tgs.core.dense import (
        KeyframeMaskSink,
        ground_keyframes,
        object_prompts,
        propagate,
        propagation_policy,
    )
    from tgs.segment.frame_source import VideoFrameSource

    video, out_dir = seen.video, outputs.out_dir
    key = spec.segmenter.key  # type: ignore[union-attr]
    _report(progress, 0.2, f"loading Grounding DINO and the propagation model ({key})")
    grounder, segmenter = _stages(call, spec, timer, cache)
    source = timer.run("probe", VideoFrameSource, video)
    pairs = list(zip(thoughts, queries))
    _report(progress, 0.25, f"grounding {len(texts)} expression(s) at {call.fps:g} keyframe(s) per second")
    keyframes = ground_keyframes(
        _windows(video, call.fps, call.window_frames, timer), grounder, call.preset, pairs, source.times, timer.add
    )
    prompts = object_prompts(keyframes)
    policy = propagation_policy(call.preset)
    total = source.num_frames
    sinks = [
        KeyframeMaskSink(keyframes, png, MASKS_DIR),
        *_dense_sinks(call, texts, keyframes.object_texts, outputs, seen, source, png),
    ]
    on_frame = _frame_progress(progress, total, 0.3, 0.68, "propagating")
    _report(progress, 0.3, f"propagating {len(texts)} object(s) through {total} frames")
    start = time.perf_counter()
    stats = propagate(segmenter, source, prompts, policy, sinks, on_frame=on_frame)
    timer.add("propagate", time.perf_counter() - start)
    timer.add("total", time.perf_counter() - started)

    records = _RecordSink(len(texts))
    records.records, records.times, records.frame_size = keyframes.records, keyframes.times, source.size
    result = _result(call, out_dir, texts, thoughts, records, keyframes.object_texts, timer, seen,
                     dense=(source.times, source.fps))
    models = spec.describe()
    outputs.publish(_result_record(
        result, records, keyframes.object_texts, call, seen, spec,
        output=_dense_output(source, png),
        propagation={
            "model": key,
            "source": models.get(key),
            "policy": {"seed_frames": policy.seed_frames, "min_seed_score": policy.min_seed_score,
                       "reseed_iou": policy.reseed_iou, "max_conditioning_frames": policy.max_conditioning_frames},
            "seed_frames": [sorted(int(f) for f in segmenter.engine.plan(p, policy)[0]) for p in prompts],
            "frames_tracked": stats.frames_tracked,
            "reseeds": stats.reseeds,
            "peak_stored_frames": stats.peak_stored_frames,
            "peak_conditioning_frames": stats.peak_conditioning_frames,
            "process_seconds": {k: round(v, 6) for k, v in stats.seconds.items()},
        },
    ))
    _report(progress, 1.0, f"done: {out_dir}")
    return result


def _sam3_dense_call(
    call: _Call, texts: list[str], thoughts: list[Thought], queries: list[Query], outputs: _Outputs, seen: _Seen,
    timer: _Timer, started: float, progress: ProgressCallback | None, cache: ModelCache | None, spec: LoadSpec,
    png: bool,
) -> SegmentVideoResult:
    """Dense output with SAM 3 (``segmenter=sam3``): every source frame through ``Sam3VideoModel``
    with every object text a prompt of one bounded-memory session (:mod:`tgs.segment.sam3_stream`),
    the preset's rule over the whole video (``keyframe_best``: the thinker's summary frames), then
    the chosen masklets streamed into the same sinks, staged outputs and result.json as
    :func:`_dense_call`. The records hold the frames the thinker saw (every frame if none)."""
    from tgs.dense_outputs import run_sinks
    from tgs.ground_segment import choose_object_text
    from tgs.segment.frame_source import VideoFrameSource
    from tgs.segment.sam3_stream import StreamStats, chosen_frames, track_candidates

    preset, out_dir = call.preset, outputs.out_dir
    key = spec.segmenter.key  # type: ignore[union-attr]
    _report(progress, 0.2, f"loading SAM 3 ({key})")
    stage, _ = _stages(call, spec, timer, cache)
    source = timer.run("probe", VideoFrameSource, seen.video)
    total = source.num_frames
    object_texts = [choose_object_text(t, q, preset) for t, q in zip(thoughts, queries)]
    prompts = list(dict.fromkeys(o.text for o in object_texts if o.text is not None))
    thinker_times = np.asarray(seen.think_input.get("frame_times") or [], np.float64)
    keyframes = sorted({min(int(np.searchsorted(source.times, t - 1e-6)), total - 1) for t in thinker_times}) or None
    stats = StreamStats()
    on_frame = _frame_progress(progress, total, 0.25, 0.5, "SAM 3")
    _report(progress, 0.25, f"SAM 3 on {total} frames, {len(prompts)} prompt(s)")
    start = time.perf_counter()
    found = dict(zip(prompts, track_candidates(stage, source.frames(0, total), source.size, prompts, stats=stats,
                                               on_frame=on_frame)))
    timer.add("ground_segment", time.perf_counter() - start)
    chosen: list[Any] = []
    candidates: list[dict[str, Any] | None] = []
    for o in object_texts:
        if o.text is None:
            chosen.append(None)
            candidates.append(None)
            continue
        ids = found[o.text].choose(preset.sam3_choice, preset.sam3_threshold, total, keyframes)
        chosen.append((found[o.text], ids))
        candidates.append(found[o.text].record(preset.sam3_choice, preset.sam3_threshold, ids))
    sinks = _dense_sinks(call, texts, object_texts, outputs, seen, source, png)
    _report(progress, 0.75, f"writing {total} frames")
    start = time.perf_counter()
    run_sinks(chosen_frames(source.frames(0, total), chosen, source.size), sinks)
    timer.add("write", time.perf_counter() - start)
    timer.add("total", time.perf_counter() - started)

    frames_at = keyframes if keyframes is not None else list(range(total))
    records = _RecordSink(len(texts))
    records.times = [round(float(source.times[f]), 6) for f in frames_at]
    records.frame_size = source.size
    for k in range(len(texts)):
        for f in frames_at:
            box, score = None, None
            if chosen[k] is not None:
                hits = [chosen[k][0].tracks[i][f] for i in chosen[k][1] if f in chosen[k][0].tracks[i]]
                if hits:
                    score, box, _ = max(hits, key=lambda h: h[0])
            records.records[k].append({"frame": f, "time": round(float(source.times[f]), 6), "box": box,
                                       "score": score, "mask": f"{MASKS_DIR}/{k}/{f:05d}.png" if png else None})
    result = _result(call, out_dir, texts, thoughts, records, object_texts, timer, seen,
                     dense=(source.times, source.fps))
    outputs.publish(_result_record(
        result, records, object_texts, call, seen, spec,
        output=_dense_output(source, png),
        propagation={
            "model": key, "source": spec.describe().get(key), "bounded": True, "keyframes": keyframes,
            "frames_tracked": stats.frames_done, "peak_stored_frames": stats.peak_stored_frames,
            "peak_pixel_frames": stats.peak_pixel_frames, "process_seconds": {"track": round(stats.seconds, 6)},
        },
        per_expression=[{"sam3": c} for c in candidates],
    ))
    _report(progress, 1.0, f"done: {out_dir}")
    return result


def _stages(call: _Call, spec: LoadSpec, timer: _Timer, cache: ModelCache | None) -> tuple[Any, Any]:
    """The spec's (Grounding DINO, segmenter), loaded or taken from ``cache`` (keyed by the spec)."""

    def load() -> tuple[Any, Any]:
        return load_stages_from(spec)

    if cache is None:
        return timer.run("load_models", load)
    label = f"({call.preset.name} preset, {spec.segmenter.key})"  # type: ignore[union-attr]
    return timer.run("load_models", cache.stages, spec.stages_key, load, label)


def _stage_pipeline(call: _Call, spec: LoadSpec, timer: _Timer, cache: ModelCache | None) -> Pipeline:
    grounder, segmenter = _stages(call, spec, timer, cache)
    return Pipeline(None, GroundSegmentStage(grounder, segmenter, call.preset))


class _OncePerMessage(logging.Filter):
    """Lets each distinct log message through once: the pipeline logs per window, the user needs it once."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message in self.seen:
            return False
        self.seen.add(message)
        return True


def _ground_segment(
    call: _Call,
    video: Path,
    pipeline: Pipeline,
    pairs: list[tuple[Thought, Query]],
    outputs: _Outputs,
    source_audio: Any,
    timer: _Timer,
    *,
    progress: Callable[[int], None],
) -> tuple[_RecordSink, list[Any], list[Any]]:
    """Ground + Segment streamed into the sinks: mask PNGs, records, and the overlay video; also
    the object texts and, per expression, every candidate over the windows (SAM 3) or None."""
    from tgs.video_out import write_overlay_video

    prefix = "UNTRAINED: " if call.settings.untrained else ""
    object_texts: list[Any] = []
    candidates: list[Any] = []
    frames = ground_segment_frames(
        video, pipeline, pairs, fps=call.fps, window_frames=call.window_frames, timer=timer, object_texts=object_texts,
        candidates=candidates,
    )
    records = _RecordSink(len(pairs))
    sinks = [_MaskPngSink(outputs.masks, len(pairs), timer), records]
    labels = _Labels(prefix, [q.expression for _, q in pairs], object_texts)
    start = time.perf_counter()
    once = _OncePerMessage()  # the pipeline logs per window (e.g. "no usable tag"); once is enough
    pipeline_logger = logging.getLogger("tgs.ground_segment")
    pipeline_logger.addFilter(once)
    try:
        write_overlay_video(outputs.overlay, _drawn(frames, sinks, labels, timer, progress), call.fps, audio=source_audio)
    finally:
        pipeline_logger.removeFilter(once)
    busy = timer.seconds.pop("busy", 0.0)
    timer.add("encode", time.perf_counter() - start - busy)  # busy: decoding, Ground + Segment, sinks, drawing
    return records, object_texts, candidates


class _Labels(Sequence[str]):
    """The legend of the overlay: per expression, what was grounded (known after the first window)."""

    def __init__(self, prefix: str, expressions: list[str], object_texts: list[Any]) -> None:
        self.prefix = prefix
        self.expressions = expressions
        self.object_texts = object_texts

    def __len__(self) -> int:
        return len(self.expressions)

    def __getitem__(self, k):  # type: ignore[override]
        if isinstance(k, slice):
            return [self[i] for i in range(len(self))[k]]
        grounded = self.object_texts[k].text if k < len(self.object_texts) else None
        what = grounded or "no object (null answer)"
        if len(self.expressions) > 1:
            what = f"{k + 1}: {what}"
        return self.prefix + what


def _result(
    call: _Call, out_dir: Path, texts: list[str], thoughts: list[Thought], records: _RecordSink,
    object_texts: list[Any], timer: _Timer, seen: _Seen, *, dense: tuple[Any, float] | None = None,
) -> SegmentVideoResult:
    """The call's result. dense: (every source frame's time, the source's rate) for dense output."""
    from tgs.viz import expression_color

    masks_dir = out_dir / MASKS_DIR
    outputs = []
    for k, (text, thought) in enumerate(zip(texts, thoughts)):
        frames = records.records[k]
        outputs.append(
            ExpressionOutput(
                index=k,
                expression=text,
                thought=thought,
                object_text=object_texts[k].text if k < len(object_texts) else None,
                masks_dir=masks_dir / str(k),
                color=expression_color(k),
                boxes=[None if r["box"] is None else tuple(r["box"]) for r in frames],  # type: ignore[misc]
                scores=[r["score"] for r in frames],
                keyframes=[r["frame"] for r in frames] if dense is not None else [],
            )
        )
    extra: dict[str, Any] = {}
    if dense is not None:
        times, rate = dense
        extra = {"mode": "dense", "masks_json": out_dir / MASKS_JSON, "fps": rate,
                 "frame_times": [round(float(t), 6) for t in times]}
    return SegmentVideoResult(
        out_dir=out_dir,
        overlay_video=out_dir / OVERLAY_NAME,
        masks_dir=masks_dir,
        result_json=out_dir / RESULT_NAME,
        expressions=tuple(outputs),
        timings={k: round(v, 6) for k, v in timer.seconds.items()},
        frame_times=extra.pop("frame_times", list(records.times)),
        untrained=call.settings.untrained,
        warnings=_warning_lines(seen.caught),
        **extra,
    )


def _result_record(
    result: SegmentVideoResult,
    records: _RecordSink,
    object_texts: list[Any],
    call: _Call,
    seen: _Seen,
    spec: LoadSpec,
    *,
    output: dict[str, Any],
    propagation: dict[str, Any] | None,
    per_expression: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """result.json (schema :data:`RESULT_SCHEMA`, ``docs/segment.md``), dense or sampled: the one builder.

    per_expression: more fields of each expression's entry, in order (SAM 3, dense or sampled:
    ``sam3``, every candidate masklet and what the rule chose; null for a null answer)."""
    from tgs import __version__

    height, width = records.frame_size or (None, None)
    models = spec.describe()
    thinker_key = None if spec.thinker is None else spec.thinker.key
    expressions = []
    for out in result.expressions:
        thought = out.thought
        chosen = object_texts[out.index] if out.index < len(object_texts) else None
        expressions.append(
            {
                "index": out.index,
                "expression": out.expression,
                "color": list(out.color),
                "reasoning": thought.reasoning,
                "f_object": thought.f_object,
                "s_object": thought.s_object,
                "thought": {"status": thought.status.value, "is_null": thought.is_null, "raw": thought.raw,
                            "error": thought.error},
                "object_text": None if chosen is None else chosen.text,
                "object_source": None if chosen is None else chosen.source,
                "masks_dir": f"{MASKS_DIR}/{out.index}",
                "frames": records.records[out.index],
                **(per_expression[out.index] if per_expression is not None else {}),
            }
        )
    return {
        "schema": RESULT_SCHEMA,
        "tool": "tgs",
        "version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "untrained": result.untrained,
        "label": UNTRAINED_LABEL if result.untrained else None,
        "video": {
            "path": str(seen.video.resolve()),
            "duration_s": round(float(seen.duration), 6),
            "height": height,
            "width": width,
            "has_audio": seen.source_audio is not None,
        },
        "expressions": expressions,
        "thinker": {
            "name": call.thinker,
            "source": None if thinker_key is None else models.get(thinker_key),
            "options": public_options(call.thinker_options),
        },
        "preset": call.preset.to_dict(),
        "models": models,
        "settings": {"device": call.settings.device, "dtype": call.settings.dtype},
        "sampling": {
            "fps": call.fps,
            "frames": len(records.times),
            "frame_times": records.times,
            "chunk_seconds": call.chunk_seconds,
            "window_frames": call.window_frames,
            "think": seen.think_input,
        },
        "outputs": {
            "overlay_video": OVERLAY_NAME,
            "masks_dir": MASKS_DIR,
            "overlay_has_audio": seen.source_audio is not None,
        },
        "timings": {**result.timings, "fast_paths": fast_paths.current().as_record()},
        "warnings": result.warnings,
        "output": output,
        "propagation": propagation,
    }
