"""A float64 Kaldi fbank written from the definition (numpy only, independent of tgs.data.fbank),
and the float32 error bound that any float32 implementation of the same formula obeys.

Tests compare ``tgs.data.fbank`` (float32) with this reference computed at test time, and the
stored torchaudio outputs (float32 and float64, tests/fixtures/fbank) with it, so no bound
depends on the CPU that made a fixture or runs the test (AVX2, AVX-512, AMX; MKL or pocketfft).

The bound (``float32_energy_bound``) is a worst-case rounding-error count, not a fit to measured
differences; ``u`` is the unit roundoff (2**-24 for float32, 2**-53 for float64). Per frame s
(raw samples), bank m, with every quantity on the right taken from the float64 reference:

    |E32[m] - E[m]| <= 2 sqrt(E[m]) D + D**2 + (n[m] + 5) u E[m] + dw[m] S[m]

* D = (53 + 60 * 1.97) u sqrt(N) ||s||_2 bounds the 2-norm of the error of the spectrum X:
  - before the FFT, ||dx||_2 <= 53 u ||s||_2: the frame mean (cascade sum of n <= 2**9 terms:
    (log2 n + 1) u sum|s| / n per sample, times sqrt(n) in 2-norm <= 10 u ||s||), its subtraction
    (u), pre-emphasis (0.97 c rounded, then the difference: 2u, and the mean's error amplified by
    1 + 0.97), the window (Hann by cos, 0.5 - 0.5 cos and ** 0.85: <= 14 u absolute even where the
    window is ~6e-5 and the power's derivative 0.85 h**-0.15 is largest) and the product (u); with
    ||c||_2 <= ||s||_2 (removing the mean is a projection) and ||x||_2 <= 1.97 ||s||_2;
  - the FFT: a radix-2 (or mixed-radix) transform has normwise relative error <= log2(N) * eta,
    eta = u + 4u * sqrt(2) + twiddle error <= 6.7 u, so <= 60 u for N <= 512 (Higham, Accuracy and
    Stability of Numerical Algorithms, 2nd ed., thm. 24.2); ||X||_2 <= sqrt(N) ||x||_2 (Parseval).
* |X + dX|**2 - |X|**2 summed with the bank weights (<= 1): <= 2 sqrt(sum w P) ||dX|| + ||dX||**2
  by Cauchy-Schwarz.
* (n[m] + 5) u E[m]: |X|, its square and the matrix product's sum over the n[m] bins where the
  bank is non-zero (zero weights add exactly), in any summation order; the float32 rounding of E.
* dw[m] S[m]: the bank weights are computed in float32 too (torchaudio's and ours);
  S[m] = power in the bank's support widened by one FFT bin (a weight that is exactly zero may
  round to a tiny positive value next to an edge). See ``mel_weight_bound``.

The bound holds for every frame and bin, however weak: where it exceeds the energy itself the
test only checks that the float32 value sits at or above the log floor.
"""

from __future__ import annotations

import math

import numpy as np

U32 = 2.0**-24
U64 = 2.0**-53
LOG_FLOOR = float(np.finfo(np.float32).eps)  # Kaldi's floor: log(max(E, float32 eps)), also in float64
PREEMPHASIS = 0.97
LOW_HZ = 20.0
SIGNAL_PATH = 53.0 + 60.0 * 1.97  # D / (u sqrt(N) ||s||_2), derived in the module docstring


