"""Writing an overlay video with PyAV, keeping the audio of the original.

One encoder, :class:`OverlayVideoWriter` (push: ``write(frame)``, then ``close()``);
:func:`write_overlay_video` feeds it from an iterable (e.g. a generator over a long video).
Frames are encoded as they arrive, so memory holds one frame plus the encoders' buffers,
never the whole video. Audio is
interleaved with the video as it goes, so the muxer never has to hold one stream back.

Video: H.264 (``libx264`` when PyAV's FFmpeg has it, else MPEG-4 Part 2), yuv420p;
frames with an odd width or height get one edge-replicated row/column (yuv420p needs even
sizes). Audio, one of:

- an array: float32 mono [N] (or [N, C]) at ``sample_rate`` Hz, encoded to AAC;
- :func:`copy_audio_from` a media file: its first audio stream is copied packet for
  packet when the codec can live in the output container (bit-exact original sound),
  otherwise decoded and re-encoded to AAC at its own rate and channel layout.

A live overlay is a fragmented MP4 (``OverlayVideoWriter(..., fragmented=True)``), written
under its final name and playable while it grows and after a crash (see the class).

The audio is aligned on the source's *video* start: overlay frame 0 is the source's first
video frame (as ``tgs.data.media.iter_video_frames`` yields it), so audio that starts
d seconds after the video keeps starting d seconds in; audio before the video's start is
dropped.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import numpy as np

from tgs.errors import MediaError
from tgs.output_folder import partial_path

__all__ = [
    "CONTAINERS",
    "FRAGMENTED_CONTAINERS",
    "FRAGMENT_FLAGS",
    "OverlayVideoWriter",
    "SourceAudio",
    "copy_audio_from",
    "partial_path",
    "video_codec",
    "write_overlay_video",
]

logger = logging.getLogger(__name__)

CONTAINERS = (".mp4", ".mov", ".m4v", ".mkv")
"""Output containers: all take H.264 (or MPEG-4) video and AAC audio."""

FRAGMENTED_CONTAINERS = (".mp4", ".mov", ".m4v")
"""The MP4 family: the containers of a fragmented (live) overlay, and of the faststart flag."""

FRAGMENT_FLAGS = "frag_keyframe+empty_moov+delay_moov+default_base_moof"
"""MP4 muxer flags of a fragmented overlay: a fragment starts at each video keyframe, the moov
up front holds no samples, and each fragment's offsets are relative to its own moof.
delay_moov writes that moov with the first fragment rather than at the first frame, once the
AAC encoder's priming delay is known, so its edit list cuts the priming samples as a plain
MP4's does (without it the audio of a fragmented file plays 1024 samples late)."""

_NO_SCENE_CUT = 1_000_000_000
"""sc_threshold of FFmpeg's own encoders (mpeg4) that no frame difference reaches: keyframes
only every ``keyframe_interval`` frames, so fragments have one length."""

_COPYABLE = {
    ".mp4": {"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"},
    ".m4v": {"aac", "mp3", "ac3", "eac3", "alac"},
    ".mov": {"aac", "mp3", "ac3", "eac3", "alac", "pcm_s16le", "pcm_s24le", "pcm_f32le"},
    ".mkv": {"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac", "vorbis", "pcm_s16le", "pcm_s24le", "pcm_f32le"},
}
"""Audio codecs copied without re-encoding into each container; others are re-encoded to AAC."""

_AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)
_LAYOUTS = {1: "mono", 2: "stereo"}

AudioMode = Literal["auto", "copy", "encode"]


@dataclass(frozen=True)
class SourceAudio:
    """The audio stream of a media file, to be kept in an overlay video.

    mode: "copy" (packets copied; MediaError if the codec does not fit the container),
        "encode" (decoded and re-encoded to AAC), "auto" (copy when it fits, else encode).
    """

    path: Path
    mode: AudioMode = "auto"


def copy_audio_from(source_video: str | Path, mode: AudioMode = "auto") -> SourceAudio | None:
    """The audio track of ``source_video`` for :func:`write_overlay_video`, or None if it has none.

    MediaError if the file is missing or not a media file.
    """
    import av

    if mode not in ("auto", "copy", "encode"):
        raise ValueError(f"mode: expected 'auto', 'copy' or 'encode', got {mode!r}")
    path = Path(source_video)
    if not path.is_file():
        raise MediaError(f"source video not found: {path}", path=path, fix="check the path")
    try:
        with av.open(str(path)) as container:
            has_audio = bool(container.streams.audio)
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise MediaError(f"cannot open media file {path}: {exc}", path=path, fix="is it a video file?") from exc
    if not has_audio:
        logger.info("%s has no audio track; the overlay video will be silent", path)
        return None
    return SourceAudio(path, mode)


