"""Per-frame measures shared by both evaluation protocols: J (IoU), F-measure curves, S.

Both the TGS-Agent scripts and the official Ref-AVS code compute the same three
quantities; the protocols differ only in resolution, thresholds and how frames are
pooled (see ``tgs_protocol`` and ``refavs_protocol``). The conventions kept here are
those of both originals:

- J: a frame whose ground truth is empty scores |not pred AND not gt| / (H*W) instead
  of an IoU; otherwise inter / (union + 1e-7).
- F: 255 thresholds ``torch.linspace(0, 1 - 1e-10, 255)`` in float32 (the last one
  rounds to exactly 1.0), a pixel is positive when ``prob >= threshold``, beta^2 = 0.3,
  precision = tp / (positives + 1e-20), recall = tp / (gt + 1e-20), NaN -> 0. Frames with
  an empty ground truth have no curve.
- S: the fraction of foreground pixels (the protocols take its square root).

The F curves are computed from histograms: every probability is bucketed against the
255 thresholds once, pixels are counted per bucket (separately for gt and not-gt), and a
reverse cumulative sum gives the positives at every threshold. This equals the obvious
loop over thresholds (kept here as :func:`f_curve_loop`, the reference the tests and
``benchmarks/metrics_bench.py`` compare against) and is about 30-40x faster.
"""

from __future__ import annotations

from functools import cache

import numpy as np

__all__ = [
    "BETA2",
    "IOU_EPS",
    "NUM_THRESHOLDS",
    "f_curve_loop",
    "f_curves",
    "f_thresholds",
    "fg_fraction",
    "frame_iou",
    "threshold_buckets",
]

NUM_THRESHOLDS = 255
BETA2 = 0.3
IOU_EPS = 1e-7
_PR_EPS = 1e-20


@cache
def f_thresholds() -> np.ndarray:
    """The 255 F-measure thresholds, float32 [255], bit-identical to the originals'.

    Both originals call ``torch.linspace(0, 1 - 1e-10, 255)`` in float32; torch's float32
    linspace does not round like numpy's, so the values are taken from torch itself.
    """
    import torch

    values = torch.linspace(0, 1 - 1e-10, NUM_THRESHOLDS, dtype=torch.float32).numpy().copy()
    values.setflags(write=False)
    return values


@cache
def _bucket_table() -> np.ndarray:
    # thresholds followed by a NaN sentinel: ``p >= NaN`` is always False.
    table = np.append(f_thresholds(), np.float32(np.nan)).astype(np.float32)
    table.setflags(write=False)
    return table


def threshold_buckets(probs: np.ndarray) -> np.ndarray:
    """How many F thresholds each probability reaches: int16, same shape as ``probs``.

    bucket(p) = #{k : p >= threshold[k]}, so a pixel is positive at threshold k exactly
    when k < bucket(p). Equal to ``np.searchsorted(f_thresholds(), p, side="right")``.

    The thresholds are spaced 1/254 apart, so floor(254 * p) + 1 is the bucket up to one
    step of rounding; the two neighbouring thresholds settle it exactly. ``probs`` must be
    finite (NaN has no bucket); values below 0 get bucket 0 and values >= 1 get 255.
    """
    p = np.asarray(probs, dtype=np.float32)
    table = _bucket_table()
    scaled = p * np.float32(NUM_THRESHOLDS - 1)
    np.clip(scaled, 0, NUM_THRESHOLDS - 1, out=scaled)
    q = scaled.astype(np.int16)
    buckets = q + np.int16(1)
    buckets -= p < table[q]
    buckets += p >= table[q + 1]
    return buckets


