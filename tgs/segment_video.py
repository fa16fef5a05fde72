"""Segment any video file: Think once about the whole video, then Ground + Segment it window by window.

``segment_video(video, expression)`` runs the whole TGS pipeline on one video file (mp4,
mkv, webm, avi, ...; any size, frame rate and length; with or without audio) and writes::

    OUT/
      overlay.mp4       the sampled frames with mask, box and object text drawn, at the
                        sampling rate (one overlay frame per sampled frame, so it lasts as
                        long as the source), with the source's audio track kept
      masks/00000.png   one 8-bit PNG per sampled frame, 0 / 255, at the source frame size
      result.json       reasoning chain, f_object / s_object, per-frame boxes and scores,
                        timings, settings (schema below)

How the video is read (all decided here, documented in ``docs/segment.md``):

- **Sampling**: frame k is the frame on screen at ``k / fps`` s (default 1 fps, the
  Ref-AVS rate), decoded as a stream (``tgs.data.media.iter_video_frames``).
- **Think** sees a summary of the *whole* video (:func:`think_plan`): :data:`THINK_FRAMES`
  frames spread evenly over it (frame k on screen at ``k * duration / 10``) and at 16 kHz
  mono either the whole track (videos up to 10 s) or, for a longer video, the second of
  audio that starts at each summary frame: a 10-second digest in which frame k goes with
  audio second k, as in a Ref-AVS clip (``omni`` is told 1 fps for it). For a 10 s video
  this is exactly a Ref-AVS clip (frames at 0, 1, ..., 9 s, 10 s of audio), the input
  Ref-Thinker was trained on. The thinker is released before Ground and Segment load
  (unless the caller passes a :class:`~tgs.model_cache.ModelCache`, which keeps models).
- **Ground + Segment** run on windows of ``chunk_seconds`` (default 10 s, a Ref-AVS clip):
  each window is one :class:`~tgs.types.Clip` for the preset's pipeline. Under ``best``
  SAM2 propagates masks within a window, not across windows.
- **Memory** is bounded by the window, not the video's length: one window of decoded
  frames and its masks, the encoder's buffers, and during Think the 10 summary frames and
  at most 10 s of 16 kHz audio (the track is decoded as a stream, never whole). What grows
  with the length is the per-frame record (~250 bytes per sampled frame).

``result.json`` (schema 1)::

    {"schema": 1, "tool": "tgs", "version", "created",
     "untrained": bool, "label": str|null,           # tiny models: the UNTRAINED label
     "video": {"path", "duration_s", "height", "width", "has_audio"},
     "expression", "reasoning", "f_object", "s_object",
     "thought": {"status", "is_null", "raw", "error"},
     "object_text": str|null, "object_source": str,  # what was grounded and why (tgs.pipeline.ObjectText)
     "thinker": {"name", "source", "options"}, "preset": {every switch},
     "models": {"set", "thinker", "grounding_dino", "sam2"},
     "sampling": {"fps", "frames", "chunk_seconds", "window_frames",
                  "think": {"frame_times", "audio": "whole"|"snippets"|null, "audio_seconds"}},
     "frames": [{"index", "time", "box": [x0, y0, x1, y1]|null, "score", "query_index",
                 "candidates", "mask_area", "mask": "masks/00000.png"}, ...],
     "outputs": {"overlay_video", "masks_dir", "overlay_has_audio"},
     "timings": {stage: seconds}, "warnings": [str]}
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from tgs.errors import MediaError, NoAudioWarning, TGSError, ThinkerError
from tgs.model_cache import ModelCache, freeze, release_memory
from tgs.models.registry import ModelSet, require_models
from tgs.presets import Preset, get_preset
from tgs.types import Clip, Query, Thought, stack_frames

__all__ = [
    "DEFAULT_CHUNK_SECONDS",
    "DIGEST_SECONDS",
    "SOURCE_KEYS",
    "THINK_FRAMES",
    "UNTRAINED_LABEL",
    "SegmentVideoResult",
    "segment_model_requests",
    "segment_video",
    "stages_cache_key",
    "think_plan",
    "thinker_cache_key",
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

SOURCE_KEYS: tuple[str, ...] = ("thinker", "grounding_dino", "sam2")
"""Keys of ``sources``: the thinker's model, Grounding DINO, and SAM2 (image or video mode)."""

