"""The Segment stage, propagation mode: SAM2 video (transformers ``Sam2VideoModel``) tracks the
grounded object through the whole clip, so frames where grounding failed still get a mask.

Not in the paper (which segments frames independently); this is the improved mode. How it runs:

1. Seed frames get the box prompt (``seed_frames``: "all" frames that have a box, the "best"
   scoring one, or the "first" one). Each seed is decoded on its own, like an image prediction.
2. Propagation runs forward from the earliest seed to the last frame and then backward from
   it to frame 0, with SAM2's memory (the seeds plus the 6 most recent frames).
3. Masks come from the low-res logits resized straight to the clip size (> 0), probabilities
   are their sigmoid, exactly as in the image mode.

Memory stays bounded by the clip itself: frames are preprocessed lazily when the model asks
for them (one 1024 x 1024 frame at a time instead of the whole video up front), only one
frame's vision features are cached, and the 1024 x 1024 mask logits that transformers keeps
per frame (needed only while that frame's memory is encoded) are dropped once it is done.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from tgs.devices import resolve_device, resolve_dtype
from tgs.models.hf_loading import load_model, load_processor
from tgs.segment._sam2_common import PREPROCESS_CHOICES, low_res_to_masks_and_probs, pixel_values
from tgs.segment.sam2_image import DEFAULT_SOURCE, HOW_TO_GET, check_frame_boxes
from tgs.types import Clip, Masks

__all__ = ["SEED_CHOICES", "Sam2VideoSegmenter", "choose_seed_frames"]

logger = logging.getLogger(__name__)

SEED_CHOICES = ("all", "best", "first")
OBJECT_ID = 1


def choose_seed_frames(
    boxes: Sequence[np.ndarray | None], scores: Sequence[float | None] | None, rule: str
) -> list[int]:
    """Frames that receive the box prompt under ``rule`` ("all", "best" or "first").

    "best" needs ``scores`` (one per frame, None where there is no box); ties go to the
    earliest frame. Returns [] when no frame has a box.
    """
    prompted = [i for i, b in enumerate(boxes) if b is not None]
    if not prompted or rule == "all":
        return prompted
    if rule == "first":
        return prompted[:1]
    if rule != "best":
        raise ValueError(f"seed_frames: expected one of {SEED_CHOICES}, got {rule!r}")
    if scores is None or len(scores) != len(boxes):
        raise ValueError("seed_frames='best' needs one score per frame (the grounding score of each box)")
    missing = [i for i in prompted if scores[i] is None]
    if missing:
        raise ValueError(f"seed_frames='best': frames {missing} have a box but no score")
    return [max(prompted, key=lambda i: (float(scores[i]), -i))]  # type: ignore[arg-type]


def _lazy_session_class():
    """A Sam2VideoInferenceSession that preprocesses a frame only when the model asks for it."""
    from transformers.models.sam2_video.modeling_sam2_video import Sam2VideoInferenceSession

    class LazyFrameSession(Sam2VideoInferenceSession):
        def __init__(self, num_frames: int, load_frame: Callable[[int], torch.Tensor], **kwargs) -> None:
            super().__init__(video=None, **kwargs)
            self._num_frames = num_frames
            self._load_frame = load_frame

        @property
        def num_frames(self) -> int:
            return self._num_frames

        def get_frame(self, frame_idx: int) -> torch.Tensor:
            return self._load_frame(frame_idx).to(self.inference_device, self.dtype)

    return LazyFrameSession


class Sam2VideoSegmenter:
    """Box prompts on seed frames, propagated forward and backward through the clip."""

    def __init__(
        self,
        model: torch.nn.Module,
        processor,
        *,
        device: torch.device,
        dtype: torch.dtype,
        seed_frames: str = "all",
        preprocess: str = "hf",
        source: str = "",
    ) -> None:
        if seed_frames not in SEED_CHOICES:
            raise ValueError(f"seed_frames: expected one of {SEED_CHOICES}, got {seed_frames!r}")
        if preprocess not in PREPROCESS_CHOICES:
            raise ValueError(f"preprocess: expected one of {PREPROCESS_CHOICES}, got {preprocess!r}")
        self.model = model
        self.processor = processor
        self.device = device
        self.dtype = dtype
        self.seed_frames = seed_frames
        self.preprocess = preprocess
        self.source = source

    @classmethod
    def from_pretrained(
        cls,
        source: str | Path = DEFAULT_SOURCE,
        *,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        seed_frames: str = "all",
        preprocess: str = "hf",
    ) -> Sam2VideoSegmenter:
        """Load Sam2VideoModel + Sam2VideoProcessor strictly (an image-only SAM2 checkpoint
        lacks the memory modules and is rejected with the missing keys listed)."""
        from transformers import Sam2VideoModel, Sam2VideoProcessor

        dev = resolve_device(device)
        dt = resolve_dtype(dtype, dev)
        what = "SAM2 video model (Segment stage, propagation)"
        model = load_model(Sam2VideoModel, source, what=what, how_to_get=HOW_TO_GET, device=dev, dtype=dt)
        processor = load_processor(Sam2VideoProcessor, source, what=what, how_to_get=HOW_TO_GET)
        return cls(
            model,
            processor,
            device=dev,
            dtype=dt,
            seed_frames=seed_frames,
            preprocess=preprocess,
            source=str(source),
        )

    def segment(
        self,
        clip: Clip,
        boxes: Sequence[np.ndarray | None],
        scores: Sequence[float | None] | None = None,
    ) -> Masks:
        """Masks bool [T, H, W] and probs float32 [T, H, W] on every frame of the clip.

        boxes: one xyxy box per frame in clip pixels, or None; scores: the grounding score of
        each box (needed for seed_frames="best"). No box anywhere -> all-empty masks.
        meta["seed_frames"]: the prompted frames; meta["object_score_logits"]: float32 [T],
        SAM2's object-presence logit per frame (< 0: predicted absent, mask empty).
        """
        frame_boxes = check_frame_boxes(clip, boxes)
        seeds = choose_seed_frames(frame_boxes, scores, self.seed_frames)
        if not seeds:
            return Masks.empty(clip.num_frames, clip.size)
        masks = np.zeros((clip.num_frames, *clip.size), dtype=np.bool_)
        probs = np.zeros((clip.num_frames, *clip.size), dtype=np.float32)
        presence = np.full((clip.num_frames,), np.nan, dtype=np.float32)
        for frame_idx, low_res, object_score in self.propagate(clip, {i: frame_boxes[i] for i in seeds}):
            m, p = low_res_to_masks_and_probs(low_res, clip.size)
            masks[frame_idx], probs[frame_idx], presence[frame_idx] = m[0], p[0], object_score
        return Masks(masks, probs, meta={"seed_frames": seeds, "object_score_logits": presence})

    @torch.inference_mode()
    def propagate(
        self, clip: Clip, seeds: dict[int, np.ndarray]
    ) -> Iterator[tuple[int, torch.Tensor, float]]:
        """Yield (frame index, low-res logits float32 [1, 1, h, w], object score logit) per frame.

        Forward from the earliest seed to the end, then backward from it to frame 0; every
        frame is yielded exactly once.
        """
        image_processor = self.processor.image_processor

        def load_frame(i: int) -> torch.Tensor:
            return pixel_values(clip.frames[i : i + 1], image_processor, self.preprocess)[0]

        height, width = clip.size
        session = _lazy_session_class()(
            clip.num_frames,
            load_frame,
            video_height=height,
            video_width=width,
            inference_device=self.device,
            inference_state_device=self.device,
            video_storage_device=self.device,
            dtype=self.dtype,
        )
        for frame_idx, box in sorted(seeds.items()):
            self.processor.add_inputs_to_inference_session(
                inference_session=session,
                frame_idx=frame_idx,
                obj_ids=OBJECT_ID,
                input_boxes=[[box.tolist()]],
            )
            self.model(inference_session=session, frame_idx=frame_idx)
            self._drop_high_res_logits(session, frame_idx)
        start = min(seeds)
        seen: set[int] = set()
        for reverse in (False, True):
            for out in self.model.propagate_in_video_iterator(
                session, start_frame_idx=start, reverse=reverse
            ):
                self._drop_high_res_logits(session, out.frame_idx)
                if out.frame_idx in seen:
                    continue
                seen.add(out.frame_idx)
                yield (
                    out.frame_idx,
                    out.pred_masks[:1].float().cpu(),
                    float(out.object_score_logits.reshape(-1)[0]),
                )

    @staticmethod
    def _drop_high_res_logits(session, frame_idx: int) -> None:
        """Free the per-frame 1024 x 1024 logits transformers keeps after memory encoding."""
        for outputs in session.output_dict_per_obj.values():
            for storage in outputs.values():
                stored = storage.get(frame_idx)
                if stored is not None:
                    stored.pop("high_res_masks", None)
