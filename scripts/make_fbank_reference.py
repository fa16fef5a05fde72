"""Write the reference fbank fixtures used by tests/data/test_fbank.py.

torchaudio is not a dependency of tgs, so this script runs in a separate environment. torchaudio's
``compliance.kaldi`` is pure Python, so its wheel installed without dependencies beside the project's
torch is enough (the stored fixtures were made so, with torchaudio 2.11.1 and torch 2.14.1):

    python3 -m venv /tmp/side-venv
    echo "$PWD/.venv/lib/python3.11/site-packages" > /tmp/side-venv/lib/python3.11/site-packages/tgs.pth
    /tmp/side-venv/bin/pip install --no-deps 'torchaudio==2.11.*'   # and librosa soundfile for librosa_load
    /tmp/side-venv/bin/python scripts/make_fbank_reference.py tests/fixtures/fbank

Each case is one .npz holding the input waveform, the keyword arguments passed to
``torchaudio.compliance.kaldi.fbank`` and its output ("fbank", float32, as the original runs it),
so the tests never need torchaudio. Beside it, "fbank64" is the same function run entirely in
float64 (float64 input and ``torch.set_default_dtype(torch.float64)``, which its mel banks follow):
the formula's value without float32 rounding. The tests bound both our float32 result and the
stored float32 one by float32 error analysis around it (tests/data/fbank_float64.py), so no
tolerance depends on which CPU made the fixture or runs the test.
The "librosa_load" case holds 16-bit stereo samples at 44.1 kHz and what
``librosa.load(wav, sr=16000, mono=True)`` returns for them (the original's audio loader),
so the tests can check ``tgs.data.media.load_audio`` against it. The "ref_thinker" case follows the Ref-Thinker preprocessing step by step (10 chunks of
int(len / 10) samples, x * 2**15, 128-bin fbank, (x - 15.41663) / (2 * 6.55582)).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import torch
import torchaudio
from torchaudio.compliance import kaldi

logger = logging.getLogger("make_fbank_reference")

RATE = 16000


def _tones(seconds: float, rate: int, parts: list[tuple[float, float]]) -> np.ndarray:
    t = np.arange(round(seconds * rate), dtype=np.float64) / rate
    return sum(a * np.sin(2 * np.pi * f * t) for a, f in parts).astype(np.float32)


def fbank_cases() -> dict[str, tuple[np.ndarray, dict]]:
    """name -> (waveform float32 [N] in int16 scale, fbank kwargs)."""
    rng = np.random.default_rng(20240501)
    default = {"num_mel_bins": 128, "frame_length": 25.0, "frame_shift": 10.0, "sample_frequency": 16000.0}
    sine = _tones(0.5, RATE, [(0.3, 440.0), (0.2, 1234.5), (0.05, 5000.0)]) * 2**15
    noise = (rng.normal(0.0, 3000.0, size=6400) + 500.0).astype(np.float32)  # DC offset 500
    one_frame = (rng.uniform(-1.0, 1.0, size=400) * 2**14).astype(np.float32)
    two_frames = (rng.uniform(-1.0, 1.0, size=719) * 2**14).astype(np.float32)
    silence = np.zeros(1600, dtype=np.float32)
    other = _tones(0.3, 8000, [(0.5, 300.0), (0.25, 2500.0)]) * 2**15
    return {
        "sine_mix": (sine, default),
        "noise_dc": (noise, default),
        "one_frame": (one_frame, default),
        "two_frames": (two_frames, default),
        "silence": (silence, default),
        "other_params": (
            other,
            {"num_mel_bins": 23, "frame_length": 20.0, "frame_shift": 8.0, "sample_frequency": 8000.0},
        ),
    }


def ref_thinker_input() -> np.ndarray:
    """1 s + 3 samples of a chirp plus noise, float32 in [-1, 1] at 16 kHz."""
    rng = np.random.default_rng(7)
    n = RATE + 3
    t = np.arange(n, dtype=np.float64) / RATE
    chirp = 0.4 * np.sin(2 * np.pi * (200.0 * t + 1500.0 * t**2))
    return (chirp + rng.normal(0.0, 0.05, size=n)).astype(np.float32)


def float64_fbank(wave: torch.Tensor, **kwargs) -> np.ndarray:
    """torchaudio's Kaldi fbank with every tensor float64 (the mel banks use the default dtype)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        return kaldi.fbank(wave.to(torch.float64), **kwargs).numpy()
    finally:
        torch.set_default_dtype(previous)


