"""Resizing frames and masks between the frame size and the sizes stages work at.

``resize_like_cv2`` reproduces OpenCV's ``cv2.resize(image, (w, h))`` (INTER_LINEAR) on
uint8 images bit for bit, so the ``paper`` preset squashes frames to 224x224 exactly as
the original scripts do without making OpenCV a dependency. OpenCV computes it in fixed
point: horizontal weights and vertical weights are rounded to 11 bits, the horizontal
pass is exact integer arithmetic, and the vertical pass (vectorised for every output
row whose length ``w * 3`` is a multiple of 16, as for 224) drops 4 bits from each row
sum, keeps the high 16 bits of the products with the vertical weights and rounds the
last 2 bits. ``tests/pipeline/test_resize.py`` checks the equality against OpenCV 4.x
and 5.x on random images of many sizes.
"""

from __future__ import annotations

import numpy as np

from tgs.types import Masks

__all__ = ["resize_like_cv2", "resize_masks"]

_COEF_SCALE = np.float32(2048)  # OpenCV's INTER_RESIZE_COEF_SCALE (11 fractional bits)
_SIMD_ROW_MULTIPLE = 16  # OpenCV's vertical pass is vectorised in blocks of 16 uint8 values


def _taps(src: int, dst: int, *, clamp_weights: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Source indices (i0, i1) and 11-bit weights (w0, w1) of each output position.

    OpenCV maps output pixel d to source ``(d + 0.5) * src / dst - 0.5`` (float32), takes
    the floor as i0 and the fraction as the weight of i0 + 1. Horizontally, positions left
    of pixel 0 or right of the last pixel get weight (1, 0) on the border pixel; vertically
    the weights stay and the row indices are clamped.
    """
    scale = 1.0 / (dst / src)  # OpenCV keeps the inverse of dst/src in double precision
    pos = ((np.arange(dst, dtype=np.float64) + 0.5) * scale - 0.5).astype(np.float32)
    i0 = np.floor(pos).astype(np.int64)
    frac = (pos - i0.astype(np.float32)).astype(np.float32)
    if clamp_weights:
        outside = (i0 < 0) | (i0 >= src - 1)
        frac[outside] = 0
        i0 = np.clip(i0, 0, src - 1)
    w1 = np.rint(frac * _COEF_SCALE).astype(np.int32)
    w0 = np.rint((np.float32(1) - frac) * _COEF_SCALE).astype(np.int32)
    return np.clip(i0, 0, src - 1), np.clip(i0 + 1, 0, src - 1), w0, w1


def resize_like_cv2(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``cv2.resize(image, (width, height))`` with INTER_LINEAR, bit for bit.

    image: uint8 [H, W, 3]; size: (height, width) of the result, whose ``width * 3``
    must be a multiple of 16 (true for 224: the only size the presets use), the case
    where OpenCV's arithmetic is the one reproduced here. Returns uint8 [height, width, 3].
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image: expected uint8 [H, W, 3], got {image.dtype} {tuple(image.shape)}")
    out_h, out_w = size
    if out_h <= 0 or out_w <= 0:
        raise ValueError(f"size: expected positive (height, width), got {size}")
    if (out_w * 3) % _SIMD_ROW_MULTIPLE:
        raise ValueError(
            f"size: width {out_w} is not reproduced exactly (OpenCV rounds differently when width*3 "
            f"is not a multiple of {_SIMD_ROW_MULTIPLE}); use e.g. 224"
        )
    in_h, in_w, _ = image.shape
    x0, x1, wx0, wx1 = _taps(in_w, out_w, clamp_weights=True)
    y0, y1, wy0, wy1 = _taps(in_h, out_h, clamp_weights=False)
    src = image.astype(np.int32)
    rows = src[:, x0, :] * wx0[None, :, None] + src[:, x1, :] * wx1[None, :, None]  # [H, out_w, 3], 11-bit
    top = ((rows[y0] >> 4) * wy0[:, None, None]) >> 16
    bottom = ((rows[y1] >> 4) * wy1[:, None, None]) >> 16
    return np.clip((top + bottom + 2) >> 2, 0, 255).astype(np.uint8)


def resize_masks(masks: Masks, size: tuple[int, int], probs_size: tuple[int, int] | None = None) -> Masks:
    """Masks at ``size`` and probability maps at ``probs_size`` (default ``size``), (height, width).

    Binary masks use nearest-exact (pixel centres), probability maps bilinear with
    ``align_corners=False``; arrays already at their size are kept as they are.
    """
    import torch
    import torch.nn.functional as F

    size = tuple(size)
    probs_size = tuple(probs_size) if probs_size is not None else size
    binary = masks.masks
    if binary.shape[1:] != size:
        x = torch.from_numpy(np.ascontiguousarray(binary, dtype=np.uint8))[:, None].float()
        binary = F.interpolate(x, size=size, mode="nearest-exact")[:, 0].numpy() > 0.5
    probs = masks.probs
    if probs is not None and probs.shape[1:] != probs_size:
        p = torch.from_numpy(np.ascontiguousarray(probs, dtype=np.float32))[:, None]
        probs = F.interpolate(p, size=probs_size, mode="bilinear", align_corners=False)[:, 0].numpy()
    if binary is masks.masks and probs is masks.probs:
        return masks
    return Masks(masks=binary, probs=probs, meta=dict(masks.meta))
