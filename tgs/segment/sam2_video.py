"""The Segment stage, propagation mode: a SAM2-family video model (transformers
``Sam2VideoModel`` or ``EdgeTamVideoModel``) tracks the grounded objects through the whole clip,
so frames where grounding failed still get a mask.

Not in the paper (which segments frames independently); this is the improved mode. The
clip's frames are the keyframes: each object's boxes seed and re-seed it under a
:class:`~tgs.segment.propagation.PropagationPolicy` ("all" frames that have a box, the "best"
scoring one, or the "first" one), and :class:`~tgs.segment.propagation.PropagationEngine`
propagates backward then forward from each object's first seed. Masks come from the low-res
logits resized straight to the clip size (> 0), probabilities are their sigmoid, exactly as
in the image mode.

``segment_many`` runs every object of a clip in one propagation: each frame is encoded once,
and each object's masks equal those of ``segment`` on that object alone (tested in fp32).
"""


from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from tgs.devices import resolve_device, resolve_dtype
from tgs.models.hf_loading import load_model, load_processor, resolve_pretrained_source
from tgs.segment._sam2_common import PREPROCESS_CHOICES
from tgs.segment.frame_source import ArrayFrameSource, FrameSource
from tgs.segment.online import OnlineTracker
from tgs.segment.propagation import (
    SEED_CHOICES,
    ObjectPrompts,
    PropagationEngine,
    PropagationPolicy,
    PropagationStats,
    choose_seed_frames,
)
from tgs.segment.sam2_image import DEFAULT_SOURCE, HOW_TO_GET, check_frame_boxes
from tgs.types import Clip, FrameResult, Masks

__all__ = [
    "PROPAGATION_MODEL_KEYS",
    "SEED_CHOICES",
    "Sam2VideoSegmenter",
    "choose_seed_frames",
    "default_propagation_model",
    "video_model_class",
]

logger = logging.getLogger(__name__)


PROPAGATION_MODEL_KEYS = (
    "edgetam_video",
    "sam2_video_tiny",
    "sam2_video_small",
    "sam2_video_base_plus",
    "sam2_video_large",
    "sam3_tracker_video",
)
"""Model registry keys of the propagation models (``tgs models list`` shows their sources)."""


def default_propagation_model(device: str | torch.device | None = None) -> str:
    """The registry key a user would pick for ``device``: EdgeTAM on a CPU (the fastest per
    frame of the five in benchmarks/propagation_bench.py), the paper's SAM2.1-L elsewhere."""
    kind = torch.device(device).type if device is not None and str(device) != "auto" else resolve_device(device).type
    return "edgetam_video" if kind == "cpu" else "sam2_video_large"


def video_model_class(source: str | Path) -> type:
    """``EdgeTamVideoModel`` for an EdgeTAM checkpoint, ``Sam3TrackerVideoModel`` for a SAM 3 one (its
    tracker: ``facebook/sam3`` holds detector + tracker, the detector's keys are ignored), else
    ``Sam2VideoModel`` (by config model_type)."""
    from transformers import AutoConfig, EdgeTamVideoModel, Sam2VideoModel, Sam3TrackerVideoModel

    try:
        model_type = AutoConfig.from_pretrained(str(source)).model_type
    except (OSError, ValueError):  # unreadable: the loader reports it against Sam2VideoModel
        path = Path(str(source)) / "config.json"
        model_type = json.loads(path.read_text()).get("model_type", "") if path.is_file() else ""
    if model_type.startswith("sam3"):
        return Sam3TrackerVideoModel
    return EdgeTamVideoModel if model_type.startswith("edgetam") else Sam2VideoModel


def video_processor_class(model_cls: type) -> type:
    """The processor of a propagation model class: SAM 3's tracker has its own (same API)."""
    from transformers import Sam2VideoProcessor, Sam3TrackerVideoModel, Sam3TrackerVideoProcessor

    return Sam3TrackerVideoProcessor if model_cls is Sam3TrackerVideoModel else Sam2VideoProcessor


