"""Many videos, each with its expressions, segmented into one folder: ``tgs segment --batch``.

:func:`segment_many` runs :func:`tgs.core.segment.segment_video` (the one core) on every
video of a list (:mod:`tgs.runners.batch_list`) and writes::

    OUT/
      <uid>/            exactly what ``tgs segment VIDEO EXPR... --out OUT/<uid>`` writes
      index.jsonl       one line per (video, expression): status, output paths, timings, error
      videos.jsonl      one line per video: the commit record a rerun resumes from
      .lock             one writer per OUT (``tgs.run_store``)

A video given by URL (a finite file over http(s), ...) is copied into its folder and segmented as
that file (:mod:`tgs.runners.url_video`); a live URL is that video's error.

It runs on the executors of every other stage (``tgs.runners.executor.run_stage``): the
unit of work is a video; a worker (this process, or one Ray actor per GPU or CPU slot)
keeps its models in a :class:`~tgs.model_cache.ModelCache`, so they load once per worker
for the whole batch, and writes the video's folder itself (with Ray, OUT must be on a
filesystem every node sees). The driver is the only writer of the two streams: for each
video it appends the expression lines to ``index.jsonl``, then the video's line to
``videos.jsonl``, which commits it. OUT is made absolute before it reaches a worker.

Resume, checked rather than assumed: a rerun skips a video only if its committed line
says ok under the same options and expressions *and* its folder still holds every
output (result.json naming those expressions, the overlay, masks.json, every mask PNG);
anything else is redone, and a video that failed (an unreadable file) is retried. A
kill leaves at worst a half-written folder (redone) or index lines of an uncommitted
video at the end of ``index.jsonl`` (cut before the rerun appends, so no line is
duplicated: :func:`cut_uncommitted_index`). A failing video is an error line per
expression, per attempt, whether the worker recorded the failure or the video came back
as an exception (a worker that kept dying on it, a batch that raised); the batch goes on.
What every video shares (device, models, options) is checked once by ``tgs segment``
before the batch starts.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tgs.core.segment import (
    DEFAULT_KEYFRAME_FPS,
    MASKS_DIR,
    MASKS_JSON,
    OVERLAY_NAME,
    RESULT_NAME,
    segment_video,
)
from tgs.core.settings import Settings
from tgs.errors import NoAudioWarning
from tgs.model_cache import ModelCache
from tgs.presets import Preset, default_dtype, get_preset
from tgs.run_store import FAILED, RunStore
from tgs.runners.batch_list import INDEX_STREAM, VIDEOS_STREAM, BatchVideo
from tgs.runners.executor import Executor, LocalExecutor, run_stage
from tgs.runners.local import ProgressFactory, RunSummary, error_kind
from tgs.runners.outcomes import SampleOutput, WorkerFactory
from tgs.runners.url_video import local_video

__all__ = [
    "INDEX_STREAM",
    "REDONE_KIND",
    "VIDEOS_STREAM",
    "BatchOutcome",
    "SegmentBatchWorker",
    "SegmentOptions",
    "cut_uncommitted_index",
    "incomplete_reason",
    "latest_index",
    "segment_many",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SegmentOptions:
    """The ``segment_video`` arguments every video of a batch shares (see its docstring)."""

    thinker: str = "ref-thinker"
    preset: str | Preset = "best"
    settings: Settings = field(default_factory=Settings)
    fps: float | None = None
    keyframe_fps: float = DEFAULT_KEYFRAME_FPS
    png: bool = True
    chunk_seconds: float | None = None
    thinker_options: Mapping[str, Any] = field(default_factory=dict)

    def kwargs(self) -> dict[str, Any]:
        return {
            "thinker": self.thinker, "preset": self.preset, "settings": self.settings, "fps": self.fps,
            "keyframe_fps": self.keyframe_fps, "png": self.png, "chunk_seconds": self.chunk_seconds,
            "thinker_options": dict(self.thinker_options),
        }

    def fingerprint(self) -> str:
        """A short id of these options: a video done under other options is redone."""
        preset = self.preset if isinstance(self.preset, Preset) else get_preset(self.preset)
        # The preset's default precision is hashed where the preset's dtype switch was, so a batch
        # made before the precision became a setting only (--dtype) keeps its id and resumes.
        recorded = {**preset.to_dict(), "dtype": default_dtype(preset)}
        data = {**self.kwargs(), "preset": recorded, "settings": repr(self.settings)}
        text = json.dumps(data, sort_keys=True, default=repr)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- the worker


class SegmentBatchWorker:
    """Segments whole videos into ``out/<uid>/``; one model cache for every video it gets."""

    def __init__(self, out: Path, options: SegmentOptions) -> None:
        self.out = Path(out)
        self.options = options
        self.fingerprint = options.fingerprint()
        self.cache = ModelCache()
        self.segmented = 0  # videos this worker ran segment_video on (tests: nothing redone)

    def process(self, batch: list[BatchVideo]) -> list[SampleOutput]:
        return [self.segment(item) for item in batch]

    def segment(self, item: BatchVideo) -> SampleOutput:
        """One video: its folder written, its records returned (a failure is a record too)."""
        start = time.perf_counter()
        self.segmented += 1
        try:
            with warnings.catch_warnings():  # a silent video is noted in result.json and the index
                warnings.simplefilter("ignore", NoAudioWarning)
                with local_video(item.video, self.out / item.uid) as video:  # a URL: copied first
                    result = segment_video(video.path, list(item.expressions), out=self.out / item.uid,
                                           cache=self.cache, video_label=video.label, **self.options.kwargs())
        except Exception as exc:  # this video fails; the batch goes on
            logger.debug("%s failed", item.video, exc_info=True)
            return _failed(item, exc, time.perf_counter() - start)
        seconds = round(time.perf_counter() - start, 6)
        lines = []
        for output in result.expressions:
            lines.append({
                **_line_head(item, output.index), "status": "ok",
                "outputs": {
                    "folder": item.uid,
                    "overlay_video": f"{item.uid}/{OVERLAY_NAME}",
                    "masks_dir": f"{item.uid}/{MASKS_DIR}/{output.index}",
                    "masks_json": None if result.masks_json is None else f"{item.uid}/{MASKS_JSON}",
                    "result_json": f"{item.uid}/{RESULT_NAME}",
                },
                "object_text": output.object_text,
                "frames": result.num_frames,
                "warnings": list(result.warnings),
                "timings": {**result.timings, "seconds": seconds},
                "error": None, "error_kind": None,
            })
        record = {**_video_head(item, self.fingerprint), "status": "ok", "frames": result.num_frames,
                  "timings": {"seconds": seconds}}
        return SampleOutput(record=record, streams={INDEX_STREAM: lines})


def _line_head(item: BatchVideo, index: int) -> dict[str, Any]:
    return {"uid": item.uid, "video": str(item.video), "expression_index": index,
            "expression": item.expressions[index]}


def _video_head(item: BatchVideo, fingerprint: str) -> dict[str, Any]:
    return {"uid": item.uid, "video": str(item.video), "expressions": list(item.expressions), "options": fingerprint}


def _failed(item: BatchVideo, exc: Exception, seconds: float | None) -> SampleOutput:
    """A failed video's records: one failed index line per expression, its failed videos line.
    seconds: None where the failure came from outside the worker's call (no timing known)."""
    message, kind = str(exc) or type(exc).__name__, error_kind(exc)
    timings = {} if seconds is None else {"seconds": round(seconds, 6)}
    lines = [{**_line_head(item, k), "status": FAILED, "outputs": None, "timings": timings,
              "error": message, "error_kind": kind} for k in range(len(item.expressions))]
    record = {"uid": item.uid, "video": str(item.video), "status": FAILED, "error": message, "error_kind": kind,
              "timings": timings}
    return SampleOutput(record=record, streams={INDEX_STREAM: lines})


