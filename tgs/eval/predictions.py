"""Reading predictions to evaluate: a plain folder, a tgs run directory, or memory.

Predictions folder layout (any method can write it)::

    PRED/
      <uid>/
        00000.png ... 00009.png    one binary mask per frame, any size and 8/16-bit
                                   mode; pixel > 0 = foreground (RGB: any channel > 0)
        00000_prob.png ...         optional, per frame: 8-bit grayscale foreground
                                   probability, value = round(p * 255)
        probs.npy                  optional instead of the PNGs: float16/float32
                                   [T, h, w] probabilities in [0, 1] (exact)

Frame files are numbered from 00000 without gaps (the names of the ground-truth files,
``0000{i}.png``). Probability maps feed the F metric (and the refavs protocol, see
``refavs_protocol``); without them the binary mask is used as a 0/1 map. A run
directory (``manifest.json`` with ``masks/`` or ``samples.jsonl``) is read through
``tgs.run_store.RunStore``.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
from PIL import Image

from tgs.errors import DataError, TGSError
from tgs.types import Masks

__all__ = [
    "FolderPredictions",
    "MemoryPredictions",
    "PredictionSource",
    "RunPredictions",
    "open_predictions",
    "write_prediction",
]

logger = logging.getLogger(__name__)

_FRAME = re.compile(r"^(\d{5})\.png$")
_PROB = re.compile(r"^(\d{5})_prob\.png$")
PROBS_NPY = "probs.npy"


@runtime_checkable
class PredictionSource(Protocol):
    """Where predictions come from: which uids it holds, and their masks."""

    description: str

    def uids(self) -> frozenset[str]:
        """Every uid with a prediction."""
        ...

    def load(self, uid: str) -> Masks | None:
        """The prediction of ``uid``, or None when it has none."""
        ...


class MemoryPredictions:
    """Predictions held in memory, e.g. by the pipeline runner: a mapping uid -> Masks."""

    def __init__(self, masks: Mapping[str, Masks], description: str = "in-memory predictions") -> None:
        self._masks = dict(masks)
        self.description = description

    def uids(self) -> frozenset[str]:
        return frozenset(self._masks)

    def load(self, uid: str) -> Masks | None:
        return self._masks.get(uid)


class FolderPredictions:
    """A predictions folder in the layout of the module docstring."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"predictions folder not found: {self.root}", path=self.root,
                            fix="pass the folder holding one subfolder per uid")
        self.description = f"folder {self.root}"
        self._uids: frozenset[str] | None = None

    def uids(self) -> frozenset[str]:
        if self._uids is None:
            with os.scandir(self.root) as entries:
                self._uids = frozenset(e.name for e in entries if e.is_dir() and not e.name.startswith("."))
        return self._uids

    def load(self, uid: str) -> Masks | None:
        folder = self.root / uid
        if not folder.is_dir():
            return None
        names = os.listdir(folder)
        frames = _numbered(folder, names, _FRAME, "mask")
        if not frames:
            raise DataError(f"no frame masks (00000.png, ...) in {folder}", path=folder,
                            fix="write one PNG per frame named 00000.png, 00001.png, ...")
        masks = _stack(folder, [_read_mask(p) for p in frames])
        probs = self._load_probs(folder, names, len(frames))
        try:
            return Masks(masks=masks, probs=probs)
        except (TypeError, ValueError) as exc:
            raise DataError(f"inconsistent prediction in {folder}: {exc}", path=folder) from exc

    @staticmethod
    def _load_probs(folder: Path, names: list[str], num_frames: int) -> np.ndarray | None:
        prob_pngs = _numbered(folder, names, _PROB, "probability")
        if PROBS_NPY in names:
            if prob_pngs:
                raise DataError(f"{folder} holds both probs.npy and *_prob.png", path=folder,
                                fix="keep one of the two probability formats")
            path = folder / PROBS_NPY
            try:
                probs = np.load(path, allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise DataError(f"cannot read probabilities: {exc}", path=path) from exc
            if probs.ndim != 3 or not np.issubdtype(probs.dtype, np.floating):
                raise DataError(f"probs.npy must be float [T, h, w], got {probs.dtype} {probs.shape}", path=path)
            probs = probs.astype(np.float32, copy=False)
        elif prob_pngs:
            probs = _stack(folder, [_read_prob(p) for p in prob_pngs])
        else:
            return None
        if probs.shape[0] != num_frames:
            raise DataError(f"{folder}: {num_frames} mask frames but {probs.shape[0]} probability maps",
                            path=folder, fix="write one probability map per mask frame, or none")
        if not np.isfinite(probs).all():
            raise DataError(f"{folder}: probabilities contain NaN or inf", path=folder)
        return probs


class RunPredictions:
    """Masks of a tgs run directory, through ``RunStore``.

    A uid counts as predicted when its latest record in ``stream`` (``samples.jsonl`` by
    default) did not fail and its mask file exists; failed samples are missing.
    """

    def __init__(self, run_dir: str | Path, stream: str = "samples") -> None:
        # "samples" is the stream tgs.runners.ground_segment commits segmented samples to
        try:
            from tgs.run_store import RunStore
        except ImportError as exc:  # pragma: no cover - the store ships with tgs
            raise TGSError("reading run directories needs tgs.run_store") from exc
        self.run_dir = Path(run_dir)
        self._store = RunStore(self.run_dir)
        self._stream = stream
        self.description = f"run {self.run_dir}"
        self._uids: frozenset[str] | None = None

    def uids(self) -> frozenset[str]:
        if self._uids is None:
            if not self._store.stream_path(self._stream).is_file():
                raise DataError(
                    f"run directory {self.run_dir} has no {self._stream}.jsonl",
                    path=self.run_dir,
                    fix="evaluate a run that segmented masks, or pass its masks as a predictions folder",
                )
            done = self._store.done_uids(self._stream)
            present = {uid for uid in done if self._store.mask_path(uid).is_file()}
            if len(present) < len(done):
                logger.warning("%d finished samples of %s have no mask file; they count as missing",
                               len(done) - len(present), self.run_dir)
            self._uids = frozenset(present)
        return self._uids

    def load(self, uid: str) -> Masks | None:
        if uid not in self.uids():
            return None
        return self._store.load_masks(uid)

    @property
    def splits(self) -> tuple[str, ...] | None:
        """The splits the run was made on (its manifest's ``data.splits``); None: every split, or not recorded."""
        from tgs.run_store import MANIFEST

        try:
            manifest = json.loads((self.run_dir / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        splits = (manifest.get("data") or {}).get("splits") if isinstance(manifest, dict) else None
        return tuple(str(s) for s in splits) if isinstance(splits, list) else None


def open_predictions(
    source: str | Path | PredictionSource | Mapping[str, Masks],
) -> PredictionSource:
    """A prediction source from a path (run directory or folder), a mapping or a source."""
    if isinstance(source, PredictionSource):
        return source
    if isinstance(source, Mapping):
        return MemoryPredictions(source)
    path = Path(source)
    is_run = (path / "manifest.json").is_file() and ((path / "masks").is_dir() or (path / "samples.jsonl").is_file())
    if is_run:
        return RunPredictions(path)
    return FolderPredictions(path)


def write_prediction(root: str | Path, uid: str, masks: Masks, *, probs_format: str | None = "png") -> Path:
    """Write one sample in the predictions-folder layout; returns its folder.

    probs_format: "png" (8-bit, round(p * 255)), "npy" (float32, exact) or None (no
    probability maps even when ``masks.probs`` is set).
    """
    if probs_format not in ("png", "npy", None):
        raise ValueError(f"probs_format: expected 'png', 'npy' or None, got {probs_format!r}")
    folder = Path(root) / uid
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(masks.masks):
        Image.fromarray(frame.astype(np.uint8) * 255).save(folder / f"{i:05d}.png")
    if masks.probs is not None and probs_format == "png":
        quantised = np.round(np.clip(masks.probs, 0.0, 1.0) * 255).astype(np.uint8)
        for i, frame in enumerate(quantised):
            Image.fromarray(frame).save(folder / f"{i:05d}_prob.png")
    elif masks.probs is not None and probs_format == "npy":
        np.save(folder / PROBS_NPY, masks.probs.astype(np.float32))
    return folder


def _numbered(folder: Path, names: Iterable[str], pattern: re.Pattern[str], what: str) -> list[Path]:
    """Files matching ``pattern`` ordered by frame number; the numbers must be 0..T-1."""
    found = sorted((int(m.group(1)), name) for name in names if (m := pattern.match(name)))
    numbers = [n for n, _ in found]
    if numbers != list(range(len(numbers))):
        raise DataError(f"{what} files in {folder} are not numbered 00000..{len(numbers) - 1:05d}: "
                        f"found {', '.join(name for _, name in found[:12])}", path=folder,
                        fix="number frames from 00000 without gaps")
    return [folder / name for _, name in found]


def _read_mask(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as image:
            mode = image.mode
            array = np.asarray(image)
    except OSError as exc:
        raise DataError(f"cannot read mask: {exc}", path=path) from exc
    if array.ndim == 3:
        colour = array[..., :-1] if mode.endswith("A") else array  # alpha is not foreground
        return colour.any(axis=-1)
    return array > 0


def _read_prob(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as image:
            if image.mode != "L":
                raise DataError(f"probability PNG must be 8-bit grayscale (mode L), got mode {image.mode}",
                                path=path, fix="save round(p * 255) as uint8")
            array = np.asarray(image)
    except OSError as exc:
        raise DataError(f"cannot read probability map: {exc}", path=path) from exc
    return array.astype(np.float32) / np.float32(255)


def _stack(folder: Path, frames: list[np.ndarray]) -> np.ndarray:
    shapes = {f.shape for f in frames}
    if len(shapes) > 1:
        raise DataError(f"frames in {folder} differ in size: {sorted(shapes)}", path=folder,
                        fix="write every frame of a sample at one size")
    return np.stack(frames)
