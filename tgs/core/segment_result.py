"""What a video session gives back: the result types, the per-frame records, the output folder
and the ONE builder of result.json (schema :data:`RESULT_SCHEMA`, ``docs/segment.md``).

The records of result.json are built from the frames a session yields: sampled output records
every emitted frame (:func:`frame_record`), dense output its grounded keyframes
(:mod:`tgs.core.dense`); everything else in result.json comes from the session once its frames
are consumed (:meth:`tgs.core.session.VideoSession.summary`).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tgs import fast_paths
from tgs.core.loading import public_options
from tgs.core.settings import UNTRAINED_LABEL
from tgs.output_folder import StagedOutputs, partial_path
from tgs.presets import default_dtype
from tgs.types import FrameResult, Thought

__all__ = [
    "MASKS_DIR",
    "MASKS_JSON",
    "MASKS_JSONL",
    "OVERLAY_NAME",
    "RESULT_NAME",
    "RESULT_SCHEMA",
    "ExpressionOutput",
    "OutputFolder",
    "SegmentVideoResult",
    "frame_record",
    "result_record",
]

RESULT_SCHEMA = 3
"""result.json schema: 3 = dense or sampled output (``output`` block, keyframe ``frame`` indices,
``propagation``); 2 = several expressions (``expressions`` list, ``masks/<k>/``); 1 had one."""

OVERLAY_NAME = "overlay.mp4"
MASKS_JSONL = "masks.jsonl"  # a live session's masks, one line per emitted frame (tgs.masks_jsonl)
MASKS_DIR = "masks"
MASKS_JSON = "masks.json"
RESULT_NAME = "result.json"

_MASK_FILE = re.compile(r"^\d{5}\.png$")
_LEGACY_PARTIALS = (".overlay.partial.mp4", ".masks.json.partial", "result.json.tmp")
"""Partial files that versions before ``OUT/.partial/`` wrote beside the outputs (a killed call left them)."""


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
    thought: Thought | None  # None: a live session (its answers over time are in result.json)
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
    def thought(self) -> Thought | None:
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


def frame_record(frame: FrameResult, k: int, *, png: bool = True) -> dict[str, Any]:
    """Expression k's record of one emitted frame (result.json's ``frames`` in sampled output):
    its index and time, what grounding chose there (``details``: box, score, query index,
    candidate count), the mask's area and its PNG."""
    time = round(frame.time, 6)
    return {
        "index": frame.index,
        "time": time,
        **(frame.details[k] if frame.details is not None and frame.details[k] is not None
           else {"box": None, "score": None, "query_index": None, "candidates": 0}),
        "mask_area": round(float(frame.masks[k].mean()), 6),
        "mask": f"{MASKS_DIR}/{k}/{frame.index:05d}.png" if png else None,
    }


def previous_outputs(out: Path) -> list[Path]:
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


