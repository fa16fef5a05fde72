"""Frame sources for dense propagation: ranges by index, odd sizes, variable frame rates."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from tgs.errors import MediaError
from tgs.segment.frame_source import ArrayFrameSource, FrameSource, VideoFrameSource


def _write_lossless(path: Path, frames: np.ndarray, pts_ms: list[int]) -> Path:
    """A lossless (FFV1, RGB) Matroska file with the given presentation times in ms, so decoded
    pixels equal the input and any frame size (odd ones too) is allowed; GOP 4 so seeking
    lands on key frames before the wanted frame."""
    import av

    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("ffv1", rate=25)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "bgr0"
        stream.time_base = Fraction(1, 1000)
        stream.codec_context.time_base = Fraction(1, 1000)
        stream.codec_context.gop_size = 4
        for image, pts in zip(frames, pts_ms, strict=True):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = pts
            frame.time_base = Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(23, 35, 49, 3), dtype=np.uint8)  # odd height and width


@pytest.fixture(scope="module")
def vfr_video(tmp_path_factory: pytest.TempPathFactory, frames: np.ndarray) -> Path:
    gaps = [40, 40, 10, 120, 33, 33, 200] * 4  # irregular: variable frame rate
    pts = np.concatenate([[0], np.cumsum(gaps)])[: len(frames)].tolist()
    return _write_lossless(tmp_path_factory.mktemp("vfr") / "vfr.mkv", frames, pts)


def test_array_source_ranges(frames: np.ndarray) -> None:
    source = ArrayFrameSource(frames)
    assert isinstance(source, FrameSource)
    assert source.num_frames == 23 and source.size == (35, 49)
    np.testing.assert_array_equal(np.stack(list(source.frames(5, 9))), frames[5:9])
    with pytest.raises(IndexError):
        list(source.frames(20, 24))
    with pytest.raises(ValueError, match="uint8"):
        ArrayFrameSource(frames.astype(np.float32))


def test_video_source_reads_every_frame_of_an_odd_sized_variable_rate_file(vfr_video: Path,
                                                                          frames: np.ndarray) -> None:
    source = VideoFrameSource(vfr_video)
    assert isinstance(source, FrameSource)
    assert source.num_frames == 23 and source.size == (35, 49)
    np.testing.assert_array_equal(np.stack(list(source.frames(0, 23))), frames)
    assert np.all(np.diff(source.times) > 0) and len(set(np.round(np.diff(source.times), 3))) > 2


@pytest.mark.parametrize(("start", "stop"), [(0, 1), (3, 4), (5, 13), (17, 23), (22, 23), (9, 9)])
def test_video_source_ranges_by_seeking(vfr_video: Path, frames: np.ndarray, start: int, stop: int) -> None:
    got = list(VideoFrameSource(vfr_video).frames(start, stop))
    assert len(got) == stop - start
    for offset, image in enumerate(got):
        np.testing.assert_array_equal(image, frames[start + offset])


def test_duplicate_timestamps_are_counted_from_the_start(tmp_path: Path, frames: np.ndarray) -> None:
    """Frames that share a timestamp cannot be told apart by seeking: counted in decode order."""
    import av

    path = tmp_path / "dup.mkv"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("ffv1", rate=25)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "bgr0"
        for i, image in enumerate(frames[:6]):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = [0, 1, 2, 2, 3, 4][i]  # 1/25 s ticks; one repeated
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    source = VideoFrameSource(path)
    assert source.num_frames == 6
    np.testing.assert_array_equal(np.stack(list(source.frames(2, 5))), frames[2:5])


def test_video_source_errors(tmp_path: Path, vfr_video: Path) -> None:
    with pytest.raises(MediaError, match="not found"):
        VideoFrameSource(tmp_path / "missing.mp4")
    (tmp_path / "text.mp4").write_text("not a video")
    with pytest.raises(MediaError):
        VideoFrameSource(tmp_path / "text.mp4")
    with pytest.raises(IndexError):
        list(VideoFrameSource(vfr_video).frames(0, 24))


def test_video_source_turns_a_rotated_video_upright_like_media(tmp_path: Path, frames: np.ndarray) -> None:
    """A phone video stored sideways (display matrix rotation) comes out as it plays, as tgs.data.media reads it."""
    import av

    from tgs.data.media import load_video_frames

    path = tmp_path / "phone.mkv"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("ffv1", rate=25)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "bgr0"
        stream.set_display_rotation(90)
        for i, image in enumerate(frames[:5]):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    source = VideoFrameSource(path)
    upright, _ = load_video_frames(path, None, None)
    assert source.size == upright.shape[1:3] == (frames.shape[2], frames.shape[1])
    np.testing.assert_array_equal(np.stack(list(source.frames(0, 5))), upright)
    np.testing.assert_array_equal(np.stack(list(source.frames(3, 5))), upright[3:5])
