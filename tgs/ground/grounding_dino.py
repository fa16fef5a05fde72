"""The Ground stage: Grounding DINO (transformers) boxes an object description on every frame.

Facts reproduced from the original scripts (TGS-Agent ``ground_segment_scripts`` and the
GroundingDINO ``util/inference.py`` / ``datasets/transforms.py`` they call):

* Caption: the script passes ``text.lower().strip() + "."`` (a period is appended even when
  the text already ends with one) and ``predict()`` lowercases/strips again and appends a
  period only when missing, which is then a no-op. :func:`prepare_caption` gives the same
  string; ``dedupe_period=True`` is the named improvement that avoids "dog..".
* Image: ``RandomResize([800], max_size=1333)`` on the PIL image (PIL bilinear, antialiased;
  size rule rounds the short side when the long side would exceed 1333, then truncates the
  long side), ``ToTensor``, ImageNet ``Normalize``; one image per forward, no padding.
* Scores: sigmoid of the query/token logits, max over the text positions; a box is kept
  when that score is > box_threshold (0.1). Boxes come in query order; the text threshold
  (0.25) only picks phrase labels, which the pipeline never uses.

The transformers image processor differs slightly (it resizes uint8 tensors with torchvision's
antialiased bilinear kernel, and computes the resized long side from the unrounded short
side), so ``preprocess="original"`` re-implements the original transform for the paper path
while ``"hf"`` (the default) uses the processor shipped with the checkpoint.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from tgs.devices import resolve_device, resolve_dtype
from tgs.ground.deformable_sampling import GatherDeformableAttention, use_gather_deformable_sampling
from tgs.models.hf_loading import load_model, load_processor
from tgs.types import Boxes, Clip, FrameBoxes

__all__ = [
    "DEFAULT_SOURCE",
    "PREPROCESS_CHOICES",
    "GroundingDinoGrounder",
    "keep_deformable_sampling_in_fp32",
    "original_resize_shape",
    "original_transform",
    "prepare_caption",
]

logger = logging.getLogger(__name__)

DEFAULT_SOURCE = "IDEA-Research/grounding-dino-tiny"
HOW_TO_GET = (
    "download it with `huggingface-cli download IDEA-Research/grounding-dino-tiny` while online, or pass a local "
    "directory saved with save_pretrained (`tgs models list` shows what is present)"
)
PREPROCESS_CHOICES = ("hf", "original")
DEFORMABLE_SAMPLING_CHOICES = ("auto", "gather", "grid_sample")


def keep_deformable_sampling_in_fp32(model: torch.nn.Module) -> int:
    """Run every multi-scale deformable attention sampling step in float32; returns how many.

    The sampling (``grid_sample`` of value maps at predicted locations in [0, 1]) is where
    bf16 hurt on CPU, measured on a random full-size model at 800 x 1333: with everything in
    bf16 a frame took ~5x longer than with the sampling in fp32 (no fast bf16 kernel) and kept
    no box above 0.1 where fp32 kept 164 (bf16 locations carry only 8 bits of mantissa).
    Forward hooks cast the inputs of those modules to float32 and the output back, leaving the
    linear layers (most of the FLOPs) in bf16. The module has no weights: nothing is copied.
    """
    from transformers.models.grounding_dino.modeling_grounding_dino import MultiScaleDeformableAttention

    kernels = (MultiScaleDeformableAttention, GatherDeformableAttention)
    model_dtype = next(model.parameters()).dtype

    def as_fp32(value: object) -> object:
        return value.float() if torch.is_tensor(value) and value.is_floating_point() else value

    def to_fp32(_module: torch.nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        return tuple(as_fp32(a) for a in args), {k: as_fp32(v) for k, v in kwargs.items()}

    def to_model_dtype(_module: torch.nn.Module, _args: tuple, output: torch.Tensor) -> torch.Tensor:
        return output.to(model_dtype)

    count = 0
    for module in model.modules():
        if isinstance(module, kernels):
            module.register_forward_pre_hook(to_fp32, with_kwargs=True)
            module.register_forward_hook(to_model_dtype)
            count += 1
    return count


def prepare_caption(text: str, *, dedupe_period: bool = False) -> str:
    """The caption Grounding DINO sees for an object description.

    Original rule: lowercase, strip, then always append "." ("a dog" -> "a dog.",
    "a dog." -> "a dog.."). ``dedupe_period=True`` appends only when missing.
    """
    caption = text.lower().strip()
    if dedupe_period and caption.endswith("."):
        return caption
    return caption + "."


def original_resize_shape(
    height: int, width: int, size: int = 800, max_size: int | None = 1333
) -> tuple[int, int]:
    """(height, width) after the original ``RandomResize([size], max_size)`` transform.

    Shorter side -> ``size`` unless the longer side would exceed ``max_size``; then the short
    side is ``round(max_size * short / long)`` and the long side ``int(short_new * long / short)``.
    """
    if max_size is not None:
        short, long = float(min(height, width)), float(max(height, width))
        if long / short * size > max_size:
            size = round(max_size * short / long)
    if (width <= height and width == size) or (height <= width and height == size):
        return height, width
    if width < height:
        return int(size * height / width), size
    return size, int(size * width / height)


def original_transform(
    frame: np.ndarray,
    size: int = 800,
    max_size: int | None = 1333,
    mean: Sequence[float] = (0.485, 0.456, 0.406),
    std: Sequence[float] = (0.229, 0.224, 0.225),
) -> torch.Tensor:
    """The original load_image transform of one uint8 RGB frame [H, W, 3] -> float32 [3, h, w].

    PIL bilinear resize by :func:`original_resize_shape`, ``ToTensor``, ``Normalize``.
    """
    from PIL import Image
    from torchvision.transforms import functional as tvf

    shape = original_resize_shape(frame.shape[0], frame.shape[1], size, max_size)
    image = tvf.resize(Image.fromarray(frame), list(shape))
    return tvf.normalize(tvf.to_tensor(image), mean=list(mean), std=list(std))


class GroundingDinoGrounder:
    """Boxes a caption on every frame of a clip with ``GroundingDinoForObjectDetection``.

    Build with :meth:`from_pretrained`. ``ground(clip, text)`` tokenises the caption once per
    clip and runs the frames ``frame_batch_size`` at a time (1 = the paper's one forward per
    frame; more trades memory for throughput on GPUs — on a 2-core CPU it was slower).
    The text encoder still runs inside every forward: it is ~0.3% of a frame's time at
    800 x 1333 (measured on the full-size model), not worth bypassing transformers for.
    With a bf16/fp16 ``dtype`` the deformable-attention sampling stays in fp32
    (``fp32_deformable_sampling``, see :func:`keep_deformable_sampling_in_fp32`).
    ``deformable_sampling`` picks how that sampling is computed: ``"gather"`` (one fused
    weighted gather, :mod:`tgs.ground.deformable_sampling`, ~12x faster on CPU),
    ``"grid_sample"`` (transformers' own code, or its hub kernel where one is installed), or
    ``"auto"`` = gather on CPU, transformers' elsewhere. Both give the same result up to float
    summation order.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        processor,
        *,
        device: torch.device,
        dtype: torch.dtype,
        box_threshold: float = 0.1,
        text_threshold: float = 0.25,
        frame_batch_size: int = 1,
        preprocess: str = "hf",
        dedupe_period: bool = False,
        fp32_deformable_sampling: bool = True,
        deformable_sampling: str = "auto",
        source: str = "",
    ) -> None:
        if not 0.0 <= box_threshold <= 1.0 or not 0.0 <= text_threshold <= 1.0:
            raise ValueError(
                f"thresholds must lie in [0, 1], got box_threshold={box_threshold}, text_threshold={text_threshold}"
            )
        if frame_batch_size < 1:
            raise ValueError(f"frame_batch_size must be >= 1, got {frame_batch_size}")
        if preprocess not in PREPROCESS_CHOICES:
            raise ValueError(f"preprocess: expected one of {PREPROCESS_CHOICES}, got {preprocess!r}")
        if deformable_sampling not in DEFORMABLE_SAMPLING_CHOICES:
            raise ValueError(
                f"deformable_sampling: expected one of {DEFORMABLE_SAMPLING_CHOICES}, got {deformable_sampling!r}"
            )
        if deformable_sampling == "auto":
            deformable_sampling = "gather" if torch.device(device).type == "cpu" else "grid_sample"
        self.deformable_sampling = deformable_sampling
        if deformable_sampling == "gather":
            use_gather_deformable_sampling(model)
        self.model = model
        self.processor = processor
        self.device = device
        self.dtype = dtype
        self.fp32_deformable_sampling = fp32_deformable_sampling and dtype != torch.float32
        if self.fp32_deformable_sampling:
            keep_deformable_sampling_in_fp32(model)
        self.box_threshold = float(box_threshold)
        # Kept for the record and for phrase labels; as in the original it never changes which boxes are kept.
        self.text_threshold = float(text_threshold)
        self.frame_batch_size = int(frame_batch_size)
        self.preprocess = preprocess
        self.dedupe_period = dedupe_period
        self.source = source

    @classmethod
    def from_pretrained(
        cls,
        source: str | Path = DEFAULT_SOURCE,
        *,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        box_threshold: float = 0.1,
        text_threshold: float = 0.25,
        frame_batch_size: int = 1,
        preprocess: str = "hf",
        dedupe_period: bool = False,
        fp32_deformable_sampling: bool = True,
        deformable_sampling: str = "auto",
    ) -> GroundingDinoGrounder:
        """Load model + processor from a hub id or a local directory (strict key check)."""
        from transformers import GroundingDinoForObjectDetection, GroundingDinoProcessor

        dev = resolve_device(device)
        dt = resolve_dtype(dtype, dev)
        what = "Grounding DINO (Ground stage)"
        model = load_model(
            GroundingDinoForObjectDetection, source, what=what, how_to_get=HOW_TO_GET, device=dev, dtype=dt
        )
        processor = load_processor(GroundingDinoProcessor, source, what=what, how_to_get=HOW_TO_GET)
        return cls(
            model,
            processor,
            device=dev,
            dtype=dt,
            box_threshold=box_threshold,
            text_threshold=text_threshold,
            frame_batch_size=frame_batch_size,
            preprocess=preprocess,
            dedupe_period=dedupe_period,
            fp32_deformable_sampling=fp32_deformable_sampling,
            deformable_sampling=deformable_sampling,
            source=str(source),
        )

    # ------------------------------------------------------------------ preprocessing

    def _sizes(self) -> tuple[int, int | None]:
        size = self.processor.image_processor.size  # a transformers SizeDict
        shortest, longest = getattr(size, "shortest_edge", None), getattr(size, "longest_edge", None)
        if not shortest:
            raise ValueError(
                f"preprocess='original' needs a shortest_edge size in the image processor, got {size}"
            )
        return int(shortest), (int(longest) if longest else None)

    def _pixels_original(self, frames: np.ndarray) -> dict[str, torch.Tensor]:
        shortest, longest = self._sizes()
        ip = self.processor.image_processor
        pixel_values = torch.stack(
            [original_transform(f, shortest, longest, mean=ip.image_mean, std=ip.image_std) for f in frames]
        )
        mask = torch.ones((pixel_values.shape[0], *pixel_values.shape[-2:]), dtype=torch.long)
        return {"pixel_values": pixel_values, "pixel_mask": mask}

    def pixel_inputs(self, frames: np.ndarray) -> dict[str, torch.Tensor]:
        """pixel_values float32 [B, 3, h, w] and pixel_mask [B, h, w] for uint8 RGB frames [B, H, W, 3]."""
        if self.preprocess == "original":
            return self._pixels_original(frames)
        enc = self.processor.image_processor(images=list(frames), return_tensors="pt")
        return {"pixel_values": enc["pixel_values"], "pixel_mask": enc["pixel_mask"]}

    # ------------------------------------------------------------------ grounding

    def tokenize(self, caption: str) -> dict[str, torch.Tensor]:
        """input_ids / attention_mask / token_type_ids [1, L] of one caption."""
        enc = self.processor.tokenizer(caption, return_tensors="pt", return_token_type_ids=True)
        return {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids")}

    def _batches(self, num_frames: int) -> Iterator[slice]:
        for start in range(0, num_frames, self.frame_batch_size):
            yield slice(start, min(start + self.frame_batch_size, num_frames))

    @torch.inference_mode()
    def ground(self, clip: Clip, text: str) -> Boxes:
        """All boxes above box_threshold on every frame, in query order, xyxy in clip pixels.

        Returns Boxes with one FrameBoxes per frame (possibly empty) and ``text`` = the caption.
        """
        caption = prepare_caption(text, dedupe_period=self.dedupe_period)
        text_inputs = {k: v.to(self.device) for k, v in self.tokenize(caption).items()}
        height, width = clip.size
        scale = torch.tensor([width, height, width, height], dtype=torch.float32)
        per_frame: list[FrameBoxes] = []
        for batch in self._batches(clip.num_frames):
            pixels = self.pixel_inputs(clip.frames[batch])
            n = pixels["pixel_values"].shape[0]
            outputs = self.model(
                pixel_values=pixels["pixel_values"].to(self.device, self.dtype),
                pixel_mask=pixels["pixel_mask"].to(self.device),
                **{k: v.expand(n, -1) for k, v in text_inputs.items()},
            )
            scores = outputs.logits.float().sigmoid().amax(dim=-1).cpu()  # [n, Q]
            boxes = outputs.pred_boxes.float().cpu()  # [n, Q, 4] normalised cx, cy, w, h
            per_frame.extend(self._select(scores[i], boxes[i], scale) for i in range(n))
        return Boxes(tuple(per_frame), (height, width), caption)

    def _select(self, scores: torch.Tensor, cxcywh: torch.Tensor, scale: torch.Tensor) -> FrameBoxes:
        """Keep queries with score > threshold (in query order); scale, then cxcywh -> xyxy.

        The scaling happens before the format change, as in the original script.
        """
        from torchvision.ops import box_convert

        keep = torch.nonzero(scores > self.box_threshold).flatten()
        if keep.numel() == 0:
            return FrameBoxes.empty()
        xyxy = box_convert(cxcywh[keep] * scale, in_fmt="cxcywh", out_fmt="xyxy")
        return FrameBoxes(
            xyxy.numpy().astype(np.float32),
            scores[keep].numpy().astype(np.float32),
            keep.numpy().astype(np.int64),
        )
