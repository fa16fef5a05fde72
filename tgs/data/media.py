"""Decoding of frames, videos and audio into the arrays a Clip holds.

Frames come from a Ref-AVS frames folder (``0.jpg`` ... ``9.jpg``) or from any video
file PyAV can open (mp4, mkv, webm, avi; any fps and size). Audio comes from a WAV (or
any file libsndfile reads) or from a media file's own audio track, and is converted the
way the original Ref-Thinker loads it, ``librosa.load(path, sr=16000, mono=True)``:

1. decode to float32 (16-bit PCM divided by 32768, as libsndfile does);
2. average the channels (``np.mean`` over the channel axis, in float32);
3. resample with soxr, quality "HQ" (librosa's default ``res_type='soxr_hq'``);
4. pad with zeros or trim to ``ceil(n * target_sr / orig_sr)`` samples (librosa's ``fix``).

Orientation: a video whose stream carries a display matrix (phones store portrait video
sideways with a 90 degree rotation to apply on playback) is decoded *as it plays*: every
frame is turned by the matrix's rotation (``VideoFrame.rotation``, counterclockwise degrees,
multiples of 90), so frames, masks, overlays and the sizes reported all follow the
playback orientation. Mirroring in a display matrix is not applied (rare in practice).

Sampling rate: asking for more frames per second than the video has would only repeat
frames (``--fps 1000`` on a 25 fps clip: 40 copies of each); :func:`cap_sampling_rate`
lowers such a rate to the source's, with a :class:`~tgs.errors.SamplingWarning`.

Which frame is taken from a video: frame k of T is the frame *on screen* at time
``t_k = (k + anchor) * duration / T`` (or ``(k + anchor) / fps`` when sampling at a rate),
i.e. the last frame whose presentation time is <= t_k. With the default ``anchor=0`` and a
10 s clip sampled to 10 frames this is the first frame of each second (0 s, 1 s, ... 9 s),
matching Ref-AVS's one frame per second; ``anchor=0.5`` takes the middle of each second.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from tgs.errors import MediaError, NoAudioWarning, SamplingWarning
from tgs.types import Clip

__all__ = [
    "REF_AVS_SAMPLE_RATE",
    "VIDEO_SUFFIXES",
    "cap_sampling_rate",
    "display_rotation",
    "iter_video_frames",
    "load_audio",
    "load_clip",
    "load_frames_dir",
    "load_gray_image",
    "load_rgb_image",
    "load_video_frames",
    "open_container",
    "resample_like_librosa",
    "sample_times",
    "source_frame_rate",
    "to_rgb",
    "video_duration",
    "video_stream",
    "wav_truncation",
]

logger = logging.getLogger(__name__)

REF_AVS_SAMPLE_RATE = 16000
"""Sample rate of the audio the Ref-Thinker audio encoder sees (Hz)."""

VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v", ".mpg", ".mpeg", ".ts", ".flv", ".wmv")

_IMAGE_ERRORS: tuple[type[BaseException], ...] = (OSError, SyntaxError, ValueError)


# ---------------------------------------------------------------------------- images


def _open_image(path: Path, mode: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise MediaError(f"image not found: {path}", path=path, fix="check the folder with `tgs data check`")
    try:
        with Image.open(path) as img:
            img.load()  # decodes fully: a truncated file fails here, not later
            return np.asarray(img.convert(mode))
    except (UnidentifiedImageError, *_IMAGE_ERRORS) as exc:
        raise MediaError(
            f"cannot decode image {path}: {exc}", path=path, fix="re-extract or re-download this file"
        ) from exc


def load_rgb_image(path: Path) -> np.ndarray:
    """uint8 [H, W, 3] RGB; MediaError naming the file if missing, truncated or not an image."""
    return _open_image(Path(path), "RGB")


def load_gray_image(path: Path) -> np.ndarray:
    """uint8 [H, W], the image converted to 8-bit grayscale ("L") as the original masks are read."""
    return _open_image(Path(path), "L")


def load_frames_dir(folder: Path, num_frames: int = 10) -> np.ndarray:
    """uint8 [T, H, W, 3] RGB from ``folder/{0..T-1}.jpg``.

    Raises MediaError naming the first missing or corrupt file, or a frame whose size
    differs from frame 0.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise MediaError(f"frames folder not found: {folder}", path=folder, fix="check the path")
    if num_frames < 1:
        raise ValueError(f"num_frames: expected >= 1, got {num_frames}")
    frames = []
    for i in range(num_frames):
        path = folder / f"{i}.jpg"
        frame = load_rgb_image(path)
        if frames and frame.shape != frames[0].shape:
            raise MediaError(
                f"frame {path} is {frame.shape[1]}x{frame.shape[0]} but {folder / '0.jpg'} is "
                f"{frames[0].shape[1]}x{frames[0].shape[0]}",
                path=path,
                fix="all frames of a clip must have the same size",
            )
        frames.append(frame)
    return np.stack(frames)


