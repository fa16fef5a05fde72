"""Kaldi filterbank features and the Ref-Thinker audio preprocessing.

``kaldi_fbank`` is our own implementation of ``torchaudio.compliance.kaldi.fbank`` with
its default options (torchaudio is not a dependency; tests compare against fixtures made
with torchaudio 2.9 by ``scripts/make_fbank_reference.py``). The defaults it reproduces:
dither 0, "povey" window (Hann ** 0.85, non-periodic), DC offset removed per frame,
pre-emphasis 0.97 (first sample replicated), ``snip_edges`` (only whole frames), FFT size
rounded up to a power of two, power spectrum, triangular mel bins from 20 Hz to Nyquist on
the ``1127 ln(1 + f/700)`` scale, log with a floor of float32 eps, no energy column.

``ref_thinker_fbank`` is the audio path of Ref-Thinker (TGS-Agent
``dataset/unified_dataset.py`` + ``dataset/audio_processor.py``): the 16 kHz mono clip is
cut into 10 chunks of ``int(len / 10)`` samples (chunk i = samples [i*n, (i+1)*n); the
``len - 10*n`` trailing samples are dropped; the original's zero-padding branch never runs
because every chunk has exactly n samples), each chunk is scaled by 2**15, turned into a
128-bin fbank (25 ms frames, 10 ms shift) and normalised with (x - 15.41663) / (2 * 6.55582).
A 10 s clip gives [10, 98, 128].
"""

from __future__ import annotations

import math

import numpy as np
import torch

from tgs.errors import DataError

__all__ = [
    "FBANK_MEAN",
    "FBANK_STD",
    "kaldi_fbank",
    "mel_banks",
    "num_fbank_frames",
    "povey_window",
    "ref_thinker_chunks",
    "ref_thinker_fbank",
    "samples_for_frames",
]

FBANK_MEAN = 15.41663
FBANK_STD = 6.55582
"""BEATs normalisation constants used by Ref-Thinker: (fbank - mean) / (2 * std)."""

_PREEMPHASIS = 0.97
_LOW_FREQ = 20.0
_EPS = torch.finfo(torch.float32).eps


def _mel(freq: torch.Tensor | float) -> torch.Tensor | float:
    if isinstance(freq, torch.Tensor):
        return 1127.0 * (1.0 + freq / 700.0).log()
    return 1127.0 * math.log(1.0 + freq / 700.0)


def mel_banks(num_bins: int, padded_window_size: int, sample_frequency: float) -> torch.Tensor:
    """Triangular mel filters float32 [num_bins, padded_window_size // 2 + 1].

    Bins are equally spaced on the mel scale between 20 Hz and Nyquist; the last FFT bin
    (Nyquist) gets weight 0, as in Kaldi.
    """
    num_fft_bins = padded_window_size // 2
    nyquist = 0.5 * sample_frequency
    high_freq = nyquist
    if not 0.0 <= _LOW_FREQ < high_freq:
        raise ValueError(f"sample_frequency {sample_frequency} Hz is too low for a 20 Hz low edge")
    fft_bin_width = sample_frequency / padded_window_size
    mel_low, mel_high = _mel(_LOW_FREQ), _mel(high_freq)
    delta = (mel_high - mel_low) / (num_bins + 1)
    index = torch.arange(num_bins).unsqueeze(1)
    left = mel_low + index * delta
    center = mel_low + (index + 1.0) * delta
    right = mel_low + (index + 2.0) * delta
    mel = _mel(fft_bin_width * torch.arange(num_fft_bins)).unsqueeze(0)
    up = (mel - left) / (center - left)
    down = (right - mel) / (right - center)
    banks = torch.clamp(torch.minimum(up, down), min=0.0)
    return torch.nn.functional.pad(banks, (0, 1), value=0.0)