def video_codec() -> str:
    """``libx264`` when PyAV's FFmpeg provides it, else ``mpeg4`` (always built in)."""
    import av

    return "libx264" if "libx264" in av.codecs_available else "mpeg4"


# ---------------------------------------------------------------------------- audio writers


def _pts_seconds(pts: int | None, time_base: Fraction | None) -> float | None:
    return None if pts is None or time_base is None else float(pts * time_base)


class _ArrayAudio:
    """Encodes an in-memory signal to AAC, in 1024-sample frames, on demand."""

    def __init__(self, audio: np.ndarray, sample_rate: int) -> None:
        samples = np.asarray(audio)
        if samples.ndim == 1:
            samples = samples[:, None]
        if samples.ndim != 2 or samples.shape[1] not in _LAYOUTS:
            raise ValueError(f"audio: expected float [N] (mono) or [N, 1|2], got shape {tuple(np.shape(audio))}")
        if not np.issubdtype(samples.dtype, np.floating):
            raise ValueError(f"audio: expected float samples in [-1, 1], got {samples.dtype}")
        if not np.isfinite(samples).all():
            raise ValueError("audio: contains NaN or inf")
        if not sample_rate or sample_rate <= 0:
            raise ValueError(f"sample_rate: expected a positive rate in Hz with audio, got {sample_rate}")
        # Planar float [C, N], as the AAC encoder takes it.
        self._planar = np.ascontiguousarray(np.clip(samples, -1.0, 1.0).T, dtype=np.float32)
        self._rate = int(sample_rate)
        self._layout = _LAYOUTS[samples.shape[1]]
        self._next = 0
        self._stream: Any = None

    def add_stream(self, container: Any) -> None:
        rate = self._rate if self._rate in _AAC_RATES else 48000  # PyAV resamples other rates
        self._stream = container.add_stream("aac", rate=rate, layout=self._layout)

    def write_until(self, container: Any, seconds: float) -> None:
        import av

        end = self._planar.shape[1] if math.isinf(seconds) else min(self._planar.shape[1], math.ceil(seconds * self._rate))
        step = 1024
        while self._next < end:
            chunk = self._planar[:, self._next : self._next + step]
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="fltp", layout=self._layout)
            frame.sample_rate = self._rate
            frame.pts = self._next
            frame.time_base = Fraction(1, self._rate)
            container.mux(self._stream.encode(frame))
            self._next += chunk.shape[1]

    def close(self, container: Any) -> None:
        self.write_until(container, math.inf)
        container.mux(self._stream.encode(None))


