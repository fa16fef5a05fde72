"""Dense propagation: SAM2-family video models track N objects through every frame of a video.

The engine takes a :class:`~tgs.segment.frame_source.FrameSource`, one
:class:`ObjectPrompts` per object (grounded boxes at keyframes, indices into the source frames)
and a :class:`PropagationPolicy`, and yields one :class:`tgs.types.FrameResult` per source frame, in
frame order, with bounded memory. How it runs, per object ``k`` with first seed ``s_k``:

1. **Seed**: frame ``s_k`` is decoded from its box alone (a conditioning frame).
2. **Backward**: frames ``s_k - 1 .. 0`` are tracked in reverse, in chunks of
   ``chunk_size`` frames read from the source again; their low-res logits go to a temporary
   file, since they come out last-first.
3. **Forward**: one pass over the source from frame 0: frames before ``s_k`` are read back from
   that file, frames from ``s_k`` on are tracked. A later keyframe is seeded when reached
   ("all" seeds) or when its grounded box and the tracked mask disagree (``reseed_iou``), so a
   lost object is found again.

Objects share the frames: each object has its own transformers inference session, and all
sessions share one vision-feature cache, so each frame is encoded once whatever the number of
objects, and each object's results equal a run with that object alone (transformers' own
multi-object session is not equal to single-object runs: it binarises every object's memory
mask on a frame where any object got a prompt, and it tracks every object on every frame,
so an object seeded later is tracked forward from a future seed instead of backward).

Memory: the sessions keep what SAM2 reads and no more: the non-conditioning outputs of the
``max(num_maskmem, max_object_pointers_in_encoder) - 1`` frames next to the ones still to
track, at most ``max_conditioning_frames`` conditioning frames (the most recent), no
1024 x 1024 mask logits, and one frame's vision features.
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from tgs.segment._sam2_common import low_res_to_masks, low_res_to_masks_and_probs, pixel_values
from tgs.segment.frame_source import FrameSource, frame_times
from tgs.types import FrameResult

__all__ = [
    "SEED_CHOICES",
    "UNBOUNDED_FRAMES",
    "ObjectPrompts",
    "OnlineSession",
    "PropagationEngine",
    "PropagationPolicy",
    "PropagationStats",
    "box_iou",
    "choose_seed_frames",
    "frame_result",
    "mask_box",
    "needs_reseed",
]

logger = logging.getLogger(__name__)

SEED_CHOICES = ("all", "best", "first")

UNBOUNDED_FRAMES = sys.maxsize
"""The length a stream's session reports (:class:`OnlineSession`): a stream has none."""


@dataclass(frozen=True)
class PropagationPolicy:
    """Which grounded keyframes seed the propagation, and when a lost object is re-seeded.

    Fields carry ``metadata={"help", "choices"}`` so the preset table can list them.
    """

    seed_frames: str = field(
        default="all",
        metadata={"help": "keyframes that seed: every confident one, the first, or the best scoring",
                  "choices": SEED_CHOICES},
    )
    min_seed_score: float = field(
        default=0.0, metadata={"help": "a keyframe box is confident when its score is >= this"}
    )
    reseed_iou: float | None = field(
        default=0.5,
        metadata={"help": "re-seed at a keyframe whose box overlaps the tracked mask's box less than "
                          "this (None: never); a no-op with seed_frames='all'"},
    )
    max_conditioning_frames: int | None = field(
        default=4,
        metadata={"help": "conditioning (seeded) frames kept in SAM2's memory, the most recent; "
                          "None keeps all (SAM2's default, memory grows with the seeds)"},
    )

    def __post_init__(self) -> None:
        if self.seed_frames not in SEED_CHOICES:
            raise ValueError(f"seed_frames: expected one of {SEED_CHOICES}, got {self.seed_frames!r}")
        if self.reseed_iou is not None and not 0.0 <= self.reseed_iou <= 1.0:
            raise ValueError(f"reseed_iou: expected a value in [0, 1] or None, got {self.reseed_iou}")
        if self.max_conditioning_frames is not None and self.max_conditioning_frames < 1:
            raise ValueError(f"max_conditioning_frames: expected >= 1 or None, got {self.max_conditioning_frames}")

    @classmethod
    def switches(cls) -> dict[str, dict]:
        """{field: {"default", "help", "choices"?}}: what a preset table needs to add these."""
        return {f.name: {"default": f.default, **f.metadata} for f in fields(cls)}


