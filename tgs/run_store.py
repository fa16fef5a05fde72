"""A run directory: the durable, append-only home of everything a run produces.

Layout::

    RUN/
      manifest.json          what was run: command, config, model sources, versions
      <stream>.jsonl         one JSON object per line, e.g. thoughts.jsonl, samples.jsonl
      masks/<uid>.npz        per-sample masks (bit-packed) and probability maps

Commit rule: a JSONL line ending in a newline is committed; anything after the last newline
is a torn write from a crash and is cut off when the stream is next opened for writing.
A mask file is written to a temporary name and atomically renamed, and only counts once a
record naming its uid is committed, so a crash between the two simply redoes the sample.
Every append is flushed and fsynced: nothing finished is ever lost, and a rerun resumes.

One writer: :meth:`RunStore.open` takes an exclusive ``flock`` on ``RUN/.lock`` (which holds
the writer's pid) until :meth:`RunStore.close`. A second process opening the same run for
writing is refused with a RunError naming the holder's pid, instead of both running every
sample. The kernel drops the lock when its process dies, so the lock file of a killed run
(``kill -9``) is stale and simply taken over. Readers (eval, report) take no lock.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

from tgs.errors import RunError
from tgs.output_folder import LOCK, lock_folder
from tgs.types import Masks

__all__ = ["LOCK", "MANIFEST", "RunStore", "encode_masks", "safe_uid"]

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
MASKS_DIR = "masks"
FAILED = "failed"
_SAFE_UID = re.compile(r"^[A-Za-z0-9_\-][A-Za-z0-9._\-]*$")


def safe_uid(uid: str) -> str:
    """The uid itself if it is safe as a file name; otherwise an error (never a silent rename)."""
    if not _SAFE_UID.fullmatch(uid) or ".." in uid:  # fullmatch: '$' would let a trailing newline through
        raise RunError(
            f"uid {uid!r} cannot be used as a file name",
            fix="uids may hold letters, digits, '.', '_' and '-' only, and no '..'",
        )
    return uid


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def encode_masks(masks: Masks, *, probs_dtype: str = "float32") -> bytes:
    """The bytes of a ``masks/<uid>.npz`` file: bit-packed masks, shape, probabilities.

    Separate from writing so that the costly part (compressing the probabilities) can run
    where the masks were made, in parallel, and the run directory's single writer only
    writes bytes.
    """
    t, h, w = masks.masks.shape
    arrays: dict[str, np.ndarray] = {
        "packed": np.packbits(masks.masks, axis=-1),
        "shape": np.array([t, h, w], np.int64),
    }
    if masks.probs is not None:
        arrays["probs"] = masks.probs.astype(np.dtype(probs_dtype), copy=False)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


class RunStore:
    """Reads and appends the files of one run directory; the single writer of that directory."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self._handles: dict[str, IO[str]] = {}
        self._lock: IO[str] | None = None

    # --------------------------------------------------------------------- lock
    def lock(self) -> None:
        """Become the run directory's only writer (see the module docstring); RunError if another
        live process is. Reentrant within one process (it already holds the lock)."""
        if self._lock is None:
            self._lock = lock_folder(self.run_dir, "run directory", RunError)

    def _unlock(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing the file releases the flock
            self._lock = None

    # ----------------------------------------------------------------- manifest
    @classmethod
    def open(
        cls,
        run_dir: str | Path,
        manifest: Mapping[str, Any],
        *,
        resume: bool = True,
        fingerprint_keys: Iterable[str] | None = None,
        upgrade: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None,
    ) -> RunStore:
        """Create a run directory, or reopen one made by the same configuration.

        ``fingerprint_keys`` are the manifest keys that must match for a resume (default:
        all keys except ``created`` and ``versions``); a run written under another
        configuration is never silently mixed with this one. ``upgrade`` reads a manifest
        written by an older version as today's schema before the comparison (the file is
        left as it is).
        """
        store = cls(run_dir)
        store.lock()
        try:
            store._check_or_write_manifest(manifest, resume=resume, fingerprint_keys=fingerprint_keys, upgrade=upgrade)
        except BaseException:
            store.close()
            raise
        return store

    def _check_or_write_manifest(
        self,
        manifest: Mapping[str, Any],
        *,
        resume: bool,
        fingerprint_keys: Iterable[str] | None,
        upgrade: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None,
    ) -> None:
        store = self
        path = store.run_dir / MANIFEST
        if path.exists():
            existing = store.manifest()
            if upgrade is not None:
                existing = dict(upgrade(existing))
            if not resume:
                raise RunError(
                    f"run directory {store.run_dir} already holds a run",
                    path=path,
                    fix="rerun with resume enabled to continue it, or choose another --out",
                )
            keys = set(fingerprint_keys) if fingerprint_keys is not None else (
                (set(existing) | set(manifest)) - {"created", "versions", "command"}
            )
            diffs = sorted(k for k in keys if existing.get(k) != manifest.get(k))
            if diffs:
                shown = "; ".join(f"{k}: {existing.get(k)!r} -> {manifest.get(k)!r}" for k in diffs[:5])
                raise RunError(
                    f"run directory {store.run_dir} was made with another configuration ({shown})",
                    path=path,
                    fix="use a new --out directory, or rerun with the original settings",
                )
            logger.info("resuming run in %s", store.run_dir)
        else:
            store.run_dir.mkdir(parents=True, exist_ok=True)
            _atomic_write_bytes(path, (json.dumps(dict(manifest), indent=2, sort_keys=True) + "\n").encode())

    def manifest(self) -> dict[str, Any]:
        path = self.run_dir / MANIFEST
        try:
            return json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise RunError(f"{self.run_dir} is not a run directory (no {MANIFEST})", path=path) from exc
        except json.JSONDecodeError as exc:
            raise RunError(f"corrupt manifest: {exc}", path=path, fix="restore it or start a new run") from exc

    def update_manifest(self, **fields: Any) -> None:
        """Add informational fields (e.g. timings) to the manifest; atomic."""
        data = self.manifest()
        data.update(fields)
        _atomic_write_bytes(self.run_dir / MANIFEST, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())

    # ------------------------------------------------------------------ streams
    def stream_path(self, stream: str) -> Path:
        if not re.match(r"^[a-z][a-z0-9_]*$", stream):
            raise ValueError(f"stream name must be lowercase letters, digits and '_', got {stream!r}")
        return self.run_dir / f"{stream}.jsonl"

    def _handle(self, stream: str) -> IO[str]:
        handle = self._handles.get(stream)
        if handle is None:
            path = self.stream_path(stream)
            self._repair_tail(path)
            handle = open(path, "a", encoding="utf-8")  # noqa: SIM115 - kept open across appends, closed in close()
            self._handles[stream] = handle
        return handle

    @staticmethod
    def _repair_tail(path: Path) -> None:
        """Cut a torn final line (no trailing newline) left by a crash."""
        if not path.exists():
            return
        with open(path, "rb+") as fh:
            fh.seek(0, io.SEEK_END)
            size = fh.tell()
            if size == 0:
                return
            fh.seek(size - 1)
            if fh.read(1) == b"\n":
                return
            # Walk back to the last newline.
            pos = size - 1
            chunk = 4096
            last_nl = -1
            while pos > 0 and last_nl < 0:
                start = max(0, pos - chunk)
                fh.seek(start)
                block = fh.read(pos - start)
                idx = block.rfind(b"\n")
                if idx >= 0:
                    last_nl = start + idx
                pos = start
            keep = last_nl + 1
            logger.warning("cutting a torn last line (%d bytes) from %s", size - keep, path)
            fh.truncate(keep)
            fh.flush()
            os.fsync(fh.fileno())

    def append(self, stream: str, record: Mapping[str, Any]) -> None:
        """Commit one record: a JSON line, flushed and fsynced before returning."""
        line = json.dumps(dict(record), ensure_ascii=False, sort_keys=False)
        try:
            line.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate (e.g. half an emoji cut off by an endpoint): \u-escape it
            line = json.dumps(dict(record), ensure_ascii=True, sort_keys=False)
        if "\n" in line:  # json.dumps escapes newlines; guard the commit rule anyway
            raise ValueError("a record must serialise to one line")
        handle = self._handle(stream)
        handle.write(line + "\n")
        handle.flush()
        os.fsync(handle.fileno())

    def records(self, stream: str) -> list[dict[str, Any]]:
        """Committed records of a stream, in write order; a torn last line is ignored."""
        path = self.stream_path(stream)
        if not path.exists():
            return []
        data = path.read_bytes()
        lines = data.split(b"\n")
        complete, tail = lines[:-1], lines[-1]
        if tail:
            logger.warning("ignoring a torn last line in %s (a crash mid-write; it is redone)", path)
        out: list[dict[str, Any]] = []
        for number, raw in enumerate(complete, start=1):
            if not raw.strip():
                continue
            try:
                out.append(json.loads(raw))
            except json.JSONDecodeError as exc:
                raise RunError(f"corrupt line {number} in {path.name}: {exc}", path=path) from exc
        return out

    def latest(self, stream: str) -> dict[str, dict[str, Any]]:
        """The latest committed record per uid (a rerun's record supersedes a failed one)."""
        latest: dict[str, dict[str, Any]] = {}
        for record in self.records(stream):
            uid = record.get("uid")
            if isinstance(uid, str):
                latest[uid] = record
        return latest

    def done_uids(self, stream: str) -> set[str]:
        """Uids whose latest record did not fail: a rerun skips them and retries the rest."""
        return {uid for uid, rec in self.latest(stream).items() if rec.get("status") != FAILED}

    # -------------------------------------------------------------------- masks
    def mask_path(self, uid: str) -> Path:
        return self.run_dir / MASKS_DIR / f"{safe_uid(uid)}.npz"

    def save_masks(self, uid: str, masks: Masks, *, probs_dtype: str = "float32") -> Path:
        """Write a sample's masks atomically; commit them by appending its record afterwards.

        masks are bit-packed; probability maps are kept as float32 by default so the F
        metric computed from disk equals the one computed in memory (``float16`` halves
        the size at a ~1e-3 precision cost).
        """
        return self.save_mask_file(uid, encode_masks(masks, probs_dtype=probs_dtype))

    def save_mask_file(self, uid: str, data: bytes) -> Path:
        """Write the bytes of :func:`encode_masks` (made elsewhere, e.g. in a Ray worker) atomically."""
        path = self.mask_path(uid)
        path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write_bytes(path, data)
        return path

    def load_masks(self, uid: str) -> Masks:
        path = self.mask_path(uid)
        try:
            with np.load(path, allow_pickle=False) as data:
                t, h, w = (int(v) for v in data["shape"])
                masks = np.unpackbits(data["packed"], axis=-1, count=w).astype(bool).reshape(t, h, w)
                probs = data["probs"].astype(np.float32) if "probs" in data.files else None
        except FileNotFoundError as exc:
            raise RunError(f"no masks stored for {uid}", path=path) from exc
        except (OSError, ValueError, KeyError) as exc:
            raise RunError(f"corrupt mask file for {uid}: {exc}", path=path, fix="rerun to redo it") from exc
        return Masks(masks=masks, probs=probs)

    # ------------------------------------------------------------------ closing
    def close(self) -> None:
        for handle in self._handles.values():
            handle.close()
        self._handles.clear()
        self._unlock()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