@dataclass(frozen=True)
class SegmentWorkerFactory:
    """Picklable: builds a :class:`SegmentBatchWorker` where the videos run."""

    out: Path
    options: SegmentOptions

    def __call__(self) -> SegmentBatchWorker:
        return SegmentBatchWorker(self.out, self.options)


class _FailedVideosAsLines:
    """An executor that hands back a video that ended as an exception (not the worker's own
    failure record) as :func:`_failed`'s records, so that it too gets its failed index lines.

    Such a video is one the worker never answered for: a Ray worker that kept dying on it
    (``worker_crash``), a whole batch that raised, outputs that could not be sent back. As
    with any failure, the lines go before the videos line that commits it (crash safety:
    ``tgs.runners.executor.recover_run``), and a rerun retries it.
    """

    def __init__(self, inner: Executor) -> None:
        self.inner = inner
        self.name = inner.name

    def map(self, factory: WorkerFactory, batches: Sequence[list[BatchVideo]]) -> Iterator[tuple[list, list]]:
        for batch, outcomes in self.inner.map(factory, batches):
            yield batch, [_failed(item, outcome, None) if isinstance(outcome, Exception) else outcome
                          for item, outcome in zip(batch, outcomes)]

    def close(self) -> None:
        """The inner executor is its owner's to close."""

    def __enter__(self) -> _FailedVideosAsLines:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- resume checks


