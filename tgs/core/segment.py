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

It is a composition: a :class:`~tgs.core.session.VideoSession` (Think, then Ground + Segment
frame by frame, :mod:`tgs.core.session`) whose frames stream into the standard sinks of
:mod:`tgs.dense_outputs` (PNG masks, masks.json, the overlay video), then result.json
(:func:`tgs.core.segment_result.result_record`). ``fps=N`` gives the sampled output instead:
frames sampled at N per second, each grounded and segmented, the overlay at N fps (boxes
drawn), one PNG per sampled frame, no masks.json.

One call writes into OUT at a time (``OUT/.lock``); the outputs are written into
``OUT/.partial/`` and replace the previous call's only once all are complete, result.json
last (:class:`tgs.output_folder.StagedOutputs`; a rerun removes only the files a call
writes, :func:`tgs.core.segment_result.previous_outputs`). Every warning raised during the
call is listed in result.json's ``warnings``. How the video is read is documented in
``docs/segment.md``.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tgs import fast_paths
from tgs.core.live_mode import LiveSettings, is_live
from tgs.core.loading import load_model, load_stages_from
from tgs.core.segment_call import (
    DEFAULT_CHUNK_SECONDS,
    DEFAULT_KEYFRAME_FPS,
    ProgressCallback,
    SegmentRequest,
    call_settings,
    check_segment_call,
    recorded_warnings,
    report,
    segment_load_spec,
    warning_lines,
)
from tgs.core.segment_result import (
    MASKS_DIR,
    MASKS_JSON,
    OVERLAY_NAME,
    RESULT_NAME,
    RESULT_SCHEMA,
    ExpressionOutput,
    OutputFolder,
    SegmentVideoResult,
    result_record,
    video_result,
)
from tgs.core.session import SessionModels, VideoSession
from tgs.core.settings import UNTRAINED_LABEL, Settings
from tgs.core.video_modes import ground_segment_frames
from tgs.core.video_think import DIGEST_SECONDS, THINK_FRAMES, think_plan
from tgs.errors import RunError, SettingsError
from tgs.model_cache import ModelCache, release_memory
from tgs.output_folder import StagedOutputs
from tgs.presets import Preset
from tgs.types import FrameSink

__all__ = [
    "DEFAULT_CHUNK_SECONDS",
    "DEFAULT_KEYFRAME_FPS",
    "DIGEST_SECONDS",
    "MASKS_DIR",
    "MASKS_JSON",
    "OVERLAY_NAME",
    "RESULT_NAME",
    "RESULT_SCHEMA",
    "THINK_FRAMES",
    "UNTRAINED_LABEL",
    "ExpressionOutput",
    "SegmentRequest",
    "SegmentVideoResult",
    "check_segment_call",
    "ground_segment_frames",
    "open_video",
    "pipeline_session",
    "segment_load_spec",
    "segment_video",
    "session_sinks",
    "think_plan",
]


def _models(cache: ModelCache | None) -> SessionModels:
    """This module's loaders (looked up on each call, so a test can replace them here)."""
    return SessionModels(
        load_thinker=lambda load: load_model(load),
        load_stages=lambda spec: load_stages_from(spec),
        release=lambda: release_memory(),
        cache=cache,
    )


def _rate(request: SegmentRequest, fps: float | None, keyframe_fps: float) -> float:
    """The rate sampled: ``fps`` (sampled output) or the keyframes' (dense), never above the source's."""
    from tgs.data.media import cap_sampling_rate

    if request.dense:
        with warnings.catch_warnings():  # keyframes above the source rate: capped quietly
            warnings.simplefilter("ignore")
            return cap_sampling_rate(request.video, keyframe_fps)
    return cap_sampling_rate(request.video, fps)  # warns


class _Timed:
    """A sink whose work (add and close) is timed under ``step`` in the session's timer."""

    def __init__(self, sink: FrameSink, step: str, timer: Any) -> None:
        self.sink, self.step, self.timer = sink, step, timer

    def add(self, frame: Any) -> None:
        self.timer.run(self.step, self.sink.add, frame)

    def close(self) -> None:
        self.timer.run(self.step, self.sink.close)

    def abort(self) -> None:
        self.sink.abort()