UNTRAINED_LABEL = "UNTRAINED TINY MODELS — install check only, results are meaningless"
"""Written into result.json (and shown by the CLI) whenever the tiny model set ran."""

RESULT_SCHEMA = 1
OVERLAY_NAME = "overlay.mp4"
MASKS_DIR = "masks"
RESULT_NAME = "result.json"

_THINKER_MODEL_KEYS = {"omni": "omni", "ref-thinker": "ref_thinker"}
_MASK_FILE = re.compile(r"^\d{5}\.png$")
_SECRET_OPTIONS = ("api_key",)

ProgressCallback = Callable[..., Any]
"""Called as ``progress(fraction, desc=...)`` with fraction in [0, 1] (a ``gradio.Progress`` fits)."""


@dataclass(frozen=True)
class SegmentVideoResult:
    """Where the outputs went and what the pipeline found.

    boxes / scores: per sampled frame, the chosen box (x0, y0, x1, y1) in source pixels
        and its grounding score, None where nothing was boxed.
    frame_times: per sampled frame, its presentation time (s).
    timings: seconds per step ("probe", "think", "ground", "segment", "encode", "total", ...).
    """

    out_dir: Path
    overlay_video: Path
    masks_dir: Path
    result_json: Path
    thought: Thought
    boxes: list[tuple[float, float, float, float] | None]
    timings: dict[str, float]
    scores: list[float | None] = field(default_factory=list)
    frame_times: list[float] = field(default_factory=list)
    object_text: str | None = None
    untrained: bool = False
    warnings: list[str] = field(default_factory=list)

    @property
    def num_frames(self) -> int:
        return len(self.boxes)


# --------------------------------------------------------------------------- settings


def _thinker_key(name: str) -> str:
    from tgs.think.registry import THINKER_NAMES

    key = name.strip().lower().replace("_", "-")
    if key not in THINKER_NAMES:
        raise ValueError(f"unknown thinker {name!r}; available: {', '.join(THINKER_NAMES)}")
    return key


def _resolve_preset(preset: str | Preset) -> Preset:
    return preset if isinstance(preset, Preset) else get_preset(preset)


def _check_sources(sources: Mapping[str, str] | None) -> dict[str, str]:
    sources = dict(sources or {})
    unknown = sorted(set(sources) - set(SOURCE_KEYS))
    if unknown:
        raise ValueError(f"sources: unknown key(s) {', '.join(unknown)}; accepted: {', '.join(SOURCE_KEYS)}")
    return {k: str(v) for k, v in sources.items() if v is not None}


def _thinker_source(sources: Mapping[str, str], thinker_options: Mapping[str, Any]) -> str | None:
    given = sources.get("thinker")
    option = thinker_options.get("source")
    if given is not None and option is not None and str(option) != given:
        raise ValueError(
            f"thinker source given twice: sources['thinker']={given!r}, thinker_options['source']={option!r}"
        )
    return given if given is not None else (None if option is None else str(option))


def segment_model_requests(
    thinker: str,
    preset: str | Preset = "best",
    sources: Mapping[str, str] | None = None,
    thinker_options: Mapping[str, Any] | None = None,
) -> list[tuple[str, str | None]]:
    """(registry key, source) of every model a ``segment_video`` call needs, for ``require_models``."""
    key = _thinker_key(thinker)
    resolved = _resolve_preset(preset)
    checked = _check_sources(sources)
    requests: list[tuple[str, str | None]] = []
    if key in _THINKER_MODEL_KEYS:
        requests.append((_THINKER_MODEL_KEYS[key], _thinker_source(checked, thinker_options or {})))
    requests.append(("grounding_dino", checked.get("grounding_dino")))
    requests.append((resolved.sam_model_key, checked.get("sam2")))
    return requests


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


def _release_models() -> None:
    """Give back the memory of models just dropped (the thinker before Ground + Segment load)."""
    release_memory()