@dataclass(frozen=True)
class ObjectPrompts:
    """Grounded keyframes of one object: frame indices into the source, a box (xyxy, source
    pixels) or None there, and the grounding score of each box (None: no score)."""

    frames: tuple[int, ...]
    boxes: tuple[np.ndarray | None, ...]
    scores: tuple[float | None, ...] | None = None

    def __post_init__(self) -> None:
        if len(self.frames) != len(self.boxes) or (self.scores is not None and len(self.scores) != len(self.frames)):
            raise ValueError("ObjectPrompts: frames, boxes and scores need one entry per keyframe")
        if list(self.frames) != sorted(set(self.frames)):
            raise ValueError(f"ObjectPrompts: keyframes must be increasing and distinct, got {list(self.frames)}")
        for frame, box in zip(self.frames, self.boxes, strict=True):
            if box is not None and (np.shape(box) != (4,) or not np.all(np.isfinite(box))):
                raise ValueError(f"keyframe {frame}: expected a finite xyxy box of 4 numbers, got {box!r}")

    @classmethod
    def from_lists(
        cls,
        frames: Sequence[int],
        boxes: Sequence[np.ndarray | Sequence[float] | None],
        scores: Sequence[float | None] | None = None,
    ) -> ObjectPrompts:
        arrays = tuple(None if b is None else np.asarray(b, dtype=np.float32).reshape(-1) for b in boxes)
        return cls(tuple(int(f) for f in frames), arrays, None if scores is None else tuple(scores))

    @classmethod
    def none(cls) -> ObjectPrompts:
        """A null answer: no keyframe, empty masks on every frame."""
        return cls((), ())

    def confident(self, min_score: float) -> dict[int, np.ndarray]:
        """{frame: box} of the keyframes with a box whose score (when given) is >= min_score."""
        out = {}
        for i, (frame, box) in enumerate(zip(self.frames, self.boxes, strict=True)):
            score = None if self.scores is None else self.scores[i]
            if box is not None and (score is None or score >= min_score):
                out[frame] = box
        return out


