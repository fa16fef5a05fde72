"""Real-world video and benchmark oddities: rotated phone videos, absurd sampling rates, a
folder given as a video, synthetic benchmarks written over existing data, over-long expressions."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import av
import numpy as np
import pytest

from tgs.data.benchmark import Benchmark
from tgs.data.check import GDINO_MAX_TEXT_TOKENS, check_benchmark, estimate_caption_tokens
from tgs.data.media import cap_sampling_rate, iter_video_frames, load_video_frames, video_duration
from tgs.data.synth import generate
from tgs.errors import MediaError, SamplingWarning, SettingsError

W, H = 64, 32  # stored size: landscape


def marked_frame() -> np.ndarray:
    """Stored frame with a white block in its top-left corner."""
    frame = np.zeros((H, W, 3), np.uint8)
    frame[:8, :8] = 255
    return frame


def write_rotated(path: Path, degrees: int, frames: int = 4, rate: int = 4) -> Path:
    """An MPEG-4 video whose stream carries a display matrix rotating it by ``degrees`` (counterclockwise)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=rate)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.set_display_rotation(degrees)
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(marked_frame(), format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def corner_of_block(frame: np.ndarray) -> tuple[int, int]:
    ys, xs = np.nonzero(frame[..., 0] > 128)
    return round(float(ys.mean()) / frame.shape[0]), round(float(xs.mean()) / frame.shape[1])


@pytest.mark.parametrize(
    ("degrees", "corner"),
    # counterclockwise turns: the stored top-left corner plays at bottom-left (90), bottom-right (180),
    # top-right (-90 = 270)
    [(0, (0, 0)), (90, (1, 0)), (180, (1, 1)), (-90, (0, 1))],
)
def test_rotated_video_is_decoded_as_it_plays(tmp_path, degrees, corner):
    video = write_rotated(tmp_path / "phone.mp4", degrees)
    frames, _ = load_video_frames(video, num_frames=2)
    expected = (H, W) if degrees in (0, 180) else (W, H)
    assert frames.shape[1:3] == expected
    assert corner_of_block(frames[0]) == corner
    streamed = [f for _, f in iter_video_frames(video, fps=1.0)]
    assert streamed[0].shape[:2] == expected and np.array_equal(streamed[0], frames[0])


def test_sampling_rate_is_capped_at_the_source_rate(tmp_path):
    video = write_rotated(tmp_path / "v.mp4", 0, frames=8, rate=4)
    with pytest.warns(SamplingWarning, match="4 fps"):
        assert cap_sampling_rate(video, 1000.0) == pytest.approx(4.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cap_sampling_rate(video, 2.0) == 2.0
        assert cap_sampling_rate(video, 4.0) == 4.0


def test_a_folder_given_as_a_video_is_named_as_a_folder(tmp_path):
    with pytest.raises(MediaError, match="is a folder, not a video file"):
        video_duration(tmp_path)


def test_synth_refuses_a_file_and_a_non_empty_folder_without_force(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(SettingsError, match="is a file"):
        generate(target, 1, 0, (64, 48))
    bench = tmp_path / "bench"
    generate(bench, 2, 0, (64, 48))
    before = sorted(p.relative_to(bench) for p in bench.rglob("*"))
    with pytest.raises(SettingsError, match="--force"):
        generate(bench, 1, 1, (64, 48))
    assert sorted(p.relative_to(bench) for p in bench.rglob("*")) == before  # nothing touched
    (bench / "notes.txt").write_text("mine")
    meta = generate(bench, 1, 1, (64, 48), force=True)
    assert (bench / "notes.txt").read_text() == "mine"  # only the benchmark's own files are replaced
    folders = {p.name for p in (bench / "media").iterdir()}
    assert folders == {s.frames_dir.parent.name for s in Benchmark(bench, meta)}  # no old media left


@pytest.mark.parametrize("size", [(0, 0), (33, 17), (31, 200)])
def test_synth_sizes_below_the_minimum_are_refused_with_the_reason(tmp_path, size):
    with pytest.raises(SettingsError, match="at least 32x32"):
        generate(tmp_path / "b", 1, 0, size)
    assert not (tmp_path / "b").exists()


def test_synth_odd_sizes_are_supported(tmp_path):
    meta = generate(tmp_path / "b", 1, 0, (33, 35))
    sample = next(iter(Benchmark(tmp_path / "b", meta)))
    from tgs.data.media import load_rgb_image

    assert load_rgb_image(sample.frame_paths[0]).shape == (35, 33, 3)


def test_data_check_warns_about_expressions_past_the_grounding_limit(tmp_path):
    meta = generate(tmp_path / "b", 1, 0, (64, 48))
    rows = list(csv.reader(meta.open(encoding="utf-8")))
    long_words = "dog," * 230  # 460 words and commas: over 256 tokens, under the 1,000-character cap
    rows[1][4] = long_words
    with meta.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows)
    report = check_benchmark(Benchmark(tmp_path / "b", meta))
    assert report.ok  # a warning, not a failure
    assert [w.uids[0] for w in report.warnings] == [rows[1][1]]
    assert estimate_caption_tokens(long_words.lower() + ".") > GDINO_MAX_TEXT_TOKENS
    # a counter with the real tokenizer is used when given
    report = check_benchmark(Benchmark(tmp_path / "b", meta), count_tokens=lambda text: 1)
    assert report.warnings == []