def _public_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Thinker options as written to result.json: secrets masked, values made JSON-safe."""
    out: dict[str, Any] = {}
    for key, value in options.items():
        if key in _SECRET_OPTIONS and value:
            out[key] = "***"
        elif value is None or isinstance(value, (str, int, float, bool)):
            out[key] = value
        else:
            out[key] = repr(value)
    return out


def _prepare_out(out: Path) -> tuple[Path, Path]:
    """Create OUT and OUT/masks; remove a previous call's result.json and mask PNGs (only those)."""
    masks_dir = out / MASKS_DIR
    masks_dir.mkdir(parents=True, exist_ok=True)
    (out / RESULT_NAME).unlink(missing_ok=True)
    for path in masks_dir.iterdir():
        if _MASK_FILE.match(path.name):
            path.unlink()
    return out / OVERLAY_NAME, masks_dir


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(dict(data), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


# --------------------------------------------------------------------------- think


def _build_thinker(
    key: str, options: dict[str, Any], models: ModelSet, device: Any, dtype: Any, *, digest: bool
):  # -> Thinker
    from tgs.think.registry import build_thinker

    options = dict(options)
    if key == "omni" and digest:
        options.setdefault("fps", 1.0)  # the 10 s digest: one frame per second of the audio it hears
    if key in _THINKER_MODEL_KEYS:
        options.setdefault("models", models)
        if device is not None:
            options.setdefault("device", device)
        if dtype is not None:
            options.setdefault("dtype", dtype)
    return build_thinker(key, **options)


def thinker_cache_key(
    key: str, options: Mapping[str, Any], models: ModelSet, device: Any, dtype: Any, *, digest: bool
) -> tuple[Any, ...]:
    """What decides the thinker :func:`_build_thinker` would build: name, options, model set, device, dtype.

    ``digest`` only matters to ``omni`` (it is told 1 fps for the 10 s digest of a long video).
    """
    return ("thinker", key, freeze(options), models, freeze(device), freeze(dtype), key == "omni" and digest)


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


def _think(thinker: Any, query: Query, clip: Clip | None, video: Path) -> Thought:
    from tgs.think.registry import think_each

    outcome = think_each(thinker, [(query, clip)])[0]
    if isinstance(outcome, TGSError):
        raise outcome
    if isinstance(outcome, Exception):
        raise ThinkerError(
            f"the {thinker.name} thinker failed on {video}: {outcome}", path=video
        ) from outcome
    return outcome


# --------------------------------------------------------------------------- ground + segment


def _load_stages(
    preset: Preset, models: ModelSet, sources: Mapping[str, str], device: Any, dtype: Any, *, direct: bool
) -> tuple[Any, Any]:
    """Grounding DINO and the preset's SAM2 segmenter, loaded as ``tgs ground-segment`` loads them."""
    from tgs.pipeline import load_stages

    return load_stages(
        preset, models=models, gdino_source=sources.get("grounding_dino"), sam2_source=sources.get("sam2"),
        device=device, dtype=dtype, direct=direct,
    )


def stages_cache_key(
    preset: Preset, models: ModelSet, sources: Mapping[str, str], device: Any, dtype: Any, *, direct: bool
) -> tuple[Any, ...]:
    """What decides the pair :func:`tgs.pipeline.load_stages` would load for this call.

    The preset's loading fields (segment mode and so SAM2 model, dtype, thresholds,
    preprocessing, video seeds, caption-period dedupe), the model set, the Grounding DINO
    and SAM2 sources, device, dtype and ``direct``; the preset's other switches act after
    loading (in :class:`tgs.pipeline.GroundSegmentPipeline`), so presets differing only
    there share a pair.
    """
    loading = (
        preset.segment_mode,
        preset.sam_model_key,
        preset.dtype,
        preset.box_threshold,
        preset.text_threshold,
        preset.gdino_preprocess,
        preset.sam_preprocess,
        preset.video_seeds,
        preset.dedupe_period(direct=direct),
    )
    return (
        "stages", loading, models, sources.get("grounding_dino"), sources.get("sam2"),
        freeze(device), freeze(dtype), direct,
    )


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


class _WindowStream:
    """Ground + Segment a video window by window; yields overlay frames and keeps per-frame records."""

    def __init__(
        self,
        video: Path,
        *,
        fps: float,
        window_frames: int,
        pipeline: Any,
        thought: Thought,
        query: Query,
        masks_dir: Path,
        label_prefix: str,
        timer: _Timer,
        progress: Callable[[int], None],
    ) -> None:
        self.video = video
        self.fps = fps
        self.window_frames = window_frames
        self.pipeline = pipeline
        self.thought = thought
        self.query = query
        self.masks_dir = masks_dir
        self.label_prefix = label_prefix
        self.timer = timer
        self.progress = progress
        self.records: list[dict[str, Any]] = []
        self.object_text: Any = None  # tgs.pipeline.ObjectText of the first window (the same for all)
        self.frame_size: tuple[int, int] | None = None
        self.busy_seconds = 0.0  # time spent in here, so the encoder's share can be told apart

    def overlay_frames(self) -> Iterator[np.ndarray]:
        for window in self._windows():
            start = time.perf_counter()
            drawn = self._process(window)
            self.busy_seconds += time.perf_counter() - start
            yield from drawn

    def _windows(self) -> Iterator[list[tuple[float, np.ndarray]]]:
        from tgs.data.media import iter_video_frames

        frames = iter_video_frames(self.video, self.fps)
        window: list[tuple[float, np.ndarray]] = []
        while True:
            start = time.perf_counter()
            item = next(frames, None)
            elapsed = time.perf_counter() - start
            self.timer.add("decode", elapsed)
            self.busy_seconds += elapsed
            if item is None:
                break
            window.append(item)
            if len(window) == self.window_frames:
                yield window
                window = []
        if window:
            yield window

    def _clip(self, window: list[tuple[float, np.ndarray]]) -> Clip:
        try:
            frames = stack_frames([frame for _, frame in window])
        except ValueError as exc:
            raise MediaError(
                f"{self.video}: frame size changes mid-video ({exc})",
                path=self.video,
                fix="re-encode the video at one frame size",
            ) from exc
        if self.frame_size is not None and frames.shape[1:3] != self.frame_size:
            raise MediaError(
                f"{self.video}: frame size changes mid-video ({self.frame_size} -> {frames.shape[1:3]})",
                path=self.video,
                fix="re-encode the video at one frame size",
            )
        self.frame_size = (int(frames.shape[1]), int(frames.shape[2]))
        times = np.array([t for t, _ in window], dtype=np.float64)
        return Clip(frames=frames, audio=None, sample_rate=None, frame_times=times, source=str(self.video))

    def _process(self, window: list[tuple[float, np.ndarray]]) -> list[np.ndarray]:
        from tgs.viz import fit_mask, overlay_frame, save_mask_pngs

        clip = self._clip(window)
        result = self.pipeline.run(clip, self.thought, self.query)
        for name, seconds in result.timings.items():
            self.timer.add(name, seconds)
        if self.object_text is None:
            self.object_text = result.object_text
        masks = result.masks.masks
        if masks.shape[1:] != clip.size:  # the paper preset keeps masks at 224x224
            masks = np.stack([fit_mask(m, clip.size) for m in masks])
        first = len(self.records)
        self.timer.run("masks", save_mask_pngs, masks, self.masks_dir, first_index=first)
        label = self.label_prefix + (result.object_text.text or "no object (null answer)")
        drawn = []
        start = time.perf_counter()
        for i, frame_record in enumerate(result.frame_records()):
            index = first + i
            self.records.append(
                {
                    "index": index,
                    "time": round(float(clip.frame_times[i]), 6),
                    **frame_record,
                    "mask_area": round(float(masks[i].mean()), 6),
                    "mask": f"{MASKS_DIR}/{index:05d}.png",
                }
            )
            drawn.append(overlay_frame(clip.frames[i], masks[i], frame_record["box"], label))
        self.timer.add("draw", time.perf_counter() - start)
        self.progress(len(self.records))
        return drawn


# --------------------------------------------------------------------------- the call


@dataclass(frozen=True)
class _Settings:
    thinker: str
    preset: Preset
    models: ModelSet
    fps: float
    chunk_seconds: float
    window_frames: int
    sources: dict[str, str]
    thinker_options: dict[str, Any]


def _settings(
    expression: str,
    thinker: str,
    preset: str | Preset,
    models: str,
    fps: float,
    chunk_seconds: float | None,
    sources: Mapping[str, str] | None,
    thinker_options: Mapping[str, Any] | None,
    dtype: Any,
) -> _Settings:
    if not isinstance(expression, str) or not expression.strip():
        raise ValueError("expression: expected a non-empty referring expression, e.g. 'the dog barking'")
    if models not in ("real", "tiny"):
        raise ValueError(f"models: expected 'real' or 'tiny', got {models!r}")
    if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps: expected a positive number of frames per second, got {fps!r}")
    chunk = DEFAULT_CHUNK_SECONDS if chunk_seconds is None else float(chunk_seconds)
    if not (math.isfinite(chunk) and chunk > 0):
        raise ValueError(f"chunk_seconds: expected a positive number of seconds, got {chunk_seconds!r}")
    resolved = _resolve_preset(preset)
    if isinstance(dtype, str):
        resolved = replace(resolved, dtype=dtype)  # validated by the preset's choices
    checked = _check_sources(sources)
    options = dict(thinker_options or {})
    source = _thinker_source(checked, options)
    options.pop("source", None)
    if source is not None:
        checked["thinker"] = source
    return _Settings(
        thinker=_thinker_key(thinker),
        preset=resolved,
        models=models,  # type: ignore[arg-type]
        fps=float(fps),
        chunk_seconds=chunk,
        window_frames=max(1, round(chunk * fps)),
        sources=checked,
        thinker_options=options,
    )


def segment_video(
    video: Path,
    expression: str,
    *,
    thinker: str = "ref-thinker",
    preset: str | Preset = "best",
    models: str = "real",
    out: Path | None = None,
    fps: float = 1.0,
    thinker_options: dict | None = None,
    sources: dict[str, str] | None = None,
    device: Any = None,
    dtype: Any = None,
    chunk_seconds: float | None = None,
    progress: ProgressCallback | None = None,
    cache: ModelCache | None = None,
) -> SegmentVideoResult:
    """Run Think, Ground and Segment on one video file; see the module docstring for outputs.

    thinker: "ref-thinker", "omni", "api" or "direct" (the expression itself).
    preset: "best", "paper" or a :class:`~tgs.presets.Preset`.
    models: "real" (weights from ``sources`` or the registry defaults) or "tiny" (random,
        untrained: an install check; the outputs are labelled UNTRAINED).
    out: output folder (default ``./segment_<video stem>``); a previous call's outputs
        there are replaced.
    fps: frames sampled per second of video; every output has one entry per sampled frame.
    thinker_options: options of :func:`tgs.think.registry.build_thinker` for that thinker.
    sources: model sources by role, keys in :data:`SOURCE_KEYS` (hub ids or directories).
    device / dtype: for every model ("auto" / None: CUDA in bf16 when present, else CPU in
        fp32; the preset's dtype for Ground + Segment).
    chunk_seconds: Ground + Segment window (default 10 s).
    progress: called as ``progress(fraction, desc=...)``.
    cache: a :class:`~tgs.model_cache.ModelCache` to take models from and keep them in
        (a server's); None loads every model for this call and releases the thinker
        before Ground + Segment load (a one-shot CLI call on a small machine).

    Raises MediaError (unreadable video, naming it and the decoder's reason),
    MissingWeightsError (listing every missing model, before anything heavy), ValueError
    (bad arguments). A video without audio runs, with a NoAudioWarning.
    """
    from tgs.data.media import cap_sampling_rate, sample_times, video_duration
    from tgs.devices import resolve_device
    from tgs.paths import check_output_folder
    from tgs.video_out import copy_audio_from

    started = time.perf_counter()
    video = Path(video)
    fps = cap_sampling_rate(video, fps)  # never above the source's frame rate (warns)
    settings = _settings(
        expression, thinker, preset, models, fps, chunk_seconds, sources, thinker_options, dtype
    )
    resolve_device(device)  # a bad or unavailable --device fails here, before any work
    timer = _Timer()

    _report(progress, 0.0, f"reading {video.name}")
    duration = timer.run("probe", video_duration, video)
    source_audio = timer.run("probe", copy_audio_from, video)
    notes: list[str] = []
    if source_audio is None:
        message = f"{video} has no audio track: the thinker hears nothing and the overlay video is silent"
        warnings.warn(message, NoAudioWarning, stacklevel=2)
        notes.append(message)
    requests = segment_model_requests(settings.thinker, settings.preset, settings.sources)
    require_models(requests, settings.models)  # every missing model listed at once, before any loading
    expected = max(1, len(sample_times(duration, None, settings.fps)))

    out_dir = Path(out) if out is not None else Path(f"segment_{video.stem or 'video'}")
    check_output_folder(out_dir, [video], (OVERLAY_NAME, MASKS_DIR, RESULT_NAME))  # never overwrite the input
    overlay_path, masks_dir = _prepare_out(out_dir)
    query = Query(uid=video.stem or "video", expression=expression.strip())

    _report(progress, 0.02, f"thinking ({settings.thinker})")
    thought, think_input = _think_once(
        settings, video, duration, source_audio is not None, query, device, dtype, timer, cache
    )
    _report(progress, 0.2, "loading Grounding DINO and SAM2")
    stream = _ground_segment(
        settings,
        video,
        query,
        thought,
        masks_dir,
        overlay_path,
        source_audio,
        device,
        dtype,
        timer,
        cache,
        progress=lambda done: _report(
            progress,
            0.25 + 0.73 * min(done / expected, 1.0),
            f"ground + segment: {done} of ~{expected} frames",
        ),
    )
    timer.add("total", time.perf_counter() - started)
    untrained = settings.models == "tiny"

    result = SegmentVideoResult(
        out_dir=out_dir,
        overlay_video=overlay_path,
        masks_dir=masks_dir,
        result_json=out_dir / RESULT_NAME,
        thought=thought,
        boxes=[None if r["box"] is None else tuple(r["box"]) for r in stream.records],  # type: ignore[misc]
        timings={k: round(v, 6) for k, v in timer.seconds.items()},
        scores=[r["score"] for r in stream.records],
        frame_times=[r["time"] for r in stream.records],
        object_text=stream.object_text.text if stream.object_text is not None else None,
        untrained=untrained,
        warnings=notes,
    )
    record = _result_record(result, stream, settings, video, duration, expression, think_input, source_audio)
    _write_json(result.result_json, record)
    _report(progress, 1.0, f"done: {out_dir}")
    return result


def _think_once(
    settings: _Settings,
    video: Path,
    duration: float,
    has_audio: bool,
    query: Query,
    device: Any,
    dtype: Any,
    timer: _Timer,
    cache: ModelCache | None,
) -> tuple[Thought, dict[str, Any]]:
    """(the thought, what the thinker saw): the thinker built (or taken from ``cache``), asked once.

    Without a cache the thinker is released before Ground + Segment load.
    """
    build = (settings.thinker, _thinker_build_options(settings), settings.models, device, dtype)
    digest = duration > DIGEST_SECONDS

    def load() -> Any:
        return _build_thinker(*build, digest=digest)

    if cache is None:
        thinker = timer.run("load_thinker", load)
    else:
        key = thinker_cache_key(*build, digest=digest)
        thinker = timer.run("load_thinker", cache.thinker, key, load, settings.thinker)
    clip = None
    if settings.thinker != "direct":
        clip = timer.run("think_input", _summary_clip, video, duration, has_audio)
    thought = timer.run("think", _think, thinker, query, clip, video)
    seen = _think_record(clip, duration)
    del thinker, clip
    if cache is None:
        _release_models()
    return thought, seen


def _ground_segment(
    settings: _Settings,
    video: Path,
    query: Query,
    thought: Thought,
    masks_dir: Path,
    overlay_path: Path,
    source_audio: Any,
    device: Any,
    dtype: Any,
    timer: _Timer,
    cache: ModelCache | None,
    *,
    progress: Callable[[int], None],
) -> _WindowStream:
    """Ground + Segment window by window, streamed into the mask PNGs and the overlay video."""
    from tgs.pipeline import GroundSegmentPipeline
    from tgs.video_out import write_overlay_video

    load_args = (settings.preset, settings.models, settings.sources, device, dtype)
    direct = settings.thinker == "direct"

    def load() -> tuple[Any, Any]:
        return _load_stages(*load_args, direct=direct)

    if cache is None:
        grounder, segmenter = timer.run("load_models", load)
    else:
        key = stages_cache_key(*load_args, direct=direct)
        label = f"({settings.preset.name} preset, {settings.preset.sam_model_key})"
        grounder, segmenter = timer.run("load_models", cache.stages, key, load, label)
    stream = _WindowStream(
        video,
        fps=settings.fps,
        window_frames=settings.window_frames,
        pipeline=GroundSegmentPipeline(grounder, segmenter, settings.preset),
        thought=thought,
        query=query,
        masks_dir=masks_dir,
        label_prefix="UNTRAINED: " if settings.models == "tiny" else "",
        timer=timer,
        progress=progress,
    )
    start = time.perf_counter()
    once = _OncePerMessage()  # the pipeline logs per window (e.g. "no usable tag"); once is enough
    pipeline_logger = logging.getLogger("tgs.pipeline")
    pipeline_logger.addFilter(once)
    try:
        write_overlay_video(overlay_path, stream.overlay_frames(), settings.fps, audio=source_audio)
    finally:
        pipeline_logger.removeFilter(once)
    timer.add("encode", time.perf_counter() - start - stream.busy_seconds)
    return stream


def _thinker_build_options(settings: _Settings) -> dict[str, Any]:
    options = dict(settings.thinker_options)
    if "thinker" in settings.sources:
        options["source"] = settings.sources["thinker"]
    return options


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


def _model_record(settings: _Settings) -> dict[str, Any]:
    from tgs.models.registry import MODEL_SPECS

    def source(key: str | None, given: str | None) -> str | None:
        if key is None:
            return None
        if settings.models == "tiny":
            return "tiny"
        return given or MODEL_SPECS[key].default_source

    return {
        "set": settings.models,
        "thinker": source(_THINKER_MODEL_KEYS.get(settings.thinker), settings.sources.get("thinker")),
        "grounding_dino": source("grounding_dino", settings.sources.get("grounding_dino")),
        "sam2": source(settings.preset.sam_model_key, settings.sources.get("sam2")),
    }


def _result_record(
    result: SegmentVideoResult,
    stream: _WindowStream,
    settings: _Settings,
    video: Path,
    duration: float,
    expression: str,
    think_input: dict[str, Any],
    source_audio: Any,
) -> dict[str, Any]:
    from tgs import __version__

    thought = result.thought
    height, width = stream.frame_size or (None, None)
    object_text = stream.object_text
    return {
        "schema": RESULT_SCHEMA,
        "tool": "tgs",
        "version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "untrained": result.untrained,
        "label": UNTRAINED_LABEL if result.untrained else None,
        "video": {
            "path": str(video.resolve()),
            "duration_s": round(float(duration), 6),
            "height": height,
            "width": width,
            "has_audio": source_audio is not None,
        },
        "expression": expression,
        "reasoning": thought.reasoning,
        "f_object": thought.f_object,
        "s_object": thought.s_object,
        "thought": {
            "status": thought.status.value,
            "is_null": thought.is_null,
            "raw": thought.raw,
            "error": thought.error,
        },
        "object_text": None if object_text is None else object_text.text,
        "object_source": None if object_text is None else object_text.source,
        "thinker": {
            "name": settings.thinker,
            "source": _model_record(settings)["thinker"],
            "options": _public_options(settings.thinker_options),
        },
        "preset": settings.preset.to_dict(),
        "models": _model_record(settings),
        "sampling": {
            "fps": settings.fps,
            "frames": len(stream.records),
            "chunk_seconds": settings.chunk_seconds,
            "window_frames": settings.window_frames,
            "think": think_input,
        },
        "frames": stream.records,
        "outputs": {
            "overlay_video": OVERLAY_NAME,
            "masks_dir": MASKS_DIR,
            "overlay_has_audio": source_audio is not None,
        },
        "timings": result.timings,
        "warnings": result.warnings,
    }
