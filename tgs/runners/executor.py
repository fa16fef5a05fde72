"""Where a stage's per-sample work runs, and the one driver loop that commits it.

A stage (Think, Ground-Segment) is described to an executor by a *worker factory*: a
picklable zero-argument callable that builds a :class:`StageWorker` in the process that
will use it, loading the models once there. A worker has one method::

    process(batch: list[T]) -> list[SampleOutput | record | Exception]   # one per item, in order

and returns plain data only: a record (JSON-able mapping), or a :class:`SampleOutput`
(the record plus masks and records for other streams), or the exception that failed
that item. Workers never touch the run directory.

The driver (the process calling :func:`run_stage`) owns the :class:`RunStore` and is its
only writer, whatever executor computes the results:

- :class:`LocalExecutor` (default): one worker in this process, batches in order;
- ``RayExecutor`` (``tgs.runners.ray_executor``, optional ``ray`` extra): one
  model-holding actor per GPU or CPU slot, bounded in-flight batches, results handed
  back as they finish, dead actors replaced and their batches redone.

Commit order of one sample (crash safety, see ``tgs.run_store``): masks are written
to a temporary name and renamed, then the records of the extra streams (e.g. ``boxes``)
are appended, then the sample's record in the main stream, which commits the sample.
A kill at any point leaves at worst a ``masks/*.tmp`` file, a mask file or extra-stream
lines of an uncommitted sample, or a torn last line; :func:`recover_run` (called by
:func:`run_stage` before anything is written) removes the first and the extra-stream
lines, the store cuts the torn line, and the sample is redone, so a resumed run ends with
exactly the files of an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from tgs import fast_paths
from tgs.run_store import MASKS_DIR, RunStore
from tgs.runners.local import (
    ProgressFactory,
    RunSummary,
    _commit,
    _log_summary,
    _no_progress,
    _plan,
    _run_batch,
)
from tgs.runners.outcomes import (
    Outcome,
    SampleError,
    SampleOutput,
    StageWorker,
    WorkerFactory,
    check_ray_available,
    portable_error,
)

__all__ = [
    "EXECUTOR_NAMES",
    "Executor",
    "LocalExecutor",
    "Outcome",
    "SampleError",
    "SampleOutput",
    "StageWorker",
    "WorkerFactory",
    "check_ray_available",
    "make_executor",
    "order_by_video",
    "parse_resources",
    "portable_error",
    "recover_run",
    "run_stage",
    "video_batches",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")
EXECUTOR_NAMES: tuple[str, ...] = ("local", "ray")


class Executor(Protocol):
    """Runs a worker factory's workers over batches; yields each batch with its outcomes as done.

    Batches may come back in any order; each given batch comes back exactly once (a batch
    whose worker died is redone, or its samples come back as failures).
    """

    name: str

    def map(self, factory: WorkerFactory, batches: Sequence[list[T]]) -> Iterator[tuple[list[T], list[Outcome]]]: ...

    def close(self) -> None: ...

    def __enter__(self) -> Executor: ...

    def __exit__(self, *exc: object) -> None: ...


# --------------------------------------------------------------------------- local executor


class LocalExecutor:
    """One worker in this process; batches run in order (the default executor).

    The worker is built on the first batch, so a run with nothing left to do loads no model.
    """

    name = "local"

    def map(self, factory: WorkerFactory, batches: Sequence[list[T]]) -> Iterator[tuple[list[T], list[Outcome]]]:
        worker: StageWorker[Any] | None = None
        for batch in batches:
            if worker is None:
                worker = factory()
            yield batch, _run_batch(worker.process, batch)

    def close(self) -> None:
        """Nothing to release: the worker lives only during :meth:`map`."""

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- choosing an executor


_RESOURCE_KEYS = {"gpu": "num_gpus", "gpus": "num_gpus", "cpu": "num_cpus", "cpus": "num_cpus"}


def parse_resources(text: str | None) -> dict[str, float]:
    """``"gpu=0.5,cpu=2"`` -> ``{"num_gpus": 0.5, "num_cpus": 2.0}``; other names are custom Ray resources.

    An empty or None text gives ``{}`` (the executor's defaults).
    """
    out: dict[str, float] = {}
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        name, sep, value = part.partition("=")
        name = name.strip()
        try:
            amount = float(value)
        except ValueError:
            amount = -1.0
        if not sep or not name or amount < 0:
            raise ValueError(
                f"resources: expected NAME=AMOUNT pairs separated by commas (e.g. gpu=0.5,cpu=2), got {part!r}"
            )
        key = _RESOURCE_KEYS.get(name.lower(), name)
        if key in out:
            raise ValueError(f"resources: {name!r} given twice in {text!r}")
        out[key] = amount
    return out


def make_executor(
    name: str = "local",
    *,
    address: str | None = None,
    workers: int | None = None,
    resources: Mapping[str, float] | str | None = None,
    **ray_options: Any,
) -> LocalExecutor | Any:
    """An executor by name: ``"local"`` (in this process) or ``"ray"``.

    address: Ray cluster address (``"auto"``: the cluster this node belongs to,
        ``"HOST:PORT"``, ``"ray://HOST:10001"``); None starts a local Ray instance.
    workers: number of Ray actors (None: as many as the cluster's GPUs, or CPUs, allow).
    resources: per actor, as a mapping or text (``"gpu=1"``, ``"gpu=0.5,cpu=2"``);
        None: one GPU per actor when the cluster has GPUs, else one CPU.
    ray_options: further :class:`tgs.runners.ray_executor.RayExecutor` arguments
        (``max_in_flight``, ``max_restarts``, ``max_attempts``, ``runtime_env``, ...).

    Use it as a context manager (or call ``close()``): a Ray instance it started is shut
    down then; one that was already running is left alone.
    """
    key = name.strip().lower()
    if key not in EXECUTOR_NAMES:
        raise ValueError(f"unknown executor {name!r}; available: {', '.join(EXECUTOR_NAMES)}")
    if isinstance(resources, str):
        resources = parse_resources(resources)
    if key == "local":
        given = [label for label, value in (("address", address), ("resources", resources or None)) if value]
        given += list(ray_options)
        if workers not in (None, 1):
            given.append("workers")
        if given:
            raise ValueError(
                f"the local executor runs one worker in this process and takes no {', '.join(given)}; "
                "use the ray executor to run several"
            )
        return LocalExecutor()
    from tgs.runners.ray_executor import RayExecutor

    return RayExecutor(address=address, workers=workers, resources=resources, **ray_options)


# --------------------------------------------------------------------------- crash recovery


def recover_run(store: RunStore, stream: str, extra_streams: Iterable[str] = ()) -> None:
    """Undo what a killed run left half-done, before this run writes anything.

    - ``masks/*.tmp``: a mask write cut short; removed.
    - trailing lines of an extra stream whose uid is not committed in ``stream``: written
      for a sample whose record never made it; cut, so the redo does not duplicate them.
      (The driver appends a sample's extra lines right before its record, so such lines
      can only be at the end.)
    A torn last line in any stream is cut by the store when the stream is next appended to.
    """
    masks_dir = store.run_dir / MASKS_DIR
    if masks_dir.is_dir():
        for tmp in masks_dir.glob("*.tmp"):
            logger.warning("removing %s, a mask write cut short by a crash", tmp)
            tmp.unlink()
    extra = [name for name in extra_streams if name != stream]
    if not extra:
        return
    committed = store.done_uids(stream)  # extra lines are written for samples that succeed
    for name in extra:
        _cut_uncommitted_tail(store, name, committed)


def _cut_uncommitted_tail(store: RunStore, stream: str, committed: set[str]) -> None:
    path = store.stream_path(stream)
    if not path.exists():
        return
    data = path.read_bytes()
    keep = data.rfind(b"\n") + 1  # a torn last line goes too
    dropped = 0
    while keep > 0:
        start = data.rfind(b"\n", 0, keep - 1) + 1
        line = data[start : keep - 1]
        if line.strip() and _uid_of_line(line) in committed:
            break
        keep, dropped = start, dropped + (1 if line.strip() else 0)
    if keep == len(data):
        return
    logger.warning("cutting %d line(s) of uncommitted samples from the end of %s", dropped, path)
    with open(path, "rb+") as fh:
        fh.truncate(keep)
        fh.flush()
        os.fsync(fh.fileno())


def _uid_of_line(line: bytes) -> str | None:
    import json

    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return None
    uid = record.get("uid") if isinstance(record, dict) else None
    return uid if isinstance(uid, str) else None


# --------------------------------------------------------------------------- the driver loop


def run_stage(
    items: Iterable[T],
    factory: WorkerFactory,
    *,
    store: RunStore,
    stream: str,
    executor: Executor | None = None,
    extra_streams: Sequence[str] = (),
    uid_of: Callable[[T], str] = lambda item: item.uid,  # type: ignore[attr-defined]
    group_of: Callable[[T], str] | None = None,
    batch_size: int = 1,
    limit: int | None = None,
    progress: ProgressFactory | None = None,
) -> RunSummary:
    """Process every item whose uid is not done in ``store``'s ``stream`` on ``executor``.

    The same skipping, ``limit``, failure records and summary as
    :func:`tgs.runners.local.run_local`; outcomes are committed in the order they arrive
    (with Ray, not the order of ``items``). extra_streams: the streams that
    :class:`SampleOutput` may write besides ``stream`` (for crash recovery).

    group_of: the video of an item. Given, the unit of work is a video: the items of one
    video are brought together (videos in order of first appearance, over every item,
    done or not, so a resumed run commits in the order of an uninterrupted one) and a
    batch holds whole videos only (at least ``batch_size`` items unless the work runs
    out), so one worker sees all of a video's pending items at once. Resume stays per
    item: only the items not committed are handed out.

    The fast paths taken and the fallbacks from them in this call (:mod:`tgs.fast_paths`,
    counted in the worker's process and carried back by the executor) are written to the
    manifest as ``fast_paths``, also when the call stops early.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size: expected a positive integer, got {batch_size}")
    recover_run(store, stream, extra_streams)
    if group_of is not None:
        items = order_by_video(items, group_of)
    summary, todo = _plan(items, uid_of, store.done_uids(stream), batch_size, limit)
    if group_of is None:
        batches = [todo[start : start + batch_size] for start in range(0, len(todo), batch_size)]
    else:
        batches = video_batches(todo, group_of, batch_size)
    committed: set[str] = set()
    kill_after = _test_kill_after()
    with contextlib.ExitStack() as stack:
        ledger = stack.enter_context(fast_paths.counting())
        stack.callback(lambda: store.update_manifest(fast_paths=ledger.as_record()))
        if executor is None:
            executor = stack.enter_context(LocalExecutor())
        advance = stack.enter_context((progress or _no_progress)(len(todo)))
        for batch, outcomes in executor.map(factory, batches):
            for item, outcome in zip(batch, outcomes):
                uid = uid_of(item)
                if uid in committed:  # an executor must hand back each batch once
                    raise RuntimeError(f"executor {executor.name!r} returned {uid} twice")
                committed.add(uid)
                commit_outcome(store, stream, uid, outcome, summary)
                if kill_after is not None and len(committed) >= kill_after:
                    os.kill(os.getpid(), signal.SIGKILL)  # test hook: a crash at a known point
            advance(len(batch))
    _log_summary(summary, stream)
    return summary


KILL_AFTER_ENV = "TGS_TEST_KILL_AFTER_COMMITS"
"""Test hook: the driver kills itself (SIGKILL) after committing this many samples in one call."""


def _test_kill_after() -> int | None:
    value = os.environ.get(KILL_AFTER_ENV, "").strip()
    return int(value) if value else None


def order_by_video(items: Iterable[T], group_of: Callable[[T], str]) -> list[T]:
    """The items with each video's items brought together: videos by first appearance, items in order."""
    groups: dict[str, list[T]] = {}
    for item in items:
        groups.setdefault(group_of(item), []).append(item)
    return [item for group in groups.values() for item in group]


def video_batches(items: Sequence[T], group_of: Callable[[T], str], min_size: int = 1) -> list[list[T]]:
    """Consecutive items cut into batches of whole videos, each of at least ``min_size`` items
    (the last may hold fewer); a video is never split."""
    batches: list[list[T]] = []
    current: list[T] = []
    previous: str | None = None
    for item in items:
        video = group_of(item)
        if current and video != previous and len(current) >= min_size:
            batches.append(current)
            current = []
        current.append(item)
        previous = video
    if current:
        batches.append(current)
    return batches


def commit_outcome(store: RunStore, stream: str, uid: str, outcome: Outcome, summary: RunSummary) -> None:
    """Persist one sample's outcome in commit order: masks, extra streams, then its record.

    A record with a ``timings`` mapping gets ``timings["save"]``: seconds spent here
    writing its masks and extra records.
    """
    if not isinstance(outcome, SampleOutput):
        _commit(store, stream, uid, outcome, summary)
        return
    start = time.perf_counter()
    if outcome.mask_file is not None:
        store.save_mask_file(uid, outcome.mask_file)
    elif outcome.masks is not None:
        store.save_masks(uid, outcome.masks)
    for name, records in outcome.streams.items():
        if name == stream:
            raise RuntimeError(f"a sample output cannot write extra records to its own stream {stream!r}")
        for extra in records:
            store.append(name, extra)
    record = dict(outcome.record)
    timings = record.get("timings")
    if isinstance(timings, Mapping):
        record["timings"] = {**timings, "save": round(time.perf_counter() - start, 6)}
    _commit(store, stream, uid, record, summary)