def _count_frames_in_dir(folder: Path) -> int:
    n = 0
    while (folder / f"{n}.jpg").is_file():
        n += 1
    return n


# ---------------------------------------------------------------------------- video


def open_container(path: Path):  # -> av.container.InputContainer
    """A video file opened with PyAV; MediaError (a folder, missing, not a media file) naming the fix."""
    import av

    if path.is_dir():
        raise MediaError(
            f"{path} is a folder, not a video file", path=path,
            fix="give a video file (mp4, mkv, webm, ...); a Ref-AVS frames folder is read by tgs run / ground-segment",
        )
    if not path.is_file():
        raise MediaError(f"video not found: {path}", path=path, fix="check the path")
    try:
        return av.open(str(path))
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise MediaError(f"cannot open media file {path}: {exc}", path=path, fix="is it a video file?") from exc


def video_stream(container, path: Path):
    """The first video stream of ``container`` (decoded with FFmpeg's threads); MediaError if none."""
    if not container.streams.video:
        raise MediaError(f"{path} has no video stream", path=path, fix="pass a video file or a frames folder")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    return stream


def _stream_start(stream) -> float:
    if stream.start_time is not None and stream.time_base is not None:
        return float(stream.start_time * stream.time_base)
    return 0.0


def video_duration(path: Path) -> float:
    """Duration of the first video stream in seconds (from metadata, else by demuxing)."""
    path = Path(path)
    container = open_container(path)
    with container:
        stream = video_stream(container, path)
        if stream.duration is not None and stream.time_base is not None:
            return float(stream.duration * stream.time_base)
        if container.duration is not None:
            import av

            return float(container.duration / av.time_base)
        return _demuxed_duration(container, stream)


def _demuxed_duration(container, stream) -> float:
    start = _stream_start(stream)
    end = start
    for packet in container.demux(stream):
        if packet.pts is None:
            continue
        t = float((packet.pts + (packet.duration or 0)) * packet.time_base)
        end = max(end, t)
    return end - start


def source_frame_rate(path: Path) -> float | None:
    """Frames per second of the first video stream (its average rate, else FFmpeg's guess); None if unknown."""
    path = Path(path)
    with open_container(path) as container:
        stream = video_stream(container, path)
        rate = stream.average_rate or stream.guessed_rate
    return float(rate) if rate else None


def cap_sampling_rate(path: Path, fps: float) -> float:
    """``fps``, or the video's own frame rate when ``fps`` is higher (with a SamplingWarning).

    Sampling above the source rate only repeats frames: every output (mask PNGs, overlay
    frames, records) would grow with no new information. A rate that is not a positive
    number is returned unchanged, for the caller's own validation to reject.
    """
    if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
        return fps
    source = source_frame_rate(path)
    if source is None or fps <= source:
        return fps
    warnings.warn(
        f"--fps {fps:g} is above the frame rate of {path} ({source:g} fps): sampling at {source:g} fps instead "
        "(a higher rate would only repeat frames)",
        SamplingWarning,
        stacklevel=2,
    )
    return source


def display_rotation(frame) -> int:  # frame: av.VideoFrame
    """Counterclockwise quarter turns (0-3) that show a decoded frame as it plays (its display matrix)."""
    rotation = getattr(frame, "rotation", 0) or 0
    return round(float(rotation) / 90.0) % 4


