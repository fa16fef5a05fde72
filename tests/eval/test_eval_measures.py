"""Per-frame measures: hand-computed cases and fast histogram F == the 255-threshold loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tgs.eval.measures import (
    f_curve_loop,
    f_curves,
    f_thresholds,
    fg_fraction,
    frame_iou,
    threshold_buckets,
)
from tgs.eval.tgs_protocol import sample_f, sample_j, sample_s

GT_2X2 = np.zeros((4, 4), bool)
GT_2X2[:2, :2] = True  # 4 of 16 pixels


def f_of(prec: float, rec: float) -> float:
    return 1.3 * prec * rec / (0.3 * prec + rec)


def torch_iou_reference(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """The originals' formula, written out in torch: empty GT scores |~pred & ~gt| / HW."""
    p = torch.from_numpy(pred)
    g = torch.from_numpy(gt)
    empty = g.sum(dim=(1, 2)) == 0
    inter = (p & g).sum(dim=(1, 2))
    union = (p | g).sum(dim=(1, 2))
    inter[empty] = ((~p) & (~g)).sum(dim=(1, 2))[empty]
    union[empty] = p.shape[1] * p.shape[2]
    return (inter.float() / (union.float() + 1e-7)).numpy()


def test_thresholds_are_torch_float32_linspace_ending_at_one():
    thr = f_thresholds()
    assert thr.dtype == np.float32 and thr.shape == (255,)
    assert np.array_equal(thr, torch.linspace(0, 1 - 1e-10, 255).numpy())
    assert thr[0] == 0.0 and thr[-1] == 1.0


def test_buckets_equal_searchsorted_on_threshold_edges():
    thr = f_thresholds()
    below = np.nextafter(thr, np.float32(-np.inf))
    above = np.nextafter(thr, np.float32(np.inf))
    rng = np.random.default_rng(0)
    values = np.concatenate([
        thr, below, above, rng.random(20000, dtype=np.float32),
        np.array([0.0, 1.0, -0.5, 1.5, 7.0, -1e30, 1e30], np.float32),
    ]).astype(np.float32)
    expected = np.searchsorted(thr, values, side="right")
    assert np.array_equal(threshold_buckets(values), expected)
    assert threshold_buckets(np.float32([1.0]))[0] == 255  # 1.0 reaches the last threshold
    assert threshold_buckets(np.float32([0.0]))[0] == 1


def test_iou_hand_computed_4x4():
    pred = np.zeros((1, 4, 4), bool)
    pred[0, 0, :] = True  # top row: 2 of the 4 gt pixels
    assert frame_iou(pred, GT_2X2[None])[0] == pytest.approx(2 / (6 + 1e-7), abs=1e-12)


def test_iou_empty_gt_scores_shared_background():
    pred = np.zeros((2, 4, 4), bool)
    pred[0, 3, :3] = True  # 3 false positives on an empty frame
    gt = np.zeros((2, 4, 4), bool)
    iou = frame_iou(pred, gt)
    assert iou[0] == pytest.approx(13 / (16 + 1e-7), abs=1e-12)  # eps in the union
    assert iou[1] == pytest.approx(1.0, abs=1e-6)  # empty pred on empty gt: perfect


def test_iou_matches_reference_formula_on_random_masks():
    rng = np.random.default_rng(1)
    pred = rng.random((12, 9, 7)) > 0.6
    gt = rng.random((12, 9, 7)) > 0.7
    gt[3] = False
    pred[4] = False
    # exact integer counts, one division each (and the 1e-7 added to the union): <= 2u ~ 1.2e-7 apart
    np.testing.assert_allclose(frame_iou(pred, gt), torch_iou_reference(pred, gt), rtol=0, atol=1e-6)


def test_f_binary_prediction_hand_computed():
    probs = np.zeros((1, 4, 4), np.float32)
    probs[0, 0, :] = 1.0
    # threshold 0: all 16 positive (prec 4/16, rec 1); every other threshold: prec 1/2, rec 1/2
    curves, has_gt = f_curves(probs, GT_2X2[None])
    assert has_gt.tolist() == [True]
    assert curves[0, 0] == pytest.approx(f_of(0.25, 1.0))
    np.testing.assert_allclose(curves[0, 1:], f_of(0.5, 0.5))
    assert sample_f(probs, GT_2X2[None]) == pytest.approx(0.5)


