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

from tgs.segment_video import SegmentVideoResult
from tgs.types import Thought

FAKE_REASONING = "The expression names one object; it is the one in the centre."
FAKE_TIMINGS = {"decode": 0.25, "think": 1.5, "ground": 0.5, "segment": 0.75, "total": 3.25}


@dataclass
class FakeSegmentVideo:
    """Callable like ``segment_video(video, expression, *, thinker, preset, models, out, fps, progress, cache)``."""

    calls: list[dict[str, Any]] = field(default_factory=list)
    escape_to: Path | None = None  # when set, reports an overlay outside ``out`` (a misbehaving pipeline)

    def __call__(
        self,
        video: Path,
        expression: str,
        *,
        thinker: str,
        preset: str,
        models: str,
        out: Path,
        fps: float,
        progress: Any = None,
        cache: Any = None,
    ) -> SegmentVideoResult:
        from tgs.data.media import iter_video_frames
        from tgs.video_out import write_overlay_video
        from tgs.viz import overlay_frame

        self.calls.append(
            dict(
                video=Path(video), expression=expression, thinker=thinker, preset=preset, models=models, out=out,
                fps=fps, cache=cache,
            )
        )
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
        result_json.write_text(json.dumps({"expression": expression, "frames": len(frames)}))
        return SegmentVideoResult(
            out_dir=out,
            overlay_video=overlay,
            masks_dir=out / "masks",
            result_json=result_json,
            thought=thought,
            boxes=[None] * len(frames),
            timings=dict(FAKE_TIMINGS),
            object_text="object",
            untrained=models == "tiny",
            warnings=["a note with <html> in it"],
        )


def write_clip(path: Path, seconds: float = 2.0, fps: float = 5.0, size: tuple[int, int] = (64, 48)) -> Path:
    """A small synthetic MP4 with audio (H.264 + AAC)."""
    from tgs.data.synth import write_video

    return write_video(path, seconds, fps, size, seed=3, with_audio=True)
