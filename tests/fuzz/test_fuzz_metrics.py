"""Property tests of the metrics (tgs.eval.measures and both protocols).

Ranges: J, F and S lie in [0, 1] for any masks and probabilities. Exact cases: a perfect
prediction scores J = F = 1; a binary probability map's F is the better of the mask's own
F-measure and that of the all-foreground map (the threshold 0 makes every pixel positive).
Orderings that truly hold: IoU is symmetric when both masks are empty or both are not;
adding true positives never lowers J and adding false positives never raises it; raising
the probability of a ground-truth pixel never lowers F and raising a background pixel's
never raises it; S never decreases when foreground pixels are added. And the fast
(histogram) F curves equal the threshold loop of the originals.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tgs.eval.measures import (
    BETA2,
    f_curve_loop,
    f_curves,
    f_thresholds,
    fg_fraction,
    frame_iou,
    threshold_buckets,
)
from tgs.eval.refavs_protocol import RefAVSProtocol
from tgs.eval.tgs_protocol import TGSProtocol, sample_f, sample_j, sample_s
from tgs.types import Masks

SETTINGS = settings(
    max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
TOL = 1e-12


def _edge_values() -> list[float]:
    """Probabilities on, just below and just above every F threshold, and the ends."""
    t = f_thresholds()
    down = np.nextafter(t, np.float32(-1))
    up = np.nextafter(t, np.float32(2))
    return sorted({float(v) for v in np.concatenate([t, down, up]) if 0.0 <= v <= 1.0} | {0.0, 1.0})


EDGES = _edge_values()
probability = st.sampled_from(EDGES) | st.floats(0, 1, width=32)
shapes = st.tuples(st.integers(1, 3), st.integers(1, 8), st.integers(1, 8))


@st.composite
def pair(draw: st.DrawFn, soft: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(prediction: float32 probabilities or bool mask, ground truth bool), same [N, H, W]."""
    shape = draw(shapes)
    gt = draw(hnp.arrays(np.bool_, shape))
    if soft:
        pred = draw(hnp.arrays(np.float32, shape, elements=probability))
    else:
        pred = draw(hnp.arrays(np.bool_, shape))
    return pred, gt


@SETTINGS
@given(case=pair(soft=False))
def test_iou_in_unit_interval_and_perfect_when_equal(case: tuple[np.ndarray, np.ndarray]) -> None:
    pred, gt = case
    ious = frame_iou(pred, gt)
    assert ious.shape == (pred.shape[0],)
    assert np.all((ious >= 0) & (ious <= 1))
    assert frame_iou(gt, gt) == pytest.approx(np.ones(gt.shape[0]), abs=1e-6)
    assert 0 <= sample_j(pred, gt) <= 1


@SETTINGS
@given(case=pair(soft=False))
@example(case=(np.zeros((1, 2, 2), bool), np.ones((1, 2, 2), bool)))
def test_iou_symmetry_and_the_empty_gt_rule(case: tuple[np.ndarray, np.ndarray]) -> None:
    pred, gt = case
    forward, backward = frame_iou(pred, gt), frame_iou(gt, pred)
    for i in range(pred.shape[0]):
        p, g = pred[i], gt[i]
        if p.any() == g.any():
            assert forward[i] == backward[i]
        if not g.any():  # the empty-gt rule: the shared background fraction
            assert forward[i] == pytest.approx(np.count_nonzero(~p) / p.size, abs=1e-6)