def frame_iou(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Per-frame IoU with the empty-ground-truth rule, float64 [N].

    pred, gt: bool [N, H, W]. A frame whose gt is empty scores the fraction of pixels
    where both are background; otherwise inter / (union + 1e-7).
    """
    _check_pair(pred, gt)
    if pred.dtype != np.bool_:
        raise TypeError(f"predicted masks must be bool, got {pred.dtype}")
    n = pred.shape[0]
    p = pred.reshape(n, -1)
    g = gt.reshape(n, -1)
    num_pixels = p.shape[1]
    inter = np.count_nonzero(p & g, axis=1).astype(np.float64)
    union = np.count_nonzero(p | g, axis=1).astype(np.float64)
    empty = ~g.any(axis=1)
    inter = np.where(empty, num_pixels - union, inter)  # |~p & ~g| = HW - |p | g|
    union = np.where(empty, float(num_pixels), union)
    return inter / (union + IOU_EPS)


def fg_fraction(pred: np.ndarray) -> np.ndarray:
    """Fraction of foreground pixels per frame, float64 [N]; pred: bool [N, H, W]."""
    if pred.ndim != 3:
        raise ValueError(f"expected masks [N, H, W], got shape {pred.shape}")
    n = pred.shape[0]
    flat = pred.reshape(n, -1)
    return np.count_nonzero(flat, axis=1) / float(flat.shape[1])


def f_curves(probs: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """F-measure curves of every frame over the 255 thresholds, from histograms.

    probs: float [N, H, W] foreground probabilities (finite; compared in float32).
    gt: bool [N, H, W].
    Returns (curves float64 [N, 255], has_gt bool [N]); rows of frames with an empty gt
    are zero and must be left out of averages (``has_gt`` False), as in the originals.
    """
    _check_pair(probs, gt)
    n = probs.shape[0]
    k = NUM_THRESHOLDS
    p = np.asarray(probs, dtype=np.float32).reshape(n, -1)
    if not np.isfinite(p).all():
        raise ValueError("probabilities must be finite (found NaN or inf)")
    g = gt.reshape(n, -1)
    # One key per pixel: frame * 512 + is_gt * 256 + bucket, counted in one bincount.
    keys = threshold_buckets(p).astype(np.int32)
    keys += g.astype(np.int32) * (k + 1)
    keys += (np.arange(n, dtype=np.int32) * (2 * (k + 1)))[:, None]
    counts = np.bincount(keys.ravel(), minlength=n * 2 * (k + 1)).reshape(n, 2, k + 1)
    # positives at threshold j = pixels whose bucket > j (reverse cumulative sum).
    above = np.cumsum(counts[:, :, ::-1], axis=2)[:, :, ::-1][:, :, 1:]
    tp = above[:, 1, :].astype(np.float64)
    positives = tp + above[:, 0, :]
    gt_pixels = np.count_nonzero(g, axis=1).astype(np.float64)[:, None]
    precision = tp / (positives + _PR_EPS)
    recall = tp / (gt_pixels + _PR_EPS)
    with np.errstate(invalid="ignore", divide="ignore"):
        curves = (1 + BETA2) * precision * recall / (BETA2 * precision + recall)
    curves[np.isnan(curves)] = 0.0
    has_gt = gt_pixels[:, 0] > 0
    curves[~has_gt] = 0.0
    return curves, has_gt


def f_curve_loop(probs: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reference for :func:`f_curves`: one pass per threshold, float32 torch, as the originals.

    Slow (255 passes per frame); kept as the definition the fast path is tested against.
    """
    import torch

    _check_pair(probs, gt)
    thresholds = torch.from_numpy(np.array(f_thresholds()))
    p_all = torch.from_numpy(np.asarray(probs, dtype=np.float32))
    g_all = torch.from_numpy(np.asarray(gt)).float()
    n = p_all.shape[0]
    curves = torch.zeros(n, NUM_THRESHOLDS, dtype=torch.float32)
    has_gt = torch.zeros(n, dtype=torch.bool)
    for i in range(n):
        g = g_all[i]
        if torch.mean(g) == 0.0:
            continue
        precision = torch.zeros(NUM_THRESHOLDS)
        recall = torch.zeros(NUM_THRESHOLDS)
        for j in range(NUM_THRESHOLDS):
            positive = (p_all[i] >= thresholds[j]).float()
            tp = (positive * g).sum()
            precision[j] = tp / (positive.sum() + _PR_EPS)
            recall[j] = tp / (g.sum() + _PR_EPS)
        f = (1 + BETA2) * precision * recall / (BETA2 * precision + recall)
        f[f != f] = 0
        curves[i] = f
        has_gt[i] = True
    return curves.double().numpy(), has_gt.numpy()


def _check_pair(pred: np.ndarray, gt: np.ndarray) -> None:
    if pred.ndim != 3 or pred.shape != gt.shape:
        raise ValueError(
            f"expected prediction and ground truth of the same shape [N, H, W], "
            f"got {tuple(pred.shape)} and {tuple(gt.shape)}"
        )
    if gt.dtype != np.bool_:
        raise TypeError(f"ground truth must be bool, got {gt.dtype}")
