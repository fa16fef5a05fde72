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

Long captions: Grounding DINO reads at most ``config.max_text_len`` tokens (256 for the
released models, :func:`caption_token_limit`). The original tokenizes the whole caption,
builds its phrase masks on it, then keeps the first ``max_text_len`` tokens
(``groundingdino.py``); transformers' model does the same slicing but then fails on the
longer attention mask. :meth:`GroundingDinoGrounder.tokenize` cuts the attention mask to the
limit so the model reproduces the original's truncation, and logs a warning
("caption truncation").

Several expressions of one video (:meth:`GroundingDinoGrounder.ground_many`): everything that
depends on the image only is transformers' ``GroundingDinoConvModel`` (``model.model.backbone``:
the Swin backbone, the downsampled pixel masks and the sine position embeddings); from the input
projections on, every step (text encoder, feature enhancer with its image-text fusion, query
selection, decoder) reads the caption. So the backbone runs once per frame and its outputs are
handed to transformers' own forward for every expression (:func:`_reused_backbone`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tgs import fast_paths
from tgs.devices import compile_backend, compile_modules, frames_to_device, resolve_device, resolve_dtype
from tgs.ground.deformable_sampling import GatherDeformableAttention, use_gather_deformable_sampling
from tgs.models.hf_loading import load_model, load_processor
from tgs.types import Boxes, Clip, FrameBoxes

