"""Decoding a media file's audio track to 16 kHz mono with memory bounded by what is kept.

:func:`tgs.data.media.load_audio` decodes the whole track at its own rate and channel
count before mixing and resampling it: a 5-minute 48 kHz stereo track briefly holds
~230 MB of float32. :func:`stream_audio_mono` gives the same samples (same float
conversion, same float32 channel mean, same soxr "HQ" resampler, same final length; soxr's
streaming resampler produces exactly what its one-shot call does) while holding one
decoded packet at a time plus the output, and can keep only some time segments of the
track, so a long video's audio never sits in memory whole.

Used by ``tgs segment`` (``tgs.core.segment``): the Think stage hears the whole track of
a short video and one second per summary frame of a long one.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from tgs.data.media import REF_AVS_SAMPLE_RATE
from tgs.errors import MediaError, NoAudioWarning

__all__ = ["MonoResampler", "stream_audio_mono"]


class MonoResampler:
    """PyAV audio frames in, float32 mono at ``target_sr`` out, one frame at a time.

    The conversion of a whole track (:func:`stream_audio_mono`) and of a live one
    (``tgs.sources``): the sample format made float (rate and layout kept), the channels
    averaged in float32 (librosa's ``to_mono``), soxr's streaming "HQ" resampler, which gives
    exactly what its one-shot call gives. ``check`` sees each mono chunk before resampling
    (e.g. to refuse non-finite samples). A change of input rate starts a new resampler.
    """

    def __init__(self, target_sr: int = REF_AVS_SAMPLE_RATE, check: Callable[[np.ndarray], None] | None = None) -> None:
        import av

        self.target_sr = target_sr
        self.rate = 0  # the input's sample rate, once a frame came
        self.consumed = 0  # input samples converted so far
        self._check = check
        self._to_float = av.AudioResampler(format="fltp")  # keeps rate and layout: only the sample format changes
        self._resampler = None

    def convert(self, frame) -> np.ndarray:  # frame: av.AudioFrame
        """The frame's samples, mono at ``target_sr`` (the resampler may hold a few back until :meth:`flush`)."""
        import soxr

        pieces = []
        for planar in self._to_float.resample(frame):
            mono = np.mean(planar.to_ndarray(), axis=0, dtype=np.float32)  # [C, n] -> [n], as librosa
            if self._check is not None:
                self._check(mono)
            if planar.sample_rate != self.rate:
                if self._resampler is not None:
                    pieces.append(self.flush())
                self.rate = planar.sample_rate
                self._resampler = (None if self.rate == self.target_sr else
                                   soxr.ResampleStream(self.rate, self.target_sr, 1, dtype="float32", quality="HQ"))
            self.consumed += mono.shape[0]
            pieces.append(mono if self._resampler is None else self._resampler.resample_chunk(mono, last=False))
        return np.concatenate(pieces) if pieces else np.zeros(0, np.float32)

    def flush(self) -> np.ndarray:
        """The samples the resampler still holds (the end of the track)."""
        if self._resampler is None:
            return np.zeros(0, np.float32)
        return self._resampler.resample_chunk(np.zeros(0, np.float32), last=True)


class _Keeper:
    """Collects the output samples, whole or only inside given [start, end) sample ranges."""

    def __init__(self, ranges: list[tuple[int, int]] | None) -> None:
        self.ranges = ranges
        self.pieces: list[np.ndarray] = []
        self.buffers = None if ranges is None else [np.zeros(max(0, b - a), np.float32) for a, b in ranges]
        self.position = 0  # output samples seen so far

    def add(self, samples: np.ndarray) -> None:
        start, end = self.position, self.position + samples.shape[0]
        self.position = end
        if self.ranges is None:
            self.pieces.append(samples)
            return
        for (a, b), buffer in zip(self.ranges, self.buffers):  # type: ignore[arg-type]
            lo, hi = max(a, start), min(b, end)
            if lo < hi:
                buffer[lo - a : hi - a] = samples[lo - start : hi - start]

    def result(self, length: int) -> np.ndarray:
        """Whole: the samples fixed to ``length`` (librosa's fix_length); ranges: their concatenation."""
        if self.buffers is not None:
            return np.concatenate(self.buffers) if self.buffers else np.zeros(0, np.float32)
        out = np.concatenate(self.pieces) if self.pieces else np.zeros(0, np.float32)
        return np.pad(out, (0, max(0, length - out.shape[0])))[:length]


def _sample_ranges(segments: Sequence[tuple[float, float]], rate: int) -> list[tuple[int, int]]:
    ranges = []
    for start, end in segments:
        if not (math.isfinite(start) and math.isfinite(end)) or start < 0 or end < start:
            raise ValueError(f"segments: expected 0 <= start <= end (seconds), got ({start}, {end})")
        ranges.append((round(start * rate), round(end * rate)))
    return ranges


def stream_audio_mono(
    path: str | Path,
    target_sr: int = REF_AVS_SAMPLE_RATE,
    *,
    segments: Sequence[tuple[float, float]] | None = None,
) -> np.ndarray | None:
    """float32 mono at ``target_sr`` Hz from the first audio stream of a media file.

    segments: None returns the whole track, equal to ``load_audio(path, target_sr)`` for
        files PyAV decodes (mp4, mkv, webm, avi; see tests). Otherwise only these
        [start, end) ranges (seconds from the start of the track, may overlap) are kept and
        returned one after the other, each exactly ``round(end * sr) - round(start * sr)``
        samples long, zero-padded past the end of the track.
    Returns None and warns NoAudioWarning when the file has no audio track; MediaError
    naming the file and the decoder's reason when it cannot be opened or decoded.
    """
    import av

    path = Path(path)
    if not path.is_file():
        raise MediaError(f"media file not found: {path}", path=path, fix="check the path")
    keeper = _Keeper(None if segments is None else _sample_ranges(segments, target_sr))
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise MediaError(
            f"cannot open media file {path}: {exc}", path=path, fix="is it a media file?"
        ) from exc
    with container:
        if not container.streams.audio:
            warnings.warn(f"{path} has no audio track; the clip gets no audio", NoAudioWarning, stacklevel=2)
            return None
        stream = container.streams.audio[0]

        def finite(mono: np.ndarray) -> None:
            if not np.isfinite(mono).all():
                raise MediaError(f"{path} contains non-finite audio samples", path=path, fix="re-encode the audio")

        mono = MonoResampler(target_sr, check=finite)
        try:
            for frame in container.decode(stream):
                keeper.add(mono.convert(frame))
        except av.FFmpegError as exc:
            raise MediaError(
                f"cannot decode the audio of {path}: {exc}", path=path, fix="re-encode it"
            ) from exc
    keeper.add(mono.flush())
    rate, consumed = mono.rate, mono.consumed
    length = math.ceil(consumed * float(target_sr) / rate) if rate else 0  # librosa's fix_length
    return np.ascontiguousarray(keeper.result(length), dtype=np.float32)