def session_sinks(session: VideoSession, outputs: OutputFolder, *, png: bool = True) -> list[FrameSink]:
    """The standard outputs of a session, in order: a PNG per frame and expression (``png``),
    every mask in masks.json (dense output), the overlay video with its legend (sampled output
    draws the grounded boxes too); each timed in the session's timer ("masks", "masks_json",
    "encode": drawing and encoding)."""
    from tgs.dense_outputs import CocoRleSink, MaskPngSink, OverlayVideoSink

    count, mode, timer = len(session.texts), session.mode, session.timer
    dense = mode.name == "dense"
    sinks: list[FrameSink] = [_Timed(MaskPngSink(outputs.masks, count), "masks", timer)] if png else []
    if dense:
        rle = CocoRleSink(outputs.masks_json, count, mode.size, names=session.texts,  # type: ignore[arg-type]
                          fps=mode.fps, times=mode.times, num_frames=mode.num_frames)
        sinks.append(_Timed(rle, "masks_json", timer))
    overlay = OverlayVideoSink(outputs.overlay, mode.fps, count, names=session.legend,  # type: ignore[arg-type]
                               audio=session.source_audio, draw_boxes=not dense)
    sinks.append(_Timed(overlay, "encode", timer))
    return sinks


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
    video_label: str | None = None,
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
    video_label: what result.json names as the video (default: the file's absolute path; a
        URL whose copy is segmented names the URL, :mod:`tgs.runners.url_video`).

    Raises SettingsError / ValueError (bad arguments, :func:`check_segment_call`), MediaError
    (unreadable video), MissingWeightsError (every missing model), all before anything is
    loaded or written; RunError when another call writes into ``out``. Warnings (e.g.
    NoAudioWarning for a video without audio, which runs) are issued and listed in
    result.json's ``warnings``.
    """
    with recorded_warnings() as caught:
        request = check_segment_call(
            video, expressions, thinker=thinker, settings=settings, out=out, fps=fps, keyframe_fps=keyframe_fps,
            chunk_seconds=chunk_seconds, thinker_options=thinker_options,
        )
        call = call_settings(thinker=thinker, preset=preset, settings=settings, fps=_rate(request, fps, keyframe_fps),
                             chunk_seconds=chunk_seconds, thinker_options=thinker_options)
        png = png or not request.dense  # sampled output always writes its PNGs
        session = VideoSession(request.video, request.texts, call, "dense" if request.dense else "sampled",
                               _models(cache), progress=progress, png=png)
        return _write(session, request.out_dir, caught, png=png, video_label=video_label)


def _write(
    session: VideoSession, out_dir: Path, caught: list[warnings.WarningMessage], *, png: bool, video_label: str | None,
) -> SegmentVideoResult:
    """The session's frames into the standard sinks, staged in OUT, published with result.json last."""
    from tgs.dense_outputs import run_sinks

    with StagedOutputs(out_dir, marker=RESULT_NAME, error=RunError) as staged:
        outputs = OutputFolder(out_dir, staged)
        with session:
            run_sinks(session.frames(), session_sinks(session, outputs, png=png))
        session.timer.add("total", time.perf_counter() - session.started)
        summary = session.summary()
        result = video_result(summary, out_dir, session.timer.seconds, warning_lines(caught))
        outputs.publish(result_record(result, summary, video_label=video_label))
    report(session.progress, 1.0, f"done: {out_dir}")
    return result


def open_video(
    source: str | Path,
    expressions: str | Sequence[str],
    *,
    thinker: str = "ref-thinker",
    preset: str | Preset = "best",
    settings: Settings | None = None,
    fps: float | None = None,
    keyframe_fps: float = DEFAULT_KEYFRAME_FPS,
    chunk_seconds: float | None = None,
    thinker_options: Mapping[str, Any] | None = None,
    cache: ModelCache | None = None,
    progress: ProgressCallback | None = None,
    live: LiveSettings | None = None,
    open_source: Any = None,
) -> VideoSession:
    """A :class:`~tgs.core.session.VideoSession` on a video file (dense output, or sampled at
    ``fps``), a Ref-AVSBench media folder (``frames/`` and ``audio.wav``: the benchmark
    mode) or a live source (a camera, a stream URL, ``-``: the live mode, ``live`` its
    :class:`~tgs.core.live_mode.LiveSettings`, ``open_source`` how its source is opened), its
    models loaded from (preset, settings) (kept in ``cache`` when given)::

        with open_video("clip.mp4", ["the dog barking"], settings=Settings.tiny()) as session:
            for frame in session.frames():
                frame.masks        # bool [N, H, W]

    Checks its arguments as :func:`segment_video` does (nothing is loaded before they pass).
    """
    return _open(source, expressions, call_options={"thinker": thinker, "preset": preset, "settings": settings,
                                                    "thinker_options": thinker_options, "chunk_seconds": chunk_seconds},
                 fps=fps, keyframe_fps=keyframe_fps, models=_models(cache), progress=progress, live=live,
                 open_source=open_source)