def choose_seed_frames(
    boxes: Sequence[np.ndarray | None], scores: Sequence[float | None] | None, rule: str
) -> list[int]:
    """Positions in ``boxes`` that seed under ``rule`` ("all", "best" or "first").

    "best" needs ``scores`` (one per position, None where there is no box); ties go to the
    earliest. Returns [] when no position has a box.
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


def mask_box(mask: np.ndarray) -> np.ndarray | None:
    """Tight xyxy box (pixel edges, float32 [4]) of a bool mask [H, W]; None when empty."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], dtype=np.float32)


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two xyxy boxes (0 when both are degenerate)."""
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, float(x1 - x0)) * max(0.0, float(y1 - y0))
    union = float((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])) - inter
    return inter / union if union > 0 else 0.0


def needs_reseed(mask: np.ndarray, box: np.ndarray, threshold: float | None) -> bool:
    """True when the tracked mask's box overlaps the grounded box less than ``threshold``
    (an empty mask never overlaps: a lost object is re-seeded)."""
    if threshold is None:
        return False
    tracked = mask_box(mask)
    return tracked is None or box_iou(tracked, np.asarray(box, np.float32)) < threshold


def frame_result(
    index: int, image: np.ndarray, masks: np.ndarray, probs: np.ndarray | None, scores: np.ndarray,
    seeded: np.ndarray, *, time: float = 0.0,
) -> FrameResult:
    """The :class:`tgs.types.FrameResult` of one tracked frame: ``scores`` SAM2's presence logit
    (NaN for an object with no seed), each box the tight box of its mask (:func:`mask_box`),
    nothing grounded (the caller that grounded keyframes marks them)."""
    boxes = [None if (b := mask_box(m)) is None else tuple(float(v) for v in b) for m in masks]
    return FrameResult(
        index=int(index), time=float(time), image=image, masks=masks, boxes=boxes,  # type: ignore[arg-type]
        scores=scores, grounded=np.zeros(len(masks), np.bool_), seeded=seeded, probs=probs,
    )



@dataclass
class PropagationStats:
    """Live counters of a run (for progress bars and result.json timings), process seconds."""

    num_frames: int = 0
    frames_done: int = 0
    frames_tracked: int = 0
    reseeds: int = 0
    peak_stored_frames: int = 0  # most per-frame outputs one object's session held at once
    peak_conditioning_frames: int = 0  # most conditioning frames one object's session held at once
    seconds: dict[str, float] = field(default_factory=lambda: {"decode": 0.0, "track": 0.0, "postprocess": 0.0})


class _Timer:
    def __init__(self, stats: PropagationStats, key: str) -> None:
        self.stats, self.key = stats, key

    def __enter__(self) -> None:
        self.start = time.process_time()

    def __exit__(self, *exc: object) -> None:
        self.stats.seconds[self.key] += time.process_time() - self.start


def _session_class(model: torch.nn.Module) -> type:
    """The transformers inference-session class of a Sam2VideoModel / EdgeTamVideoModel."""
    module = sys.modules[type(model).__module__]
    names = [n for n in dir(module) if n.endswith("VideoInferenceSession")]
    if len(names) != 1:
        raise TypeError(f"{type(model).__name__}: expected a SAM2-family video model with an inference session")
    return getattr(module, names[0])


class _FrameSlot:
    """The frame being tracked, preprocessed only when a model asks for it (cache miss)."""

    def __init__(self, preprocess: Callable[[np.ndarray], torch.Tensor]) -> None:
        self._preprocess = preprocess
        self.index: int | None = None
        self.image: np.ndarray | None = None
        self._pixels: torch.Tensor | None = None

    def set(self, index: int, image: np.ndarray) -> None:
        self.index, self.image, self._pixels = index, image, None

    def pixels(self, index: int) -> torch.Tensor:
        if index != self.index or self.image is None:
            raise RuntimeError(f"propagation asked for frame {index} while frame {self.index} is loaded")
        if self._pixels is None:
            self._pixels = self._preprocess(self.image)
        return self._pixels


def _make_session(model: torch.nn.Module, slot: _FrameSlot, num_frames: int, size: tuple[int, int],
                  device: torch.device, dtype: torch.dtype, cache) -> object:
    base = _session_class(model)

    class StreamSession(base):  # type: ignore[misc, valid-type]
        """A session whose frames come from the engine's slot and whose feature cache is shared."""

        @property
        def num_frames(self) -> int:
            return num_frames

        def get_frame(self, frame_idx: int) -> torch.Tensor:
            return slot.pixels(frame_idx).to(self.inference_device, self.dtype)

    session = StreamSession(
        video=None, video_height=size[0], video_width=size[1], inference_device=device,
        inference_state_device=device, video_storage_device=device, dtype=dtype,
    )
    if cache is not None:
        session.cache = cache
    return session


class _Track:
    """One object's session and its bookkeeping."""

    def __init__(self, session, size: tuple[int, int], seeds: dict[int, np.ndarray],
                 checks: dict[int, np.ndarray]) -> None:
        self.session = session
        self.size = size
        self.first = min(seeds)
        self.seeds = seeds  # frames seeded when reached
        self.checks = checks  # keyframes compared with the tracked mask (re-seed candidates)

    @property
    def outputs(self) -> dict:
        return self.session.output_dict_per_obj[0]


