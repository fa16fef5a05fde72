"""Video files for the ``tgs segment`` tests that ``tgs.data.synth.write_video`` cannot make.

``write_video`` writes the synthetic scene as yuv420p (even sizes only) with 48 kHz stereo
AAC, which is slow to encode for minutes of audio. ``encode_clip`` writes the same scene
at any size (yuv444p H.264 takes odd widths and heights) with an optional cheap audio
track: a 440 Hz tone, mono AAC at a low rate.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from tgs.data.synth import make_video, render_frame


def encode_clip(
    path: Path,
    seconds: float,
    fps: float,
    size: tuple[int, int],
    *,
    seed: int = 0,
    audio_rate: int | None = 16000,
) -> Path:
    """An H.264 mp4 of the synthetic scene, ``size`` = (width, height), any parity; mono AAC at ``audio_rate``."""
    width, height = size
    scene = make_video(seed, 0, duration=float(seconds))
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), mode="w") as container:
        video = container.add_stream("libx264", rate=rate)
        video.width, video.height, video.pix_fmt = width, height, "yuv444p"
        video.options = {"preset": "ultrafast", "crf": "23"}
        audio = container.add_stream("aac", rate=audio_rate, layout="mono") if audio_rate else None
        for i in range(round(seconds * fps)):
            rgb, _ = render_frame(scene, i / fps, size)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            frame.time_base = 1 / rate
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        if audio is not None:
            total = round(seconds * audio_rate)
            step = 1024
            for start in range(0, total, step):
                n = min(step, total - start)
                t = (start + np.arange(n)) / audio_rate
                tone = (0.2 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)[None, :]
                chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone), format="fltp", layout="mono")
                chunk.sample_rate = audio_rate
                chunk.pts = start
                container.mux(audio.encode(chunk))
            container.mux(audio.encode(None))
    return path


def stream_info(path: Path) -> dict:
    """Video frame count and size, and whether (and how long) there is an audio stream."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        frames = sum(1 for _ in container.decode(video))
        info = {
            "frames": frames,
            "width": video.codec_context.width,
            "height": video.codec_context.height,
            "audio": bool(container.streams.audio),
        }
    if info["audio"]:
        with av.open(str(path)) as container:
            samples = 0
            rate = 0
            for frame in container.decode(container.streams.audio[0]):
                samples += frame.samples
                rate = frame.sample_rate
            info["audio_seconds"] = samples / rate if rate else 0.0
    return info
