"""The TGS-Agent evaluation protocol (``ground_segment_scripts/*.py`` + ``utils/avss_utils.py``).

- Resolution 224x224. Ground truth: ``Image.open(p).convert("L").resize((224, 224))``
  (Pillow's default filter for "L" images, bicubic), then ``> 0``.
- Predictions: binary masks (J, S) and probability maps (F) at 224; other sizes are
  resized (masks nearest, probabilities bilinear). Without probability maps the binary
  mask serves as a 0/1 probability map. The original scripts produce both at 224
  directly, so for them no resize happens.
- J of a sample: mean over its frames of the IoU with the empty-GT rule.
- F of a sample: the F curves of frames with non-empty GT averaged, then the maximum;
  0 when no frame has GT.
- S of a sample (null split): mean over frames of sqrt(foreground / (H*W)).
- Split score: arithmetic mean over samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from tgs.errors import DataError
from tgs.eval.measures import f_curves, fg_fraction, frame_iou
from tgs.eval.protocol import SampleScore, check_frames, is_null_split
from tgs.resize import resize_masks
from tgs.types import Masks

__all__ = ["TGSProtocol", "load_gt_tgs", "sample_f", "sample_j", "sample_s"]

TGS_SIZE = 224


def load_gt_tgs(paths: Sequence[Path], size: int = TGS_SIZE) -> np.ndarray:
    """Ground-truth masks as the TGS-Agent scripts read them: bool [T, size, size]."""
    frames = []
    for path in paths:
        try:
            with Image.open(path) as image:
                resized = image.convert("L").resize((size, size), Image.Resampling.BICUBIC)
        except FileNotFoundError as exc:
            raise DataError(f"ground-truth mask not found: {path}", path=path,
                            fix="check --data points at the benchmark root holding gt_mask/") from exc
        except OSError as exc:
            raise DataError(f"cannot read ground-truth mask: {exc}", path=path) from exc
        frames.append(np.asarray(resized) > 0)
    return np.stack(frames)


def sample_j(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean per-frame IoU (empty-GT rule). pred, gt: bool [T, H, W]."""
    return float(frame_iou(pred, gt).mean())


def sample_f(probs: np.ndarray, gt: np.ndarray) -> float:
    """Max of the F curve averaged over frames with non-empty GT; 0 if none has GT."""
    curves, has_gt = f_curves(probs, gt)
    if not has_gt.any():
        return 0.0
    return float(curves[has_gt].mean(axis=0).max())


def sample_s(pred: np.ndarray) -> float:
    """Mean over frames of sqrt(foreground fraction). pred: bool [T, H, W]."""
    return float(np.sqrt(fg_fraction(pred)).mean())


class TGSProtocol:
    """Scores as the TGS-Agent scripts do; see the module docstring for every rule."""

    name = "tgs"
    size = TGS_SIZE
    last_row_per_uid = True  # the script maps uid -> fid in a dict and skips scored uids
    description = "TGS-Agent scripts: 224x224, GT bicubic>0, per-sample J/F/S, mean over samples"

    def load_gt(self, paths: Sequence[Path]) -> np.ndarray:
        return load_gt_tgs(paths, self.size)

    def prepare(self, pred: Masks | None, num_frames: int) -> tuple[np.ndarray, np.ndarray]:
        """(binary bool [T, 224, 224], probabilities float32 [T, 224, 224]) of a prediction.

        A missing prediction is an empty mask with a zero probability map, as the
        original scripts record a frame without a box.
        """
        if pred is None:
            shape = (num_frames, self.size, self.size)
            return np.zeros(shape, np.bool_), np.zeros(shape, np.float32)
        resized = resize_masks(pred, (self.size, self.size))
        binary = resized.masks
        probs = resized.probs if resized.probs is not None else binary.astype(np.float32)
        return binary, probs.astype(np.float32, copy=False)

    def score(self, uid: str, split: str, pred: Masks | None, gt: np.ndarray | None, num_frames: int) -> SampleScore:
        check_frames(uid, pred, num_frames)
        binary, probs = self.prepare(pred, num_frames)
        missing = pred is None
        if is_null_split(split):
            return SampleScore(uid, split, missing, S=sample_s(binary))
        if gt is None:
            raise ValueError(f"{uid}: ground truth is required on split {split}")
        return SampleScore(uid, split, missing, J=sample_j(binary, gt), F=sample_f(probs, gt))

    def aggregate(self, scores: Sequence[SampleScore]) -> dict[str, float | int]:
        out: dict[str, float | int] = {
            "count": len(scores),
            "missing": sum(s.missing for s in scores),
        }
        if not scores:
            return out
        keys = ("S",) if is_null_split(scores[0].split) else ("J", "F")
        for key in keys:
            out[key] = float(np.mean([getattr(s, key) for s in scores]))
        return out