class _FileAudio:
    """Copies (or decodes and re-encodes) the first audio stream of a media file, on demand."""

    def __init__(self, source: SourceAudio, suffix: str) -> None:
        import av

        try:
            self._input = av.open(str(source.path))
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise MediaError(f"cannot open {source.path}: {exc}", path=source.path) from exc
        if not self._input.streams.audio:
            self._input.close()
            raise MediaError(f"{source.path} has no audio stream", path=source.path,
                             fix="use copy_audio_from(), which returns None for a silent file")
        self._path = source.path
        self._in_stream = self._input.streams.audio[0]
        # The codec's canonical name ("mp3"), not its decoder's ("mp3float"), decides what can be copied.
        codec = self._in_stream.codec_context.codec.canonical_name
        fits = codec in _COPYABLE[suffix]
        if source.mode == "copy" and not fits:
            self._input.close()
            raise MediaError(f"audio codec {codec!r} of {source.path} cannot be copied into a {suffix} file",
                             path=source.path, fix="use mode='encode' (or 'auto') to re-encode it to AAC")
        self.copy = fits and source.mode != "encode"
        videos = self._input.streams.video
        self._origin = (_pts_seconds(videos[0].start_time, videos[0].time_base) or 0.0) if videos else 0.0
        self._packets: Iterator[Any] = self._input.demux(self._in_stream)
        self._pending: Any = None
        self._done = False
        self._stream: Any = None
        self._resampler: Any = None

    def add_stream(self, container: Any) -> None:
        if self.copy:
            self._stream = container.add_stream_from_template(self._in_stream)
            return
        import av

        ctx = self._in_stream.codec_context
        rate = ctx.sample_rate if ctx.sample_rate in _AAC_RATES else 48000
        layout = _LAYOUTS.get(ctx.layout.nb_channels, "stereo")
        self._stream = container.add_stream("aac", rate=rate, layout=layout)
        self._resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)

    def _next_packet(self) -> Any:
        import av

        if self._pending is None and not self._done:
            try:
                self._pending = next(self._packets)
            except StopIteration:
                self._done = True
            except av.FFmpegError as exc:
                raise MediaError(f"cannot read the audio of {self._path}: {exc}", path=self._path) from exc
        return self._pending

    def write_until(self, container: Any, seconds: float) -> None:
        while (packet := self._next_packet()) is not None:
            start = _pts_seconds(packet.pts, packet.time_base)
            if start is not None and start - self._origin > seconds:
                return
            self._pending = None
            self._write(container, packet)

    def _write(self, container: Any, packet: Any) -> None:
        import av

        if packet.size == 0 and packet.pts is None:
            return  # the demuxer's end-of-stream marker
        shift = round(self._origin / packet.time_base) if self._origin else 0
        if self.copy:
            if packet.pts is None:
                return
            end = packet.pts + (packet.duration or 0) - shift
            if end <= 0 and shift:
                return  # entirely before the video's first frame
            packet.pts -= shift
            if packet.dts is not None:
                packet.dts -= shift
            packet.stream = self._stream
            container.mux(packet)
            return
        try:
            frames = packet.decode()
        except av.FFmpegError as exc:
            raise MediaError(f"cannot decode the audio of {self._path}: {exc}", path=self._path) from exc
        for frame in frames:
            self._encode(container, frame)

    def _encode(self, container: Any, frame: Any) -> None:
        start = (_pts_seconds(frame.pts, frame.time_base) or 0.0) - self._origin
        for out in self._resampler.resample(frame):
            if start < 0:
                drop = min(out.samples, round(-start * out.sample_rate))
                start += out.samples / out.sample_rate
                if drop >= out.samples:
                    continue
                if drop:
                    out = _tail(out, drop)
            out.pts = None
            container.mux(self._stream.encode(out))

    def close(self, container: Any) -> None:
        try:
            self.write_until(container, math.inf)
            if not self.copy:
                for out in self._resampler.resample(None):
                    out.pts = None
                    container.mux(self._stream.encode(out))
                container.mux(self._stream.encode(None))
        finally:
            self._input.close()


def _tail(frame: Any, drop: int) -> Any:
    """The samples of a planar float AudioFrame after the first ``drop``."""
    import av

    data = np.ascontiguousarray(frame.to_ndarray()[:, drop:])
    out = av.AudioFrame.from_ndarray(data, format=frame.format.name, layout=frame.layout.name)
    out.sample_rate = frame.sample_rate
    return out


# ---------------------------------------------------------------------------- video


def _even(frame: np.ndarray) -> np.ndarray:
    """Pad an odd height/width by repeating the last row/column (yuv420p needs even sizes)."""
    pad_h, pad_w = frame.shape[0] % 2, frame.shape[1] % 2
    if not pad_h and not pad_w:
        return frame
    return np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")


def _check_frame(frame: Any, index: int, first: tuple[int, ...] | None) -> np.ndarray:
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        got = f"{frame.dtype} {tuple(frame.shape)}" if isinstance(frame, np.ndarray) else type(frame).__name__
        raise ValueError(f"frame {index}: expected uint8 [H, W, 3] RGB, got {got}")
    if first is not None and frame.shape != first:
        raise ValueError(f"frame {index} has shape {frame.shape}, frame 0 has {first}; an overlay video has one size")
    return np.ascontiguousarray(frame)

