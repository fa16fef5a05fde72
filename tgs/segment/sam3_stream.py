"""SAM 3 over every frame of a video, streamed, with bounded memory: dense output for ``tgs segment``.

transformers' documented streaming use of ``Sam3VideoModel`` is: a session without a video,
the text prompts added, then per frame ``processor(images=frame)`` ->
``model(inference_session=session, frame=pixel_values)`` -> ``processor.postprocess_outputs``.
Left as it is, the session keeps every preprocessed frame (3 x 1008 x 1008 float32, 12 MB
each: 36 GB for 3,000 frames, two minutes at 25 fps) and every frame's tracker outputs for every object, which
is the out-of-memory its users report on long videos. Here the session keeps only:

- the current frame's pixels (a frame is read only while it is processed);
- per object, the tracker outputs of the last ``window`` frames (``max(num_maskmem,
  max_object_pointers_in_encoder) - 1``: what the memory attention and the object pointers
  of the next frame read) plus its conditioning frames (one per detection that started or
  re-conditioned it; transformers uses at most ``max_cond_frame_num`` of them).

Results are equal to the unpruned session (tested), and ``num_frames`` reports the frames
seen so far, as the unpruned session's does.

Pass 1 (:func:`track_candidates`) runs the model over every frame with one session per text,
the sessions fed each frame together and its vision features computed once for all of them
(:func:`tgs.segment.sam3.shared_vision_features`: one multi-prompt session is not equal to
one text at a time, see :mod:`tgs.segment.sam3`), and keeps each candidate's per-frame score,
box and COCO-RLE mask. The choice rule needs the whole video's
scores, so pass 2 (:func:`chosen_frames`) reads the frames again and yields the chosen
masklets' masks per frame for the dense sinks.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from tgs.segment.propagation import frame_result
from tgs.segment.sam3 import (
    Sam3GroundSegmenter,
    candidates_record,
    check_object_cap,
    choose_masklets,
    shared_vision_features,
)
from tgs.types import FrameResult

__all__ = ["StreamCandidates", "StreamStats", "chosen_frames", "track_candidates"]


@dataclass
class StreamStats:
    """Counters of a streamed run: frames, the most frames of outputs one object held, the most
    frames of pixels one session held, process seconds."""

    frames_done: int = 0
    peak_stored_frames: int = 0
    peak_pixel_frames: int = 0
    seconds: float = 0.0


@dataclass
class StreamCandidates:
    """Every candidate of one text over a video: identity -> {frame: (score, xyxy, COCO RLE)}."""

    text: str
    tracks: dict[int, dict[int, tuple[float, list[float], dict]]] = field(default_factory=dict)

    def identities(self) -> list[int]:
        return sorted(self.tracks)

    def scores(self, num_frames: int) -> np.ndarray:
        """float32 [N, T], NaN where a candidate is absent (rows in :meth:`identities` order)."""
        out = np.full((len(self.tracks), num_frames), np.nan, np.float32)
        for row, identity in enumerate(self.identities()):
            for frame, (score, _, _) in self.tracks[identity].items():
                out[row, frame] = score
        return out

    def choose(self, rule: str, threshold: float, num_frames: int, keyframes: Sequence[int] | None) -> list[int]:
        """Identities chosen by ``rule`` (see :func:`tgs.segment.sam3.choose_masklets`)."""
        ids = self.identities()
        return [ids[i] for i in choose_masklets(self.scores(num_frames), rule, threshold, keyframes)]

    def record(self, rule: str, threshold: float, chosen: Sequence[int]) -> dict[str, Any]:
        """The same ``sam3`` record as a clip's (:meth:`tgs.segment.sam3.Sam3Candidates.record`)."""
        return candidates_record("video", rule, threshold, chosen, [
            (identity, [{"frame": f, "score": s, "box": b, "mask": m} for f, (s, b, m) in sorted(frames.items())])
            for identity, frames in sorted(self.tracks.items())
        ])


def _rle(mask: np.ndarray) -> dict:
    from pycocotools import mask as coco_mask

    rle = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def _decode(rle: dict) -> np.ndarray:
    from pycocotools import mask as coco_mask

    with warnings.catch_warnings():  # pycocotools 2.0.x vs numpy 2's __array__(copy=...)
        warnings.simplefilter("ignore", DeprecationWarning)
        return coco_mask.decode({"size": rle["size"], "counts": rle["counts"].encode("ascii")}).astype(np.bool_)


