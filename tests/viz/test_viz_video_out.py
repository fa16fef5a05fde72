"""Overlay videos: frame count, rate, size, and the original audio kept (decoded back with PyAV)."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from tgs.data.media import iter_video_frames
from tgs.data.synth import write_video
from tgs.video_out import copy_audio_from, write_overlay_video


def _frames(count: int, h: int = 48, w: int = 64):
    """A generator, as a streaming caller gives: frame i is filled with grey level 8 * i."""
    for i in range(count):
        yield np.full((h, w, 3), 8 * i, np.uint8)


def _probe(path):
    """(video frames decoded, average rate, (w, h), audio stream duration s or None, decoded audio samples, rate)."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        rate, size = video.average_rate, (video.width, video.height)
        count = sum(1 for _ in container.decode(video=0))
    audio_info = (None, 0, None)
    with av.open(str(path)) as container:
        if container.streams.audio:
            stream = container.streams.audio[0]
            duration = float(stream.duration * stream.time_base)
            samples = sum(f.samples for f in container.decode(audio=0))
            audio_info = (duration, samples, stream.rate)
    return count, rate, size, *audio_info


def test_array_audio_is_kept_with_its_duration(tmp_path):
    rate = 16000
    audio = (0.3 * np.sin(2 * np.pi * 440 * np.arange(int(2.5 * rate)) / rate)).astype(np.float32)
    path = write_overlay_video(tmp_path / "out.mp4", _frames(25), 10, audio, rate)
    count, fps, size, duration, samples, sample_rate = _probe(path)
    assert count == 25 and fps == Fraction(10) and size == (64, 48)
    assert sample_rate == rate
    assert duration == pytest.approx(2.5, abs=1e-3)
    # AAC decodes in 1024-sample frames: at most one partial frame of padding.
    assert audio.shape[0] <= samples < audio.shape[0] + 1024
    with av.open(str(path)) as container:
        decoded = np.concatenate([f.to_ndarray()[0] for f in container.decode(audio=0)])[: audio.shape[0]]
    # Same signal, not shifted: AAC is lossy, but a pure tone comes back almost exactly.
    assert np.corrcoef(decoded, audio)[0, 1] > 0.999


def test_no_audio_gives_no_audio_stream_and_odd_sizes_are_padded(tmp_path):
    path = write_overlay_video(tmp_path / "silent.mkv", _frames(7, h=47, w=63), 12.5)
    with av.open(str(path)) as container:
        assert not container.streams.audio
    count, fps, size, *_ = _probe(path)
    assert count == 7 and fps == Fraction(25, 2) and size == (64, 48)


@pytest.fixture(scope="module")
def source_video(tmp_path_factory):
    """3 s at 10 fps with 48 kHz stereo AAC, as `tgs data synth` writes test inputs."""
    return write_video(tmp_path_factory.mktemp("src") / "source.mp4", 3, 10, (64, 48))


@pytest.mark.parametrize("mode", ["copy", "encode"])
def test_original_audio_track_is_kept(tmp_path, source_video, mode):
    frames = (f for _, f in iter_video_frames(source_video, fps=10))
    track = copy_audio_from(source_video, mode)
    path = write_overlay_video(tmp_path / f"{mode}.mp4", frames, 10, track)
    count, _, _, duration, samples, rate = _probe(path)
    _, _, _, src_duration, src_samples, src_rate = _probe(source_video)
    assert count == 30 and rate == src_rate == 48000
    assert duration == pytest.approx(src_duration, abs=1024 / 48000 * 2)
    assert abs(samples - src_samples) <= 2048
    if mode == "copy":  # packets copied: the very same compressed audio
        with av.open(str(path)) as out, av.open(str(source_video)) as src:
            ours = [bytes(p) for p in out.demux(audio=0) if p.size]
            theirs = [bytes(p) for p in src.demux(audio=0) if p.size]
        assert ours == theirs


def test_copy_audio_from_a_silent_video_is_none(tmp_path):
    silent = write_video(tmp_path / "silent.mp4", 1, 10, (64, 48), with_audio=False)
    assert copy_audio_from(silent) is None


def test_bad_inputs_fail_and_leave_no_file(tmp_path):
    with pytest.raises(ValueError, match="at least one frame"):
        write_overlay_video(tmp_path / "a.mp4", iter(()), 10)
    assert not (tmp_path / "a.mp4").exists()

    def mixed():
        yield np.zeros((48, 64, 3), np.uint8)
        yield np.zeros((50, 64, 3), np.uint8)

    with pytest.raises(ValueError, match="frame 1"):
        write_overlay_video(tmp_path / "b.mp4", mixed(), 10)
    assert not (tmp_path / "b.mp4").exists()
    with pytest.raises(ValueError, match="suffix"):
        write_overlay_video(tmp_path / "c.gif", _frames(1), 10)
    with pytest.raises(ValueError, match="sample_rate"):
        write_overlay_video(tmp_path / "d.mp4", _frames(1), 10, np.zeros(100, np.float32))