def write_overlay_video(
    out_path: str | Path,
    frames_iter: Iterable[np.ndarray],
    fps: float,
    audio: np.ndarray | SourceAudio | None = None,
    sample_rate: int | None = None,
    *,
    codec: str | None = None,
    crf: int = 20,
) -> Path:
    """Encode frames (uint8 [H, W, 3] RGB, streamed) at ``fps`` with an audio track; returns the path.

    The pull-style form of :class:`OverlayVideoWriter` (which does the encoding, see there for
    ``audio``, ``codec`` and ``crf``): every frame of ``frames_iter`` is written, then the
    video is closed. ValueError if there is no frame. Written under a partial name and renamed
    when complete, so a killed or failed call never leaves an unplayable file under the final
    name; the partial file is removed on any error (an exception from ``frames_iter`` included).
    """
    with OverlayVideoWriter(out_path, fps, audio, sample_rate, codec=codec, crf=crf) as writer:
        for frame in frames_iter:
            writer.write(frame)
        return writer.close()


class OverlayVideoWriter:
    """The overlay video encoder: ``write(frame)`` as frames are made, then ``close()``.

    Video: ``codec`` (default :func:`video_codec`) at ``fps``, yuv420p, odd sizes padded by one
    edge row/column; ``crf``: libx264 quality (lower is better, 18-23 is visually lossless to
    good). The container follows the suffix (.mp4, .mov, .m4v, .mkv) and is opened on the first
    frame (its size fixes the video's). Audio, interleaved as the frames arrive: a float [N] mono
    or [N, 1|2] array in [-1, 1] at ``sample_rate`` Hz (encoded to AAC), a :class:`SourceAudio`
    from :func:`copy_audio_from` (the original track, copied when possible), or None (no audio
    stream).

    Two ways to reach the disk:

    - default: written under :func:`partial_path` and renamed to ``out_path`` by ``close()``
      (which returns the path), so a killed writer never leaves an unplayable file under the
      final name nor replaces a previous complete one; ``abort()`` (or an exception inside
      ``with``) removes the partial file. The moov atom is moved to the front (faststart).
    - ``fragmented=True`` (live overlays; .mp4, .m4v or .mov): a fragmented MP4 written under
      ``out_path`` from the first frame, with a keyframe, and so a fragment, every
      ``fragment_seconds``. An ordinary MP4 is unreadable until its index (moov) is written
      at the end, so a crash loses the whole recording and a player cannot open it while it
      grows; a fragmented one has an empty index up front and a self-contained index per
      fragment, so every completed fragment is playable while the file is written and after
      a crash or SIGKILL. A rename would defeat both (the file would be invisible until the
      end), hence no partial name: the final name holds at every moment a playable prefix of
      the video, at most one fragment (plus the audio interleaving delay) behind the frames
      written. The encoder runs with no look-ahead (libx264 ``tune=zerolatency``, no
      scene-cut keyframes) so a frame reaches its fragment as soon as it is written.
      ``abort()`` keeps the file (its fragments are complete footage, and it may be watched
      already): it ends it after the frames already encoded.
    """

    def __init__(
        self,
        out_path: str | Path,
        fps: float,
        audio: np.ndarray | SourceAudio | None = None,
        sample_rate: int | None = None,
        *,
        codec: str | None = None,
        crf: int = 20,
        fragmented: bool = False,
        fragment_seconds: float = 1.0,
    ) -> None:
        self.path = Path(out_path)
        suffix = self.path.suffix.lower()
        if suffix not in CONTAINERS:
            raise ValueError(f"unsupported output suffix {suffix!r}; use one of {', '.join(CONTAINERS)}")
        if fragmented and suffix not in FRAGMENTED_CONTAINERS:
            raise ValueError(
                f"{self.path}: a fragmented overlay is an MP4; use a {', '.join(FRAGMENTED_CONTAINERS)} path"
            )
        if not fps or fps <= 0 or not math.isfinite(fps):
            raise ValueError(f"fps: expected a positive frame rate, got {fps}")
        if fragmented and not (fragment_seconds > 0 and math.isfinite(fragment_seconds)):
            raise ValueError(f"fragment_seconds: expected a positive duration, got {fragment_seconds}")
        if isinstance(audio, np.ndarray):
            self._audio: _ArrayAudio | _FileAudio | None = _ArrayAudio(audio, sample_rate or 0)
        elif isinstance(audio, SourceAudio):
            self._audio = _FileAudio(audio, suffix)
        elif audio is None:
            self._audio = None
        else:
            raise TypeError(f"audio: expected a numpy array, SourceAudio or None, got {type(audio).__name__}")
        self._rate = Fraction(fps).limit_denominator(1001)
        self._codec = codec or video_codec()
        self._crf = crf
        self.fragmented = fragmented
        self.keyframe_interval = max(1, round(float(self._rate) * fragment_seconds)) if fragmented else None
        """Frames per fragment (fragmented) or None (the encoder's default keyframe spacing)."""
        self._target = self.path if fragmented else partial_path(self.path)
        self._container: Any = None
        self._stream: Any = None
        self._shape: tuple[int, ...] | None = None
        self._ended = False
        self.frames_written = 0

    def _open(self, first: np.ndarray) -> None:
        import av

        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.fragmented:
            # flush_packets: each completed fragment goes to the file at once, not when the
            # 32 KiB I/O buffer fills, so what a reader (or a crash) finds is whole fragments.
            options = {"movflags": FRAGMENT_FLAGS, "flush_packets": "1"}
        else:
            options = {"movflags": "+faststart"} if self.path.suffix.lower() in FRAGMENTED_CONTAINERS else {}
        self._container = av.open(str(self._target), mode="w", options=options)
        stream = self._container.add_stream(self._codec, rate=self._rate)
        stream.height, stream.width = _even(first).shape[:2]
        stream.pix_fmt = "yuv420p"
        if self.keyframe_interval is not None:
            stream.codec_context.gop_size = self.keyframe_interval
        if self._codec == "libx264":
            options = {"crf": str(self._crf), "preset": "veryfast"}
            if self.keyframe_interval is not None:
                options["tune"] = "zerolatency"
                options["x264-params"] = f"min-keyint={self.keyframe_interval}:scenecut=0"
            stream.options = options
        else:
            stream.bit_rate = max(1_000_000, int(stream.width * stream.height * float(self._rate) * 0.15))
            if self.keyframe_interval is not None:
                stream.options = {"sc_threshold": str(_NO_SCENE_CUT)}
        self._stream = stream
        if self._audio is not None:
            self._audio.add_stream(self._container)

    def write(self, frame: np.ndarray) -> None:
        """Encode one uint8 [H, W, 3] RGB frame (every frame has the first one's size)."""
        import av

        if self._ended:  # reopening would start a new file (and, fragmented, truncate the kept one)
            raise ValueError(f"{self.path}: write() after close() or abort()")
        try:
            frame = _check_frame(frame, self.frames_written, self._shape)
            if self._container is None:
                self._shape = frame.shape
                self._open(frame)
            video_frame = av.VideoFrame.from_ndarray(_even(frame), format="rgb24")
            video_frame.pts = self.frames_written
            video_frame.time_base = 1 / self._rate
            self._container.mux(self._stream.encode(video_frame))
            self.frames_written += 1
            if self._audio is not None:
                self._audio.write_until(self._container, float(self.frames_written / self._rate))
        except BaseException:
            self.abort()
            raise

    def close(self) -> Path:
        """Flush the encoders and the rest of the audio; ValueError if no frame was written."""
        if self._container is None:
            self.abort()
            raise ValueError(f"{self.path}: expected at least one frame")
        try:
            self._container.mux(self._stream.encode(None))
            if self._audio is not None:
                self._audio.close(self._container)
            self._container.close()
            if not self.fragmented:
                os.replace(self._target, self.path)
        except BaseException:
            self.abort()
            raise
        self._container = None
        self._ended = True
        logger.info("wrote %d frames%s to %s", self.frames_written, " with audio" if self._audio else "", self.path)
        return self.path

    def abort(self) -> None:
        """Stop: remove the partial file, or (fragmented) end the file after the frames already encoded."""
        self._ended = True
        if isinstance(self._audio, _FileAudio):
            self._audio._input.close()
        container, self._container = self._container, None
        if self.fragmented:
            if container is not None:
                _close_quietly(container, keep=True)
                logger.info("stopped; %s keeps its complete fragments (%d frames written)", self.path,
                            self.frames_written)
            return
        if container is not None:
            _close_quietly(container, keep=False)
        self._target.unlink(missing_ok=True)

    def __enter__(self) -> OverlayVideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()
        elif self._container is not None:
            self.close()


def _close_quietly(container: Any, *, keep: bool) -> None:
    """Close a container while already stopping on an error: a failure to close is logged, not raised."""
    try:
        container.close()
    except Exception:
        if keep:  # the fragments written before stay readable; the last one may be lost
            logger.warning("could not end %s cleanly; its earlier fragments are intact", container.name,
                           exc_info=True)
        else:  # the partial file is removed by the caller
            logger.debug("closing a failed overlay container", exc_info=True)