def povey_window(size: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Kaldi's "povey" window: a non-periodic Hann window raised to 0.85."""
    return torch.hann_window(size, periodic=False, dtype=dtype).pow(0.85)


def num_fbank_frames(num_samples: int, frame_length: float = 25.0, frame_shift: float = 10.0,
                     sample_frequency: float = 16000.0) -> int:
    """Frames ``kaldi_fbank`` yields for ``num_samples`` (snip_edges): 1 + (N - L) // S, or 0."""
    size = int(sample_frequency * frame_length * 0.001)
    shift = int(sample_frequency * frame_shift * 0.001)
    return 0 if num_samples < size else 1 + (num_samples - size) // shift


def _frames(signal: torch.Tensor, size: int, shift: int) -> torch.Tensor:
    count = 1 + (signal.shape[0] - size) // shift
    return signal.as_strided((count, size), (shift * signal.stride(0), signal.stride(0)))


def kaldi_fbank(
    waveform: torch.Tensor,
    num_mel_bins: int = 128,
    frame_length: float = 25.0,
    frame_shift: float = 10.0,
    sample_frequency: float = 16000.0,
) -> torch.Tensor:
    """Log mel filterbank float32 [num_frames, num_mel_bins], as torchaudio's Kaldi fbank.

    waveform: [N] or [C, N] (only channel 0 is used, like torchaudio's ``channel=-1``),
        in the units the caller wants (Kaldi expects int16 scale, hence Ref-Thinker's 2**15).
    frame_length / frame_shift: milliseconds. Raises DataError if the waveform is shorter
    than one frame (torchaudio fails there too).
    """
    if waveform.dim() == 2:
        waveform = waveform[0]
    elif waveform.dim() != 1:
        raise ValueError(f"waveform: expected [N] or [C, N], got shape {tuple(waveform.shape)}")
    dtype = waveform.dtype if waveform.is_floating_point() else torch.float32
    waveform = waveform.to(dtype)
    size = int(sample_frequency * frame_length * 0.001)
    shift = int(sample_frequency * frame_shift * 0.001)
    if size < 2 or shift < 1:
        raise ValueError(f"frame of {size} samples and shift of {shift} samples: both must be positive")
    if waveform.shape[0] < size:
        raise DataError(
            f"audio of {waveform.shape[0]} samples is shorter than one {frame_length:g} ms frame "
            f"({size} samples at {sample_frequency:g} Hz)",
            fix="pad the audio (see ref_thinker_fbank's pad_short_to) or skip this clip",
        )
    padded = 1 << (size - 1).bit_length()
    frames = _frames(waveform, size, shift)
    frames = frames - frames.mean(dim=1, keepdim=True)
    previous = torch.nn.functional.pad(frames.unsqueeze(0), (1, 0), mode="replicate").squeeze(0)
    frames = frames - _PREEMPHASIS * previous[:, :-1]
    frames = frames * povey_window(size, dtype).unsqueeze(0)
    frames = torch.nn.functional.pad(frames.unsqueeze(0), (0, padded - size), value=0.0).squeeze(0)
    power = torch.fft.rfft(frames).abs().pow(2.0)
    banks = mel_banks(num_mel_bins, padded, sample_frequency).to(dtype)
    energies = torch.mm(power, banks.T)
    return torch.max(energies, torch.tensor(_EPS, dtype=dtype)).log()


def ref_thinker_chunks(audio: np.ndarray | torch.Tensor, num_chunks: int = 10) -> torch.Tensor:
    """float32 [num_chunks, n] with n = int(len / num_chunks): chunk i is samples [i*n, (i+1)*n)."""
    wave = torch.as_tensor(np.asarray(audio) if not isinstance(audio, torch.Tensor) else audio)
    if wave.dim() != 1:
        raise ValueError(f"audio: expected mono [N], got shape {tuple(wave.shape)}")
    wave = wave.to(torch.float32)
    n = int(wave.shape[0] / num_chunks)
    return wave[: n * num_chunks].reshape(num_chunks, n)


def samples_for_frames(num_frames: int, frame_length: float = 25.0, frame_shift: float = 10.0,
                       sample_frequency: float = 16000.0) -> int:
    """Fewest samples that give ``num_frames`` fbank frames (the inverse of :func:`num_fbank_frames`)."""
    size = int(sample_frequency * frame_length * 0.001)
    shift = int(sample_frequency * frame_shift * 0.001)
    return size + (max(num_frames, 1) - 1) * shift


def ref_thinker_fbank(
    audio: np.ndarray | torch.Tensor,
    num_chunks: int = 10,
    *,
    pad_short_to: int | None = None,
    min_chunk_frames: int | None = None,
) -> torch.Tensor:
    """Ref-Thinker's audio features: float32 [num_chunks, F, 128], F = 98 for 10 s @ 16 kHz.

    audio: float32 [N] mono at 16 kHz in [-1, 1] (as ``load_audio`` returns it).
    pad_short_to: if given, audio shorter than this many samples is zero-padded at the end
        first (an improvement; the original fails on clips under 0.25 s, whose chunks are
        shorter than one 400-sample frame). Without it such audio raises DataError.
    min_chunk_frames: if given, each chunk too short for this many fbank frames is
        zero-padded at its end to :func:`samples_for_frames` samples ("short-chunk padding":
        BEATs needs 16 frames for one 16x16 patch, i.e. 2,800 samples per chunk, so a clip
        under 1.75 s). The original pads a chunk with zeros only up to ``int(len / 10)``
        samples, which never runs, and fails on such clips; chunks that are long enough are
        untouched, so every clip the original accepts gives the same features.
    """
    wave = torch.as_tensor(np.asarray(audio) if not isinstance(audio, torch.Tensor) else audio)
    wave = wave.to(torch.float32)
    if pad_short_to is not None and wave.shape[-1] < pad_short_to:
        wave = torch.nn.functional.pad(wave, (0, pad_short_to - wave.shape[-1]))
    chunks = ref_thinker_chunks(wave, num_chunks)
    if min_chunk_frames is not None and num_fbank_frames(chunks.shape[1]) < min_chunk_frames:
        chunks = torch.nn.functional.pad(chunks, (0, samples_for_frames(min_chunk_frames) - chunks.shape[1]))
    if num_fbank_frames(chunks.shape[1]) == 0:
        raise DataError(
            f"audio of {wave.shape[-1]} samples ({wave.shape[-1] / 16000:.3f} s at 16 kHz) gives {num_chunks} "
            f"chunks of {chunks.shape[1]} samples, shorter than one 25 ms fbank frame (400 samples)",
            fix="use audio of at least 0.25 s, or pass pad_short_to=160000 to pad it to 10 s",
        )
    feats = torch.stack([kaldi_fbank(chunk * 2**15) for chunk in chunks])
    return (feats - FBANK_MEAN) / (2 * FBANK_STD)
