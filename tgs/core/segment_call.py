"""The checks and settings of a video call (``segment_video``, ``open_video``), and the small
helpers every mode shares: a timer of named steps, progress reports, recorded warnings.

:func:`check_segment_call` refuses a bad argument before any model loads or any file is
written; :func:`call_settings` gives the settings of an accepted call (:class:`CallSettings`);
:func:`segment_load_spec` the models it loads (the model cache's key).
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tgs.core.load_spec import LoadSpec, load_spec
from tgs.core.segment_result import MASKS_DIR, MASKS_JSON, OVERLAY_NAME, RESULT_NAME
from tgs.core.settings import Settings
from tgs.core.stages import share_enabled
from tgs.errors import SettingsError
from tgs.output_folder import STAGING
from tgs.presets import Preset, get_preset
from tgs.think.registry import canonical_name

__all__ = [
    "DEFAULT_CHUNK_SECONDS",
    "DEFAULT_KEYFRAME_FPS",
    "CallSettings",
    "ProgressCallback",
    "SegmentRequest",
    "Timer",
    "call_settings",
    "check_benchmark_call",
    "check_live_call",
    "check_segment_call",
    "segment_load_spec",
]

logger = logging.getLogger(__name__)

DEFAULT_CHUNK_SECONDS = 10.0
"""Ground + Segment window length (s) when none is given: one Ref-AVS clip."""

DEFAULT_KEYFRAME_FPS = 1.0
"""Keyframes grounded per second of video in dense output (the Ref-AVS sampling rate)."""

ProgressCallback = Callable[..., Any]
"""Called as ``progress(fraction, desc=...)`` with fraction in [0, 1] (a ``gradio.Progress`` fits)."""


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


def check_expressions(expressions: str | Sequence[str]) -> list[str]:
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
    keyframe_fps: float = DEFAULT_KEYFRAME_FPS,
    chunk_seconds: float | None = None,
    thinker_options: Mapping[str, Any] | None = None,
    outputs: bool = True,
) -> SegmentRequest:
    """Every check of a ``segment_video`` call that needs no model and writes nothing, so a bad
    argument is refused before any work: the expressions (which one is empty), the thinker and
    its options, the rates, the device, the video (exists, is a file, opens) and the output
    folder (not a file, not one of the inputs; ``outputs=False``: a session that writes
    nothing itself, ``open_video``). SettingsError, MediaError or ValueError.

    ``tgs segment`` calls it before it starts its progress bar; ``segment_video`` calls it first.
    """
    from tgs.data.media import source_frame_rate
    from tgs.paths import check_output_folder

    video = Path(video)
    texts = check_expressions(expressions)
    dense = fps is None
    name, rate = ("keyframe_fps", keyframe_fps) if dense else ("fps", fps)
    if not (isinstance(rate, (int, float)) and math.isfinite(rate) and rate > 0):
        raise ValueError(f"{name}: expected a positive number of frames per second, got {rate!r}")
    _check_options(thinker, settings, chunk_seconds, thinker_options)
    source_frame_rate(video)  # MediaError: missing, a folder, not a media file
    out_dir = Path(out) if out is not None else Path(f"segment_{video.stem or 'video'}")
    if outputs:
        check_output_folder(out_dir, [video], (OVERLAY_NAME, MASKS_DIR, MASKS_JSON, RESULT_NAME, STAGING))
    return SegmentRequest(video=video, texts=texts, out_dir=out_dir, dense=dense)


def _check_options(
    thinker: str, settings: Settings | None, chunk_seconds: float | None, thinker_options: Mapping[str, Any] | None
) -> None:
    """The checks every kind of call makes: the thinker's options, chunk_seconds, the device."""
    from tgs.core.loading import check_thinker_options
    from tgs.devices import resolve_device

    check_thinker_options(canonical_name(thinker), dict(thinker_options or {}))
    if chunk_seconds is not None and not (math.isfinite(float(chunk_seconds)) and float(chunk_seconds) > 0):
        raise ValueError(f"chunk_seconds: expected a positive number of seconds, got {chunk_seconds!r}")
    resolve_device((settings or Settings()).device)  # a bad or unavailable device