__all__ = [
    "DEFAULT_SOURCE",
    "PREPROCESS_CHOICES",
    "GroundingDinoGrounder",
    "caption_token_limit",
    "device_original_transform",
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


_PIL_PRECISION_BITS = 22  # Pillow's fixed-point precision for 8-bit resampling (Resample.c)


def _pil_bilinear_taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Source indices [out, k] and fixed-point weights [out, k] of Pillow's bilinear resize along one axis.

    Pillow's coefficients (``precompute_coeffs`` + ``normalize_coeffs_8bpc``): a triangle filter
    widened by the downscale factor, centred at ``(i + 0.5) * in / out``, window bounds rounded
    by truncation, weights normalised in double precision then scaled by 2**22 and rounded.
    Unused taps get weight 0 (and a valid index).
    """
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = filterscale  # the bilinear filter's support is 1
    ksize = int(np.ceil(support)) * 2 + 1
    center = (np.arange(out_size, dtype=np.float64) + 0.5) * scale
    first = np.maximum(np.trunc(center - support + 0.5), 0).astype(np.int64)
    count = np.minimum(np.trunc(center + support + 0.5), in_size).astype(np.int64) - first
    taps = np.arange(ksize)
    distance = np.abs((taps[None, :] + first[:, None] - center[:, None] + 0.5) / filterscale)
    weights = np.where((distance < 1.0) & (taps[None, :] < count[:, None]), 1.0 - distance, 0.0)
    total = np.zeros(out_size)
    for k in range(ksize):  # summed in tap order, as Pillow does
        total = total + weights[:, k]
    weights = weights / np.where(total == 0.0, 1.0, total)[:, None]
    fixed = np.trunc(0.5 + weights * (1 << _PIL_PRECISION_BITS)).astype(np.int32)
    return np.minimum(first[:, None] + taps[None, :], in_size - 1), fixed


def _pil_resize_pass(x: torch.Tensor, out_size: int, dim: int) -> torch.Tensor:
    """One Pillow 8-bit resampling pass of int32 values along ``dim``, rounded and clipped to 0..255."""
    index, fixed = _pil_bilinear_taps(x.shape[dim], out_size)
    gathered = x.index_select(dim, torch.from_numpy(index.reshape(-1)).to(x.device))
    gathered = gathered.unflatten(dim, index.shape)  # [..., out, k, ...]
    shape = [1] * gathered.dim()
    shape[dim], shape[dim + 1] = index.shape
    weights = torch.from_numpy(fixed).to(x.device).reshape(shape)
    total = (gathered * weights).sum(dim=dim + 1, dtype=torch.int32) + (1 << (_PIL_PRECISION_BITS - 1))
    return (total >> _PIL_PRECISION_BITS).clamp_(0, 255)


def device_original_transform(
    frames: torch.Tensor,
    shape: tuple[int, int],
    mean: Sequence[float] = (0.485, 0.456, 0.406),
    std: Sequence[float] = (0.229, 0.224, 0.225),
) -> torch.Tensor:
    """:func:`original_transform` with tensor ops on the frames' device: uint8 [N, H, W, 3] -> float32 [N, 3, h, w].

    Pillow's bilinear resize reproduced in integer arithmetic (horizontal pass, then vertical,
    each rounded to 8 bits, with Pillow's fixed-point weights), so the pixels equal the PIL
    path's bit for bit (``tests/ground``); then ``ToTensor`` and ``Normalize`` as float ops.
    """
    x = frames.to(torch.int32)
    (height, width), (out_h, out_w) = x.shape[1:3], shape
    if out_w != width:
        x = _pil_resize_pass(x, out_w, 2)
    if out_h != height:
        x = _pil_resize_pass(x, out_h, 1)
    x = x.permute(0, 3, 1, 2).float().div(255)
    mean_t = torch.tensor(mean, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    return x.sub_(mean_t).div_(std_t)


def caption_token_limit(source_or_config: Any) -> int:
    """How many caption tokens Grounding DINO reads (``config.max_text_len``; 256 for the released models).

    Accepts a ``GroundingDinoConfig`` (or any object with ``max_text_len``), a loaded model, or a
    hub id / local directory whose config is read (offline: from the local cache). Longer captions
    are truncated to this many tokens ([CLS] included), as the original does.
    """
    config = getattr(source_or_config, "config", source_or_config)
    if not hasattr(config, "max_text_len"):
        from transformers import GroundingDinoConfig

        config = GroundingDinoConfig.from_pretrained(str(source_or_config))
    return int(config.max_text_len)


@contextmanager
def _reused_backbone(backbone: torch.nn.Module, outputs: tuple[list, list], repeats: int) -> Iterator[None]:
    """Inside the block ``backbone`` (transformers' GroundingDinoConvModel) returns ``outputs``.

    ``outputs`` = (``[(feature_map [n, C, h, w], mask [n, h, w]), ...]``, ``[position [n, D, h, w], ...]``),
    what the backbone returned for n frames; tiled ``repeats`` times along the batch (expression-major,
    matching the text inputs). Only the instance's ``forward`` is replaced, so the module tree and its
    state-dict keys stay as they are; the original forward is restored on exit.
    """

    def tile(t: torch.Tensor) -> torch.Tensor:
        return t if repeats == 1 else t.repeat(repeats, *([1] * (t.dim() - 1)))

    features, positions = outputs

    def cached(_pixel_values: torch.Tensor, _pixel_mask: torch.Tensor) -> tuple[list, list]:
        return [(tile(f), tile(m)) for f, m in features], [tile(p) for p in positions]

    backbone.forward = cached  # type: ignore[method-assign]
    try:
        yield
    finally:
        del backbone.forward


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

    ``ground_many(clip, texts)`` grounds several captions on one clip with the image backbone
    run once per frame; ``expression_batch_size`` captions share a forward (1, the default: one
    caption per forward, bit-identical to :meth:`ground`; more, or None = all of a frame's
    captions: padded batches, equal to one at a time only up to float rounding, which can reorder
    near-equal proposals in the query selection and so change the kept boxes; the preset switch
    ``batch_captions``).
    ``device_preprocess`` moves frames to the device as uint8 and resizes / normalises them there
    ("hf": the processor's own torchvision ops; "original": Pillow's resize in integer tensor
    ops, :func:`device_original_transform`); both equal the host path. ``compile`` wraps the backbone, text encoder, encoder and
    decoder in ``torch.compile`` (same results to float rounding).
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
        expression_batch_size: int | None = 1,
        device_preprocess: bool = False,
        compile: bool | str = False,
        source: str = "",
    ) -> None:
        if not 0.0 <= box_threshold <= 1.0 or not 0.0 <= text_threshold <= 1.0:
            raise ValueError(
                f"thresholds must lie in [0, 1], got box_threshold={box_threshold}, text_threshold={text_threshold}"
            )
        if frame_batch_size < 1:
            raise ValueError(f"frame_batch_size must be >= 1, got {frame_batch_size}")
        if expression_batch_size is not None and expression_batch_size < 1:
            raise ValueError(f"expression_batch_size must be >= 1 (or None), got {expression_batch_size}")
        if preprocess not in PREPROCESS_CHOICES:
            raise ValueError(f"preprocess: expected one of {PREPROCESS_CHOICES}, got {preprocess!r}")
        if deformable_sampling not in DEFORMABLE_SAMPLING_CHOICES:
            raise ValueError(
                f"deformable_sampling: expected one of {DEFORMABLE_SAMPLING_CHOICES}, got {deformable_sampling!r}"
            )
        if deformable_sampling == "auto":
            deformable_sampling = "gather" if torch.device(device).type == "cpu" else "grid_sample"
        self.deformable_sampling = deformable_sampling
        if deformable_sampling == "gather" and not use_gather_deformable_sampling(model):
            # e.g. transformers renamed its attention class: its own grid_sample code runs
            fast_paths.fell_back("ground.gather_sampling", "no MultiScaleDeformableAttention module to replace")
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
        self.expression_batch_size = expression_batch_size
        self.device_preprocess = bool(device_preprocess)
        self.compile = compile_backend(compile)  # None = eager
        if self.compile is not None:
            fast_paths.ran("compile")
            inner = model.model
            compile_modules(
                [inner.backbone.conv_encoder, inner.text_backbone, inner.encoder, inner.decoder], self.compile
            )
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
        expression_batch_size: int | None = 1,
        device_preprocess: bool = False,
        compile: bool | str = False,
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
            expression_batch_size=expression_batch_size,
            device_preprocess=device_preprocess,
            compile=compile,
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
        """pixel_values float32 [B, 3, h, w] and pixel_mask [B, h, w] for uint8 RGB frames [B, H, W, 3].

        With ``device_preprocess`` they are computed (and returned) on the model's device.
        """
        if self.device_preprocess:
            return self._pixels_on_device(frames)
        if self.preprocess == "original":
            return self._pixels_original(frames)
        enc = self.processor.image_processor(images=list(frames), return_tensors="pt")
        return {"pixel_values": enc["pixel_values"], "pixel_mask": enc["pixel_mask"]}

    def _pixels_on_device(self, frames: np.ndarray) -> dict[str, torch.Tensor]:
        ip = self.processor.image_processor
        on_device = frames_to_device(frames, self.device)  # uint8 [B, H, W, 3]
        if self.preprocess == "hf":
            enc = ip(images=list(on_device.permute(0, 3, 1, 2)), return_tensors="pt", device=self.device)
            return {"pixel_values": enc["pixel_values"], "pixel_mask": enc["pixel_mask"]}
        shortest, longest = self._sizes()
        shape = original_resize_shape(frames.shape[1], frames.shape[2], shortest, longest)
        pixel_values = device_original_transform(on_device, shape, mean=ip.image_mean, std=ip.image_std)
        mask = torch.ones((pixel_values.shape[0], *shape), dtype=torch.long, device=pixel_values.device)
        return {"pixel_values": pixel_values, "pixel_mask": mask}

    # ------------------------------------------------------------------ grounding

    @property
    def caption_token_limit(self) -> int:
        """How many caption tokens the model reads (see :func:`caption_token_limit`)."""
        return caption_token_limit(self.model.config)

    def tokenize(self, caption: str) -> dict[str, torch.Tensor]:
        """input_ids / token_type_ids [1, L] and attention_mask [1, min(L, limit)] of one caption.

        Caption truncation: past :attr:`caption_token_limit` tokens, the ids stay whole (the
        model derives its phrase masks from the whole caption, then keeps the first ``limit``
        tokens, as the original does) and the attention mask is cut to the limit, which is
        what transformers' head expects. Logged as a warning.
        """
        enc = self.processor.tokenizer(caption, return_tensors="pt", return_token_type_ids=True)
        out = {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
        limit = self.caption_token_limit
        if out["input_ids"].shape[1] > limit:
            logger.warning(
                "caption truncation: %r has %d tokens; Grounding DINO reads the first %d, as the original does",
                caption[:60] + ("..." if len(caption) > 60 else ""), out["input_ids"].shape[1], limit,
            )
            out["attention_mask"] = out["attention_mask"][:, :limit]
        return out

    def _text_batch(self, tokens: Sequence[dict[str, torch.Tensor]], frames: int) -> dict[str, torch.Tensor]:
        """Several tokenised captions as one batch: right-padded with the pad id (0, attention 0),
        each caption repeated for ``frames`` frames (expression-major rows), on the device.

        Padding changes no real token's result *up to float rounding*: a pad token is no phrase
        delimiter, so transformers' phrase masks keep it out of every caption token's attention,
        and the attention mask hides it from the fusion, the decoder and the scores; but the
        padded shapes change the order of the float sums: scores move by rounding and near-equal
        proposals can swap places in the query selection, which can change the kept boxes
        (measured in ``docs/performance.md``). Hence ``batch_captions`` is a preset switch, off.
        """
        longest = max(t["input_ids"].shape[1] for t in tokens)
        masked = min(longest, self.caption_token_limit)
        pad_id = self.processor.tokenizer.pad_token_id or 0
        rows: dict[str, list[torch.Tensor]] = {"input_ids": [], "attention_mask": [], "token_type_ids": []}
        for t in tokens:
            for key, width, fill in (
                ("input_ids", longest, pad_id),
                ("token_type_ids", longest, 0),
                ("attention_mask", masked, 0),
            ):
                row = t[key][0]
                rows[key].append(torch.cat([row, row.new_full((width - row.shape[0],), fill)]))
        return {
            k: torch.stack(v).repeat_interleave(frames, dim=0).to(self.device, non_blocking=True)
            for k, v in rows.items()
        }

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

    @torch.inference_mode()
    def ground_many(self, clip: Clip, texts: Sequence[str]) -> list[Boxes]:
        """``[ground(clip, t) for t in texts]`` with the image backbone run once per frame.

        Per frame batch: pixels and backbone once; then transformers' forward per group of
        ``expression_batch_size`` captions with the backbone's outputs reused
        (:func:`_reused_backbone`), so the text encoder, the fusion encoder, query selection and
        the decoder run per caption exactly as in :meth:`ground`. Scores and boxes stay on the
        device until every frame is done (one host transfer per call).
        """
        captions = [prepare_caption(t, dedupe_period=self.dedupe_period) for t in texts]
        if not captions:
            return []
        tokens = [self.tokenize(c) for c in captions]
        group_size = self.expression_batch_size or len(captions)
        groups = [list(range(i, min(i + group_size, len(captions)))) for i in range(0, len(captions), group_size)]
        backbone = self.model.model.backbone
        scores: list[list[torch.Tensor]] = [[] for _ in captions]  # per caption: [n, Q] per frame batch
        boxes: list[list[torch.Tensor]] = [[] for _ in captions]
        for batch in self._batches(clip.num_frames):
            pixels = self.pixel_inputs(clip.frames[batch])
            pixel_values = pixels["pixel_values"].to(self.device, self.dtype, non_blocking=True)
            pixel_mask = pixels["pixel_mask"].to(self.device, non_blocking=True)
            n = pixel_values.shape[0]
            image_part = backbone(pixel_values, pixel_mask)
            for group in groups:
                if len(group) > 1:
                    fast_paths.ran("ground.caption_batch")
                rows = len(group) * n
                text = self._text_batch([tokens[i] for i in group], n)
                with _reused_backbone(backbone, image_part, len(group)):
                    outputs = self.model(
                        # only its shape and device are read once the backbone is reused
                        pixel_values=pixel_values.new_zeros(()).expand(rows, *pixel_values.shape[1:]),
                        pixel_mask=pixel_mask.repeat(len(group), 1, 1),
                        **text,
                    )
                group_scores = outputs.logits.float().sigmoid().amax(dim=-1)  # [rows, Q]
                group_boxes = outputs.pred_boxes.float()  # [rows, Q, 4]
                for j, i in enumerate(group):
                    scores[i].append(group_scores[j * n : (j + 1) * n])
                    boxes[i].append(group_boxes[j * n : (j + 1) * n])
        height, width = clip.size
        scale = torch.tensor([width, height, width, height], dtype=torch.float32)
        all_scores = torch.stack([torch.cat(s) for s in scores]).cpu()  # [E, T, Q]: the one host transfer
        all_boxes = torch.stack([torch.cat(b) for b in boxes]).cpu()  # [E, T, Q, 4]
        return [
            Boxes(
                tuple(self._select(all_scores[e, t], all_boxes[e, t], scale) for t in range(clip.num_frames)),
                (height, width),
                caption,
            )
            for e, caption in enumerate(captions)
        ]

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
