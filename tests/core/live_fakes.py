"""Stand-ins for the stages of the live mode: a text-keyed grounder, a box tracker (and the
segmenter that makes it), a scripted thinker."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Mapping, Sequence

import numpy as np

from tgs.segment.online import TrackedObject
from tgs.segment.propagation import PropagationPolicy
from tgs.types import Boxes, Clip, FrameBoxes, ParseStatus, Query, Thought

BOXES = {"cat": [2.0, 2.0, 12.0, 12.0], "dog": [20.0, 4.0, 36.0, 20.0], "bird": [4.0, 18.0, 16.0, 30.0]}


class TextGrounder:
    """One box per known text (score 0.9; none for other texts, or before ``visible_from``
    seconds); records (text, frame time) of every grounding."""

    def __init__(self, visible_from: float = 0.0) -> None:
        self.visible_from = visible_from
        self.calls: list[tuple[str, float]] = []
        self.many: list[list[str]] = []

    def ground(self, clip: Clip, text: str) -> Boxes:
        t = float(clip.frame_times[0])
        self.calls.append((text, round(t, 6)))
        if text not in BOXES or t + 1e-9 < self.visible_from:
            return Boxes((FrameBoxes.empty(),), clip.size, text)
        frame = FrameBoxes(np.array([BOXES[text]], np.float32), np.array([0.9], np.float32), np.array([0]))
        return Boxes((frame,), clip.size, text)

    def ground_many(self, clip: Clip, texts: Sequence[str]) -> list[Boxes]:
        """The shared several-texts method (Grounding DINO's backbone once per frame): here each
        text's boxes, as ``ground`` gives them; records ``texts`` in ``many``."""
        self.many.append(list(texts))
        return [self.ground(clip, text) for text in texts]


class BoxTracker:
    """A tracker whose mask is its seed box, empty on the frames ``hidden`` names; records seeds.
    (The live logic under test, not SAM2: tests/segment/test_online.py covers the tracker.)"""

    def __init__(self, hidden: Callable[[int], bool] = lambda _: False) -> None:
        self.boxes: dict[Hashable, np.ndarray] = {}
        self.hidden = hidden
        self.seeds: list[tuple[int, Hashable]] = []
        self.frame = -1
        self.size: tuple[int, int] | None = None

    def drop(self, key: Hashable) -> None:
        self.boxes.pop(key, None)

    def step(self, image: np.ndarray, seeds: Mapping[Hashable, np.ndarray | None] | None = None) -> dict:
        self.frame += 1
        self.size = image.shape[:2]
        for key, box in (seeds or {}).items():
            self.boxes.pop(key, None)
            if box is not None:
                self.boxes[key] = box
                self.seeds.append((self.frame, key))
        out = {}
        for key, box in self.boxes.items():
            mask = np.zeros(image.shape[:2], bool)
            if not self.hidden(self.frame):
                x0, y0, x1, y1 = (round(float(v)) for v in box)
                mask[y0:y1, x0:x1] = True
            out[key] = TrackedObject(mask, 1.0 if mask.any() else -1.0, seeds is not None and key in seeds)
        return out


class BoxSegmenter:
    """A video segmenter whose online tracker is a :class:`BoxTracker` (``hidden`` passed on);
    records the policy it was asked for."""

    def __init__(self, hidden: Callable[[int], bool] = lambda _: False) -> None:
        self.hidden = hidden
        self.policies: list[PropagationPolicy | None] = []

    def online_tracker(self, policy: PropagationPolicy | None = None, *, with_probs: bool = False) -> BoxTracker:
        self.policies.append(policy)
        return BoxTracker(self.hidden)


class ScriptedThinker:
    """Answers window after window from a script (one s_object per expression per call; the
    last line repeats); records each call's clip; optionally blocks until ``release`` is set."""

    name = "scripted"

    def __init__(self, script: list[list[str]], block: bool = False) -> None:
        self.script = script
        self.clips: list[Clip] = []
        self.started = threading.Event()
        self.release = threading.Event()
        self.block = block

    def think_each(self, items: list[tuple[Query, Clip | None]]) -> list[Thought]:
        self.clips.append(items[0][1])  # type: ignore[arg-type]
        self.started.set()
        if self.block:
            self.release.wait(30)
        line = self.script[min(len(self.clips), len(self.script)) - 1]
        return [Thought(uid=q.uid, raw=f"<s_object>{text}</s_object>", f_object=text, s_object=text,
                        status=ParseStatus.OK) for (q, _), text in zip(items, line, strict=True)]
