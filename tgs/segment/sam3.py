"""SAM 3 as Ground + Segment in one model: the object text -> every matching instance, then a named rule.

SAM 3 ("Segment Anything with Concepts", transformers' ``sam3`` / ``sam3_video``) takes a
short noun phrase and returns *every* instance of it with a mask, a box and a score gated by
its presence head (``score = sigmoid(instance logit) * sigmoid(presence logit)``), so a
concept that is absent scores low everywhere. Which instance is the referred object is a
rule with a name (:data:`SAM3_CHOICES`), applied by :meth:`Sam3Candidates.resolve`:

- ``clip_best``: the masklet with the highest score on any frame of the clip (default);
- ``keyframe_best``: the masklet with the highest score on the keyframes the thinker saw
  (every frame of a benchmark clip; the summary frames of a user video);
- ``union``: every masklet that passes the threshold, merged (plural expressions).

A masklet passes when its score (its highest over the frames) is at least the threshold;
when none passes the masks are empty (null). Every candidate is kept, with its identity,
scores, boxes and masks, in :meth:`Sam3Candidates.record`.

Two modes (the preset's ``segment_mode``):

- ``video``: ``Sam3VideoModel`` over the clip (transformers' documented offline use:
  ``init_video_session`` -> ``add_text_prompt`` -> ``propagate_in_video_iterator`` ->
  ``postprocess_outputs``); masklets keep their identity across frames. Each text has its
  own session, exactly the documented single-prompt use; the sessions step through the clip
  together and each frame's vision features are computed once for all of them
  (:func:`shared_vision_features`). One session with every text as a prompt would also
  encode each frame once, but is not equal to one text at a time: transformers 5.x
  (``Sam3VideoModel._det_track_one_frame``) files the frame's tracker scores under the
  object ids as they are *after* the frame's new objects and hot-start removals, so on such
  a frame the scores land on other masklets, and ``postprocess_outputs`` gives the pixels
  two masklets of a prompt claim by those scores: the masks then depend on the other
  prompts of the session.
- ``image``: ``Sam3Model`` on each frame (transformers' documented use: processor ->
  model -> ``post_process_instance_segmentation``); each frame's instances are separate
  candidates and the rule is applied frame by frame. ``get_vision_features`` runs once
  per frame and ``get_text_features`` once per text for all of them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tgs.devices import resolve_device, resolve_dtype
from tgs.models.hf_loading import load_model, load_processor
from tgs.types import Boxes, Clip, FrameBoxes, Masks

__all__ = [
    "DEFAULT_SOURCE",
    "HOW_TO_GET",
    "IMAGE_CANDIDATE_SCORE",
    "SAM3_CHOICES",
    "SAM3_MODES",
    "Masklet",
    "Sam3Candidates",
    "Sam3GroundSegmenter",
    "WindowedCandidates",
    "candidates_record",
    "check_object_cap",
    "choose_masklets",
    "shared_vision_features",
]

logger = logging.getLogger(__name__)

DEFAULT_SOURCE = "facebook/sam3"
HOW_TO_GET = (
    "SAM 3 is gated (SAM License): accept the licence at https://huggingface.co/facebook/sam3, log in with "
    "`huggingface-cli login` (or set HF_TOKEN), then `tgs models fetch sam3` (or pass a local directory)"
)
SAM3_CHOICES: tuple[str, ...] = ("clip_best", "keyframe_best", "union")
SAM3_MODES: tuple[str, ...] = ("video", "image")
IMAGE_CANDIDATE_SCORE = 0.3
"""Image mode: instances scoring above min(this, the threshold) are kept as candidates
(transformers' ``post_process_instance_segmentation`` default); the video model keeps its own
(``score_threshold_detection`` / ``new_det_thresh`` of its config)."""


# --------------------------------------------------------------------------- candidates and the rule


@dataclass(frozen=True, eq=False)
class Masklet:
    """One SAM 3 candidate over a clip of T frames.

    identity: SAM 3's object id (video mode), or a running index (image mode, one frame each).
    scores: float32 [T], presence-gated score on each frame, NaN where the masklet is absent.
    boxes: float32 [T, 4], xyxy in clip pixels, NaN where absent.
    masks: bool [T, H, W] at the clip size.
    """

    identity: int
    scores: np.ndarray
    boxes: np.ndarray
    masks: np.ndarray

    @property
    def present(self) -> np.ndarray:
        return ~np.isnan(self.scores)

    @property
    def score(self) -> float:
        """The masklet's score: its highest over the frames where it is present (NaN: never)."""
        return float(np.nanmax(self.scores)) if self.present.any() else math.nan


def choose_masklets(
    scores: np.ndarray, rule: str, threshold: float, keyframes: Sequence[int] | None = None
) -> tuple[int, ...]:
    """Rows of ``scores`` (float [N, T], NaN = absent) chosen by ``rule``; () when none passes.

    A masklet passes when its highest score is >= ``threshold``. ``clip_best``: the passing
    masklet with the highest score (ties: the lowest row); ``keyframe_best``: the passing
    masklet with the highest score on ``keyframes`` (None: every frame), none when no passing
    masklet is present on a keyframe; ``union``: every passing masklet, in row order.
    """
    if rule not in SAM3_CHOICES:
        raise ValueError(f"sam3_choice: expected one of {', '.join(SAM3_CHOICES)}, got {rule!r}")
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError(f"scores: expected [masklets, frames], got shape {scores.shape}")
    if scores.shape[0] == 0:
        return ()
    best = np.where(np.isnan(scores), -np.inf, scores).max(axis=1)
    passing = best >= threshold
    if not passing.any():
        return ()
    if rule == "union":
        return tuple(int(i) for i in np.flatnonzero(passing))
    if rule == "keyframe_best":
        frames = list(range(scores.shape[1])) if keyframes is None else list(keyframes)
        at_keys = np.where(np.isnan(scores[:, frames]), -np.inf, scores[:, frames]).max(axis=1, initial=-np.inf)
        best = np.where(passing, at_keys, -np.inf)
    else:
        best = np.where(passing, best, -np.inf)
    if not np.isfinite(best.max()):
        return ()
    return (int(np.argmax(best)),)


def check_object_cap(model: Any, objects: int, text: str) -> bool:
    """Warn (and return True) when the session of ``text`` reached ``max_num_objects`` (10,000 in
    ``facebook/sam3``'s config: never reached in practice): later detections were dropped."""
    cap = int(getattr(model, "max_num_objects", 0) or 0)
    if cap and objects >= cap:
        logger.warning("SAM 3 session of %r reached its max_num_objects (%d): later detections were dropped",
                       text, cap)
        return True
    return False


@contextmanager
def shared_vision_features(model: torch.nn.Module, readers: int) -> Iterator[None]:
    """Inside, a ``Sam3VideoModel``'s per-frame vision work runs once for ``readers`` sessions
    that read the same frames: ``detector_model.get_vision_features`` (the ViT) and
    ``get_vision_features_for_tracker`` (the tracker's neck on its output).

    A call whose input equals that of a call still held (pixel values by value; the vision
    features by identity, as the first step hands out the very tensors it computed) returns
    that call's result, as one multi-prompt session hands the same tensors to each of its
    prompts; an entry is dropped once all readers had it, so only the frames some session has
    not reached yet are held (at most ``hotstart_delay`` frames when sessions step through
    ``propagate_in_video_iterator``, which runs that many before its first output). Equal
    inputs give equal results, so every session gets exactly what it would compute alone."""
    if readers <= 1:
        yield
        return
    with _once(model.detector_model, "get_vision_features", "pixel_values", readers, by_value=True), \
            _once(model, "get_vision_features_for_tracker", "vision_embeds", readers, by_value=False):
        yield


@contextmanager
def _once(owner: Any, name: str, arg: str, readers: int, *, by_value: bool) -> Iterator[None]:
    """``owner.<name>`` computed once per input for ``readers`` calls (see :func:`shared_vision_features`)."""
    own = name in vars(owner)  # a spy or an earlier patch on the instance
    compute = getattr(owner, name)
    held: list[list[Any]] = []  # [input, result, readers still to come]

    def same(a: Any, b: Any) -> bool:
        if not by_value:
            return a is b
        return a.shape == b.shape and torch.equal(a, b)

    def once(*args: Any, **kwargs: Any) -> Any:
        key = kwargs.get(arg, args[0] if args else None)
        for entry in held:
            if same(entry[0], key):
                entry[2] -= 1
                if entry[2] == 0:
                    held.remove(entry)
                return entry[1]
        result = compute(*args, **kwargs)
        held.append([key, result, readers - 1])
        return result

    setattr(owner, name, once)
    try:
        yield
    finally:
        if own:
            setattr(owner, name, compute)
        else:
            delattr(owner, name)


def _rle(mask: np.ndarray) -> dict:
    from pycocotools import mask as coco_mask

    rle = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


@dataclass(frozen=True, eq=False)
class Sam3Candidates:
    """Every SAM 3 candidate of one text on one clip.

    per_frame: image mode: each masklet lives on one frame, so the rule is applied frame by frame.
    """

    text: str
    masklets: tuple[Masklet, ...]
    num_frames: int
    image_size: tuple[int, int]
    per_frame: bool = False

    def scores(self) -> np.ndarray:
        """float32 [N, T]: every masklet's score per frame, NaN where absent."""
        if not self.masklets:
            return np.zeros((0, self.num_frames), np.float32)
        return np.stack([m.scores for m in self.masklets]).astype(np.float32)

    def choose(self, rule: str, threshold: float, keyframes: Sequence[int] | None = None) -> list[tuple[int, ...]]:
        """Per frame, the positions in ``masklets`` chosen by ``rule`` (see :func:`choose_masklets`)."""
        scores = self.scores()
        if not self.per_frame:
            chosen = choose_masklets(scores, rule, threshold, keyframes)
            return [tuple(i for i in chosen if self.masklets[i].present[t]) for t in range(self.num_frames)]
        return [choose_masklets(scores[:, t : t + 1], rule, threshold) for t in range(self.num_frames)]

    def resolve(
        self, rule: str, threshold: float, keyframes: Sequence[int] | None = None
    ) -> tuple[Boxes, tuple[int | None, ...], Masks, dict[str, Any]]:
        """(candidate boxes per frame, chosen box position per frame, merged masks, record) under ``rule``.

        Boxes hold every masklet present on a frame (``query_index`` = its identity); the
        chosen position is the chosen masklet's (with ``union``, the highest-scoring chosen
        one's); masks are the union of the chosen masklets' masks (empty: null).
        """
        chosen = self.choose(rule, threshold, keyframes)
        height, width = self.image_size
        masks = np.zeros((self.num_frames, height, width), np.bool_)
        frames, positions = [], []
        for t in range(self.num_frames):
            here = [i for i, m in enumerate(self.masklets) if m.present[t]]
            frames.append(FrameBoxes(
                np.array([self.masklets[i].boxes[t] for i in here], np.float32).reshape(-1, 4),
                np.array([self.masklets[i].scores[t] for i in here], np.float32),
                np.array([self.masklets[i].identity for i in here], np.int64),
            ))
            for i in chosen[t]:
                masks[t] |= self.masklets[i].masks[t]
            top = max(chosen[t], key=lambda i: self.masklets[i].scores[t], default=None)
            positions.append(None if top is None else here.index(top))
        boxes = Boxes(tuple(frames), (height, width), self.text)
        record = self.record(rule, threshold, sorted({self.masklets[i].identity for c in chosen for i in c}))
        return boxes, tuple(positions), Masks(masks), record

    def record(self, rule: str, threshold: float, chosen: Sequence[int]) -> dict[str, Any]:
        """JSON: the rule, the threshold, the chosen identities and every candidate (identity, score,
        per-frame score, box and COCO-RLE mask), built by :func:`candidates_record`."""
        return candidates_record(
            "image" if self.per_frame else "video", rule, threshold, chosen,
            [
                (m.identity, [{"frame": t, "score": float(m.scores[t]), "box": [float(v) for v in m.boxes[t]],
                               "mask": _rle(m.masks[t])} for t in np.flatnonzero(m.present).tolist()])
                for m in self.masklets
            ],
        )


def candidates_record(
    mode: str, rule: str, threshold: float, chosen: Sequence[int],
    candidates: Sequence[tuple[int, list[dict[str, Any]]]],
) -> dict[str, Any]:
    """The one builder of a ``sam3`` block (samples.jsonl, result.json dense and sampled).

    candidates: (identity, its frames: ``{"frame", "score", "box", "mask"}`` each, in frame
    order). A candidate's score is its highest over its frames; ``best_score`` (the highest of
    all) decides null at any threshold: the masks are empty exactly when the threshold is above it."""
    scores = [max(f["score"] for f in frames) for _, frames in candidates]
    return {
        "segmenter": "sam3",
        "mode": mode,
        "rule": rule,
        "threshold": float(threshold),
        "best_score": max(scores) if scores else None,
        "chosen": [int(i) for i in chosen],
        "null": not chosen,
        "candidates": [
            {"id": int(identity), "score": score, "frames": frames}
            for (identity, frames), score in zip(candidates, scores)
        ],
    }


class WindowedCandidates:
    """Every SAM 3 candidate of one text over the windows of a sampled video (``tgs segment --fps``),
    as one ``sam3`` block (:meth:`record`, the same shape as dense output's).

    Each window is its own SAM 3 call (one session per text), so SAM 3 numbers its masklets
    afresh in every window, nothing links a masklet of one window to one of another, and the
    rule picks within each window (an object may be chosen in one window and another, or
    none, in the next). Identities are made unique over the video: a window's are SAM 3's plus
    the offset :meth:`add` returns (one more than the highest identity of the earlier windows;
    0 for the first); ``frame`` is the sampled frame's index (``frames[].index``); ``chosen``
    lists what the rule chose in any window."""

    def __init__(self) -> None:
        self._head: tuple[str, str, float] | None = None
        self._candidates: list[tuple[int, list[dict[str, Any]]]] = []
        self._chosen: list[int] = []
        self._next_id = 0

    def add(self, record: dict[str, Any], first_frame: int) -> int:
        """One window's ``sam3`` block (:meth:`Sam3Candidates.record`) whose frame 0 is the sampled
        frame ``first_frame``; returns the offset added to its identities."""
        self._head = (record["mode"], record["rule"], record["threshold"])
        offset = self._next_id
        for candidate in record["candidates"]:
            identity = offset + candidate["id"]
            self._candidates.append(
                (identity, [{**f, "frame": first_frame + f["frame"]} for f in candidate["frames"]])
            )
            self._next_id = max(self._next_id, identity + 1)
        self._chosen.extend(offset + i for i in record["chosen"])
        return offset

    def record(self) -> dict[str, Any]:
        if self._head is None:
            raise ValueError("no window was added")
        mode, rule, threshold = self._head
        return candidates_record(mode, rule, threshold, self._chosen, self._candidates)


# --------------------------------------------------------------------------- the stage


def _model_classes(mode: str) -> tuple[Any, Any]:
    from transformers import Sam3Model, Sam3Processor, Sam3VideoModel, Sam3VideoProcessor

    return (Sam3VideoModel, Sam3VideoProcessor) if mode == "video" else (Sam3Model, Sam3Processor)


class Sam3GroundSegmenter:
    """SAM 3 on clips: ``candidates_many(clip, texts)`` -> one :class:`Sam3Candidates` per text.

    It is both the grounder and the segmenter of a ``GroundSegmentStage`` (which applies
    the preset's rule and threshold); the frame work is shared by all texts of a call.
    """

    def __init__(self, model: torch.nn.Module, processor: Any, *, device: torch.device, dtype: torch.dtype,
                 mode: str = "video", source: str = "") -> None:
        if mode not in SAM3_MODES:
            raise ValueError(f"mode: expected one of {', '.join(SAM3_MODES)}, got {mode!r}")
        self.model = model
        self.processor = processor
        self.device = device
        self.dtype = dtype
        self.mode = mode
        self.source = source

    @classmethod
    def from_pretrained(cls, source: str | Path = DEFAULT_SOURCE, *, device: str | torch.device | None = None,
                        dtype: str | torch.dtype | None = None, mode: str = "video") -> Sam3GroundSegmenter:
        """Load ``Sam3VideoModel`` (mode video) or ``Sam3Model`` (mode image) and its processor strictly.

        The image model reads only the detector of a ``facebook/sam3`` checkpoint: the
        tracker's keys are expected there and ignored (transformers lists them)."""
        if mode not in SAM3_MODES:
            raise ValueError(f"mode: expected one of {', '.join(SAM3_MODES)}, got {mode!r}")
        dev = resolve_device(device)
        dt = resolve_dtype(dtype, dev)
        what = f"SAM 3 {'video' if mode == 'video' else 'image'} model (Ground + Segment)"
        model_cls, processor_cls = _model_classes(mode)
        model = load_model(model_cls, source, what=what, how_to_get=HOW_TO_GET, device=dev, dtype=dt)
        processor = load_processor(processor_cls, source, what=what, how_to_get=HOW_TO_GET)
        return cls(model, processor, device=dev, dtype=dt, mode=mode, source=str(source))

    # ------------------------------------------------------------------ prompts

    @property
    def text_limit(self) -> int:
        """Tokens SAM 3's text encoder reads (32 in ``facebook/sam3``, start and end tokens included)."""
        config = self.model.config
        config = getattr(config, "detector_config", None) or config
        return int(config.text_config.max_position_embeddings)

    def fit_prompt(self, text: str) -> str:
        """``text`` cut to whole words that fit :attr:`text_limit` tokens (warned), else unchanged.

        transformers' processors pad SAM 3's prompts to 32 tokens without truncating, and its
        text encoder refuses more; a long object text (an expression grounded directly) keeps
        its first words, as the original sam3 tokenizer's truncation to its context length does."""
        limit, tokenizer = self.text_limit, self.processor.tokenizer
        if len(tokenizer(text)["input_ids"]) <= limit:
            return text
        words = text.split()
        while len(words) > 1 and len(tokenizer(" ".join(words))["input_ids"]) > limit:
            words.pop()
        fitted = " ".join(words)
        while len(tokenizer(fitted)["input_ids"]) > limit:  # one word longer than the limit
            fitted = fitted[:-1]
        logger.warning("SAM 3 prompt truncated to %d tokens: %r -> %r", limit, text, fitted)
        return fitted

    # ------------------------------------------------------------------ public

    def candidates(self, clip: Clip, text: str, min_score: float | None = None) -> Sam3Candidates:
        return self.candidates_many(clip, [text], min_score)[0]

    def candidates_many(
        self, clip: Clip, texts: Sequence[str], min_score: float | None = None
    ) -> list[Sam3Candidates]:
        """Every candidate of each text on ``clip``, the frames' vision features computed once for all texts.

        min_score: image mode: instances scoring above it are candidates (None:
        :data:`IMAGE_CANDIDATE_SCORE`); video mode: the model's own thresholds decide.
        """
        texts = list(texts)
        if not texts:
            return []
        fitted = [self.fit_prompt(text) for text in texts]
        with torch.inference_mode():
            if self.mode == "video":
                found = self._video(clip, fitted)
            else:
                found = self._image(clip, fitted, IMAGE_CANDIDATE_SCORE if min_score is None else float(min_score))
        return [c if c.text == text else replace(c, text=text) for c, text in zip(found, texts)]

    # ------------------------------------------------------------------ video

    def _video(self, clip: Clip, texts: list[str]) -> list[Sam3Candidates]:
        """One documented single-prompt session per text, stepped together, each frame encoded once."""
        processor, model = self.processor, self.model
        prompts = list(dict.fromkeys(texts))
        sessions = [
            processor.add_text_prompt(
                processor.init_video_session(video=list(clip.frames), inference_device=self.device, dtype=self.dtype),
                text,
            )
            for text in prompts
        ]
        tracks: dict[str, dict[int, dict[int, tuple[float, np.ndarray, np.ndarray]]]] = {t: {} for t in prompts}
        with shared_vision_features(model, len(sessions)):
            steps = zip(*(model.propagate_in_video_iterator(inference_session=s) for s in sessions), strict=True)
            for outputs in steps:
                for text, session, output in zip(prompts, sessions, outputs):
                    post = processor.postprocess_outputs(session, output)
                    ids = post["object_ids"].tolist()
                    for obj_id in post["prompt_to_obj_ids"].get(text, []):
                        k = ids.index(obj_id)
                        tracks[text].setdefault(int(obj_id), {})[int(output.frame_idx)] = (
                            float(post["scores"][k]),
                            post["boxes"][k].float().cpu().numpy(),
                            post["masks"][k].cpu().numpy().astype(np.bool_),
                        )
        for text in prompts:
            check_object_cap(model, len(tracks[text]), text)
        return [self._masklets(text, tracks[text], clip) for text in texts]

    @staticmethod
    def _masklets(text: str, track: dict[int, dict[int, tuple]], clip: Clip) -> Sam3Candidates:
        t_count, (height, width) = clip.num_frames, clip.size
        masklets = []
        for identity in sorted(track):
            scores = np.full(t_count, np.nan, np.float32)
            boxes = np.full((t_count, 4), np.nan, np.float32)
            masks = np.zeros((t_count, height, width), np.bool_)
            for frame, (score, box, mask) in track[identity].items():
                scores[frame], boxes[frame], masks[frame] = score, box, mask
            masklets.append(Masklet(identity, scores, boxes, masks))
        return Sam3Candidates(text, tuple(masklets), t_count, clip.size)

    # ------------------------------------------------------------------ image

    def _image(self, clip: Clip, texts: list[str], min_score: float) -> list[Sam3Candidates]:
        processor, model = self.processor, self.model
        encoded = [processor(text=text, return_tensors="pt").to(self.device) for text in texts]
        text_embeds = [model.get_text_features(input_ids=e["input_ids"], attention_mask=e["attention_mask"])
                       for e in encoded]
        per_text: list[list[Masklet]] = [[] for _ in texts]
        t_count, (height, width) = clip.num_frames, clip.size
        for t, frame in enumerate(clip.frames):
            inputs = processor(images=frame, return_tensors="pt").to(self.device)
            vision = model.get_vision_features(pixel_values=inputs["pixel_values"].to(self.dtype))
            for k, (enc, embeds) in enumerate(zip(encoded, text_embeds)):
                out = model(vision_embeds=vision, text_embeds=embeds, attention_mask=enc["attention_mask"])
                found = processor.post_process_instance_segmentation(
                    out, threshold=min_score, mask_threshold=0.5, target_sizes=[(height, width)]
                )[0]
                for score, box, mask in zip(found["scores"], found["boxes"], found["masks"]):
                    scores = np.full(t_count, np.nan, np.float32)
                    boxes = np.full((t_count, 4), np.nan, np.float32)
                    masks = np.zeros((t_count, height, width), np.bool_)
                    scores[t], boxes[t] = float(score), box.float().cpu().numpy()
                    masks[t] = mask.cpu().numpy().astype(np.bool_)
                    per_text[k].append(Masklet(len(per_text[k]), scores, boxes, masks))
        return [Sam3Candidates(text, tuple(m), t_count, clip.size, per_frame=True) for text, m in zip(texts, per_text)]
