"""Overlay strips of single samples for the report: frames + predicted masks + boxes + GT outline.

Frames and ground truth come from the benchmark the run used (its root is in the run
manifest, or given with ``--data`` / ``--meta``); predicted masks from the run's
``masks/<uid>.npz``; boxes from its ``samples.jsonl``. Without the benchmark the masks
are drawn on a grey canvas, so a report can still be built from the run directory alone.
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from tgs.data.benchmark import Benchmark, r2_avs_bench, ref_avs_bench
from tgs.errors import DataError, TGSError
from tgs.report.run_data import RunData
from tgs.viz import fit_mask, overlay_strip

__all__ = ["jpeg_data_uri", "open_benchmark", "png_data_uri", "sample_strip"]

logger = logging.getLogger(__name__)

_CANVAS_GREY = 96


def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def jpeg_data_uri(image: np.ndarray, quality: int = 85) -> str:
    """uint8 [H, W, 3] -> ``data:image/jpeg;base64,...``."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def open_benchmark(
    manifest: Mapping[str, Any], data_root: str | Path | None = None, meta: str | Path | None = None
) -> tuple[Benchmark | None, list[str]]:
    """The benchmark a run used, and notes for the report.

    ``data_root`` / ``meta`` given by the user must work (DataError otherwise); the root
    recorded in the manifest is only tried, and a missing one becomes a note. The CSV
    defaults to the benchmark's file under the root; a CSV whose hash differs from the
    one the manifest recorded is used with a note. A CSV path the manifest records
    (``data.meta``) is used when neither is given.
    """
    recorded = manifest.get("data") if isinstance(manifest.get("data"), Mapping) else {}
    explicit = data_root is not None or meta is not None
    root = data_root if data_root is not None else recorded.get("root")
    if root is None:
        return None, ["the run manifest records no benchmark root: pass --data ROOT (and --meta CSV) to see frames"]
    factory = r2_avs_bench if recorded.get("benchmark") == "r2avs" else ref_avs_bench
    if meta is None and data_root is None and recorded.get("meta"):
        meta = Path(str(recorded["meta"]))
    try:
        bench = factory(Path(root), meta)
    except DataError as exc:
        if explicit:
            raise
        return None, [f"the benchmark the run used is not readable ({exc}): pass --data ROOT --meta CSV to see frames"]
    notes = []
    expected = recorded.get("meta_sha256")
    if expected and _sha256(bench.meta_path) != expected:
        notes.append(f"{bench.meta_path} differs from the metadata CSV the run used (sha256 mismatch)")
    return bench, notes


def _frames_and_truth(bench: Benchmark | None, uid: str) -> tuple[np.ndarray | None, np.ndarray | None, str | None]:
    """(frames [T, H, W, 3] or None, GT bool [T, H, W] or None, note) of one uid."""
    if bench is None:
        return None, None, None
    if uid not in bench:
        return None, None, f"{uid} is not in {bench.meta_path}"
    sample = bench[uid]
    try:
        frames = sample.load_clip(decode_audio=False).frames
    except TGSError as exc:
        return None, None, f"frames unavailable: {exc}"
    if sample.is_null:
        return frames, None, None
    try:
        truth = sample.load_gt()
    except TGSError as exc:
        return frames, None, f"ground truth unavailable: {exc}"
    return frames, truth, None


def _boxes(record: Mapping[str, Any] | None, count: int) -> list[list[float] | None]:
    frames = (record or {}).get("frames") or []
    boxes: list[list[float] | None] = []
    for index in range(count):
        entry = frames[index] if index < len(frames) and isinstance(frames[index], Mapping) else {}
        box = entry.get("box")
        boxes.append([float(v) for v in box] if isinstance(box, list) and len(box) == 4 else None)
    return boxes


def sample_strip(
    run: RunData, uid: str, bench: Benchmark | None, *, max_frames: int = 10, thumb_height: int = 96
) -> tuple[np.ndarray | None, list[str]]:
    """The overlay strip of one uid (uint8 [thumb_height, W, 3]) or None, and notes.

    Red: predicted mask and chosen box; green outline: ground truth.
    """
    try:
        pred = run.store.load_masks(uid).masks
    except TGSError as exc:
        return None, [f"no predicted masks: {exc}"]
    count = pred.shape[0]
    frames, truth, note = _frames_and_truth(bench, uid)
    notes = [note] if note else []
    boxes = _boxes(run.samples.get(uid), count)
    if frames is None:
        frames = np.full((*pred.shape, 3), _CANVAS_GREY, np.uint8)
        boxes = [None] * count  # boxes are in the original frames' pixels, unknown here
        notes.append("drawn on a grey canvas at the mask resolution (no frames)")
    if frames.shape[0] != count:
        notes.append(f"{frames.shape[0]} frames but {count} masks: the first {min(count, frames.shape[0])} are shown")
        count = min(count, frames.shape[0])
    size = (int(frames.shape[1]), int(frames.shape[2]))
    masks = [fit_mask(pred[i], size) for i in range(count)]
    outlines = [fit_mask(truth[i], size) for i in range(count)] if truth is not None and len(truth) >= count else None
    strip = overlay_strip(
        frames[:count], masks, boxes[:count], [str(i) for i in range(count)],
        max_frames=max_frames, thumb_height=thumb_height, outlines=outlines,
    )
    return strip, notes