def _session(stage: Sam3GroundSegmenter, size: tuple[int, int], bounded: bool) -> Any:
    """A streaming session; ``bounded``: it holds only the current frame's pixels (see the module docstring)."""
    from transformers.models.sam3_video.modeling_sam3_video import Sam3VideoInferenceSession

    class BoundedSession(Sam3VideoInferenceSession):
        seen = 0

        @property
        def num_frames(self) -> int:
            return self.seen

        def add_new_frame(self, pixel_values: torch.Tensor, frame_idx: int | None = None) -> int:
            assert frame_idx is not None  # the stream always names the frame
            self.processed_frames = {}  # the previous frame's pixels are never read again
            self.seen = max(self.seen, frame_idx + 1)
            return super().add_new_frame(pixel_values, frame_idx)

    cls = BoundedSession if bounded else Sam3VideoInferenceSession
    return cls(video=None, video_height=size[0], video_width=size[1], inference_device=stage.device,
               inference_state_device=stage.device, video_storage_device=stage.device, dtype=stage.dtype)


def _forget(session: Any, frame: int, window: int, stats: StreamStats) -> None:
    """Drop every object's tracker outputs older than ``window`` frames before ``frame`` (conditioning kept)."""
    for obj_idx, outputs in session.output_dict_per_obj.items():
        other = outputs["non_cond_frame_outputs"]
        for g in [g for g in other if g < frame - window + 1]:
            other.pop(g, None)
            session.frames_tracked_per_obj.get(obj_idx, {}).pop(g, None)
        stats.peak_stored_frames = max(stats.peak_stored_frames, len(other) + len(outputs["cond_frame_outputs"]))


def track_candidates(
    stage: Sam3GroundSegmenter,
    frames: Iterator[np.ndarray],
    size: tuple[int, int],
    texts: Sequence[str],
    *,
    bounded: bool = True,
    stats: StreamStats | None = None,
    on_frame: Any = None,
) -> list[StreamCandidates]:
    """Pass 1: one streaming session per text over ``frames``, each frame encoded once for all;
    every candidate kept (RLE)."""
    if stage.mode != "video":
        raise ValueError("dense SAM 3 needs the video model (segment_mode=video)")
    stats = stats if stats is not None else StreamStats()
    processor, model = stage.processor, stage.model
    tracker = model.config.tracker_config
    window = max(int(tracker.num_maskmem), int(tracker.max_object_pointers_in_encoder)) - 1
    found = {text: StreamCandidates(text) for text in texts}
    if not texts:
        return []
    start = time.process_time()
    with torch.inference_mode():
        fitted = {text: stage.fit_prompt(text) for text in texts}
        prompts = list(dict.fromkeys(fitted.values()))
        sessions = [processor.add_text_prompt(_session(stage, size, bounded), prompt) for prompt in prompts]
        tracks: dict[str, dict[int, dict[int, tuple[float, list[float], dict]]]] = {p: {} for p in prompts}
        with shared_vision_features(model, len(sessions)):
            for index, frame in enumerate(frames):
                inputs = processor(images=frame, device=stage.device, return_tensors="pt")
                for prompt, session in zip(prompts, sessions):
                    output = model(inference_session=session, frame=inputs["pixel_values"][0], frame_idx=index)
                    post = processor.postprocess_outputs(session, output, original_sizes=inputs["original_sizes"])
                    ids = post["object_ids"].tolist()
                    for obj_id in post["prompt_to_obj_ids"].get(prompt, []):
                        k = ids.index(obj_id)
                        tracks[prompt].setdefault(int(obj_id), {})[index] = (
                            float(post["scores"][k]),
                            [float(v) for v in post["boxes"][k]],
                            _rle(post["masks"][k].cpu().numpy()),
                        )
                    if bounded:
                        _forget(session, index, window, stats)
                    stats.peak_pixel_frames = max(stats.peak_pixel_frames, len(session.processed_frames or {}))
                stats.frames_done = index + 1
                if on_frame is not None:
                    on_frame(stats)
    stats.seconds += time.process_time() - start
    for prompt in prompts:
        check_object_cap(model, len(tracks[prompt]), prompt)
    for text, prompt in fitted.items():
        found[text].tracks = tracks[prompt]
    return [found[text] for text in texts]


def chosen_frames(
    frames: Iterator[np.ndarray], chosen: Sequence[tuple[StreamCandidates, Sequence[int]] | None],
    size: tuple[int, int], times: Sequence[float] | np.ndarray | None = None,
) -> Iterator[FrameResult]:
    """Pass 2: per frame, each expression's mask (the union of its chosen masklets; None: empty) for
    the sinks; times: each frame's presentation time (None: its index)."""
    height, width = size
    for index, frame in enumerate(frames):
        masks = np.zeros((len(chosen), height, width), np.bool_)
        scores = np.full(len(chosen), np.nan, np.float32)
        for k, item in enumerate(chosen):
            if item is None:
                continue
            candidates, identities = item
            for identity in identities:
                hit = candidates.tracks[identity].get(index)
                if hit is not None:
                    masks[k] |= _decode(hit[2])
                    scores[k] = np.fmax(scores[k], hit[0])
        yield frame_result(index, frame, masks, None, scores, np.zeros(len(chosen), np.bool_),
                           time=float(index if times is None else times[index]))
