"""The per-frame outputs of a video session, written frame by frame as results stream.

Each sink is a :class:`tgs.types.FrameSink`: it takes the :class:`tgs.types.FrameResult` of
every emitted frame, in order (``add``: every source frame in dense output, every sampled
frame in sampled output), then ``close()``; nothing holds more than the current frame, so a
10-minute video costs the same memory as a 10-second one.

- :class:`MaskPngSink`: ``masks/<object>/<frame>.png``, 8-bit 0/255 (``tgs eval`` reads this
  layout, one ``<object>`` folder per expression);
- :class:`CocoRleSink`: one ``masks.json``: per frame and object the mask in COCO run-length
  encoding (``pycocotools.mask.decode`` gives it back exactly), its box, SAM2's presence
  score and whether the frame was a seed;
- :class:`OverlayVideoSink`: the source video with every object's mask in its colour and a
  legend, at the output's frame rate and size, with the source's audio (``draw_boxes``: each
  frame's box too, as sampled output draws the grounded boxes).

masks.json and the overlay are written under a partial name (``tgs.output_folder.partial_path``)
and renamed on ``close()``; ``abort()`` removes the partial file. PNGs are complete files
each; a caller that must not mix them with a previous call's writes them into a staging
folder (``tgs.output_folder.StagedOutputs``, as ``tgs segment`` does).

``run_sinks(results, sinks)`` feeds a result stream to sinks, closing them all at the end and
removing partial files on an error. masks.json layout::

    {"format": "tgs-dense-masks/1", "height": H, "width": W, "fps": 25.0, "num_frames": T,
     "objects": [{"id": 0, "name": "..."}, ...],
     "frames": [{"frame": 0, "time": 0.0,
                 "objects": [{"id": 0, "rle": {"size": [H, W], "counts": "..."},
                              "box": [x0, y0, x1, y1] | null, "score": 3.2 | null,
                              "seeded": false}, ...]}, ...]}
"""

from __future__ import annotations

import json
import logging
import math
import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from tgs.output_folder import partial_path
from tgs.types import FrameResult, FrameSink
from tgs.video_out import OverlayVideoWriter, SourceAudio
from tgs.viz import Color, expression_color, overlay_objects

__all__ = [
    "CocoRleSink",
    "FrameSink",
    "MaskPngSink",
    "OverlayVideoSink",
    "decode_masks_json",
    "encode_rle",
    "run_sinks",
]

logger = logging.getLogger(__name__)

MASKS_FORMAT = "tgs-dense-masks/1"


def _names(count: int, names: Sequence[str] | None) -> list[str]:
    if names is None:
        return [str(k) for k in range(count)]
    if len(names) != count:
        raise ValueError(f"expected one name per object: {count} objects, {len(names)} names")
    return [str(n) for n in names]


class MaskPngSink:
    """``<root>/<folder>/<frame:05d>.png`` per object; folder names default to 0, 1, ..."""

    def __init__(self, root: str | Path, num_objects: int, folders: Sequence[str] | None = None) -> None:
        self.root = Path(root)
        self.folders = _names(num_objects, folders)
        for folder in self.folders:
            (self.root / folder).mkdir(parents=True, exist_ok=True)

    def add(self, result: FrameResult) -> None:
        from PIL import Image

        for folder, mask in zip(self.folders, result.masks, strict=True):
            Image.fromarray(mask.astype(np.uint8) * 255).save(self.root / folder / f"{result.index:05d}.png")

    def close(self) -> None:
        return None

    def abort(self) -> None:
        return None  # the PNGs written so far are complete files: kept for a resumed run


def encode_rle(mask: np.ndarray) -> dict:
    """COCO RLE of a bool mask [H, W]: {"size": [H, W], "counts": str} (pycocotools)."""
    from pycocotools import mask as coco_mask

    rle = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(float(value)) else None