def pipeline_session(
    pipe: Any, source: str | Path, expressions: str | Sequence[str], *, fps: float | None = None,
    keyframe_fps: float = DEFAULT_KEYFRAME_FPS, chunk_seconds: float | None = None,
    progress: ProgressCallback | None = None, live: LiveSettings | None = None,
) -> VideoSession:
    """:meth:`tgs.core.flow.Pipeline.open_video`: a session whose models are the pipeline's (its
    thinker; its Grounding DINO and segmenter when the mode's LoadSpec has the same stages key),
    other stages loaded once into the pipeline's own model cache."""
    loaded = pipe.loaded_from
    thinker = loaded.thinker if loaded is not None else ("direct" if pipe.thinker is None else pipe.thinker.name)
    stages = pipe.ground_segment
    if stages is None:
        raise SettingsError("this pipeline was loaded without Ground + Segment: it cannot segment a video",
                            fix="load it with ground_segment=True")
    if getattr(pipe, "video_models", None) is None:
        pipe.video_models = ModelCache()

    def load_thinker(load: Any) -> Any:
        return pipe.thinker if pipe.thinker is not None else load_model(load)

    def load_stages(spec: Any) -> tuple[Any, Any]:
        if loaded is not None and spec.stages_key == loaded.spec.stages_key:
            return stages.grounder, stages.segmenter
        return load_stages_from(spec)

    models = SessionModels(load_thinker, load_stages, release=lambda: None, cache=pipe.video_models)
    options = {"thinker": thinker, "preset": stages.preset,
               "settings": loaded.settings if loaded is not None else None,
               "thinker_options": loaded.thinker_options if loaded is not None else None,
               "chunk_seconds": chunk_seconds}
    return _open(source, expressions, call_options=options, fps=fps, keyframe_fps=keyframe_fps, models=models,
                 progress=progress, live=live)


def _open(
    source: str | Path, expressions: str | Sequence[str], *, call_options: Mapping[str, Any], fps: float | None,
    keyframe_fps: float, models: SessionModels, progress: ProgressCallback | None,
    live: LiveSettings | None = None, open_source: Any = None,
) -> VideoSession:
    """The session of a checked call: a live source is live, a folder a benchmark sample, a file
    dense or sampled."""
    from tgs.core.segment_call import check_benchmark_call, check_live_call

    options = dict(call_options)
    if is_live(source):  # a camera, a stream URL or standard input
        if fps is not None:
            raise SettingsError(f"fps: {source} is a live source, segmented frame by frame as it arrives",
                                fix="leave fps out (LiveSettings choose how its frames are taken)")
        texts = check_live_call(source, expressions, thinker=options["thinker"], settings=options["settings"],
                                thinker_options=options["thinker_options"])
        call = call_settings(thinker=options["thinker"], preset=options["preset"], settings=options["settings"],
                             fps=1.0, chunk_seconds=None, thinker_options=options["thinker_options"])
        return VideoSession(str(source), texts, call, "live", models, progress=progress, live=live,
                            open_source=open_source)
    if live is not None:
        raise SettingsError(f"live: {source} is a file, not a live source", fix="leave live out for a file")
    path = Path(source)
    if path.is_dir():
        texts = check_benchmark_call(path, expressions, thinker=options["thinker"], settings=options["settings"],
                                     fps=fps, keyframe_fps=keyframe_fps, chunk_seconds=options["chunk_seconds"],
                                     thinker_options=options["thinker_options"])
        call = call_settings(thinker=options["thinker"], preset=options["preset"], settings=options["settings"],
                             fps=1.0, chunk_seconds=options["chunk_seconds"], thinker_options=options["thinker_options"])
        return VideoSession(path, texts, call, "benchmark", models, progress=progress)
    request = check_segment_call(path, expressions, thinker=options["thinker"], settings=options["settings"],
                                 fps=fps, keyframe_fps=keyframe_fps, chunk_seconds=options["chunk_seconds"],
                                 thinker_options=options["thinker_options"], outputs=False)
    call = call_settings(thinker=options["thinker"], preset=options["preset"], settings=options["settings"],
                         fps=_rate(request, fps, keyframe_fps), chunk_seconds=options["chunk_seconds"],
                         thinker_options=options["thinker_options"])
    return VideoSession(request.video, request.texts, call, "dense" if request.dense else "sampled", models,
                        progress=progress)
