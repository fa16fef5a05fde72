"""Pre- and post-processing shared by the SAM2 image and video segmenters.

Facts reproduced from the original ``SAM2ImagePredictor`` (sam2/sam2_image_predictor.py and
sam2/utils/transforms.py) and the TGS-Agent script:

* input: ``ToTensor`` (uint8 -> float / 255), ``Resize((1024, 1024))`` on the float tensor
  (bilinear, antialias on), ImageNet ``Normalize``. transformers' Sam2ImageProcessor resizes
  the uint8 image and rounds before rescaling, a difference of up to one grey level that
  ``preprocess="original"`` avoids.
* box: xyxy in image pixels, divided by the image (w, h), times the model input size.
* masks: low-res logits (256 x 256 for 1024 input) bilinearly resized (align_corners=False)
  straight to the image size, then > 0.
* F-measure maps: the low-res logits clamped to [-32, 32] (what ``predict`` returns), resized
  the same way, then a sigmoid.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "PREPROCESS_CHOICES",
    "boxes_to_input_coords",
    "low_res_to_masks",
    "low_res_to_masks_and_probs",
    "pixel_values",
]

PREPROCESS_CHOICES = ("hf", "original")
LOGIT_CLAMP = 32.0  # SAM2ImagePredictor clamps the returned low-res logits to [-32, 32]


def _size_of(image_processor) -> tuple[int, int]:
    size = image_processor.size  # a transformers SizeDict with height / width
    return int(size.height), int(size.width)


def pixel_values(
    frames: np.ndarray, image_processor, preprocess: str, device: torch.device | None = None
) -> torch.Tensor:
    """float32 [N, 3, S, S] model input for uint8 RGB frames [N, H, W, 3].

    preprocess="hf": the checkpoint's Sam2ImageProcessor; "original": SAM2Transforms
    (float resize, then normalise) with the processor's size, mean and std. With ``device``
    the frames travel to it as uint8 (:func:`tgs.devices.frames_to_device`) and the same
    tensor operations run there (on the CPU: the same numbers as without it).
    """
    if preprocess not in PREPROCESS_CHOICES:
        raise ValueError(f"preprocess: expected one of {PREPROCESS_CHOICES}, got {preprocess!r}")
    if device is not None:
        from tgs.devices import frames_to_device

        on_device = frames_to_device(frames, device)
        if preprocess == "hf":
            images = list(on_device.permute(0, 3, 1, 2))
            return image_processor(images=images, return_tensors="pt", device=device)["pixel_values"]
        x = on_device.permute(0, 3, 1, 2).float().div(255)
    elif preprocess == "hf":
        return image_processor(images=list(frames), return_tensors="pt")["pixel_values"]
    else:
        x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div(255)
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as tvf

    x = tvf.resize(
        x, list(_size_of(image_processor)), interpolation=InterpolationMode.BILINEAR, antialias=True
    )
    return tvf.normalize(x, mean=list(image_processor.image_mean), std=list(image_processor.image_std))


def boxes_to_input_coords(
    boxes: np.ndarray, image_hw: tuple[int, int], input_hw: tuple[int, int]
) -> torch.Tensor:
    """xyxy boxes [N, 4] in image pixels -> float32 [N, 4] in model-input pixels.

    Same arithmetic as SAM2Transforms.transform_coords(normalize=True): x / w, then * size.
    """
    coords = (
        torch.as_tensor(np.asarray(boxes, dtype=np.float32), dtype=torch.float32).reshape(-1, 2, 2).clone()
    )
    h, w = image_hw
    coords[..., 0] = coords[..., 0] / w
    coords[..., 1] = coords[..., 1] / h
    coords[..., 0] = coords[..., 0] * input_hw[1]
    coords[..., 1] = coords[..., 1] * input_hw[0]
    return coords.reshape(-1, 4)


def low_res_to_masks_and_probs(low_res: torch.Tensor, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Low-res logits [N, 1, h, w] -> (bool masks [N, H, W], float32 probs [N, H, W]) at ``size``.

    Computed on ``low_res``'s device; the results come to the host at the end.
    """
    logits = low_res.float()
    masks = F.interpolate(logits, size=size, mode="bilinear", align_corners=False) > 0.0
    clamped = torch.clamp(logits, -LOGIT_CLAMP, LOGIT_CLAMP)
    probs = torch.sigmoid(F.interpolate(clamped, size=size, mode="bilinear", align_corners=False))
    return masks[:, 0].cpu().numpy(), probs[:, 0].cpu().numpy().astype(np.float32)


def low_res_to_masks(low_res: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """Low-res logits [N, 1, h, w] -> bool masks [N, H, W]: the masks of
    :func:`low_res_to_masks_and_probs` without computing the probabilities."""
    resized = F.interpolate(low_res.float(), size=size, mode="bilinear", align_corners=False)
    return (resized > 0.0)[:, 0].cpu().numpy()