def test_f_soft_prediction_hand_computed():
    probs = np.zeros((2, 4, 4), np.float32)
    probs[0, 0, 0], probs[0, 0, 1], probs[0, 1, 0], probs[0, 1, 1] = 0.9, 0.8, 0.5, 0.2  # gt pixels
    probs[0, 3, 3] = 0.7  # one false positive
    gt = np.zeros((2, 4, 4), bool)
    gt[0] = GT_2X2  # frame 1 has an empty gt: no curve
    curves, has_gt = f_curves(probs, gt)
    assert has_gt.tolist() == [True, False]
    thr = f_thresholds()
    k = int(np.searchsorted(thr, 0.1))  # a threshold in (0, 0.2]: 5 positives, 4 tp
    assert curves[0, k] == pytest.approx(f_of(0.8, 1.0))
    k = int(np.searchsorted(thr, 0.3))  # (0.2, 0.5]: 4 positives, 3 tp
    assert curves[0, k] == pytest.approx(f_of(0.75, 0.75))
    assert sample_f(probs, gt) == pytest.approx(1.04 / 1.24)


def test_all_zero_and_all_one_predictions():
    gt = GT_2X2[None]
    zero = np.zeros((1, 4, 4), np.float32)
    one = np.ones((1, 4, 4), np.float32)
    # all-zero: only threshold 0 (p >= 0) has positives: every pixel
    assert sample_f(zero, gt) == pytest.approx(f_of(0.25, 1.0))
    assert sample_j(zero > 0, gt) == 0.0
    # all-one: 1.0 >= every threshold including the last (1.0)
    curves, _ = f_curves(one, gt)
    np.testing.assert_allclose(curves[0], f_of(0.25, 1.0))
    assert sample_j(one > 0, gt) == pytest.approx(0.25)


def test_f_is_zero_without_any_gt():
    probs = np.random.default_rng(2).random((3, 4, 4)).astype(np.float32)
    assert sample_f(probs, np.zeros((3, 4, 4), bool)) == 0.0


def test_s_is_mean_of_sqrt_fraction():
    pred = np.zeros((2, 4, 4), bool)
    pred[0, :2, :2] = True
    np.testing.assert_allclose(fg_fraction(pred), [0.25, 0.0])
    assert sample_s(pred) == pytest.approx(0.25)


def _edge_probs(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    thr = f_thresholds()
    pool = np.concatenate([thr, np.nextafter(thr, np.float32(2)), np.nextafter(thr, np.float32(-1)),
                           np.float32([0.0, 1.0])])
    return rng.choice(pool, size=shape).astype(np.float32)


@pytest.mark.parametrize("kind", ["uniform", "edges", "binary", "quantised", "constant"])
def test_fast_f_equals_threshold_loop(kind):
    rng = np.random.default_rng(hash(kind) % 2**32)
    shape = (6, 17, 13)
    if kind == "uniform":
        probs = rng.random(shape, dtype=np.float32)
    elif kind == "edges":
        probs = _edge_probs(rng, shape)
    elif kind == "binary":
        probs = (rng.random(shape) > 0.5).astype(np.float32)
    elif kind == "quantised":
        probs = (rng.integers(0, 256, shape) / 255).astype(np.float32)
    else:
        probs = np.full(shape, 0.5, np.float32)
    gt = rng.random(shape) > 0.6
    gt[1] = False  # empty gt frame
    gt[2] = True  # full gt frame
    fast, fast_has = f_curves(probs, gt)
    slow, slow_has = f_curve_loop(probs, gt)
    assert np.array_equal(fast_has, slow_has)
    # counts are exact (integers < 2**24); precision, recall and (1 + b2) P R / (b2 P + R) take ~ 6
    # float32 roundings of values <= 1.3 on either side: 6 u x 1.3 ~ 5e-7
    np.testing.assert_allclose(fast, slow, atol=1e-6, rtol=0)
    fast_f = fast[fast_has].mean(0).max()
    slow_f = slow[slow_has].mean(0).max()
    assert fast_f == pytest.approx(slow_f, abs=1e-6)


def test_f_rejects_nan_and_mismatched_shapes():
    with pytest.raises(ValueError, match="finite"):
        f_curves(np.full((1, 2, 2), np.nan, np.float32), np.ones((1, 2, 2), bool))
    with pytest.raises(ValueError, match="same shape"):
        f_curves(np.zeros((1, 2, 2), np.float32), np.ones((1, 2, 3), bool))