def incomplete_reason(out: Path, item: BatchVideo, record: Mapping[str, Any] | None, fingerprint: str) -> str | None:
    """None when ``item``'s outputs under ``out`` are complete for these options; else why not."""
    if record is None or record.get("status") == FAILED:
        return "not done"
    if record.get("options") != fingerprint:
        return "done under other options"
    if record.get("expressions") != list(item.expressions) or record.get("video") != str(item.video):
        return "done for another video or other expressions"
    folder = out / item.uid
    try:
        result = json.loads((folder / RESULT_NAME).read_text(encoding="utf-8"))
        texts = [e["expression"] for e in result["expressions"]]
        output = result["output"]
        frames = int(output["num_frames"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"{RESULT_NAME} missing or unreadable ({type(exc).__name__})"
    if texts != list(item.expressions):
        return f"{RESULT_NAME} holds other expressions"
    if not (folder / OVERLAY_NAME).is_file():
        return f"{OVERLAY_NAME} missing"
    if output.get("masks_json") and not (folder / MASKS_JSON).is_file():
        return f"{MASKS_JSON} missing"
    if output.get("png", True):
        for k in range(len(texts)):
            pngs = sum(1 for _ in (folder / MASKS_DIR / str(k)).glob("*.png"))
            if pngs != frames:
                return f"{MASKS_DIR}/{k} holds {pngs} of {frames} PNG masks"
    return None


# --------------------------------------------------------------------------- the batch


@dataclass(frozen=True)
class BatchOutcome:
    """What :func:`segment_many` did: the run summary (per video) and where the index is."""

    out: Path
    summary: RunSummary
    index: Path
    redone: dict[str, str] = field(default_factory=dict)  # uid -> why a committed video was redone


def segment_many(
    videos: Sequence[BatchVideo],
    out: str | Path,
    options: SegmentOptions | None = None,
    *,
    executor: Executor | None = None,
    progress: ProgressFactory | None = None,
    worker_factory: WorkerFactory | None = None,
) -> BatchOutcome:
    """Segment every video of ``videos`` (:func:`tgs.runners.batch_list.read_batch_list`) into ``out``.

    See the module docstring for the layout, resume and failures. executor: where the
    videos run (default: this process; ``make_executor("ray", workers=2)`` for a Ray
    pool). worker_factory: builds the worker (default :class:`SegmentWorkerFactory`).
    Raises RunError when another process writes ``out``.
    """
    options = options or SegmentOptions()
    out = Path(out).absolute()  # the workers' paths: a Ray worker's current folder is not this one
    uids = [v.uid for v in videos]
    if len(set(uids)) != len(uids):
        raise ValueError("videos: two entries share an output folder (uid); merge them or give distinct ids")
    fingerprint = options.fingerprint()
    store = RunStore(out)
    store.lock()
    try:
        cut_uncommitted_index(store)
        latest = store.latest(VIDEOS_STREAM)
        redone: dict[str, str] = {}
        for item in videos:
            record = latest.get(item.uid)
            if record is None or record.get("status") == FAILED:
                continue
            reason = incomplete_reason(out, item, record, fingerprint)
            if reason is not None:  # committed, but its outputs do not hold: redo it
                logger.warning("%s: %s; it is redone", item.uid, reason)
                redone[item.uid] = reason
                store.append(VIDEOS_STREAM, {"uid": item.uid, "status": FAILED, "error": f"redone: {reason}",
                                             "error_kind": REDONE_KIND})
        with contextlib.ExitStack() as stack:
            inner = executor if executor is not None else stack.enter_context(LocalExecutor())
            summary = run_stage(
                list(videos),
                worker_factory or SegmentWorkerFactory(out, options),
                store=store,
                stream=VIDEOS_STREAM,  # no extra_streams: the index is recovered above, failed videos' lines too
                executor=_FailedVideosAsLines(inner),
                uid_of=lambda item: item.uid,
                progress=progress,
            )
    finally:
        store.close()
    return BatchOutcome(out, summary, store.stream_path(INDEX_STREAM), redone)


REDONE_KIND = "incomplete"
"""error_kind of the videos line that marks a committed video to redo (its outputs went missing):
the one videos line that no index lines go with."""


def cut_uncommitted_index(store: RunStore) -> None:
    """Cut the index lines of a video whose videos line a kill kept from being written.

    Every attempt at a video, ok or failed, appends one index line per expression (the first
    with expression_index 0) and then its videos line, so a video's attempts in the index are
    as many as its videos lines (the redo marks aside); an attempt beyond that can only be the
    last one, cut here with whatever torn line follows it. (The generic
    ``tgs.runners.executor.recover_run`` keeps only the lines of videos whose latest line is
    ok, which would cut a failed video's committed lines.)
    """
    path = store.stream_path(INDEX_STREAM)
    if not path.exists():
        return
    committed: dict[str, int] = {}
    for record in store.records(VIDEOS_STREAM):
        if record.get("error_kind") != REDONE_KIND:
            committed[record["uid"]] = committed.get(record["uid"], 0) + 1
    data = path.read_bytes()
    attempts: dict[str, int] = {}
    keep = start = 0
    while (end := data.find(b"\n", start)) >= 0:
        if data[start:end].strip():
            line = json.loads(data[start:end])
            uid = line["uid"]
            if int(line["expression_index"]) == 0:
                attempts[uid] = attempts.get(uid, 0) + 1
            if attempts.get(uid, 0) > committed.get(uid, 0):
                break  # this attempt never committed
        keep = start = end + 1
    if keep == len(data):
        return
    logger.warning("cutting %d byte(s) of a video that never committed from the end of %s", len(data) - keep, path)
    with open(path, "rb+") as fh:
        fh.truncate(keep)
        fh.flush()
        os.fsync(fh.fileno())


def latest_index(out: str | Path) -> dict[tuple[str, int], dict[str, Any]]:
    """The latest ``index.jsonl`` line per (video uid, expression index): what a batch holds now."""
    lines: dict[tuple[str, int], dict[str, Any]] = {}
    for record in RunStore(out).records(INDEX_STREAM):
        lines[(record["uid"], int(record["expression_index"]))] = record
    return lines