class OutputFolder:
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
        write_json(self.result_json, record)
        self.staged.publish(replaced=previous_outputs(self.out_dir))


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """``data`` as indented JSON, written under a partial name and renamed when complete."""
    tmp = partial_path(path)
    tmp.write_text(json.dumps(dict(data), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def result_record(result: SegmentVideoResult, summary: Any, *, video_label: str | None = None) -> dict[str, Any]:
    """result.json (schema :data:`RESULT_SCHEMA`, ``docs/segment.md``) of any mode: the one builder.

    summary: the session's :class:`tgs.core.session.SessionSummary` (records, object texts, what
    was read, the models, the mode's ``output`` / ``propagation`` blocks and per-expression extras).
    video_label: the video's ``path`` (default: the file read, absolute; a URL whose copy was read).
    """
    from tgs import __version__

    height, width = summary.frame_size or (None, None)
    models = summary.spec.describe()
    thinker_key = None if summary.spec.thinker is None else summary.spec.thinker.key
    call = summary.call
    live = getattr(summary, "live", None)  # a live source: its thoughts are answers over time (per_expression)
    expressions = []
    for out in result.expressions:
        thought = out.thought
        chosen = summary.object_texts[out.index] if out.index < len(summary.object_texts) else None
        expressions.append(
            {
                "index": out.index,
                "expression": out.expression,
                "color": list(out.color),
                "reasoning": None if thought is None else thought.reasoning,
                "f_object": None if thought is None else thought.f_object,
                "s_object": None if thought is None else thought.s_object,
                "thought": None if thought is None else {
                    "status": thought.status.value, "is_null": thought.is_null, "raw": thought.raw,
                    "error": thought.error},
                "object_text": None if chosen is None else chosen.text,
                "object_source": None if chosen is None else chosen.source,
                "masks_dir": f"{MASKS_DIR}/{out.index}",
                "frames": summary.records[out.index],
                **(summary.per_expression[out.index] if summary.per_expression is not None else {}),
            }
        )
    record = {
        "schema": RESULT_SCHEMA,
        "tool": "tgs",
        "version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "untrained": result.untrained,
        "label": UNTRAINED_LABEL if result.untrained else None,
        "video": {
            "path": summary.source if live is not None else (
                video_label if video_label is not None else str(summary.video.resolve())),
            "duration_s": live["wall_s"] if live is not None else round(float(summary.duration), 6),
            "height": height,
            "width": width,
            "has_audio": summary.has_audio,
        },
        "expressions": expressions,
        "thinker": {
            "name": call.thinker,
            "source": None if thinker_key is None else models.get(thinker_key),
            "options": public_options(call.thinker_options),
        },
        "preset": call.preset.to_dict(),
        "models": models,
        # the precision asked for: --dtype, else the preset's default (paper: fp32; "auto": bf16 on CUDA, fp32 on a CPU)
        "settings": {"device": call.settings.device, "dtype": call.settings.dtype or default_dtype(call.preset)},
        "sampling": {
            "fps": summary.fps if live is not None else call.fps,
            "frames": len(summary.record_times),
            "frame_times": summary.record_times,
            "chunk_seconds": call.chunk_seconds,
            "window_frames": call.window_frames,
            "think": summary.think_input,
        },
        "outputs": {
            "overlay_video": OVERLAY_NAME,
            "masks_dir": MASKS_DIR,
            "overlay_has_audio": summary.has_audio,
        } if live is None else {
            "masks_jsonl": MASKS_JSONL, "overlay_video": OVERLAY_NAME, "overlay_fragmented": True,
            "overlay_fps": summary.fps, "overlay_has_audio": False,
            "masks_dir": MASKS_DIR if summary.output.get("png") else None,
        },
        "timings": {**result.timings, "fast_paths": fast_paths.current().as_record()},
        "warnings": result.warnings,
        "output": summary.output,
        "propagation": summary.propagation,
    }
    if live is not None:  # a live source (tgs.core.live_mode): latency, skips, reconnects, the think schedule
        record["live"] = live
    return record


def expression_outputs(summary: Any, out_dir: Path) -> tuple[ExpressionOutput, ...]:
    """Per expression, what it gave (:class:`ExpressionOutput`) from the session's summary."""
    from tgs.viz import expression_color

    outputs = []
    for k, text in enumerate(summary.texts):  # a live session has no up-front thought
        thought = summary.thoughts[k] if k < len(summary.thoughts) else None
        frames = summary.records[k]
        outputs.append(
            ExpressionOutput(
                index=k,
                expression=text,
                thought=thought,
                object_text=summary.object_texts[k].text if k < len(summary.object_texts) else None,
                masks_dir=out_dir / MASKS_DIR / str(k),
                color=expression_color(k),
                boxes=[None if r["box"] is None else tuple(r["box"]) for r in frames],  # type: ignore[misc]
                scores=[r["score"] for r in frames],
                keyframes=[r["frame"] for r in frames] if summary.dense else [],
            )
        )
    return tuple(outputs)


def video_result(summary: Any, out_dir: Path, timings: Mapping[str, float], warnings: Sequence[str]) -> SegmentVideoResult:
    """The call's :class:`SegmentVideoResult` from the session's summary."""
    extra: dict[str, Any] = {}
    if summary.dense:
        extra = {"mode": "dense", "masks_json": out_dir / MASKS_JSON, "fps": summary.fps}
    return SegmentVideoResult(
        out_dir=out_dir,
        overlay_video=out_dir / OVERLAY_NAME,
        masks_dir=out_dir / MASKS_DIR,
        result_json=out_dir / RESULT_NAME,
        expressions=expression_outputs(summary, out_dir),
        timings={k: round(v, 6) for k, v in timings.items()},
        frame_times=list(summary.frame_times),
        untrained=summary.call.settings.untrained,
        warnings=list(warnings),
        **extra,
    )
