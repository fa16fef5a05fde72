"""Overlay video writing: never a half-written file under the final name; MP3 audio copied."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from tgs.video_out import copy_audio_from, partial_path, write_overlay_video


def frames(n: int, fail_at: int | None = None):
    for i in range(n):
        if i == fail_at:
            raise KeyboardInterrupt  # stands for a kill mid-encode
        yield np.full((48, 64, 3), i * 10 % 255, np.uint8)


def test_the_final_name_appears_only_when_complete(tmp_path: Path):
    out = tmp_path / "overlay.mp4"
    seen: list[bool] = []

    def watching():
        for frame in frames(6):
            seen.append(out.exists())
            yield frame

    write_overlay_video(out, watching(), 5)
    assert not any(seen) and out.is_file() and not partial_path(out).exists()
    with av.open(str(out)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 6


def test_an_interrupted_write_keeps_the_previous_file_and_no_partial(tmp_path: Path):
    out = tmp_path / "overlay.mp4"
    write_overlay_video(out, frames(3), 5)
    before = out.read_bytes()
    with pytest.raises(KeyboardInterrupt):
        write_overlay_video(out, frames(10, fail_at=5), 5)
    assert out.read_bytes() == before
    assert not partial_path(out).exists()


def _mp3_video(path: Path) -> Path:
    if "libmp3lame" not in av.codecs_available:
        pytest.skip("this FFmpeg has no MP3 encoder")
    with av.open(str(path), "w") as container:
        video = container.add_stream("mpeg4", rate=10)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = container.add_stream("libmp3lame", rate=44100, layout="mono")
        for i in range(10):
            frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
            frame.pts = i
            container.mux(video.encode(frame))
        for k in range(40):
            tone = (0.1 * np.sin(np.arange(k * 1152, (k + 1) * 1152) / 10)).astype(np.float32)[None]
            chunk = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts = 44100, k * 1152
            container.mux(audio.encode(chunk))
        container.mux(audio.encode(None))
        container.mux(video.encode(None))
    return path


def test_mp3_audio_in_an_mp4_is_copied_packet_for_packet(tmp_path: Path):
    source = _mp3_video(tmp_path / "mp3.mp4")
    out = write_overlay_video(tmp_path / "overlay.mp4", frames(10), 10, audio=copy_audio_from(source))
    with av.open(str(source)) as a, av.open(str(out)) as b:
        ours = [bytes(p) for p in b.demux(b.streams.audio[0]) if p.size]
        theirs = [bytes(p) for p in a.demux(a.streams.audio[0]) if p.size]
        assert b.streams.audio[0].codec_context.codec.canonical_name == "mp3"
    assert ours == theirs
