"""tgs.data.fbank against torchaudio 2.9 reference outputs (scripts/make_fbank_reference.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tgs.data.fbank import (
    FBANK_MEAN,
    FBANK_STD,
    kaldi_fbank,
    mel_banks,
    num_fbank_frames,
    ref_thinker_chunks,
    ref_thinker_fbank,
)
from tgs.errors import DataError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "fbank"
FBANK_CASES = ["sine_mix", "noise_dc", "one_frame", "two_frames", "silence", "other_params"]


@pytest.mark.parametrize("name", FBANK_CASES)
def test_kaldi_fbank_matches_torchaudio(name: str) -> None:
    case = np.load(FIXTURES / f"{name}.npz")
    kwargs = json.loads(str(case["kwargs"]))
    ours = kaldi_fbank(torch.from_numpy(case["waveform"]).unsqueeze(0), **kwargs)
    assert ours.dtype == torch.float32
    assert tuple(ours.shape) == case["fbank"].shape
    # The reference is torchaudio's float32 output from another machine; float32 FFT rounding
    # differs between CPUs (AVX2 vs AVX-512 paths) by ~1e-7 of a frame's peak energy. In a mel
    # bin far below the peak that moves the log by up to ~1e-2 (in the reference as much as in
    # ours), so: energies equal to 1e-6 of the frame's peak everywhere, and logs equal to 1e-4
    # wherever the energy is at least 1e-2 of the frame's peak (every frame has such bins).
    ours_energy, ref_energy = np.exp(ours.double().numpy()), np.exp(case["fbank"].astype(np.float64))
    peak = ref_energy.max(axis=1, keepdims=True)
    assert np.all(np.abs(ours_energy - ref_energy) <= 1e-6 * peak)
    strong = ref_energy >= 1e-2 * peak
    assert strong.any(axis=1).all()
    np.testing.assert_allclose(ours.numpy()[strong], case["fbank"][strong], atol=1e-4, rtol=0)


def test_reference_shapes_are_the_snip_edges_count() -> None:
    for name in FBANK_CASES:
        case = np.load(FIXTURES / f"{name}.npz")
        kw = json.loads(str(case["kwargs"]))
        expected = num_fbank_frames(case["waveform"].shape[0], kw["frame_length"], kw["frame_shift"], kw["sample_frequency"])
        assert case["fbank"].shape == (expected, kw["num_mel_bins"])


def test_silence_hits_the_log_floor() -> None:
    out = kaldi_fbank(torch.zeros(1600))
    assert torch.all(out == torch.log(torch.tensor(torch.finfo(torch.float32).eps)))


def test_one_dimensional_input_equals_first_channel() -> None:
    wave = torch.randn(2, 2000, generator=torch.Generator().manual_seed(0)) * 1000
    torch.testing.assert_close(kaldi_fbank(wave[0]), kaldi_fbank(wave), rtol=0, atol=0)


def test_mel_banks_are_triangles_between_20hz_and_nyquist() -> None:
    banks = mel_banks(128, 512, 16000.0)
    assert banks.shape == (128, 257)
    assert torch.all(banks >= 0) and torch.all(banks <= 1)
    assert torch.all(banks[:, -1] == 0)  # the Nyquist bin has no weight
    assert torch.all(banks[:, 0] == 0)  # 0 Hz is below the 20 Hz low edge


def test_too_short_for_one_frame() -> None:
    with pytest.raises(DataError, match="shorter than one 25 ms frame"):
        kaldi_fbank(torch.zeros(399))


def test_ref_thinker_matches_reference() -> None:
    case = np.load(FIXTURES / "ref_thinker.npz")
    ours = ref_thinker_fbank(case["audio"])
    assert ours.shape == case["features"].shape == (10, 8, 128)  # 16003 samples -> chunks of 1600
    np.testing.assert_allclose(ours.numpy(), case["features"], atol=1e-4, rtol=0)
    # numpy and torch inputs agree
    torch.testing.assert_close(ref_thinker_fbank(torch.from_numpy(case["audio"])), ours, rtol=0, atol=0)


def test_ref_thinker_ten_seconds_shape_and_normalisation() -> None:
    t = np.arange(160000, dtype=np.float64) / 16000
    audio = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    feats = ref_thinker_fbank(audio)
    assert feats.shape == (10, 98, 128) and feats.dtype == torch.float32
    raw = kaldi_fbank(torch.from_numpy(audio[16000:32000]) * 2**15)
    torch.testing.assert_close(feats[1], (raw - FBANK_MEAN) / (2 * FBANK_STD))


def test_ref_thinker_chunking_drops_the_tail() -> None:
    audio = np.arange(25, dtype=np.float32)
    chunks = ref_thinker_chunks(audio)
    assert chunks.shape == (10, 2)  # int(25 / 10) = 2; samples 20..24 are dropped
    assert chunks[3].tolist() == [6.0, 7.0]
    assert chunks[9].tolist() == [18.0, 19.0]


def test_ref_thinker_short_audio() -> None:
    with pytest.raises(DataError, match="shorter than one 25 ms fbank frame"):
        ref_thinker_fbank(np.zeros(3999, np.float32))  # chunks of 399 samples
    with pytest.raises(DataError):
        ref_thinker_fbank(np.zeros(0, np.float32))
    assert ref_thinker_fbank(np.zeros(4000, np.float32)).shape == (10, 1, 128)
    padded = ref_thinker_fbank(np.ones(100, np.float32) * 0.1, pad_short_to=160000)
    assert padded.shape == (10, 98, 128)
