"""A stand-in for ``segment_video`` that does real video I/O but no models, for the demo's tests.

It decodes the staged input at the requested fps, paints a fixed box-shaped mask (the
centre quarter of the frame) on every frame, writes the overlay video and a result.json
with the real writers, and records each call so tests can check what the page sent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tgs.core.segment import ExpressionOutput, SegmentVideoResult
from tgs.types import Thought

FAKE_REASONING = "The expression names one object; it is the one in the centre."
FAKE_TIMINGS = {"decode": 0.25, "think": 1.5, "ground": 0.5, "segment": 0.75, "total": 3.25}


@dataclass
class FakeSegmentVideo:
    """Callable like ``segment_video(video, expressions, *, thinker, preset, settings, out, fps, keyframe_fps,
    progress, cache)``; dense (fps None): every source frame, at the source rate."""

    calls: list[dict[str, Any]] = field(default_factory=list)
    escape_to: Path | None = None  # when set, reports an overlay outside ``out`` (a misbehaving pipeline)

    def __call__(
        self,
        video: Path,
        expressions: list[str],
        *,
        thinker: str,
        preset: str,
        settings: Any,
        out: Path,
        fps: float | None,
        keyframe_fps: float = 1.0,
        progress: Any = None,
        cache: Any = None,
    ) -> SegmentVideoResult:
        from tgs.data.media import iter_video_frames
        from tgs.video_out import write_overlay_video
        from tgs.viz import overlay_frame

        self.calls.append(
            dict(
                video=Path(video), expressions=list(expressions), thinker=thinker, preset=preset, settings=settings,
                out=out,
                fps=fps, keyframe_fps=keyframe_fps, cache=cache,
            )
        )
        if fps is None:  # dense: the source's own frames and rate
            from tgs.segment.frame_source import VideoFrameSource

            fps = VideoFrameSource(video).fps
        out = Path(out)
        out.mkdir(parents=True)
        frames = [frame for _, frame in iter_video_frames(Path(video), fps)]
        height, width = frames[0].shape[:2]
        mask = np.zeros((height, width), dtype=bool)
        mask[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4] = True
        if progress is not None:
            progress(0.5, desc="ground + segment")
        overlay = write_overlay_video(out / "overlay.mp4", (overlay_frame(f, mask) for f in frames), fps)
        if self.escape_to is not None:
            overlay = self.escape_to
        thought = Thought(uid="demo", raw=f"<think>{FAKE_REASONING}</think>", reasoning=FAKE_REASONING,
                          f_object="the centre [object]", s_object="object")
        result_json = out / "result.json"
        result_json.write_text(json.dumps({"expressions": list(expressions), "frames": len(frames)}))
        outputs = tuple(
            ExpressionOutput(
                index=k, expression=text, thought=thought, object_text="object", masks_dir=out / "masks" / str(k),
                color=(255, 0, 0), boxes=[None] * len(frames), scores=[None] * len(frames),
            )
            for k, text in enumerate(expressions)
        )
        return SegmentVideoResult(
            out_dir=out,
            overlay_video=overlay,
            masks_dir=out / "masks",
            result_json=result_json,
            expressions=outputs,
            timings=dict(FAKE_TIMINGS),
            frame_times=[float(k) / fps for k in range(len(frames))],
            untrained=settings.untrained,
            warnings=["a note with <html> in it"],
        )


def write_clip(path: Path, seconds: float = 2.0, fps: float = 5.0, size: tuple[int, int] = (64, 48)) -> Path:
    """A small synthetic MP4 with audio (H.264 + AAC)."""
    from tgs.data.synth import write_video

    return write_video(path, seconds, fps, size, seed=3, with_audio=True)