def to_rgb(frame) -> np.ndarray:
    """A decoded frame as uint8 [H, W, 3] RGB in playback orientation (see the module docstring)."""
    rgb = frame.to_ndarray(format="rgb24")
    turns = display_rotation(frame)
    return np.ascontiguousarray(np.rot90(rgb, k=turns)) if turns else rgb


def sample_times(
    duration: float, num_frames: int | None = 10, fps: float | None = None, anchor: float = 0.0
) -> list[float]:
    """Target times (s, from the stream start) of the frames to take; see the module docstring.

    num_frames only: T times spread evenly, ``(k + anchor) * duration / T``.
    fps only: ``(k + anchor) / fps`` for every k with a time before ``duration``.
    both: at rate fps, at most num_frames of them.
    """
    if not 0.0 <= anchor < 1.0:
        raise ValueError(f"anchor: expected a value in [0, 1), got {anchor}")
    if fps is not None:
        if fps <= 0:
            raise ValueError(f"fps: expected > 0, got {fps}")
        count = max(1, math.ceil(duration * fps - anchor - 1e-9))
        if num_frames is not None:
            count = min(count, num_frames)
        return [(k + anchor) / fps for k in range(count)]
    if num_frames is None:
        raise ValueError("give num_frames, fps or both")
    if num_frames < 1:
        raise ValueError(f"num_frames: expected >= 1, got {num_frames}")
    return [(k + anchor) * duration / num_frames for k in range(num_frames)]


def _frames_at(path: Path, times: Iterable[float] | None) -> Iterator[tuple[float, np.ndarray]]:
    """Yield (presentation time, RGB frame) of the frame on screen at each target time.

    ``times`` must be non-decreasing and may be infinite (it is consumed lazily); None
    yields every frame. Frames are decoded in order and only the chosen ones are
    converted, so memory stays at two decoded frames whatever the video's length.
    """
    import av

    container = open_container(path)
    with container:
        stream = video_stream(container, path)
        start = _stream_start(stream)
        targets = iter(times) if times is not None else None
        target = next(targets, None) if targets is not None else None
        prev = None  # (time, frame)
        last_end = 0.0
        try:
            for frame in container.decode(stream):
                if frame.pts is None:
                    continue
                t = float(frame.pts * frame.time_base) - start
                if targets is None:
                    yield t, to_rgb(frame)
                    prev = (t, frame)
                    continue
                while target is not None and prev is not None and t > target + 1e-9:
                    yield prev[0], to_rgb(prev[1])
                    target = next(targets, None)
                if target is None:
                    return
                prev = (t, frame)
                period = float(frame.duration * frame.time_base) if frame.duration else _frame_period(stream)
                last_end = t + period
            # The last frame stays on screen until the end of the stream.
            while targets is not None and target is not None and prev is not None and target < last_end - 1e-9:
                yield prev[0], to_rgb(prev[1])
                target = next(targets, None)
        except av.FFmpegError as exc:
            raise MediaError(f"cannot decode video {path}: {exc}", path=path, fix="re-encode the file") from exc
        if prev is None:
            raise MediaError(f"{path} has no decodable video frames", path=path, fix="re-encode the file")


def _frame_period(stream) -> float:
    rate = stream.average_rate or stream.guessed_rate
    return 1.0 / float(rate) if rate else 0.0