def mel(hz: np.ndarray | float) -> np.ndarray | float:
    """Kaldi's mel scale, float64."""
    return 1127.0 * np.log(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def _mel_points(num_bins: int, padded: int, rate: float) -> tuple[np.ndarray, np.ndarray, float]:
    mel_low, mel_high = mel(LOW_HZ), mel(0.5 * rate)
    delta = float((mel_high - mel_low) / (num_bins + 1))
    edges = mel_low + np.arange(num_bins + 2, dtype=np.float64) * delta  # left, centre, right per bank
    return edges, mel(rate / padded * np.arange(padded // 2)), delta


def mel_banks64(num_bins: int, padded: int, rate: float) -> np.ndarray:
    """Triangular banks float64 [num_bins, padded // 2 + 1]: 20 Hz to Nyquist, Nyquist weight 0."""
    edges, bins, _ = _mel_points(num_bins, padded, rate)
    left, center, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (bins[None, :] - left) / (center - left)
    down = (right - bins[None, :]) / (right - center)
    banks = np.maximum(np.minimum(up, down), 0.0)
    return np.pad(banks, ((0, 0), (0, 1)))


def mel_weight_bound(num_bins: int, padded: int, rate: float, u: float = U32) -> np.ndarray:
    """dw[m] >= |w32 - w| for every weight of bank m computed in float32 as Kaldi does.

    Every mel value v that bank m uses is <= R = its right edge plus one FFT bin:
    * an edge, mel_low + m * delta (two float32 roundings, mel_low/delta rounded): |dv| <= 3u R;
    * an FFT bin, 1127 * log(1 + f / 700) with f = width * k and f / 700 rounded (3u relative on
      y = f/700, i.e. <= 3u on log(1 + y)), 1 + y rounded (u), log within one ulp (2u relative)
      and the product (u): |dv| <= 1127 * 4u + 3u R.
    up = (v - left) / (centre - left) and down likewise, both <= 2 where the weight is non-zero:
    |d up| <= (|dv| + |dleft| + 2u d) / d + 2 (|dcentre| + |dleft| + u d) / d + 2u
            <= u ((4508 + 18 R) / d + 6), d = delta; min and clamp do not increase it.
    """
    edges, _, delta = _mel_points(num_bins, padded, rate)
    reach = np.abs(edges[2:]) + (mel(0.5 * rate) - mel(0.5 * rate - rate / padded))
    return u * ((1127.0 * 4.0 + 18.0 * reach) / delta + 6.0)


def povey_window64(size: int) -> np.ndarray:
    """Non-periodic Hann window raised to 0.85, float64."""
    return (0.5 - 0.5 * np.cos(2.0 * math.pi * np.arange(size) / (size - 1))) ** 0.85


def povey_window_bound(size: int, u: float = U32) -> np.ndarray:
    """|w32 - w| per sample: h = 0.5 - 0.5 cos(t) with t = 2 pi i / (size - 1) rounded (2u relative,
    and |sin| <= 1: <= 0.5 * 2u t), cos within one ulp and the two float32 operations: |dh| <=
    u (t + 3); then h ** 0.85 (one ulp, 2u relative) moves by 0.85 h ** -0.15 |dh|.
    The end samples are exactly 0 in both (cos(0) = 1; the last t is rounded, so h is tiny)."""
    t = 2.0 * math.pi * np.arange(size) / (size - 1)
    h = 0.5 - 0.5 * np.cos(t)
    dh = u * (t + 3.0)
    return 0.85 * np.maximum(h, dh) ** -0.15 * dh + 2.0 * u * h**0.85 + u


def frames64(wave: np.ndarray, size: int, shift: int) -> np.ndarray:
    count = 1 + (wave.shape[0] - size) // shift
    index = shift * np.arange(count)[:, None] + np.arange(size)[None, :]
    return np.asarray(wave, dtype=np.float64)[index]


def kaldi_fbank64(
    wave: np.ndarray,
    num_mel_bins: int = 128,
    frame_length: float = 25.0,
    frame_shift: float = 10.0,
    sample_frequency: float = 16000.0,
) -> dict[str, np.ndarray]:
    """Kaldi fbank (torchaudio's defaults) in float64: energies, the float32 bound, and the log.

    Returns {"energy": E [frames, bins] before the floor, "bound": the float32 bound on |E32 - E|,
    "bound64": the same for a float64 implementation, "log": log(max(E, eps))}.
    """
    size = int(sample_frequency * frame_length * 0.001)
    shift = int(sample_frequency * frame_shift * 0.001)
    padded = 1 << (size - 1).bit_length()
    raw = frames64(wave, size, shift)
    c = raw - raw.mean(axis=1, keepdims=True)
    previous = np.concatenate([c[:, :1], c[:, :-1]], axis=1)
    x = (c - PREEMPHASIS * previous) * povey_window64(size)[None, :]
    power = np.abs(np.fft.rfft(x, n=padded, axis=1)) ** 2
    banks = mel_banks64(num_mel_bins, padded, sample_frequency)
    energy = power @ banks.T
    support = banks > 0
    support[:, 1:] |= support[:, :-1].copy()
    support[:, :-1] |= support[:, 1:].copy()
    reach_power = power @ support.T.astype(np.float64)  # S[m]
    count = support.sum(axis=1)[None, :]  # n[m]
    norm = np.sqrt(padded) * np.linalg.norm(raw, axis=1, keepdims=True)

    def bound(u: float) -> np.ndarray:
        d = SIGNAL_PATH * u * norm
        weights = mel_weight_bound(num_mel_bins, padded, sample_frequency, u)[None, :]
        return 2.0 * np.sqrt(energy) * d + d**2 + (count + 5) * u * energy + weights * reach_power

    return {"energy": energy, "bound": bound(U32), "bound64": bound(U64),
            "log": np.log(np.maximum(energy, LOG_FLOOR))}  # fmt: skip


def log_interval(energy: np.ndarray, bound: np.ndarray, u: float = U32) -> tuple[np.ndarray, np.ndarray]:
    """Where log(max(E', eps)) lies for any E' with |E' - E| <= bound, widened by the float32 log
    (one ulp: 2u |log|)."""
    lo = np.log(np.maximum(energy - bound, LOG_FLOOR))
    hi = np.log(np.maximum(energy + bound, LOG_FLOOR))
    return lo - 2.0 * u * np.abs(lo), hi + 2.0 * u * np.abs(hi)