class _LogitsFile:
    """Low-res logits of the backward pass, one float32 [h, w] record per frame, in a plain
    file read back with ``read`` (a memory map would count its pages in the process RSS)."""

    def __init__(self, path: Path, num_frames: int, shape: tuple[int, int]) -> None:
        self.shape = shape
        self.record = shape[0] * shape[1] * 4
        self.meta = np.zeros((num_frames, 2), dtype=np.float32)  # presence logit, seeded
        self.file = path.open("w+b")

    def put(self, frame: int, logits: np.ndarray, presence: float, seeded: bool) -> None:
        self.file.seek(frame * self.record)
        self.file.write(np.ascontiguousarray(logits, dtype=np.float32).tobytes())
        self.meta[frame] = (presence, float(seeded))

    def get(self, frame: int) -> tuple[np.ndarray, float, bool]:
        self.file.seek(frame * self.record)
        data = np.frombuffer(self.file.read(self.record), dtype=np.float32).reshape(self.shape).copy()
        return data, float(self.meta[frame, 0]), bool(self.meta[frame, 1])


class PropagationEngine:
    """Runs a SAM2-family video model (``Sam2VideoModel``, ``EdgeTamVideoModel``) densely.

    ``chunk_size``: frames decoded at once for the backward pass; ``retain_all`` keeps every
    output in the sessions (the unpruned reference the tests compare against).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        processor,
        *,
        device: torch.device,
        dtype: torch.dtype,
        preprocess: str = "hf",
        chunk_size: int = 16,
        retain_all: bool = False,
    ) -> None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size: expected >= 1, got {chunk_size}")
        self.model = model
        self.processor = processor
        self.device = device
        self.dtype = dtype
        self.preprocess = preprocess
        self.chunk_size = chunk_size
        self.retain_all = retain_all
        config = model.config
        self.window = max(int(config.num_maskmem), int(config.max_object_pointers_in_encoder)) - 1

    # ------------------------------------------------------------------ public

    def run(
        self,
        source: FrameSource,
        objects: Sequence[ObjectPrompts],
        policy: PropagationPolicy | None = None,
        *,
        with_probs: bool = False,
        stats: PropagationStats | None = None,
        on_frame: Callable[[PropagationStats], None] | None = None,
    ) -> Iterator[FrameResult]:
        """Yield one :class:`FrameResult` per source frame, frames in order.

        objects: one ObjectPrompts per object (keyframe indices into ``source``); an object
        with no confident keyframe gets empty masks on every frame. on_frame is called with
        the live stats after each frame is yielded.
        """
        policy = policy or PropagationPolicy()
        stats = stats if stats is not None else PropagationStats()
        stats.num_frames = source.num_frames
        for k, obj in enumerate(objects):
            if obj.frames and (obj.frames[0] < 0 or obj.frames[-1] >= source.num_frames):
                raise IndexError(f"object {k}: keyframes {list(obj.frames)} outside the video's "
                                 f"{source.num_frames} frames")
        with torch.inference_mode(), tempfile.TemporaryDirectory(prefix="tgs-propagation-") as tmp:
            yield from self._run(source, list(objects), policy, with_probs, stats, on_frame, Path(tmp))

    # ------------------------------------------------------------------ setup

    def plan(self, obj: ObjectPrompts, policy: PropagationPolicy) -> tuple[dict, dict]:
        """(seeds {frame: box}, re-seed checks {frame: box}) of one object under the policy."""
        confident = obj.confident(policy.min_seed_score)
        frames = sorted(confident)
        boxes = [confident[f] for f in frames]
        scores = None
        if policy.seed_frames == "best":
            index = {f: i for i, f in enumerate(obj.frames)}
            scores = [None if obj.scores is None else obj.scores[index[f]] for f in frames]
        chosen = [frames[i] for i in choose_seed_frames(boxes, scores, policy.seed_frames)]
        seeds = {f: confident[f] for f in chosen}
        checks = {} if policy.reseed_iou is None else {f: b for f, b in confident.items() if f not in seeds}
        return seeds, checks

    def online(self, size: tuple[int, int], policy: PropagationPolicy | None = None,
               stats: PropagationStats | None = None) -> OnlineSession:
        """A forward-only propagation of a stream of ``size`` (height, width) frames, one frame
        at a time (:class:`OnlineSession`; :class:`tgs.segment.online.OnlineTracker` drives it)."""
        return OnlineSession(self, size, policy or PropagationPolicy(), stats if stats is not None else PropagationStats())

    def _preprocess(self, image: np.ndarray) -> torch.Tensor:
        return pixel_values(image[None], self.processor.image_processor, self.preprocess)[0]

    def _run(self, source, objects, policy, with_probs, stats, on_frame, tmp: Path) -> Iterator[FrameResult]:
        size, total = source.size, source.num_frames
        slot = _FrameSlot(self._preprocess)
        cache = None
        tracks: list[_Track | None] = []
        for obj in objects:
            seeds, checks = self.plan(obj, policy)
            if not seeds:
                tracks.append(None)
                continue
            session = _make_session(self.model, slot, total, size, self.device, self.dtype, cache)
            cache = session.cache
            tracks.append(_Track(session, size, seeds, checks))
        # 1. first seeds (grouped by frame so each seed frame is decoded once)
        for frame in sorted({t.first for t in tracks if t is not None}):
            with _Timer(stats, "decode"):
                slot.set(frame, next(iter(source.frames(frame, frame + 1))))
            for track in tracks:
                if track is not None and track.first == frame:
                    with _Timer(stats, "track"):
                        self._seed(track, frame)
        # 2. backward, into a file of low-res logits
        back_end = max((t.first for t in tracks if t is not None), default=0)
        store = self._backward(source, tracks, back_end, slot, policy, stats, tmp)
        # 3. forward, yielding every frame in order
        try:
            yield from self._forward(source, tracks, store, slot, policy, with_probs, stats, on_frame)
        finally:
            for records in (store or {}).values():
                records.file.close()

    # ------------------------------------------------------------------ steps

    def _seed(self, track: _Track, frame: int, box: np.ndarray | None = None) -> None:
        box = track.seeds.get(frame) if box is None else box
        self.processor.add_inputs_to_inference_session(
            inference_session=track.session, frame_idx=frame, obj_ids=1, input_boxes=[[box.tolist()]]
        )
        self.model(inference_session=track.session, frame_idx=frame)
        self._after_step(track, frame)

    def _step(self, track: _Track, frame: int, reverse: bool, policy: PropagationPolicy,
              stats: PropagationStats) -> tuple[torch.Tensor, float, bool]:
        """Track (or seed) one object on the loaded frame: (low-res logits [1, 1, h, w], presence, seeded)."""
        seeded = False
        if frame in track.seeds and frame not in track.outputs["cond_frame_outputs"]:
            self._seed(track, frame)
            seeded = True
        else:
            out = self.model(inference_session=track.session, frame_idx=frame, reverse=reverse)
            self._after_step(track, frame)
            box = track.checks.get(frame)
            if box is not None and policy.reseed_iou is not None:
                logits = out.pred_masks[:1].float()
                masks = low_res_to_masks(logits, track.size)
                if needs_reseed(masks[0], box, policy.reseed_iou):
                    track.outputs["non_cond_frame_outputs"].pop(frame, None)
                    track.session.frames_tracked_per_obj[0].pop(frame, None)
                    self._seed(track, frame, box)
                    stats.reseeds += 1
                    seeded = True
        if frame in track.outputs["cond_frame_outputs"]:
            stored = track.outputs["cond_frame_outputs"][frame]
            seeded = True
        else:
            stored = track.outputs["non_cond_frame_outputs"][frame]
        presence = float(stored["object_score_logits"].reshape(-1)[0])
        return stored["pred_masks"][:1].float().cpu(), presence, seeded

    def _after_step(self, track: _Track, frame: int) -> None:
        """Drop the 1024 x 1024 logits (read only by the memory encoder) and the used prompt."""
        for storage in track.outputs.values():
            stored = storage.get(frame)
            if stored is not None:
                stored.pop("high_res_masks", None)
        track.session.point_inputs_per_obj[0].pop(frame, None)

    def _prune(self, track: _Track, frame: int, reverse: bool, policy: PropagationPolicy,
               stats: PropagationStats) -> None:
        """Forget outputs no later step reads (see the module docstring).

        A step at frame f reads the outputs of the ``window`` frames before it (after it when
        tracking backward) and the conditioning frames. The backward pass runs first, so while
        it runs, the outputs just before the first seed are kept for the forward pass.
        """
        if not self.retain_all:
            self._forget(track, frame, reverse, policy)
        cond, other = track.outputs["cond_frame_outputs"], track.outputs["non_cond_frame_outputs"]
        stats.peak_stored_frames = max(stats.peak_stored_frames, len(cond) + len(other))
        stats.peak_conditioning_frames = max(stats.peak_conditioning_frames, len(cond))

    def _forget(self, track: _Track, frame: int, reverse: bool, policy: PropagationPolicy) -> None:
        outputs = track.outputs["non_cond_frame_outputs"]
        tracked = track.session.frames_tracked_per_obj[0]
        if reverse:
            stale = [g for g in outputs if frame + self.window < g < track.first - self.window]
        else:
            stale = [g for g in outputs if g < frame - self.window + 1]
        for g in stale:
            outputs.pop(g, None)
            tracked.pop(g, None)
        cap = policy.max_conditioning_frames
        cond = track.outputs["cond_frame_outputs"]
        if cap is not None and len(cond) > cap:
            order = sorted(cond, reverse=reverse)  # oldest in the direction of travel first
            for g in order[: len(cond) - cap]:
                cond.pop(g)

    def _backward(self, source, tracks, end: int, slot: _FrameSlot, policy, stats, tmp: Path):
        """Track frames end-1 .. 0 in reverse for the objects first seeded after them."""
        if end == 0:
            return None
        store: dict[int, _LogitsFile] = {}
        for start in range(((end - 1) // self.chunk_size) * self.chunk_size, -1, -self.chunk_size):
            stop = min(start + self.chunk_size, end)
            with _Timer(stats, "decode"):
                chunk = list(source.frames(start, stop))
            for frame in range(stop - 1, start - 1, -1):
                slot.set(frame, chunk[frame - start])
                for k, track in enumerate(tracks):
                    if track is None or frame >= track.first:
                        continue
                    with _Timer(stats, "track"):
                        logits, presence, seeded = self._step(track, frame, True, policy, stats)
                        self._prune(track, frame, True, policy, stats)
                    if k not in store:
                        store[k] = _LogitsFile(tmp / f"object{k}.bin", track.first, tuple(logits.shape[-2:]))
                    store[k].put(frame, logits[0, 0].numpy(), presence, seeded)
                stats.frames_tracked += 1
            del chunk
        return store

    def _forward(self, source, tracks, store, slot: _FrameSlot, policy, with_probs, stats, on_frame):
        num = len(tracks)
        height, width = source.size
        frame = 0
        times = frame_times(source)
        decode = source.frames(0, source.num_frames)
        while True:
            with _Timer(stats, "decode"):
                image = next(decode, None)
            if image is None:
                break
            slot.set(frame, image)
            masks = np.zeros((num, height, width), dtype=np.bool_)
            probs = np.zeros((num, height, width), dtype=np.float32) if with_probs else None
            scores = np.full((num,), np.nan, dtype=np.float32)
            seeded = np.zeros((num,), dtype=np.bool_)
            tracked_here = False
            for k, track in enumerate(tracks):
                if track is None:
                    continue
                if frame < track.first:
                    array, scores[k], seeded[k] = store[k].get(frame)
                    logits = torch.from_numpy(array)[None, None]
                else:
                    with _Timer(stats, "track"):
                        logits, scores[k], seeded[k] = self._step(track, frame, False, policy, stats)
                        self._prune(track, frame, False, policy, stats)
                    tracked_here = True
                with _Timer(stats, "postprocess"):
                    if probs is not None:
                        m, p = low_res_to_masks_and_probs(logits, (height, width))
                        probs[k] = p[0]
                    else:
                        m = low_res_to_masks(logits, (height, width))
                masks[k] = m[0]
            stats.frames_tracked += int(tracked_here)
            yield frame_result(frame, image, masks, probs, scores, seeded, time=float(times[frame]))
            stats.frames_done = frame + 1
            if on_frame is not None:
                on_frame(stats)
            frame += 1
        if frame != source.num_frames:
            raise RuntimeError(f"the frame source gave {frame} frames, it announced {source.num_frames}")


class OnlineSession:
    """Forward-only propagation of keyed objects through a stream of unknown length.

    The engine's own pieces (frame slot, per-object sessions sharing one vision-feature cache,
    seeding, tracking step, pruning) driven one frame at a time, so a live stream gets the
    masks a file gets: :meth:`load` the next frame (numbered 0, 1, 2, ... in the order given),
    :meth:`seed` objects on it from a box, :meth:`track` each object on it. Only the policy's
    ``max_conditioning_frames`` applies (the seeds are given, not planned from keyframes).
    Each object's session reports an unbounded length (:data:`UNBOUNDED_FRAMES`): see
    :mod:`tgs.segment.online` for why that equals a run over a long enough file.
    """

    def __init__(self, engine: PropagationEngine, size: tuple[int, int], policy: PropagationPolicy,
                 stats: PropagationStats) -> None:
        self.engine = engine
        self.size = (int(size[0]), int(size[1]))
        self.policy = policy
        self.stats = stats
        self.frame = -1  # the number of the loaded frame (-1 before the first)
        self._slot = _FrameSlot(engine._preprocess)
        self._cache = None  # one vision-feature cache shared by every object's session
        self._tracks: dict[Hashable, _Track] = {}

    @property
    def keys(self) -> list[Hashable]:
        """The objects being tracked, in the order they were (last) seeded."""
        return list(self._tracks)

    def sessions(self) -> dict[Hashable, object]:
        """Each object's transformers inference session (for inspection: memory checks)."""
        return {key: track.session for key, track in self._tracks.items()}

    def load(self, image: np.ndarray) -> int:
        """Make ``image`` (uint8 [H, W, 3] RGB, this session's size) the next frame; its number."""
        if tuple(image.shape[:2]) != self.size:
            raise ValueError(f"frame size changed from {self.size} to {tuple(image.shape[:2])}: start a new session")
        self.frame += 1
        self._slot.set(self.frame, image)
        return self.frame

    def drop(self, key: Hashable) -> None:
        """Stop tracking ``key`` (its state is released); unknown keys are ignored."""
        self._tracks.pop(key, None)

    @torch.inference_mode()
    def seed(self, key: Hashable, box: np.ndarray) -> None:
        """Seed ``key`` on the loaded frame, decoded from ``box`` (xyxy, frame pixels) alone, as
        the engine's first seeds are; a key already tracked starts afresh (a new session,
        nothing remembered from the old object)."""
        if self.frame < 0:
            raise RuntimeError("seed() before the first load()")
        box = np.asarray(box, dtype=np.float32).reshape(-1)
        if box.shape != (4,) or not np.all(np.isfinite(box)):
            raise ValueError(f"seed box: expected a finite xyxy box of 4 numbers, got {box!r}")
        self._tracks.pop(key, None)
        engine = self.engine
        session = _make_session(engine.model, self._slot, UNBOUNDED_FRAMES, self.size, engine.device,
                                engine.dtype, self._cache)
        self._cache = session.cache
        self._tracks[key] = track = _Track(session, self.size, {self.frame: box}, {})
        engine._seed(track, self.frame)

    @torch.inference_mode()
    def track(self, key: Hashable) -> tuple[torch.Tensor, float, bool]:
        """Track ``key`` on the loaded frame (an object seeded there reuses its conditioning
        output), then prune its session to what later steps read: (low-res logits
        [1, 1, h, w] float32 on the CPU, presence logit, seeded)."""
        track = self._tracks[key]
        out = self.engine._step(track, self.frame, False, self.policy, self.stats)
        self.engine._prune(track, self.frame, False, self.policy, self.stats)
        return out