class Sam2VideoSegmenter:
    """Box prompts on keyframes, propagated forward and backward through the clip."""

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
        policy: PropagationPolicy | None = None,
    ) -> None:
        if seed_frames not in SEED_CHOICES:
            raise ValueError(f"seed_frames: expected one of {SEED_CHOICES}, got {seed_frames!r}")
        if preprocess not in PREPROCESS_CHOICES:
            raise ValueError(f"preprocess: expected one of {PREPROCESS_CHOICES}, got {preprocess!r}")
        self.model = model
        self.processor = processor
        self.device = device
        self.dtype = dtype
        self.policy = policy or PropagationPolicy(seed_frames=seed_frames)
        self.seed_frames = self.policy.seed_frames
        self.preprocess = preprocess
        self.source = source
        self.engine = PropagationEngine(model, processor, device=device, dtype=dtype, preprocess=preprocess)

    @classmethod
    def from_pretrained(
        cls,
        source: str | Path = DEFAULT_SOURCE,
        *,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        seed_frames: str = "all",
        preprocess: str = "hf",
        policy: PropagationPolicy | None = None,
    ) -> Sam2VideoSegmenter:
        """Load a SAM2.1 or EdgeTAM video model + Sam2VideoProcessor strictly (an image-only
        SAM2 checkpoint lacks the memory modules and is rejected with the missing keys listed)."""

        dev = resolve_device(device)
        dt = resolve_dtype(dtype, dev)
        what = "SAM2-family video model (Segment stage, propagation)"
        model_cls = video_model_class(resolve_pretrained_source(source, what=what, how_to_get=HOW_TO_GET))
        model = load_model(model_cls, source, what=what, how_to_get=HOW_TO_GET, device=dev, dtype=dt)
        processor = load_processor(video_processor_class(model_cls), source, what=what, how_to_get=HOW_TO_GET)
        return cls(
            model,
            processor,
            device=dev,
            dtype=dt,
            seed_frames=seed_frames,
            preprocess=preprocess,
            source=str(source),
            policy=policy,
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
        meta["seed_frames"]: the frames chosen as seeds; meta["conditioned_frames"]: the
        frames decoded from a box (seeds and re-seeds); meta["object_score_logits"]: float32
        [T], SAM2's object-presence logit per frame (< 0: predicted absent, mask empty).
        """
        return self.segment_many(clip, [boxes], None if scores is None else [scores])[0]

    def segment_many(
        self,
        clip: Clip,
        boxes_per_object: Sequence[Sequence[np.ndarray | None]],
        scores_per_object: Sequence[Sequence[float | None] | None] | None = None,
    ) -> list[Masks]:
        """One Masks per object (as :meth:`segment`), all objects in one propagation."""
        if scores_per_object is not None and len(scores_per_object) != len(boxes_per_object):
            raise ValueError(
                f"expected one score list per object: {len(boxes_per_object)} objects, "
                f"{len(scores_per_object)} score lists"
            )
        frames = tuple(range(clip.num_frames))
        prompts = []
        for k, boxes in enumerate(boxes_per_object):
            scores = None if scores_per_object is None else scores_per_object[k]
            if scores is not None and len(scores) != clip.num_frames:
                raise ValueError(f"object {k}: expected one score per frame ({clip.num_frames}), got {len(scores)}")
            prompts.append(ObjectPrompts(frames, tuple(check_frame_boxes(clip, boxes)),
                                         None if scores is None else tuple(scores)))
        if not prompts:
            return []
        num = len(prompts)
        masks = np.zeros((num, clip.num_frames, *clip.size), dtype=np.bool_)
        probs = np.zeros((num, clip.num_frames, *clip.size), dtype=np.float32)
        presence = np.full((num, clip.num_frames), np.nan, dtype=np.float32)
        conditioned = np.zeros((num, clip.num_frames), dtype=np.bool_)
        results = self.engine.run(ArrayFrameSource(clip.frames, clip.frame_times), prompts, self.policy,
                                  with_probs=True)
        for result in results:
            masks[:, result.index] = result.masks
            probs[:, result.index] = result.probs
            presence[:, result.index] = result.scores
            conditioned[:, result.index] = result.seeded
        out = []
        for k, prompt in enumerate(prompts):
            seeds = self.seed_frames_of(prompt, self.policy)
            if not seeds:
                out.append(Masks.empty(clip.num_frames, clip.size))
                continue
            meta = {
                "seed_frames": seeds,
                "conditioned_frames": np.flatnonzero(conditioned[k]).tolist(),
                "object_score_logits": presence[k],
            }
            out.append(Masks(masks[k], probs[k], meta=meta))
        return out

    def propagate(
        self,
        source: FrameSource,
        prompts: Sequence[ObjectPrompts],
        policy: PropagationPolicy | None = None,
        *,
        stats: PropagationStats | None = None,
        on_frame: Callable[[PropagationStats], None] | None = None,
    ) -> Iterator[FrameResult]:
        """Every object through every frame of ``source`` in one propagation, streamed: one
        :class:`tgs.types.FrameResult` per source frame (no probabilities), memory bounded
        whatever the video's length. policy: default the segmenter's."""
        return self.engine.run(source, list(prompts), policy or self.policy, stats=stats, on_frame=on_frame,
                               with_probs=False)

    def online_tracker(self, policy: PropagationPolicy | None = None, *, with_probs: bool = False) -> OnlineTracker:
        """A tracker of a live stream on this model (:class:`~tgs.segment.online.OnlineTracker`: one
        frame at a time, seeds given per frame, memory flat). policy: default the segmenter's;
        only its ``max_conditioning_frames`` applies."""
        return OnlineTracker(self.engine, policy or self.policy, with_probs=with_probs)

    def seed_frames_of(self, prompt: ObjectPrompts, policy: PropagationPolicy | None = None) -> list[int]:
        """The frames that seed ``prompt``'s object under ``policy`` (default the segmenter's), in order."""
        return sorted(int(f) for f in self.engine.plan(prompt, policy or self.policy)[0])
