"""The in-process sample loop shared by every stage command (``tgs think``, ``tgs ground-segment``).

It owns what every command needs and none should rewrite: skipping uids already done
in the run directory, batching, a progress bar, committing one record per sample,
recording a failing sample with its error and going on, stopping after ``limit``
samples, and a summary of failures by kind. What a sample *is* stays with the caller,
through one function::

    process(batch: list[T]) -> list[record | Exception]   # one entry per item, in order

A record is a JSON-able mapping; the runner adds ``uid`` and ``status: "ok"`` when
absent and commits it to ``stream`` after ``process`` returns, so anything ``process``
saved first (masks) is committed by that record (the run store's commit rule). An
Exception in the list marks that one item failed; ``process`` raising fails the whole
batch. Either way the item gets ``{"uid", "status": "failed", "error", "error_kind"}``
and a rerun retries it. KeyboardInterrupt (and other BaseExceptions) are not caught:
everything committed before them stays, and a rerun resumes after it.
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tgs.errors import TGSError
from tgs.run_store import FAILED, RunStore

__all__ = [
    "ProgressFactory",
    "RunSummary",
    "SampleFailure",
    "error_kind",
    "failure_record",
    "per_item",
    "run_local",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")
Record = Mapping[str, Any]
BatchResult = Sequence["Record | Exception"]
ProgressFactory = Callable[[int], AbstractContextManager[Callable[[int], None]]]
"""Called with the number of samples to do; returns a context yielding ``advance(n)``."""

OK = "ok"


def error_kind(exc: BaseException) -> str:
    """A short class of an error for summaries: a TGSError's ``kind``, else the exception's class name."""
    if isinstance(exc, TGSError):
        return exc.kind
    return type(exc).__name__


def failure_record(uid: str, exc: BaseException) -> dict[str, Any]:
    """The record committed for a sample that failed."""
    message = str(exc) or type(exc).__name__
    return {"uid": uid, "status": FAILED, "error": message, "error_kind": error_kind(exc)}


@dataclass(frozen=True)
class SampleFailure:
    uid: str
    kind: str
    error: str


@dataclass
class RunSummary:
    """What one call of :func:`run_local` did.

    total: distinct uids given; skipped: already done before this call; processed: tried
    in this call (succeeded + failed); stopped_early: ``limit`` ended the call with
    samples left.
    """

    total: int = 0
    skipped: int = 0
    succeeded: int = 0
    failures: list[SampleFailure] = field(default_factory=list)
    stopped_early: bool = False

    @property
    def failed(self) -> int:
        return len(self.failures)

    @property
    def processed(self) -> int:
        return self.succeeded + self.failed

    @property
    def remaining(self) -> int:
        return self.total - self.skipped - self.processed

    def failures_by_kind(self) -> dict[str, int]:
        """Number of failures per error kind, most frequent first."""
        return dict(Counter(f.kind for f in self.failures).most_common())


def per_item(fn: Callable[[T], Record]) -> Callable[[list[T]], list[Record | Exception]]:
    """Turn a one-sample function into a batch ``process``; an error fails only its item."""

    def process(batch: list[T]) -> list[Record | Exception]:
        out: list[Record | Exception] = []
        for item in batch:
            try:
                out.append(fn(item))
            except Exception as exc:  # recorded per sample; the run goes on
                out.append(exc)
        return out

    return process


@contextlib.contextmanager
def _no_progress(total: int) -> Iterator[Callable[[int], None]]:
    yield lambda n=1: None


def _unique_todo(items: Iterable[T], uid_of: Callable[[T], str], done: set[str]) -> tuple[int, int, list[T]]:
    """(distinct uids, already done, items to do); a repeated uid is done once, at its first item."""
    seen: set[str] = set()
    todo: list[T] = []
    skipped = 0
    for item in items:
        uid = uid_of(item)
        if uid in seen:
            continue
        seen.add(uid)
        if uid in done:
            skipped += 1
        else:
            todo.append(item)
    return len(seen), skipped, todo


def _plan(
    items: Iterable[T], uid_of: Callable[[T], str], done: set[str], batch_size: int, limit: int | None
) -> tuple[RunSummary, list[T]]:
    """The work of one call: arguments checked, done uids skipped, ``limit`` applied."""
    if batch_size < 1:
        raise ValueError(f"batch_size: expected a positive integer, got {batch_size}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit: expected a non-negative integer, got {limit}")
    total, skipped, todo = _unique_todo(items, uid_of, done)
    summary = RunSummary(total=total, skipped=skipped)
    if limit is not None and limit < len(todo):
        todo, summary.stopped_early = todo[:limit], True
    if skipped:
        logger.info("resuming: %d of %d samples already done", skipped, total)
    return summary, todo


def run_local(
    items: Iterable[T],
    process: Callable[[list[T]], BatchResult],
    *,
    store: RunStore,
    stream: str,
    uid_of: Callable[[T], str] = lambda item: item.uid,  # type: ignore[attr-defined]
    batch_size: int = 1,
    limit: int | None = None,
    progress: ProgressFactory | None = None,
) -> RunSummary:
    """Process every item whose uid is not done in ``store``'s ``stream``; see the module docstring.

    limit: process at most this many samples in this call (a rerun goes on from there).
    """
    summary, todo = _plan(items, uid_of, store.done_uids(stream), batch_size, limit)
    with (progress or _no_progress)(len(todo)) as advance:
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            for item, outcome in zip(batch, _run_batch(process, batch)):
                _commit(store, stream, uid_of(item), outcome, summary)
            advance(len(batch))
    _log_summary(summary, stream)
    return summary


def _run_batch(process: Callable[[list[T]], BatchResult], batch: list[T]) -> list[Record | Exception]:
    try:
        outcomes = list(process(batch))
    except Exception as exc:  # the whole batch failed: every item is recorded with this error
        logger.debug("batch of %d failed", len(batch), exc_info=True)
        return [exc] * len(batch)
    if len(outcomes) != len(batch):
        error = RuntimeError(f"process returned {len(outcomes)} results for a batch of {len(batch)}")
        return [error] * len(batch)
    return outcomes


def _commit(store: RunStore, stream: str, uid: str, outcome: Record | Exception, summary: RunSummary) -> None:
    if isinstance(outcome, Exception):
        record = failure_record(uid, outcome)
        summary.failures.append(SampleFailure(uid, record["error_kind"], record["error"]))
        logger.warning("%s failed (%s): %s", uid, record["error_kind"], record["error"])
        logger.debug("traceback of %s", uid, exc_info=outcome)
    else:
        if outcome.get("uid", uid) != uid:
            raise RuntimeError(f"record for {uid} names uid {outcome.get('uid')!r}")
        record = {"uid": uid, "status": outcome.get("status", OK)}
        record.update((k, v) for k, v in outcome.items() if k not in record)
        if record["status"] == FAILED:  # process recorded the failure itself
            kind = str(record.setdefault("error_kind", "error"))
            summary.failures.append(SampleFailure(uid, kind, str(record.get("error", ""))))
        else:
            summary.succeeded += 1
    store.append(stream, record)


def _log_summary(summary: RunSummary, stream: str) -> None:
    if summary.failures:
        kinds = ", ".join(f"{kind} {n}" for kind, n in summary.failures_by_kind().items())
        logger.warning("%d of %d samples failed (%s); see %s.jsonl", summary.failed, summary.processed, kinds, stream)
    logger.info(
        "%s: %d done now, %d already done, %d failed, %d left",
        stream,
        summary.succeeded,
        summary.skipped,
        summary.failed,
        summary.remaining,
    )
