"""The official Ref-AVS evaluation protocol (``GeWu-Lab/Ref-AVS``: ``utils/metric/utility.py``,
``scripts/train.py``, ``datasets/dataset_refavs.py``).

- Resolution 256x256. Ground truth: ``cv2.imread(p)`` (3-channel BGR), ``cv2.resize``
  to (256, 256) with OpenCV's default bilinear filter, ``cv2.cvtColor(BGR2GRAY)``, ``> 0``.
  Reproduced bit for bit without OpenCV: the image is decoded with Pillow, resized with
  ``tgs.resize.resize_like_cv2`` (OpenCV's fixed-point INTER_LINEAR) and turned gray with
  OpenCV's fixed-point weights; the tests compare it with OpenCV itself. Its fixed-point
  rounding decides which boundary pixels survive ``> 0``.
- The official model emits *logits* and the protocol applies a sigmoid: J uses
  sigmoid > 0.4, S uses sigmoid > 0.5, F uses the sigmoid as probability. We therefore
  map predictions to logits first:
  * with a probability map (default ``soft_input=True``): bilinear resize to 256, then
    logit(p), clipped to +-20;
  * binary masks only (or ``soft_input=False``): nearest resize to 256, then +20 for
    foreground and -20 for background (sigmoid: 1.0 and 2e-9 in float32; every
    threshold keeps the mask exactly).
  Feeding 0/1 masks or probabilities straight in would mark every pixel foreground
  (sigmoid(0) = 0.5 > 0.4).
- Pooling: the official test loader takes one split's rows in metadata (CSV) order,
  ``batch_size=4``, ``shuffle=False``, ``drop_last=False``. Each batch's 4 x 10 frames are
  pooled: J = mean of the frame IoUs (empty-GT rule, eps 1e-7), F = max of the F curve
  averaged over all frames with non-empty GT in the batch (0 if none), S =
  sqrt(foreground pixels / all pixels of the batch). The split score is the mean over
  batches, a final partial batch weighing as much as a full one.
- Per-sample values written to the JSONL use the same thresholds on the sample alone
  (F: max of the sample's averaged curve; S: sqrt of its pooled fraction); they are for
  inspection: the split score is the batch mean above, not their mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from tgs.errors import DataError
from tgs.eval.measures import NUM_THRESHOLDS, f_curves, frame_iou
from tgs.eval.protocol import SampleScore, check_frames, is_null_split
from tgs.resize import resize_like_cv2, resize_masks
from tgs.types import Masks

__all__ = ["BATCH_SIZE", "LOGIT_LIMIT", "RefAVSProtocol", "load_gt_refavs", "to_logits"]

REFAVS_SIZE = 256
BATCH_SIZE = 4
J_THRESHOLD = 0.4
S_THRESHOLD = 0.5
LOGIT_LIMIT = 20.0
# OpenCV's uint8 BGR2GRAY weights (R, G, B) in 15-bit fixed point; they sum to 2**15,
# so a gray image converted to BGR and back is unchanged.
_GRAY_R, _GRAY_G, _GRAY_B, _GRAY_SHIFT = 9798, 19235, 3735, 15


def _read_rgb_like_cv2(path: Path) -> np.ndarray:
    """uint8 [H, W, 3] (RGB order) as ``cv2.imread(path)`` holds it (there in BGR order).

    Grayscale, 1-bit, palette, RGB and alpha images (alpha dropped) are supported; other
    modes (16-bit, float) are rejected rather than guessed.
    """
    try:
        with Image.open(path) as image:
            if image.mode in ("L", "1"):
                gray = np.asarray(image.convert("L"))
                return np.repeat(gray[:, :, None], 3, axis=2)
            if image.mode not in ("P", "PA", "LA", "RGB", "RGBA"):
                raise DataError(
                    f"ground-truth mask {path} has image mode {image.mode}",
                    path=path,
                    fix="store masks as 8-bit grayscale PNGs (> 0 is foreground)",
                )
            return np.asarray(image.convert("RGB"))
    except FileNotFoundError as exc:
        raise DataError(f"ground-truth mask not found: {path}", path=path,
                        fix="check --data points at the benchmark root holding gt_mask/") from exc
    except OSError as exc:
        raise DataError(f"cannot read ground-truth mask: {exc}", path=path) from exc


def _gray_like_cv2(rgb: np.ndarray) -> np.ndarray:
    """``cv2.cvtColor(bgr, COLOR_BGR2GRAY)`` for uint8: 15-bit fixed-point weights, rounded."""
    c = rgb.astype(np.int32)
    gray = (c[..., 0] * _GRAY_R + c[..., 1] * _GRAY_G + c[..., 2] * _GRAY_B + (1 << (_GRAY_SHIFT - 1))) >> _GRAY_SHIFT
    return gray.astype(np.uint8)


def load_gt_refavs(paths: Sequence[Path], size: int = REFAVS_SIZE) -> np.ndarray:
    """Ground-truth masks as the official Ref-AVS dataset reads them: bool [T, size, size]."""
    frames = []
    for path in paths:
        resized = resize_like_cv2(_read_rgb_like_cv2(Path(path)), (size, size))
        frames.append(_gray_like_cv2(resized) > 0)
    return np.stack(frames)


def to_logits(pred: Masks | None, num_frames: int, size: int = REFAVS_SIZE, *, soft_input: bool = True) -> np.ndarray:
    """Logits float32 [T, size, size] standing for a prediction; see the module docstring.

    A missing prediction is all background (-20).
    """
    if pred is None:
        return np.full((num_frames, size, size), -LOGIT_LIMIT, np.float32)
    if soft_input and pred.probs is not None:
        p = resize_masks(pred, (size, size)).probs.astype(np.float64)
        with np.errstate(divide="ignore"):
            logits = np.log(p) - np.log1p(-p)
        return np.clip(logits, -LOGIT_LIMIT, LOGIT_LIMIT).astype(np.float32)
    binary = resize_masks(Masks(pred.masks), (size, size)).masks
    return np.where(binary, np.float32(LOGIT_LIMIT), np.float32(-LOGIT_LIMIT)).astype(np.float32)


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    import torch

    return torch.sigmoid(torch.from_numpy(logits)).numpy()


@dataclass(frozen=True)
class _Pool:
    """What a batch needs from one sample: frame IoUs, F curve sum and count, pixel counts."""

    frame_ious: np.ndarray  # float64 [T], empty on the null split
    curve_sum: np.ndarray  # float64 [255]
    curve_frames: int
    fg_pixels: int
    pixels: int


class RefAVSProtocol:
    """Scores as the official Ref-AVS code does; see the module docstring for every rule.

    soft_input: feed probability maps (when a prediction has them) to the protocol as
        logits; False uses the binary masks only.
    """

    name = "refavs"
    size = REFAVS_SIZE
    last_row_per_uid = False  # the official loader iterates every row
    description = "official Ref-AVS: 256x256, sigmoid>0.4 (J) / >0.5 (S), 4 samples pooled per batch"

    def __init__(self, *, soft_input: bool = True, batch_size: int = BATCH_SIZE) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.soft_input = soft_input
        self.batch_size = batch_size

    def load_gt(self, paths: Sequence[Path]) -> np.ndarray:
        return load_gt_refavs(paths, self.size)

    def score(self, uid: str, split: str, pred: Masks | None, gt: np.ndarray | None, num_frames: int) -> SampleScore:
        check_frames(uid, pred, num_frames)
        probs = _sigmoid(to_logits(pred, num_frames, self.size, soft_input=self.soft_input))
        missing = pred is None
        if is_null_split(split):
            fg = int(np.count_nonzero(probs > S_THRESHOLD))
            pool = _Pool(np.zeros(0), np.zeros(NUM_THRESHOLDS), 0, fg, probs.size)
            return SampleScore(uid, split, missing, S=float(np.sqrt(fg / probs.size)), pool=pool)
        if gt is None:
            raise ValueError(f"{uid}: ground truth is required on split {split}")
        ious = frame_iou(probs > J_THRESHOLD, gt)
        curves, has_gt = f_curves(probs, gt)
        curve_sum = curves[has_gt].sum(axis=0) if has_gt.any() else np.zeros(NUM_THRESHOLDS)
        n_gt = int(has_gt.sum())
        pool = _Pool(ious, curve_sum, n_gt, 0, probs.size)
        f = float((curve_sum / n_gt).max()) if n_gt else 0.0
        return SampleScore(uid, split, missing, J=float(ious.mean()), F=f, pool=pool)

    def batches(self, scores: Sequence[SampleScore]) -> list[Sequence[SampleScore]]:
        """Consecutive groups of ``batch_size`` in the given (CSV) order; the last may be short."""
        return [scores[i : i + self.batch_size] for i in range(0, len(scores), self.batch_size)]

    def aggregate(self, scores: Sequence[SampleScore]) -> dict[str, float | int]:
        out: dict[str, float | int] = {
            "count": len(scores),
            "missing": sum(s.missing for s in scores),
        }
        if not scores:
            return out
        batches = self.batches(scores)
        out["batches"] = len(batches)
        if is_null_split(scores[0].split):
            out["S"] = float(np.mean([_batch_s(b) for b in batches]))
        else:
            out["J"] = float(np.mean([_batch_j(b) for b in batches]))
            out["F"] = float(np.mean([_batch_f(b) for b in batches]))
        return out


def _batch_j(batch: Sequence[SampleScore]) -> float:
    return float(np.concatenate([s.pool.frame_ious for s in batch]).mean())


def _batch_f(batch: Sequence[SampleScore]) -> float:
    frames = sum(s.pool.curve_frames for s in batch)
    if frames == 0:
        return 0.0
    return float((sum(s.pool.curve_sum for s in batch) / frames).max())


def _batch_s(batch: Sequence[SampleScore]) -> float:
    fg = sum(s.pool.fg_pixels for s in batch)
    pixels = sum(s.pool.pixels for s in batch)
    return float(np.sqrt(fg / pixels))
