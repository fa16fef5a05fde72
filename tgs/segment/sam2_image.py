"""The Segment stage, per-frame mode: SAM2 (transformers ``Sam2Model``) masks one box per frame.

This is what the paper does (``SAM2ImagePredictor.set_image`` + ``predict(box=...,
multimask_output=False)`` on every frame that has a box, nothing on the others). The
paper-specific input changes (224 x 224 squash, R/B swap, box scaling) are applied by the
caller to the clip and boxes; this stage only reproduces the predictor on what it is given.
See :mod:`tgs.segment._sam2_common` for the exact pre/post-processing facts.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from tgs import fast_paths
from tgs.devices import compile_backend, compile_modules, resolve_device, resolve_dtype
from tgs.models.hf_loading import load_model, load_processor
from tgs.segment._sam2_common import (
    PREPROCESS_CHOICES,
    boxes_to_input_coords,
    low_res_to_masks_and_probs,
    pixel_values,
)
from tgs.types import Clip, Masks

__all__ = ["DEFAULT_SOURCE", "Sam2ImageSegmenter", "check_frame_boxes"]

logger = logging.getLogger(__name__)

DEFAULT_SOURCE = "facebook/sam2.1-hiera-large"
HOW_TO_GET = (
    "download it with `huggingface-cli download facebook/sam2.1-hiera-large` while online, or pass a local "
    "directory saved with save_pretrained (`tgs models list` shows what is present)"
)


def check_frame_boxes(clip: Clip, boxes: Sequence[np.ndarray | None]) -> list[np.ndarray | None]:
    """Validate one xyxy box (or None) per frame; returns them as float32 [4] arrays."""
    if len(boxes) != clip.num_frames:
        raise ValueError(
            f"expected one box (or None) per frame: clip has {clip.num_frames} frames, got {len(boxes)}"
        )
    out: list[np.ndarray | None] = []
    for i, box in enumerate(boxes):
        if box is None:
            out.append(None)
            continue
        arr = np.asarray(box, dtype=np.float32).reshape(-1)
        if arr.shape != (4,) or not np.all(np.isfinite(arr)):
            raise ValueError(f"frame {i}: expected a finite xyxy box of 4 numbers, got {box!r}")
        out.append(arr)
    return out


class Sam2ImageSegmenter:
    """One SAM2 image prediction per frame that has a box; zero mask and probabilities elsewhere.

    ``frame_batch_size`` frames are encoded and decoded together (1 = the paper's loop; the
    results agree to float rounding). ``preprocess`` picks the input transform ("hf" or the
    original SAM2Transforms, see module docs).

    ``segment_many`` masks several objects (one box or None per frame each) with every frame
    encoded once and all of a frame's boxes decoded against its embeddings.
    ``device_preprocess`` moves frames to the device as uint8 and runs the (tensor) transform
    there; ``compile`` wraps the vision encoder and the mask decoder in ``torch.compile``.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        processor,
        *,
        device: torch.device,
        dtype: torch.dtype,
        preprocess: str = "hf",
        frame_batch_size: int = 1,
        device_preprocess: bool = False,
        compile: bool | str = False,
        source: str = "",
    ) -> None:
        if preprocess not in PREPROCESS_CHOICES:
            raise ValueError(f"preprocess: expected one of {PREPROCESS_CHOICES}, got {preprocess!r}")
        if frame_batch_size < 1:
            raise ValueError(f"frame_batch_size must be >= 1, got {frame_batch_size}")
        self.model = model
        self.processor = processor
        self.device = device
        self.dtype = dtype
        self.preprocess = preprocess
        self.frame_batch_size = int(frame_batch_size)
        self.device_preprocess = bool(device_preprocess)
        self.compile = compile_backend(compile)  # None = eager
        if self.compile is not None:
            fast_paths.ran("compile")
            compile_modules([model.vision_encoder, model.mask_decoder], self.compile)
        self.source = source
        size = processor.image_processor.size
        self.input_hw = (int(size.height), int(size.width))

    @classmethod
    def from_pretrained(
        cls,
        source: str | Path = DEFAULT_SOURCE,
        *,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        preprocess: str = "hf",
        frame_batch_size: int = 1,
        device_preprocess: bool = False,
        compile: bool | str = False,
    ) -> Sam2ImageSegmenter:
        """Load Sam2Model + Sam2Processor strictly. A SAM2 *video* checkpoint (the hub's
        facebook/sam2.1-* repositories are saved as Sam2VideoModel) also loads: transformers
        drops its memory modules, which the image predictor never uses."""
        from transformers import Sam2Model, Sam2Processor

        dev = resolve_device(device)
        dt = resolve_dtype(dtype, dev)
        what = "SAM2 image model (Segment stage)"
        model = load_model(Sam2Model, source, what=what, how_to_get=HOW_TO_GET, device=dev, dtype=dt)
        processor = load_processor(Sam2Processor, source, what=what, how_to_get=HOW_TO_GET)
        return cls(
            model,
            processor,
            device=dev,
            dtype=dt,
            preprocess=preprocess,
            frame_batch_size=frame_batch_size,
            device_preprocess=device_preprocess,
            compile=compile,
            source=str(source),
        )

    @torch.inference_mode()
    def segment(self, clip: Clip, boxes: Sequence[np.ndarray | None]) -> Masks:
        """Masks bool [T, H, W] and probs float32 [T, H, W] at clip size.

        boxes: one xyxy box per frame in clip pixels, or None (that frame gets zeros).
        meta["iou_scores"]: float32 [T], SAM2's predicted IoU of each mask (NaN without box).
        """
        frame_boxes = check_frame_boxes(clip, boxes)
        size = clip.size
        masks = np.zeros((clip.num_frames, *size), dtype=np.bool_)
        probs = np.zeros((clip.num_frames, *size), dtype=np.float32)
        iou = np.full((clip.num_frames,), np.nan, dtype=np.float32)
        todo = [i for i, b in enumerate(frame_boxes) if b is not None]
        for start in range(0, len(todo), self.frame_batch_size):
            idx = todo[start : start + self.frame_batch_size]
            low_res, scores = self._predict(clip.frames[idx], np.stack([frame_boxes[i] for i in idx]), size)
            masks[idx], probs[idx] = low_res_to_masks_and_probs(low_res, size)
            iou[idx] = scores
        return Masks(masks, probs, meta={"iou_scores": iou})

    @torch.inference_mode()
    def segment_many(
        self,
        clip: Clip,
        boxes_per_object: Sequence[Sequence[np.ndarray | None]],
        scores_per_object: Sequence[Sequence[float | None]] | None = None,
    ) -> list[Masks]:
        """``[segment(clip, boxes) for boxes in boxes_per_object]`` with each frame encoded once.

        Every frame that has a box for some object is encoded (``frame_batch_size`` at a time);
        then the boxes of all objects on that frame are decoded one object at a time against its
        embeddings (SAM2's decoder repeats the embeddings per box, so a batched decode does the
        same work in one call; one at a time keeps it bit-identical to :meth:`segment`). Low-res
        logits stay on the device until the end. ``scores_per_object`` (grounding scores) is
        accepted for the common segmenter interface; the image predictor does not use them.
        """
        objects = [check_frame_boxes(clip, boxes) for boxes in boxes_per_object]
        if scores_per_object is not None and len(scores_per_object) != len(objects):
            raise ValueError(f"got {len(scores_per_object)} score lists for {len(objects)} objects")
        size = clip.size
        todo = [t for t in range(clip.num_frames) if any(obj[t] is not None for obj in objects)]
        low_res: list[dict[int, torch.Tensor]] = [{} for _ in objects]  # object -> frame -> [1, h, w]
        iou: list[dict[int, torch.Tensor]] = [{} for _ in objects]
        for start in range(0, len(todo), self.frame_batch_size):
            idx = todo[start : start + self.frame_batch_size]
            embeddings = self._embed(clip.frames[idx])
            for j, t in enumerate(idx):
                frame_embeddings = [e[j : j + 1] for e in embeddings]
                for k, obj in enumerate(objects):
                    if obj[t] is not None:
                        masks_k, iou_k = self._decode(frame_embeddings, obj[t][None], size)
                        low_res[k][t], iou[k][t] = masks_k[0], iou_k[0]
        results = []
        for k in range(len(objects)):
            masks = np.zeros((clip.num_frames, *size), dtype=np.bool_)
            probs = np.zeros((clip.num_frames, *size), dtype=np.float32)
            scores = np.full((clip.num_frames,), np.nan, dtype=np.float32)
            frames = sorted(low_res[k])
            if frames:
                masks[frames], probs[frames] = low_res_to_masks_and_probs(
                    torch.stack([low_res[k][t] for t in frames]), size
                )
                scores[frames] = torch.stack([iou[k][t] for t in frames]).float().cpu().numpy()
            results.append(Masks(masks, probs, meta={"iou_scores": scores}))
        return results

    def _embed(self, frames: np.ndarray) -> list[torch.Tensor]:
        """SAM2 image embeddings (multi-level, [N, C, h, w] each) of uint8 frames [N, H, W, 3]."""
        device = self.device if self.device_preprocess else None
        pixels = pixel_values(frames, self.processor.image_processor, self.preprocess, device=device)
        return self.model.get_image_embeddings(pixels.to(self.device, self.dtype, non_blocking=True))

    def _decode(
        self, embeddings: list[torch.Tensor], boxes: np.ndarray, image_hw: tuple[int, int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Low-res logits float32 [N, 1, h, w] and IoU scores [N] (on the device), one box per embedding row."""
        input_boxes = boxes_to_input_coords(boxes, image_hw, self.input_hw)[:, None, :]  # [N, 1, 4]
        out = self.model(
            image_embeddings=embeddings,
            input_boxes=input_boxes.to(self.device, self.dtype, non_blocking=True),
            multimask_output=False,
        )
        return out.pred_masks[:, 0].float(), out.iou_scores[:, 0, 0].float()

    def _predict(
        self, frames: np.ndarray, boxes: np.ndarray, image_hw: tuple[int, int]
    ) -> tuple[torch.Tensor, np.ndarray]:
        """Low-res logits float32 [N, 1, h, w] and IoU scores [N] for N frames with one box each."""
        low_res, iou = self._decode(self._embed(frames), boxes, image_hw)
        return low_res.cpu(), iou.cpu().numpy()
