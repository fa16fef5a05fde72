"""Live overlays: a fragmented MP4 under its final name, readable while written and after SIGKILL."""

from __future__ import annotations

import signal
from pathlib import Path

import av
import numpy as np
import pytest
from killed_runs import kill_when_ready

from tgs.output_folder import partial_path
from tgs.video_out import OverlayVideoWriter

FPS = 10
RATE = 16000
STEP = 8  # grey levels between consecutive frames


def frame(i: int) -> np.ndarray:
    """Frame i is flat grey at level STEP * i (distinct for i < 32)."""
    return np.full((48, 64, 3), STEP * i, np.uint8)


def tone(seconds: float) -> np.ndarray:
    return (0.3 * np.sin(2 * np.pi * 440 * np.arange(int(seconds * RATE)) / RATE)).astype(np.float32)


def decoded_indices(path: Path) -> list[int]:
    """For each decoded frame, which written frame it is: the nearest grey level. Levels are
    STEP = 8 apart, so any coding error under 4 levels (flat frames at crf 20 come back within
    1-2) names the right frame; a missing, repeated or reordered frame changes the list."""
    with av.open(str(path)) as container:
        return [round(float(f.to_ndarray(format="rgb24").mean()) / STEP) for f in container.decode(video=0)]


def keyframes(path: Path) -> list[int]:
    with av.open(str(path)) as container:
        packets = [p for p in container.demux(video=0) if p.size]
    return [i for i, p in enumerate(packets) if p.is_keyframe]


def decoded_audio(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.concatenate([f.to_ndarray()[0] for f in container.decode(audio=0)])


@pytest.mark.parametrize("codec", ["libx264", "mpeg4"])
def test_a_clean_close_gives_every_frame_with_a_keyframe_per_fragment(tmp_path: Path, codec: str):
    if codec not in av.codecs_available:
        pytest.skip(f"this FFmpeg has no {codec}")
    out = tmp_path / "live.mp4"
    writer = OverlayVideoWriter(out, FPS, codec=codec, fragmented=True, fragment_seconds=1.0)
    assert writer.keyframe_interval == FPS
    for i in range(25):
        writer.write(frame(i))
        assert out.is_file() and not partial_path(out).exists()  # the final name from the first frame
    assert writer.close() == out
    assert decoded_indices(out) == list(range(25))
    assert keyframes(out) == [0, 10, 20]  # one every second, none at a scene cut
    with av.open(str(out)) as container:  # an empty moov up front, the samples in fragments
        assert container.streams.video[0].frames == 0


def test_fragmented_audio_is_the_same_as_in_a_plain_file(tmp_path: Path):
    """Same encoders and the same interleaving: the decoded sound equals the default mode's."""
    audio = tone(2.5)
    paths = []
    for fragmented in (False, True):
        with OverlayVideoWriter(tmp_path / f"{fragmented}.mp4", FPS, audio, RATE, fragmented=fragmented) as writer:
            for i in range(25):
                writer.write(frame(i))
            paths.append(writer.close())
    plain, live = (decoded_audio(p) for p in paths)
    assert live.shape == plain.shape and np.array_equal(live, plain)
    # Not shifted against the video: the AAC priming is cut by the edit list in both files.
    assert np.corrcoef(live[: audio.shape[0]], audio)[0, 1] > 0.999
    with av.open(str(paths[1])) as container:
        times = [float(f.pts * f.time_base) for f in container.decode(video=0)]
    # pts * time_base is exact (Fractions) and float() rounds it correctly, as i / FPS rounds i / 10:
    # frame i written at pts i in the stream's time base gives the same double on both sides.
    assert times == [i / FPS for i in range(25)]
    assert decoded_indices(paths[1]) == list(range(25))


def test_readable_while_written(tmp_path: Path):
    out = tmp_path / "live.mp4"
    seen = []
    with OverlayVideoWriter(out, FPS, fragmented=True) as writer:
        for i in range(25):
            writer.write(frame(i))
            seen.append(len(decoded_indices(out)) if out.stat().st_size else 0)
        writer.close()
    # Without audio nothing holds a packet back: writing keyframe 10 (resp. 20) completes the
    # fragment of frames 0-9 (resp. 10-19), flushed to the file at once.
    assert seen == [0] * 10 + [10] * 10 + [20] * 5


def test_abort_keeps_the_frames_written(tmp_path: Path):
    out = tmp_path / "live.mp4"
    writer = OverlayVideoWriter(out, FPS, fragmented=True)
    for i in range(15):
        writer.write(frame(i))
    writer.abort()
    assert decoded_indices(out) == list(range(15))
    with pytest.raises(ValueError, match="after close"):  # would truncate the kept file
        writer.write(frame(15))
    assert decoded_indices(out) == list(range(15))
    with pytest.raises(ValueError, match="fragmented overlay is an MP4"):
        OverlayVideoWriter(tmp_path / "live.mkv", FPS, fragmented=True)
    with pytest.raises(ValueError, match="fragment_seconds"):
        OverlayVideoWriter(out, FPS, fragmented=True, fragment_seconds=0)


def _write_then_hang(path: str, with_audio: bool, count: int, ready) -> None:
    """The writer to be killed: ``count`` frames written, then it signals and waits forever."""
    audio = tone(10.0) if with_audio else None
    writer = OverlayVideoWriter(path, FPS, audio, RATE if with_audio else None, fragmented=True)
    for i in range(count):
        writer.write(frame(i))
    ready.set()
    signal.pause()


@pytest.mark.parametrize("with_audio", [False, True])
def test_sigkill_leaves_a_playable_file_with_the_completed_fragments(tmp_path: Path, with_audio: bool):
    out = tmp_path / "live.mp4"
    count = 25
    kill_when_ready(_write_then_hang, (str(out), with_audio, count))
    # Fragments end at keyframes 10 and 20, and frames 21-24 were written after keyframe 20.
    # With audio, the muxer holds a video packet until the audio has reached its time; the
    # AAC encoder lags its input by two 1024-sample frames (128 ms at 16 kHz), less than the
    # four frames (400 ms) written after keyframe 20, so frames 0-19 are on disk either way.
    # Frames 20-24 are in the fragment still open when the writer died.
    assert decoded_indices(out) == list(range(20))
    if with_audio:
        audio = decoded_audio(out)
        # The muxer writes packets in time order, so every audio packet that starts before
        # keyframe 20 (t = 2 s) is in a completed fragment: at least the sound of frames 0-19.
        assert audio.shape[0] >= 2 * RATE
        assert np.corrcoef(audio[: 2 * RATE], tone(2.0))[0, 1] > 0.999  # that sound, not shifted


def test_the_overlay_sink_passes_fragmented_on(tmp_path: Path):
    from tgs.dense_outputs import OverlayVideoSink

    sink = OverlayVideoSink(tmp_path / "live.mp4", FPS, 1, fragmented=True)
    assert sink.writer.fragmented and sink.writer.keyframe_interval == FPS
    assert not OverlayVideoSink(tmp_path / "plain.mp4", FPS, 1).writer.fragmented