class CocoRleSink:
    """Streams ``masks.json`` (see the module docstring) to ``path``."""

    def __init__(
        self,
        path: str | Path,
        num_objects: int,
        size: tuple[int, int],
        *,
        names: Sequence[str] | None = None,
        fps: float | None = None,
        times: Sequence[float] | np.ndarray | None = None,
        num_frames: int | None = None,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = partial_path(self.path)
        self._times = times
        self._count = 0
        header = {
            "format": MASKS_FORMAT,
            "height": int(size[0]),
            "width": int(size[1]),
            "fps": fps,
            "num_frames": num_frames,
            "objects": [{"id": k, "name": n} for k, n in enumerate(_names(num_objects, names))],
        }
        self._file = self._tmp.open("w")
        text = json.dumps(header)
        self._file.write(text[:-1] + ', "frames": [\n')

    def add(self, result: FrameResult) -> None:
        objects = []
        for k, mask in enumerate(result.masks):
            box = result.boxes[k]
            objects.append({
                "id": k,
                "rle": encode_rle(mask),
                "box": None if box is None else [float(v) for v in box],
                "score": _finite_or_none(result.scores[k]),
                "seeded": bool(result.seeded[k]),
            })
        time = float(result.time) if self._times is None else float(self._times[result.index])
        entry = {"frame": int(result.index), "time": time, "objects": objects}
        self._file.write(("" if self._count == 0 else ",\n") + json.dumps(entry))
        self._count += 1

    def close(self) -> None:
        self._file.write("\n]}\n")
        self._file.close()
        os.replace(self._tmp, self.path)
        logger.info("wrote %d frames of RLE masks to %s", self._count, self.path)

    def abort(self) -> None:
        self._file.close()
        self._tmp.unlink(missing_ok=True)


def decode_masks_json(path: str | Path) -> Iterator[tuple[int, np.ndarray]]:
    """(frame index, bool masks [N, H, W]) per frame of a masks.json, via pycocotools."""
    from pycocotools import mask as coco_mask

    data = json.loads(Path(path).read_text())
    if data.get("format") != MASKS_FORMAT:
        raise ValueError(f"{path}: expected a {MASKS_FORMAT} file, got format {data.get('format')!r}")
    for frame in data["frames"]:
        with warnings.catch_warnings():  # pycocotools 2.0.x vs numpy 2's __array__(copy=...)
            warnings.simplefilter("ignore", DeprecationWarning)
            masks = [coco_mask.decode({"size": o["rle"]["size"], "counts": o["rle"]["counts"].encode("ascii")})
                     for o in frame["objects"]]
        yield frame["frame"], np.stack(masks).astype(bool) if masks else np.zeros((0, data["height"], data["width"]), bool)


class OverlayVideoSink:
    """The frames with every object's mask in its colour and a legend, encoded as they come at
    ``fps`` (the rate of the frames given), with ``audio`` (e.g. ``copy_audio_from(source)``);
    ``draw_boxes``: each object's box of the frame too; ``fragmented``: a live overlay, playable
    while written (``OverlayVideoWriter``'s ``fragmented``); ``hold_skipped``: each frame the
    source skipped before a result (``FrameResult.skipped``, a live source's real-time policy)
    repeats the last image, so the video keeps the source's timeline (frame k is source frame k)
    instead of playing the emitted frames faster."""

    def __init__(
        self,
        path: str | Path,
        fps: float,
        num_objects: int,
        *,
        names: Sequence[str] | None = None,
        colors: Sequence[Color] | None = None,
        audio: np.ndarray | SourceAudio | None = None,
        sample_rate: int | None = None,
        alpha: float = 0.5,
        draw_boxes: bool = False,
        fragmented: bool = False,
        hold_skipped: bool = False,
    ) -> None:
        self.names = _names(num_objects, names)
        self.draw_boxes = draw_boxes
        self.colors = list(colors) if colors is not None else [expression_color(k) for k in range(num_objects)]
        self.alpha = alpha
        self.writer = OverlayVideoWriter(path, fps, audio, sample_rate, fragmented=fragmented)
        self.hold_skipped = hold_skipped
        self._last: np.ndarray | None = None

    def add(self, result: FrameResult) -> None:
        boxes = list(result.boxes) if self.draw_boxes else [None] * len(self.names)
        image = overlay_objects(result.image, list(result.masks), boxes, self.names, self.colors, alpha=self.alpha)
        if self.hold_skipped:  # skips before the first frame repeat it
            for _ in range(int(result.skipped)):
                self.writer.write(self._last if self._last is not None else image)
            self._last = image
        self.writer.write(image)

    def close(self) -> None:
        self.writer.close()

    def abort(self) -> None:
        self.writer.abort()


def run_sinks(results: Iterable[FrameResult], sinks: Sequence[FrameSink]) -> int:
    """Feed every result to every sink, then close them; returns the number of frames.

    On an error (or Ctrl-C), in a frame or in a sink's close, every sink not yet closed is
    aborted, so no half-written masks.json or video is left under its final name; the frame
    generator is closed in every case (a session's decoder stops even when a sink fails).
    """
    count = 0
    pending = list(sinks)  # not yet closed: aborted on an error
    try:
        for result in results:
            for sink in sinks:
                sink.add(result)
            count += 1
        while pending:
            pending[0].close()
            pending.pop(0)
    except BaseException:
        for sink in pending:
            sink.abort()
        raise
    finally:
        close = getattr(results, "close", None)
        if close is not None:  # a generator: its finally blocks run now, not at garbage collection
            close()
    return count