def check_benchmark_call(
    folder: Path,
    expressions: str | Sequence[str],
    *,
    thinker: str = "ref-thinker",
    settings: Settings | None = None,
    fps: float | None = None,
    keyframe_fps: float = DEFAULT_KEYFRAME_FPS,
    chunk_seconds: float | None = None,
    thinker_options: Mapping[str, Any] | None = None,
) -> list[str]:
    """The checks of a session on a Ref-AVSBench media folder (``frames/*.jpg``, ``audio.wav``
    optional), as :func:`check_segment_call` makes them for a file, before any model loads: the
    expressions, the thinker's options, chunk_seconds, the device, the folder; ``fps`` and
    ``keyframe_fps`` are refused (a sample's every extracted frame is grounded, one per second).
    The checked expressions; SettingsError, MediaError or ValueError."""
    from tgs.errors import MediaError

    texts = check_expressions(expressions)
    if fps is not None:
        raise SettingsError(f"fps: {folder} is a Ref-AVSBench media folder, whose every frame (one per second) "
                            "is segmented", fix="leave fps out for a media folder (or give a video file)")
    if keyframe_fps != DEFAULT_KEYFRAME_FPS:
        raise SettingsError(f"keyframe_fps: {folder} is a Ref-AVSBench media folder, whose every frame is grounded",
                            fix="leave keyframe_fps out for a media folder (or give a video file)")
    _check_options(thinker, settings, chunk_seconds, thinker_options)
    frames = Path(folder) / "frames"
    if not frames.is_dir() or next(frames.glob("*.jpg"), None) is None:
        raise MediaError(f"{folder} is a folder but not a Ref-AVSBench media folder: no frames/*.jpg in it",
                         path=folder, fix="give a video file, or a media folder with frames/00000.jpg, ... "
                         "(audio.wav optional)")
    return texts


def check_live_call(
    source: str | Path,
    expressions: str | Sequence[str],
    *,
    thinker: str = "ref-thinker",
    settings: Settings | None = None,
    thinker_options: Mapping[str, Any] | None = None,
) -> list[str]:
    """The checks of a call on a live source that need neither a model nor the source (opened,
    and refused naming it, once the models are loaded): the expressions, the thinker and its
    options, the device. The checked expressions; SettingsError or ValueError."""
    texts = check_expressions(expressions)
    _check_options(thinker, settings, None, thinker_options)
    return texts


@dataclass(frozen=True)
class CallSettings:
    """The settings of an accepted call; fps: the rate sampled (dense output: the keyframes').
    """

    thinker: str
    preset: Preset
    settings: Settings
    fps: float
    chunk_seconds: float
    window_frames: int
    thinker_options: dict[str, Any]


def call_settings(
    *, thinker: str, preset: str | Preset, settings: Settings | None, fps: float, chunk_seconds: float | None,
    thinker_options: Mapping[str, Any] | None,
) -> CallSettings:
    """The settings of a call whose arguments :func:`check_segment_call` accepted; fps: the rate sampled."""
    chunk = DEFAULT_CHUNK_SECONDS if chunk_seconds is None else float(chunk_seconds)
    return CallSettings(
        thinker=canonical_name(thinker),
        preset=_resolve_preset(preset),
        settings=settings or Settings(),
        fps=float(fps),
        chunk_seconds=chunk,
        window_frames=max(1, round(chunk * fps)),
        thinker_options=dict(thinker_options or {}),
    )


class Timer:
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


def report(progress: ProgressCallback | None, fraction: float, desc: str) -> None:
    logger.info("%s (%.0f%%)", desc, 100 * fraction)
    if progress is not None:
        progress(min(max(fraction, 0.0), 1.0), desc=desc)


@contextmanager
def recorded_warnings() -> Iterator[list[warnings.WarningMessage]]:
    """The warnings raised inside, recorded as they come (for result.json: :func:`warning_lines`);
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


def warning_lines(caught: Sequence[warnings.WarningMessage]) -> list[str]:
    """Each distinct warning once, as one plain line (no source path, no code)."""
    return list(dict.fromkeys(" ".join(str(w.message).split()) for w in caught))


def frame_progress(
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