@st.composite
def gt_and_extra(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    shape = draw(shapes)
    return (
        draw(hnp.arrays(np.bool_, shape)),
        draw(hnp.arrays(np.bool_, shape)),
        draw(hnp.arrays(np.bool_, shape)),
    )


@SETTINGS
@given(case=gt_and_extra())
def test_iou_rises_with_true_positives_and_falls_with_false_positives(
    case: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    gt, pred, extra = case
    base = frame_iou(pred, gt)
    more_tp = frame_iou(pred | (extra & gt), gt)
    more_fp = frame_iou(pred | (extra & ~gt), gt)
    has_gt = gt.reshape(gt.shape[0], -1).any(axis=1)
    assert np.all(more_tp[has_gt] >= base[has_gt] - TOL)
    assert np.all(more_fp <= base + TOL)  # also under the empty-gt rule: less shared background


@SETTINGS
@given(case=pair())
def test_f_in_unit_interval(case: tuple[np.ndarray, np.ndarray]) -> None:
    probs, gt = case
    curves, has_gt = f_curves(probs, gt)
    assert np.all((curves >= 0) & (curves <= 1 + TOL))
    assert not curves[~has_gt].any()
    assert 0 <= sample_f(probs, gt) <= 1 + TOL


@SETTINGS
@given(gt=shapes.flatmap(lambda s: hnp.arrays(np.bool_, s)))
def test_a_perfect_probability_map_scores_one(gt: np.ndarray) -> None:
    f = sample_f(gt.astype(np.float32), gt)
    if gt.any():
        assert f == pytest.approx(1.0, abs=1e-9)
    else:
        assert f == 0.0  # no frame with ground truth: no curve at all


def _f_measure(tp: np.ndarray, positives: np.ndarray, gt_pixels: np.ndarray) -> np.ndarray:
    precision = tp / (positives + 1e-20)
    recall = tp / (gt_pixels + 1e-20)
    with np.errstate(invalid="ignore"):
        f = (1 + BETA2) * precision * recall / (BETA2 * precision + recall)
    return np.nan_to_num(f, nan=0.0)


@SETTINGS
@given(case=pair(soft=False))
def test_binary_map_f_is_the_better_of_mask_and_all_foreground(case: tuple[np.ndarray, np.ndarray]) -> None:
    """Threshold 0 marks every pixel positive; thresholds in (0, 1] select exactly the mask."""
    pred, gt = case
    has_gt = gt.reshape(gt.shape[0], -1).any(axis=1)
    if not has_gt.any():
        return
    p, g = pred[has_gt].reshape(int(has_gt.sum()), -1), gt[has_gt].reshape(int(has_gt.sum()), -1)
    gt_pixels = g.sum(axis=1).astype(np.float64)
    f_mask = _f_measure((p & g).sum(axis=1).astype(np.float64), p.sum(axis=1).astype(np.float64), gt_pixels)
    f_all = _f_measure(gt_pixels, np.full_like(gt_pixels, p.shape[1]), gt_pixels)
    expected = max(f_mask.mean(), f_all.mean())
    assert sample_f(pred.astype(np.float32), gt) == pytest.approx(expected, abs=1e-12)


@st.composite
def probs_and_raise(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(probs, gt, which pixels to raise, by how much) with the raised map still in [0, 1]."""
    probs, gt = draw(pair())
    chosen = draw(hnp.arrays(np.bool_, probs.shape))
    amount = draw(hnp.arrays(np.float32, probs.shape, elements=probability))
    return probs, gt, chosen, amount


@SETTINGS
@given(case=probs_and_raise())
def test_f_monotone_in_gt_and_background_probabilities(case: tuple[np.ndarray, ...]) -> None:
    probs, gt, chosen, amount = case
    raised = np.maximum(probs, amount)  # pointwise >= probs
    on_gt = np.where(chosen & gt, raised, probs).astype(np.float32)
    on_bg = np.where(chosen & ~gt, raised, probs).astype(np.float32)
    base = sample_f(probs, gt)
    assert sample_f(on_gt, gt) >= base - TOL
    assert sample_f(on_bg, gt) <= base + TOL


@SETTINGS
@given(case=gt_and_extra())
def test_s_in_unit_interval_and_monotone_in_foreground(case: tuple[np.ndarray, ...]) -> None:
    pred, extra, _ = case
    s, s_more = sample_s(pred), sample_s(pred | extra)
    assert 0 <= s <= s_more <= 1
    assert sample_s(np.zeros_like(pred)) == 0.0
    assert sample_s(np.ones_like(pred)) == 1.0
    assert fg_fraction(pred) == pytest.approx(pred.reshape(pred.shape[0], -1).mean(axis=1))


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(case=st.tuples(st.integers(1, 2), st.integers(1, 5), st.integers(1, 5)).flatmap(
    lambda s: st.tuples(hnp.arrays(np.float32, s, elements=probability), hnp.arrays(np.bool_, s))
))
@pytest.mark.numeric
def test_fast_f_curves_equal_the_threshold_loop(case: tuple[np.ndarray, np.ndarray]) -> None:
    probs, gt = case
    fast, fast_has = f_curves(probs, gt)
    loop, loop_has = f_curve_loop(probs, gt)
    np.testing.assert_array_equal(fast_has, loop_has)
    # the loop is float32 torch: counts are exact (integers < 2**24), precision, recall and the
    # F-measure (1 + b2) P R / (b2 P + R) take ~ 6 roundings of values <= 1.3: 6 u x 1.3 ~ 5e-7
    np.testing.assert_allclose(fast, loop, rtol=0, atol=1e-6)


@SETTINGS
@given(values=hnp.arrays(np.float32, st.integers(1, 64), elements=st.floats(-1e6, 1e6, width=32) | probability))
def test_buckets_equal_searchsorted(values: np.ndarray) -> None:
    expected = np.searchsorted(f_thresholds(), values, side="right")
    np.testing.assert_array_equal(threshold_buckets(values), expected)


@st.composite
def predictions(draw: st.DrawFn) -> tuple[Masks | None, np.ndarray, int]:
    """(prediction at some size or missing, gt bool [T, size, size] at the protocol size, size)."""
    size = draw(st.sampled_from([224, 256]))
    t = draw(st.integers(1, 2))
    gt = np.zeros((t, size, size), bool)
    for i in range(t):  # a rectangle or nothing
        if draw(st.booleans()):
            y0, x0 = draw(st.integers(0, size - 2)), draw(st.integers(0, size - 2))
            gt[i, y0 : draw(st.integers(y0 + 1, size)), x0 : draw(st.integers(x0 + 1, size))] = True
    if draw(st.booleans()):
        return None, gt, size
    h, w = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    binary = draw(hnp.arrays(np.bool_, (t, h, w)))
    probs = draw(st.none() | hnp.arrays(np.float32, (t, h, w), elements=probability))
    return Masks(masks=binary, probs=probs), gt, size


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(case=predictions(), null=st.booleans())
def test_protocol_scores_in_unit_interval(case: tuple[Masks | None, np.ndarray, int], null: bool) -> None:
    pred, gt, size = case
    protocol = TGSProtocol() if size == 224 else RefAVSProtocol()
    split = "test_n" if null else "test_s"
    score = protocol.score("u_c_1", split, pred, None if null else gt, gt.shape[0])
    keys = ("S",) if null else ("J", "F")
    assert all(0 <= getattr(score, k) <= 1 + TOL for k in keys)
    summary = protocol.aggregate([score, score, score, score, score])  # a full batch of 4 and one more
    assert all(0 <= summary[k] <= 1 + TOL for k in keys)


@settings(max_examples=20, deadline=None, derandomize=True)
@given(gt=predictions().map(lambda c: c[1]))
def test_protocols_score_a_perfect_prediction_one(gt: np.ndarray) -> None:
    protocol = TGSProtocol() if gt.shape[1] == 224 else RefAVSProtocol()
    score = protocol.score("u_c_1", "test_s", Masks(masks=gt), gt, gt.shape[0])
    assert abs(score.J - 1.0) < 1e-6
    frames_with_gt = gt.reshape(gt.shape[0], -1).any(axis=1)
    assert abs(score.F - (1.0 if frames_with_gt.any() else 0.0)) < 1e-6
