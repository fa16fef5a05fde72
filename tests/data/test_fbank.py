"""tgs.data.fbank against the Kaldi formula in float64 (tests/data/fbank_float64.py, computed here)
and torchaudio's outputs stored by scripts/make_fbank_reference.py (float32 and float64).

Every tolerance is the float32 rounding-error bound derived in fbank_float64.py, so the tests hold
on any x86-64 CPU (AVX2, AVX-512, AMX) and `make test-numeric-isa` reruns them with other kernels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from fbank_float64 import (
    U32,
    U64,
    kaldi_fbank64,
    log_interval,
    mel_banks64,
    mel_weight_bound,
    povey_window64,
    povey_window_bound,
)

from tgs.data.fbank import (
    FBANK_MEAN,
    FBANK_STD,
    kaldi_fbank,
    mel_banks,
    num_fbank_frames,
    povey_window,
    ref_thinker_chunks,
    ref_thinker_fbank,
)
from tgs.errors import DataError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "fbank"
FBANK_CASES = ["sine_mix", "noise_dc", "one_frame", "two_frames", "silence", "other_params"]


def _case(name: str) -> tuple[np.lib.npyio.NpzFile, dict, dict[str, np.ndarray]]:
    case = np.load(FIXTURES / f"{name}.npz")
    kwargs = json.loads(str(case["kwargs"]))
    return case, kwargs, kaldi_fbank64(case["waveform"], **kwargs)


def _assert_within(log_fbank: np.ndarray, ref: dict[str, np.ndarray], bound: str = "bound") -> None:
    """log_fbank lies where log(max(E', eps)) can for |E' - E| <= the derived bound (fbank_float64)."""
    lo, hi = log_interval(ref["energy"], ref[bound])
    outside = (log_fbank < lo) | (log_fbank > hi)
    assert not outside.any(), (
        f"{outside.sum()} of {outside.size} values outside the float32 bound; first at "
        f"{np.argwhere(outside)[0].tolist()}: {log_fbank[outside][0]} not in [{lo[outside][0]}, {hi[outside][0]}]"
    )


@pytest.mark.numeric
@pytest.mark.parametrize("name", FBANK_CASES)
def test_kaldi_fbank_matches_float64_formula(name: str) -> None:
    """Ours (float32) within float32 rounding of the Kaldi formula computed in float64 now."""
    case, kwargs, ref = _case(name)
    ours = kaldi_fbank(torch.from_numpy(case["waveform"]).unsqueeze(0), **kwargs)
    assert ours.dtype == torch.float32
    assert tuple(ours.shape) == ref["energy"].shape == case["fbank"].shape
    _assert_within(ours.double().numpy(), ref)
    # The bound is not vacuous: on the strong bins (>= 1e-2 of the frame's peak) it is below 1e-2 of
    # the energy (its worst-case FFT term is largest relative to bins the pre-emphasis weakens).
    energy = ref["energy"]
    strong = (energy >= 1e-2 * energy.max(axis=1, keepdims=True)) & (energy > 0)
    assert np.all(ref["bound"][strong] < 1e-2 * energy[strong])


@pytest.mark.numeric
@pytest.mark.parametrize("name", FBANK_CASES)
def test_kaldi_fbank_matches_torchaudio(name: str) -> None:
    """The stored torchaudio outputs: float64 equals the test's float64 formula (float64 rounding
    only), float32 is within float32 rounding of it, so ours is within both float32 noises of it."""
    case, kwargs, ref = _case(name)
    _assert_within(case["fbank64"], ref, "bound64")  # two float64 implementations: 2x the 2**-53 bound
    _assert_within(case["fbank"].astype(np.float64), ref)
    ours = kaldi_fbank(torch.from_numpy(case["waveform"]).unsqueeze(0), **kwargs).double().numpy()
    # |ours - torchaudio32| <= |ours - E| + |torchaudio32 - E|: each within the float32 bound, so in
    # energy their distance is at most twice it (the reference's own float32 noise plus ours).
    twice = {"energy": np.exp(case["fbank"].astype(np.float64)), "bound": 2.0 * ref["bound"]}
    _assert_within(ours, {**twice, "bound": twice["bound"] + np.abs(twice["energy"] - ref["energy"])})


@pytest.mark.numeric
def test_povey_window_matches_float64_formula() -> None:
    for size in (400, 320, 2):
        window = povey_window(size).double().numpy()
        assert np.all(np.abs(window - povey_window64(size)) <= povey_window_bound(size)), size


@pytest.mark.numeric
@pytest.mark.parametrize(("bins", "padded", "rate"), [(128, 512, 16000.0), (23, 256, 8000.0), (80, 1024, 44100.0)])
def test_mel_banks_match_float64_formula(bins: int, padded: int, rate: float) -> None:
    ours = mel_banks(bins, padded, rate).double().numpy()
    error = np.abs(ours - mel_banks64(bins, padded, rate))
    assert np.all(error <= mel_weight_bound(bins, padded, rate)[:, None])


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


@pytest.mark.numeric
def test_ref_thinker_matches_reference() -> None:
    """Ours and torchaudio's stored features within float32 rounding of the float64 formula."""
    case = np.load(FIXTURES / "ref_thinker.npz")
    ours = ref_thinker_fbank(case["audio"])
    assert ours.shape == case["features"].shape == case["features64"].shape == (10, 8, 128)  # chunks of 1600
    chunks = case["audio"][:16000].astype(np.float64).reshape(10, 1600) * 2**15  # x 2**15 is exact in float32
    refs = [kaldi_fbank64(chunk) for chunk in chunks]
    scale = 2 * FBANK_STD

    def interval(bound: str, u: float) -> tuple[np.ndarray, np.ndarray]:
        # The log interval of the fbank, normalised (increasing), widened by the normalisation's own
        # rounding: (x - mean) / (2 std) with mean and 2 std rounded to float32 (u each), the
        # subtraction and the division (u each): |d| <= u (mean / (2 std) + |x - mean| / (2 std) + 2|f|)
        # <= u (1.2 + 3 |f|).
        lo, hi = zip(*(log_interval(ref["energy"], ref[bound], u) for ref in refs))
        lo, hi = (np.stack(lo) - FBANK_MEAN) / scale, (np.stack(hi) - FBANK_MEAN) / scale
        return lo - u * (1.2 + 3 * np.abs(lo)), hi + u * (1.2 + 3 * np.abs(hi))

    lo, hi = interval("bound", U32)
    for name, values in (("ours", ours.double().numpy()), ("torchaudio float32", case["features"])):
        assert np.all((lo <= values) & (values <= hi)), name
    lo64, hi64 = interval("bound64", U64)
    assert np.all((lo64 <= case["features64"]) & (case["features64"] <= hi64))
    # numpy and torch inputs agree
    torch.testing.assert_close(ref_thinker_fbank(torch.from_numpy(case["audio"])), ours, rtol=0, atol=0)


def test_ref_thinker_ten_seconds_shape_and_normalisation() -> None:
    t = np.arange(160000, dtype=np.float64) / 16000
    audio = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    feats = ref_thinker_fbank(audio)
    assert feats.shape == (10, 98, 128) and feats.dtype == torch.float32
    raw = kaldi_fbank(torch.from_numpy(audio[16000:32000]) * 2**15)
    # the same float32 operations on the same values (x 2**15 is exact): equal, not close
    torch.testing.assert_close(feats[1], (raw - FBANK_MEAN) / (2 * FBANK_STD), rtol=0, atol=0)


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