def ref_thinker_reference(audio: np.ndarray, dtype: torch.dtype = torch.float32) -> np.ndarray:
    """The Ref-Thinker steps with torchaudio: chunks of int(len/10), x*2**15, fbank, normalise."""
    per_chunk = int(len(audio) / 10)
    feats = []
    for i in range(10):
        chunk = torch.from_numpy(audio[i * per_chunk : (i + 1) * per_chunk]).unsqueeze(0).to(dtype) * 2**15
        if dtype == torch.float64:
            feats.append(torch.from_numpy(float64_fbank(chunk, num_mel_bins=128, sample_frequency=16000,
                                                        frame_length=25, frame_shift=10)))  # fmt: skip
            continue
        feats.append(
            kaldi.fbank(chunk, num_mel_bins=128, sample_frequency=16000, frame_length=25, frame_shift=10)
        )
    stacked = torch.stack(feats, dim=0)
    return ((stacked - 15.41663) / (2 * 6.55582)).numpy()


def librosa_reference(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """(int16 [N, 2] @ 44.1 kHz, librosa.load(..., sr=16000, mono=True) of it as a WAV)."""
    import librosa
    import soundfile as sf

    rng = np.random.default_rng(11)
    t = np.arange(11025, dtype=np.float64) / 44100
    left = 0.3 * np.sin(2 * np.pi * 523.25 * t) + rng.normal(0.0, 0.05, t.shape)
    right = 0.2 * np.sin(2 * np.pi * 3100.0 * t) + rng.normal(0.0, 0.05, t.shape)
    pcm = np.round(np.stack([left, right], axis=1) * 32767).astype(np.int16)
    wav = folder / "_librosa_input.wav"
    sf.write(str(wav), pcm, 44100, subtype="PCM_16")
    try:
        audio, _ = librosa.load(str(wav), sr=16000, mono=True)
    finally:
        wav.unlink()
    return pcm, audio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for the .npz fixtures")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    versions = json.dumps({"torch": torch.__version__, "torchaudio": torchaudio.__version__})
    for name, (wave, kwargs) in fbank_cases().items():
        out = kaldi.fbank(torch.from_numpy(wave).unsqueeze(0), **kwargs).numpy()
        out64 = float64_fbank(torch.from_numpy(wave).unsqueeze(0), **kwargs)
        np.savez_compressed(
            args.out / f"{name}.npz", waveform=wave, fbank=out, fbank64=out64, kwargs=json.dumps(kwargs),
            versions=versions,
        )
        logger.info("%s: %d samples -> fbank %s", name, wave.shape[0], out.shape)
    audio = ref_thinker_input()
    ref = ref_thinker_reference(audio)
    ref64 = ref_thinker_reference(audio, torch.float64)
    np.savez_compressed(args.out / "ref_thinker.npz", audio=audio, features=ref, features64=ref64, versions=versions)
    logger.info("ref_thinker: %d samples -> %s", audio.shape[0], ref.shape)
    try:
        import librosa
    except ImportError:
        logger.warning("librosa not installed: librosa_load.npz not written")
        return
    pcm, loaded = librosa_reference(args.out)
    np.savez_compressed(
        args.out / "librosa_load.npz",
        pcm=pcm,
        sample_rate=44100,
        loaded=loaded,
        versions=json.dumps({"librosa": librosa.__version__}),
    )
    logger.info("librosa_load: %s int16 @ 44.1 kHz -> %s float32 @ 16 kHz", pcm.shape, loaded.shape)


if __name__ == "__main__":
    main()
