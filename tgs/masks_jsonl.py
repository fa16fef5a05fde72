"""``masks.jsonl``: the masks of a live session, one line per emitted frame as it is emitted.

Layout (UTF-8, one JSON object per line; a header line, then one line per frame)::

    {"format": "tgs-masks-jsonl/1", "height": H, "width": W, "fps": 25.0 | null,
     "source": "rtsp://..." | null, "objects": [{"id": 0, "name": "the person speaking"}, ...]}
    {"frame": 0, "time": 0.0, "latency": 0.041 | null, "skipped": 0,
     "objects": [{"id": 0, "rle": {"size": [H, W], "counts": "..."},
                  "box": [x0, y0, x1, y1] | null, "score": 0.71 | null,
                  "grounded": true, "seeded": true, "object_text": "a man in a grey suit"}, ...]}

``frame``, ``time``, ``latency`` and ``skipped`` are the :class:`~tgs.types.FrameResult`'s; per
object (one per expression, ``id`` as in the header): the mask in COCO run-length encoding
(``pycocotools.mask.decode`` gives it back exactly), the chosen / tracked box in frame pixels,
the score (NaN written as null), whether the frame was grounded / seeded for it, and
``object_text`` only on the frames where the object text the expression is grounded with
changed: the first frame that reports one, and every change after it, to another text, back
to an earlier one, or to ``null`` (nothing grounded: no answer yet, or a null answer). A
reader knows an expression's object text on any frame from the last ``object_text`` at or
before it.

Unlike the other outputs, the file is written under its final name from the first frame, not
under a partial name renamed at the end: its point is to be read while the session runs (a
consumer follows it like a log) and to keep every finished frame after a crash, Ctrl-C or
SIGKILL. Each line is written whole and flushed at once, so another process (and the file
after the writer dies) sees complete lines plus at most one torn last line, which
:func:`read_masks_jsonl` drops. The cost: a previous ``masks.jsonl`` under the same name is
replaced when the first frame arrives.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from tgs.dense_outputs import encode_rle
from tgs.errors import DataError
from tgs.types import FrameResult

__all__ = ["MASKS_JSONL_FORMAT", "MasksJsonl", "MasksJsonlSink", "read_masks_jsonl"]

logger = logging.getLogger(__name__)

MASKS_JSONL_FORMAT = "tgs-masks-jsonl/1"


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(float(value)) else None


_UNWRITTEN = object()
"""The last written object text of an expression before any was written (None is a text: null)."""


class MasksJsonlSink:
    """A :class:`~tgs.types.FrameSink` writing ``masks.jsonl`` (see the module docstring).

    names: the expressions, one object each, in the order of every FrameResult's masks.
    size: (height, width) if known ahead (checked against the frames), else the first frame's.
    fps, source: written to the header when given.
    fsync_every: seconds between two ``fsync`` calls. Every line is flushed to the operating
        system at once, which is enough to survive the writer's crash or SIGKILL; ``fsync``
        also survives a power loss or a kernel crash, but costs a disk round trip (from well
        under a millisecond to tens of milliseconds) that a 25 fps stream cannot pay on every
        frame. So the first line and ``close()`` are synced, and otherwise at most once per
        ``fsync_every``: a power loss loses at most that much of the stream.
    clock: monotonic seconds (``time.monotonic``), injectable for tests.

    Object texts come from ``frame.details[k]["object_text"]`` (when the producer sets the key;
    None: nothing grounded) and are written on the frames where they differ from the last one
    written for that object.
    """

    def __init__(
        self,
        path: str | Path,
        names: Sequence[str],
        *,
        size: tuple[int, int] | None = None,
        fps: float | None = None,
        source: str | None = None,
        fsync_every: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not fsync_every >= 0:
            raise ValueError(f"fsync_every: expected seconds >= 0, got {fsync_every}")
        self.path = Path(path)
        self.names = [str(n) for n in names]
        self._size = None if size is None else (int(size[0]), int(size[1]))
        self._fps = None if fps is None else float(fps)
        self._source = source
        self._fsync_every = fsync_every
        self._clock = clock
        self._file: IO[bytes] | None = None
        self._last_sync = -math.inf
        self._texts: list[object] = [_UNWRITTEN] * len(self.names)  # last written per object
        self._closed = False
        self.frames_written = 0
        self.fsyncs = 0

    def _header(self) -> dict[str, Any]:
        height, width = self._size if self._size is not None else (None, None)
        return {"format": MASKS_JSONL_FORMAT, "height": height, "width": width, "fps": self._fps,
                "source": self._source, "objects": [{"id": k, "name": n} for k, n in enumerate(self.names)]}

    def _open(self) -> IO[bytes]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "wb")  # noqa: SIM115 - held until close()/abort()
        self._file = handle
        self._write_line(self._header())
        return handle

    def _write_line(self, record: dict[str, Any]) -> None:
        assert self._file is not None
        self._file.write((json.dumps(record, ensure_ascii=True, allow_nan=False) + "\n").encode("ascii"))
        self._file.flush()

    def _sync(self, *, force: bool = False) -> None:
        now = self._clock()
        if force or now - self._last_sync >= self._fsync_every:
            assert self._file is not None
            os.fsync(self._file.fileno())
            self._last_sync = now
            self.fsyncs += 1

    def add(self, frame: FrameResult) -> None:
        """Append the line of one emitted frame (flushed; synced at most every ``fsync_every``)."""
        if self._closed:
            raise ValueError(f"{self.path}: add() after close() or abort()")
        if frame.num_expressions != len(self.names):
            raise ValueError(f"{self.path}: frame {frame.index} has {frame.num_expressions} expressions, "
                             f"the sink was opened with {len(self.names)} names")
        if self._size is None:
            self._size = frame.size
        elif frame.size != self._size:
            raise ValueError(f"{self.path}: frame {frame.index} is {frame.size[0]}x{frame.size[1]}, "
                             f"the stream is {self._size[0]}x{self._size[1]}")
        if self._file is None:
            self._open()
        self._write_line(self._record(frame))
        self.frames_written += 1
        self._sync()

    def _record(self, frame: FrameResult) -> dict[str, Any]:
        objects = []
        for k in range(frame.num_expressions):
            box = frame.boxes[k]
            entry: dict[str, Any] = {
                "id": k,
                "rle": encode_rle(frame.masks[k]),
                "box": None if box is None else [float(v) for v in box],
                "score": _finite_or_none(frame.scores[k]),
                "grounded": bool(frame.grounded[k]),
                "seeded": bool(frame.seeded[k]),
            }
            detail = frame.details[k] if frame.details is not None else None
            if detail and "object_text" in detail:
                text = None if detail["object_text"] is None else str(detail["object_text"])
                if self._texts[k] is _UNWRITTEN or text != self._texts[k]:
                    entry["object_text"] = text
                    self._texts[k] = text
            objects.append(entry)
        latency = None if frame.latency is None else _finite_or_none(frame.latency)
        return {"frame": int(frame.index), "time": float(frame.time), "latency": latency,
                "skipped": int(frame.skipped), "objects": objects}

    def close(self) -> None:
        """Sync and close; a session without frames still leaves its header line."""
        if self._closed:
            return
        if self._file is None:
            self._open()
        self._sync(force=True)
        self._end()
        logger.info("wrote %d frames of masks to %s", self.frames_written, self.path)

    def abort(self) -> None:
        """Stop writing. The lines already written are complete frames and are kept (synced);
        before the first frame nothing was created."""
        if self._closed:
            return
        if self._file is not None:
            self._sync(force=True)
            logger.info("stopped; %s keeps its %d complete frames", self.path, self.frames_written)
        self._end()

    def _end(self) -> None:
        if self._file is not None:
            self._file.close()
        self._closed = True


@dataclass(frozen=True)
class MasksJsonl:
    """What :func:`read_masks_jsonl` read: the header (None if the file has no complete line),
    the complete frame lines in file order, and whether a torn last line was dropped."""

    header: dict[str, Any] | None
    frames: list[dict[str, Any]]
    torn: bool = False

    def masks(self, position: int) -> np.ndarray:
        """bool [N, H, W]: the decoded masks of ``frames[position]``, one per object."""
        from pycocotools import mask as coco_mask

        objects = self.frames[position]["objects"]
        if not objects:
            height = (self.header or {}).get("height") or 0
            width = (self.header or {}).get("width") or 0
            return np.zeros((0, height, width), bool)
        with warnings.catch_warnings():  # pycocotools 2.0.x vs numpy 2's __array__(copy=...)
            warnings.simplefilter("ignore", DeprecationWarning)
            masks = [coco_mask.decode({"size": o["rle"]["size"], "counts": o["rle"]["counts"].encode("ascii")})
                     for o in objects]
        return np.stack(masks).astype(bool)


def read_masks_jsonl(path: str | Path) -> MasksJsonl:
    """Read a masks.jsonl, complete lines only: a torn last line (a writer killed mid-line, or
    one still writing) is dropped. DataError for another format or a broken line elsewhere."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc}", path=path, fix="check the path") from exc
    *complete, tail = data.split(b"\n")
    if tail:
        logger.info("%s: dropping a torn last line (%d bytes; its writer stopped mid-line or is writing)",
                    path, len(tail))
    records = []
    for number, raw in enumerate(complete, start=1):
        try:
            records.append(json.loads(raw))
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: line {number} is not JSON ({exc})", path=path,
                            fix="the file is damaged; only a torn last line is expected") from exc
    if not records:
        return MasksJsonl(None, [], torn=bool(tail))
    header = records[0]
    if not isinstance(header, dict) or header.get("format") != MASKS_JSONL_FORMAT:
        got = header.get("format") if isinstance(header, dict) else type(header).__name__
        raise DataError(f"{path}: expected a {MASKS_JSONL_FORMAT} file, got format {got!r}", path=path,
                        fix="pass the masks.jsonl that a live session wrote")
    return MasksJsonl(header, records[1:], torn=bool(tail))
