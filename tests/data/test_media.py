"""Frame, video and audio decoding of tgs.data.media."""

from __future__ import annotations

import warnings
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
import soxr

from tgs.data import synth
from tgs.data.media import (
    iter_video_frames,
    load_audio,
    load_clip,
    load_frames_dir,
    load_video_frames,
    sample_times,
    video_duration,
)
from tgs.errors import MediaError, NoAudioWarning

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "fbank"


def index_video(path: Path, frames: int = 25, fps: int | Fraction = 10, codec: str = "libx264") -> Path:
    """A video whose frame i is uniformly grey at level 10 * i, so a decoded frame names its index."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 10 * i, np.uint8), format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def indices(frames: np.ndarray) -> list[int]:
    return [round(float(f.mean()) / 10) for f in frames]


# ---------------------------------------------------------------------------- frames


def test_load_frames_dir_and_truncated_jpeg(synth_copy: Path) -> None:
    folder = next((synth_copy / "media").iterdir()) / "frames"
    frames = load_frames_dir(folder)
    assert frames.shape == (10, 64, 96, 3) and frames.dtype == np.uint8
    assert load_frames_dir(folder, 3).shape == (3, 64, 96, 3)
    victim = folder / "6.jpg"
    victim.write_bytes(victim.read_bytes()[:300])
    with pytest.raises(MediaError, match=r"6\.jpg") as err:
        load_frames_dir(folder)
    assert err.value.path == str(victim)
    (folder / "2.jpg").unlink()
    with pytest.raises(MediaError, match=r"2\.jpg"):
        load_frames_dir(folder)
    (folder / "0.jpg").write_bytes(b"not a jpeg at all")
    with pytest.raises(MediaError, match=r"0\.jpg"):
        load_frames_dir(folder, 1)


def test_frames_of_different_sizes_are_rejected(tmp_path: Path) -> None:
    from PIL import Image

    Image.new("RGB", (32, 24)).save(tmp_path / "0.jpg")
    Image.new("RGB", (24, 32)).save(tmp_path / "1.jpg")
    with pytest.raises(MediaError, match=r"1\.jpg is 24x32 but .*0\.jpg is 32x24"):
        load_frames_dir(tmp_path, 2)


# ---------------------------------------------------------------------------- video sampling


def test_sample_times_rules() -> None:
    assert sample_times(10.0) == [float(k) for k in range(10)]
    assert sample_times(10.0, anchor=0.5) == [k + 0.5 for k in range(10)]
    assert sample_times(2.5, 5) == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert sample_times(2.5, None, fps=2) == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert sample_times(2.5, 3, fps=2) == [0.0, 0.5, 1.0]
    assert sample_times(0.1, None, fps=1) == [0.0]  # a short clip still gives one frame
    with pytest.raises(ValueError, match="anchor"):
        sample_times(1.0, anchor=1.0)


def test_video_frame_choice(tmp_path: Path) -> None:
    path = index_video(tmp_path / "idx.mp4")  # 25 frames at 10 fps = 2.5 s
    assert video_duration(path) == pytest.approx(2.5)
    frames, times = load_video_frames(path, 5)
    assert indices(frames) == [0, 5, 10, 15, 20]
    np.testing.assert_allclose(times, [0.0, 0.5, 1.0, 1.5, 2.0])
    frames, _ = load_video_frames(path, 5, anchor=0.5)  # the middle of each half second
    assert indices(frames) == [2, 7, 12, 17, 22]
    frames, times = load_video_frames(path, None, fps=4)
    assert indices(frames) == [0, 2, 5, 7, 10, 12, 15, 17, 20, 22]
    frames, times = load_video_frames(path, None)  # every frame
    assert indices(frames) == list(range(25))
    np.testing.assert_allclose(times, np.arange(25) / 10)
    streamed = list(iter_video_frames(path, fps=4))
    assert [round(float(f.mean()) / 10) for _, f in streamed] == [0, 2, 5, 7, 10, 12, 15, 17, 20, 22]
    assert frames.shape[1:] == (48, 64, 3)


def test_ref_avs_rule_on_a_10s_video(tmp_path: Path) -> None:
    path = index_video(tmp_path / "ten.mkv", frames=25, fps=Fraction(5, 2))  # 10 s, a frame every 0.4 s
    frames, times = load_video_frames(path)
    # The frame on screen at 0, 1, ..., 9 s: frame floor(k / 0.4).
    assert indices(frames) == [int(k / 0.4) for k in range(10)]
    np.testing.assert_allclose(times, [int(k / 0.4) * 0.4 for k in range(10)])


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".webm", ".avi"])
def test_containers_decode_frames_and_audio(tmp_path: Path, suffix: str) -> None:
    path = synth.write_video(tmp_path / f"clip{suffix}", seconds=2.0, fps=6, size=(96, 64), seed=3)
    clip = load_clip(path, num_frames=4)
    assert clip.frames.shape == (4, 64, 96, 3)
    np.testing.assert_allclose(clip.frame_times, [0.0, 0.5, 1.0, 1.5], atol=1 / 6)
    assert clip.sample_rate == 16000 and clip.audio is not None
    # Lossy codecs add encoder delay; the length stays within ~0.1 s of 2 s.
    assert abs(clip.audio.shape[0] - 32000) < 1600
    assert 0.01 < float(np.sqrt(np.mean(clip.audio**2))) < 1.0
    assert clip.source == str(path)


def test_video_without_audio_gives_none_and_warns(tmp_path: Path) -> None:
    path = synth.write_video(tmp_path / "silent.mp4", seconds=1.0, fps=5, size=(64, 48), seed=1, with_audio=False)
    with pytest.warns(NoAudioWarning, match="no audio track"):
        assert load_audio(path) is None
    with pytest.warns(NoAudioWarning):
        clip = load_clip(path, num_frames=2)
    assert clip.audio is None and clip.sample_rate is None and clip.frames.shape == (2, 48, 64, 3)


def test_not_a_video_is_a_media_error(tmp_path: Path) -> None:
    path = tmp_path / "fake.mp4"
    path.write_bytes(b"\x00" * 100)
    with pytest.raises(MediaError, match=r"fake\.mp4"):
        load_video_frames(path)
    with pytest.raises(MediaError, match="not found"):
        load_video_frames(tmp_path / "absent.mp4")


# ---------------------------------------------------------------------------- audio


def test_wav_44k_stereo_matches_librosa_fixture(tmp_path: Path) -> None:
    ref = np.load(FIXTURES / "librosa_load.npz")
    wav = tmp_path / "a.wav"
    sf.write(str(wav), ref["pcm"], int(ref["sample_rate"]), subtype="PCM_16")
    audio = load_audio(wav)
    assert audio is not None and audio.dtype == np.float32
    assert audio.shape == ref["loaded"].shape == (4000,)  # ceil(11025 * 16000 / 44100)
    np.testing.assert_array_equal(audio, ref["loaded"])  # bit-identical to librosa.load


def test_wav_resampling_steps(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    pcm = np.round(rng.normal(0, 0.2, (44100 + 7, 2)).clip(-1, 1) * 32767).astype(np.int16)
    wav = tmp_path / "b.wav"
    sf.write(str(wav), pcm, 44100, subtype="PCM_16")
    mono = (pcm.astype(np.float32) / 32768).T.mean(axis=0)
    expected = soxr.resample(mono, 44100, 16000, quality="HQ")
    expected = np.pad(expected, (0, int(np.ceil(mono.shape[0] * 16000 / 44100)) - expected.shape[0]))
    np.testing.assert_array_equal(load_audio(wav), expected)
    # Already at 16 kHz: no resampling at all.
    wav16 = tmp_path / "c.wav"
    sf.write(str(wav16), pcm[:1000], 16000, subtype="PCM_16")
    np.testing.assert_array_equal(load_audio(wav16), (pcm[:1000].astype(np.float32) / 32768).T.mean(axis=0))


def test_pyav_and_libsndfile_paths_agree(tmp_path: Path) -> None:
    """The same 16-bit PCM in a WAV (libsndfile) and in an AVI (PyAV) decodes identically."""
    rng = np.random.default_rng(1)
    pcm = np.round(rng.normal(0, 0.2, (48000, 2)).clip(-1, 1) * 32767).astype(np.int16)
    wav = tmp_path / "x.wav"
    sf.write(str(wav), pcm, 48000, subtype="PCM_16")
    avi = tmp_path / "x.mkv"
    with av.open(str(avi), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=48000, layout="stereo")
        for start in range(0, 48000, 4800):
            frame = av.AudioFrame.from_ndarray(pcm[start : start + 4800].reshape(1, -1), format="s16", layout="stereo")
            frame.sample_rate, frame.pts = 48000, start
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    np.testing.assert_array_equal(load_audio(avi), load_audio(wav))


def test_zero_length_audio(tmp_path: Path) -> None:
    wav = tmp_path / "empty.wav"
    sf.write(str(wav), np.zeros((0, 2), np.int16), 48000, subtype="PCM_16")
    audio = load_audio(wav)
    assert audio is not None and audio.shape == (0,) and audio.dtype == np.float32
    frames = tmp_path / "clip" / "frames"
    frames.mkdir(parents=True)
    from PIL import Image

    Image.new("RGB", (16, 16), (10, 20, 30)).save(frames / "0.jpg")
    wav.rename(tmp_path / "clip" / "audio.wav")
    clip = load_clip(tmp_path / "clip", num_frames=1)
    assert clip.audio is not None and clip.audio.shape == (0,) and clip.sample_rate == 16000


def test_missing_or_broken_audio_is_a_media_error(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="not found"):
        load_audio(tmp_path / "absent.wav")
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    with pytest.raises(MediaError, match=r"bad\.wav"):
        load_audio(bad)


# ---------------------------------------------------------------------------- clips from folders


def test_load_clip_from_media_and_frames_folders(synth_root: Path) -> None:
    media = next(p for p in sorted((synth_root / "media").iterdir()) if not p.name.startswith("null_"))
    from_media = load_clip(media)
    from_frames = load_clip(media / "frames")
    np.testing.assert_array_equal(from_media.frames, from_frames.frames)
    np.testing.assert_array_equal(from_media.audio, from_frames.audio)
    np.testing.assert_array_equal(from_media.frame_times, np.arange(10.0))
    assert from_media.audio is not None and from_media.audio.shape == (160000,)
    assert load_clip(media, num_frames=None).num_frames == 10
    np.testing.assert_allclose(load_clip(media, num_frames=4, fps=2).frame_times, [0, 0.5, 1, 1.5])


def test_frames_folder_without_audio_warns(tmp_path: Path) -> None:
    from PIL import Image

    for i in range(3):
        Image.new("RGB", (16, 8), (i, i, i)).save(tmp_path / f"{i}.jpg")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clip = load_clip(tmp_path, num_frames=None)
    assert clip.num_frames == 3 and clip.audio is None
    assert [w.category for w in caught] == [NoAudioWarning]