def load_video_frames(
    path: Path, num_frames: int | None = 10, fps: float | None = None, *, anchor: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """(frames uint8 [T, H, W, 3] RGB, times float64 [T] s) sampled from any video file.

    Default: 10 frames spread over the whole video (the Ref-AVS rule for a 10 s clip: the
    frame on screen at 0, 1, ..., 9 s). ``fps`` samples at a rate instead; both None takes
    every frame. The times returned are the presentation times of the frames taken.
    """
    path = Path(path)
    times = None if num_frames is None and fps is None else sample_times(video_duration(path), num_frames, fps, anchor)
    picked = list(_frames_at(path, times))
    if not picked:
        raise MediaError(f"no frames could be sampled from {path}", path=path, fix="is the video empty?")
    frames = np.stack([f for _, f in picked])
    return frames, np.array([t for t, _ in picked], dtype=np.float64)


def iter_video_frames(path: Path, fps: float = 1.0, *, anchor: float = 0.0) -> Iterator[tuple[float, np.ndarray]]:
    """Stream (time s, RGB frame uint8 [H, W, 3]) at ``fps`` with bounded memory.

    For long videos: nothing but the current and the previous decoded frame is held.
    Frame k is the one on screen at ``(k + anchor) / fps``.
    """
    if fps <= 0:
        raise ValueError(f"fps: expected > 0, got {fps}")
    if not 0.0 <= anchor < 1.0:
        raise ValueError(f"anchor: expected a value in [0, 1), got {anchor}")

    def targets() -> Iterator[float]:
        k = 0
        while True:
            yield (k + anchor) / fps
            k += 1

    yield from _frames_at(Path(path), targets())


# ---------------------------------------------------------------------------- audio


def resample_like_librosa(audio: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """soxr "HQ" resampling then zero-pad/trim to ``ceil(n * target / orig)``, as librosa does."""
    import soxr

    audio = np.asarray(audio, dtype=np.float32)
    if orig_sr == target_sr:
        return audio
    n_out = int(np.ceil(audio.shape[-1] * float(target_sr) / orig_sr))
    if audio.shape[-1] == 0:
        return np.zeros(0, dtype=np.float32)
    out = soxr.resample(audio, orig_sr, target_sr, quality="soxr_hq")
    if out.shape[-1] < n_out:
        out = np.pad(out, (0, n_out - out.shape[-1]))
    return np.asarray(out[:n_out], dtype=np.float32)


def _to_mono(channels_first: np.ndarray) -> np.ndarray:
    """[C, N] -> [N] by the float32 mean over channels (librosa.to_mono)."""
    if channels_first.ndim == 1:
        return channels_first
    return np.mean(channels_first, axis=0)


def _read_soundfile(path: Path) -> tuple[np.ndarray, int] | None:
    """(float32 [C, N] view, rate) via libsndfile, or None if libsndfile cannot read the format."""
    import soundfile as sf

    try:
        with sf.SoundFile(str(path)) as f:
            rate = f.samplerate
            data = f.read(dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError):
        return None
    return data.T, rate  # same transposed (non-contiguous) layout librosa averages over


_PCM_SCALE = {"u8": None, "s16": 32768.0, "s32": 2147483648.0, "flt": 1.0, "dbl": 1.0, "s64": 2.0**63}


def _frame_to_float(frame) -> np.ndarray:
    """A PyAV AudioFrame -> float32 [C, n]."""
    name = frame.format.name
    base = name[:-1] if name.endswith("p") else name
    arr = frame.to_ndarray()
    channels = frame.layout.nb_channels
    if not frame.format.is_planar:
        arr = arr.reshape(-1, channels).T
    if base == "u8":
        return ((arr.astype(np.float32) - 128.0) / 128.0).astype(np.float32)
    scale = _PCM_SCALE.get(base)
    if scale is None:
        raise MediaError(f"unsupported audio sample format {name!r}")
    out = arr.astype(np.float32)
    return out if scale == 1.0 else out / np.float32(scale)


def _read_av_audio(path: Path) -> tuple[np.ndarray, int] | None:
    """(float32 [C, N], rate) of the first audio stream via PyAV, or None if there is none."""
    import av

    container = open_container(path)
    with container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        chunks: list[np.ndarray] = []
        rate = stream.rate or stream.sample_rate
        try:
            for frame in container.decode(stream):
                rate = frame.sample_rate
                chunks.append(_frame_to_float(frame))
        except av.FFmpegError as exc:
            raise MediaError(f"cannot decode the audio of {path}: {exc}", path=path, fix="re-encode it") from exc
        channels = stream.codec_context.channels or 1
    if not chunks:
        return np.zeros((channels, 0), np.float32), int(rate or 0)
    return np.concatenate(chunks, axis=1), int(rate)


_RIFF_SIZE_UNSET = (0, 0xFFFFFFFF)  # streamed WAVs (ffmpeg writing to a pipe) leave the size unset


def wav_truncation(path: Path) -> str | None:
    """Why a RIFF/WAVE file is shorter than its header declares; None if it is not (or not a WAV).

    libsndfile reads a truncated WAV without complaint and returns the samples that are there,
    so a half-copied file would silently give half the audio. One missing pad byte is allowed.
    """
    with open(path, "rb") as fh:
        head = fh.read(12)
        size = fh.seek(0, os.SEEK_END)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    declared = int.from_bytes(head[4:8], "little")
    if declared in _RIFF_SIZE_UNSET or size + 1 >= declared + 8:
        return None
    return f"truncated: its RIFF header declares {declared + 8} bytes, the file has {size}"


def load_audio(path: Path, target_sr: int = REF_AVS_SAMPLE_RATE) -> np.ndarray | None:
    """float32 [N] mono at ``target_sr`` from a WAV or any media file's audio track.

    Matches ``librosa.load(path, sr=target_sr, mono=True)`` (see the module docstring).
    Returns None and warns NoAudioWarning when the file has no audio track; a track with
    no samples gives an empty array (and a logged warning). MediaError if the file is
    missing, undecodable, or a WAV shorter than its header declares (``wav_truncation``).
    """
    path = Path(path)
    if not path.is_file():
        raise MediaError(f"audio file not found: {path}", path=path, fix="check the path")
    if path.stat().st_size == 0:
        raise MediaError(f"audio file {path} is empty (0 bytes)", path=path, fix="re-extract or re-download this file")
    truncated = wav_truncation(path)
    if truncated is not None:
        raise MediaError(f"audio file {path} is {truncated}", path=path, fix="re-extract or re-download this file")
    decoded = _read_soundfile(path)
    if decoded is None:
        decoded = _read_av_audio(path)
    if decoded is None:
        warnings.warn(f"{path} has no audio track; the clip gets no audio", NoAudioWarning, stacklevel=2)
        return None
    data, rate = decoded
    mono = _to_mono(data)
    if mono.shape[0] == 0:
        logger.warning("%s has an audio track with no samples", path)
        return np.zeros(0, dtype=np.float32)
    if not np.isfinite(mono).all():
        raise MediaError(f"{path} contains non-finite audio samples", path=path, fix="re-encode the audio")
    return resample_like_librosa(mono, rate, target_sr)


# ---------------------------------------------------------------------------- clips


def _frames_source(path: Path) -> tuple[Path, Path | None]:
    """(frames folder, default audio file) for a media folder or a frames folder."""
    if (path / "frames").is_dir():
        return path / "frames", path / "audio.wav"
    return path, path.parent / "audio.wav"


def load_clip(
    path: Path,
    num_frames: int | None = 10,
    fps: float | None = None,
    audio: Path | None = None,
    *,
    anchor: float = 0.0,
    target_sr: int = REF_AVS_SAMPLE_RATE,
) -> Clip:
    """Decode a clip from a frames folder, a Ref-AVS media folder or a video file.

    Folder: ``{0..T-1}.jpg`` (T = num_frames, or every consecutive frame when None), one
    per second unless ``fps`` says otherwise; audio from ``audio`` or the ``audio.wav``
    next to the frames folder. Video file: frames by ``load_video_frames``; audio from
    ``audio`` or the video's own track. No audio anywhere: audio None and NoAudioWarning.
    """
    path = Path(path)
    if path.is_dir():
        frames_dir, default_audio = _frames_source(path)
        count = num_frames if num_frames is not None else _count_frames_in_dir(frames_dir)
        if count == 0:
            raise MediaError(f"no frames 0.jpg, 1.jpg, ... in {frames_dir}", path=frames_dir, fix="check the path")
        frames = load_frames_dir(frames_dir, count)
        times = np.arange(count, dtype=np.float64) / (fps if fps else 1.0)
        audio_path = audio if audio is not None else default_audio
        if audio is None and (default_audio is None or not default_audio.is_file()):
            warnings.warn(f"no audio.wav next to {frames_dir}; the clip gets no audio", NoAudioWarning, stacklevel=2)
            audio_path = None
    else:
        frames, times = load_video_frames(path, num_frames, fps, anchor=anchor)
        frames_dir = path
        audio_path = audio if audio is not None else path
    samples = load_audio(audio_path, target_sr) if audio_path is not None else None
    return Clip(
        frames=frames,
        audio=samples,
        sample_rate=target_sr if samples is not None else None,
        frame_times=times,
        source=str(frames_dir),
    )
