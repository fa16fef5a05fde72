"""The think window's ring buffers on hand-made input: bounded, addressed by time, silence in gaps."""

from __future__ import annotations

import numpy as np
import pytest

from tgs.sources.rings import AudioRing, FrameRing


def _image(value: int) -> np.ndarray:
    return np.full((2, 3, 3), value, np.uint8)


def test_frame_ring_keeps_the_first_frame_of_each_slot_and_at_most_its_capacity() -> None:
    ring = FrameRing(fps=2.0, seconds=2.0)  # slots of 0.5 s, 4 kept
    assert ring.capacity == 4
    converted = []

    def to_rgb(value: int) -> np.ndarray:
        converted.append(value)
        return _image(value)

    times = [k * 0.2 for k in range(16)]  # 0, 0.2, ..., 3.0: a 5 fps source
    for k, t in enumerate(times):
        ring.add(t, k, to_rgb)
    # the first frame at or after 0, 0.5, 1, ..., 3: frames 0 (0.0), 3 (0.6), 5 (1.0), 8 (1.6), 10 (2.0), 13 (2.6), 15
    assert converted == [0, 3, 5, 8, 10, 13, 15]  # only the kept frames are converted
    kept_times, frames = ring.snapshot(end=3.0, seconds=2.0)
    np.testing.assert_allclose(kept_times, [1.6, 2.0, 2.6, 3.0])
    assert [int(f[0, 0, 0]) for f in frames] == [8, 10, 13, 15]
    half_times, _ = ring.snapshot(end=3.0, seconds=1.0)  # (2.0, 3.0]: at most 2
    np.testing.assert_allclose(half_times, [2.6, 3.0])
    assert FrameRing(fps=1.0, seconds=10.0).snapshot(end=1.0, seconds=10.0) is None


def test_audio_ring_addresses_samples_by_time_and_leaves_silence_in_gaps() -> None:
    rate = 10
    ring = AudioRing(seconds=2.0, rate=rate)  # capacity 2 s + 1 s of slack = 30 samples
    assert ring.capacity == 30
    assert not ring.started and np.array_equal(ring.read(0.0, 1.0), np.zeros(10, np.float32))
    ring.write(np.arange(1, 11, dtype=np.float32), start=0.5)  # samples 5..14 hold 1..10
    np.testing.assert_array_equal(ring.read(0.0, 1.0), [0, 0, 0, 0, 0, 1, 2, 3, 4, 5])
    ring.write(np.full(5, 20, np.float32), start=2.0)  # a jump: 15..19 silent, 20..24 hold 20
    np.testing.assert_array_equal(ring.read(1.3, 2.6), [9, 10, 0, 0, 0, 0, 0, 20, 20, 20, 20, 20, 0])
    ring.write(np.full(3, 30, np.float32))  # follows on: 25..27
    ring.write(np.full(2, 40, np.float32), start=2.75)  # a small step back is absorbed: 28..29
    np.testing.assert_array_equal(ring.read(2.4, 3.0), [20, 30, 30, 30, 40, 40])
    # wrap around: 40 more samples, numbers 30..69 holding 100..139; only the last 30 stay (40..69),
    # older numbers read as silence
    ring.write(np.arange(100, 140, dtype=np.float32))
    np.testing.assert_array_equal(ring.read(3.8, 4.2), [0, 0, 110, 111])
    np.testing.assert_array_equal(ring.read(6.7, 7.2), [137, 138, 139, 0, 0])
    assert ring.read(1.0, 1.0).shape == (0,)


def test_frame_ring_refuses_a_window_that_is_no_window() -> None:
    with pytest.raises(ValueError, match="positive fps and seconds"):
        FrameRing(fps=0.0, seconds=10.0)
