"""Fast paths are counted when they run; a fallback from one is logged once and counted.

tgs has optimisations whose whole point is to give the plain path's result faster: work
shared between the expressions of a video (Grounding DINO's image backbone and SAM2's image
embeddings once per frame, Ref-Thinker's encoders and prompt prefix once per clip), batched
generation, compiled modules. None may be skipped silently: a user would get the slow path
without knowing, and a test comparing "optimised == plain" would compare the plain path with
itself. So every such place reports here:

- :func:`ran` when the fast path is taken;
- :func:`fell_back` when it *cannot* be taken (the stage has no such method, an option rules
  it out, the model has no compiled form) and a slower path runs instead: logged once per
  (path, reason) at WARNING, with the reason, and counted.

An exception raised inside a fast path is neither: it is an error and propagates like any
other (the caller records it per sample), never a quiet switch to the slow path. The one
exception, kept on purpose, is a *batch of unrelated samples* (Think's batches across videos)
that fails: it is retried one sample at a time so that one bad sample fails alone, and that
retry is a counted fallback (``think.batch``).

Counts belong to the call that made them: inside ``with counting() as ledger:`` (also usable
as a decorator, ``@counting()``) they go to ``ledger``, whose :meth:`FastPathLedger.as_record`
is what a run's ``manifest.json`` (``fast_paths``) and ``tgs segment``'s ``result.json``
(``timings.fast_paths``) hold. Ledgers are kept in a :mod:`contextvars` variable, so threads
and concurrent calls keep theirs apart; a nested ledger adds its counts to the enclosing one
when it closes. Outside any ``counting()`` block the counts go to a process-wide ledger (a
library caller still gets each fallback logged once).

Path names (``docs/performance.md`` lists them with their fallbacks):

- ``ground_segment.shared``: ``GroundSegmentStage.run_many``'s shared path, per video (window)
- ``ground.many``: Grounding DINO's backbone once per frame for all captions
- ``ground.caption_batch``: several captions in one padded forward (preset ``batch_captions``)
- ``ground.gather_sampling``: deformable-attention sampling as one weighted gather (CPU; only
  its fallback is counted)
- ``segment.many``: SAM2's embeddings once per frame / all objects in one propagation
- ``think.shared_prefix``: Ref-Thinker's encoders and prompt prefix once per clip
- ``think.batch``: a batch of samples generated together (fallback: one by one)
- ``compile``: ``torch.compile`` of a stage (fallback: the stage runs eagerly)
- ``device_preprocess``: frames resized and normalised on the GPU (fallback: on the host)
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["FastPathLedger", "counting", "current", "fell_back", "ran"]

logger = logging.getLogger(__name__)


class FastPathLedger:
    """Counts of fast paths taken and of fallbacks (path, reason) in one call.

    ``logged``: the (path, reason) pairs already logged; shared with an enclosing ledger so
    that a fallback is logged once per outermost call.
    """

    def __init__(self, logged: set[tuple[str, str]] | None = None) -> None:
        self.ran: Counter[str] = Counter()
        self.fallbacks: Counter[tuple[str, str]] = Counter()
        self._logged = logged if logged is not None else set()
        self._lock = threading.Lock()

    def add_ran(self, path: str, count: int = 1) -> None:
        with self._lock:
            self.ran[path] += count

    def add_fallback(self, path: str, reason: str, count: int = 1) -> None:
        with self._lock:
            self.fallbacks[(path, reason)] += count
            first = (path, reason) not in self._logged
            self._logged.add((path, reason))
        if first:
            logger.warning("fast path %s not taken (%s); running the slower path (counted once per call)",
                           path, reason)  # fmt: skip

    def fallback_count(self, path: str | None = None) -> int:
        """Fallbacks counted (of ``path``, or of every path)."""
        return sum(n for (p, _), n in self.fallbacks.items() if path is None or p == path)

    def as_record(self) -> dict[str, Any]:
        """JSON-ready: ``{"ran": {path: count}, "fallbacks": [{"path", "reason", "count"}]}``, sorted."""
        with self._lock:
            return {
                "ran": dict(sorted(self.ran.items())),
                "fallbacks": [{"path": p, "reason": r, "count": n} for (p, r), n in sorted(self.fallbacks.items())],
            }

    def merge(self, record: Mapping[str, Any]) -> None:
        """Add the counts of another ledger's :meth:`as_record` (e.g. from a worker process)."""
        for path, count in dict(record.get("ran") or {}).items():
            self.add_ran(str(path), int(count))
        for entry in record.get("fallbacks") or ():
            self.add_fallback(str(entry["path"]), str(entry["reason"]), int(entry["count"]))


_PROCESS = FastPathLedger()
_CURRENT: contextvars.ContextVar[FastPathLedger] = contextvars.ContextVar("tgs_fast_paths", default=_PROCESS)


def current() -> FastPathLedger:
    """The ledger counts go to now (the innermost :func:`counting` block's, else the process's)."""
    return _CURRENT.get()


def ran(path: str, count: int = 1) -> None:
    """The fast path ``path`` was taken (``count`` times)."""
    current().add_ran(path, count)


def fell_back(path: str, reason: str, count: int = 1) -> None:
    """The fast path ``path`` could not be taken for ``reason``; the slower path runs (logged once, counted)."""
    current().add_fallback(path, reason, count)


@contextlib.contextmanager
def counting() -> Iterator[FastPathLedger]:
    """A fresh ledger for the block (or decorated call); its counts are added to the enclosing one after."""
    outer = _CURRENT.get()
    inner = FastPathLedger(logged=None if outer is _PROCESS else outer._logged)
    token = _CURRENT.set(inner)
    try:
        yield inner
    finally:
        _CURRENT.reset(token)
        if outer is not _PROCESS:
            with inner._lock:
                ran_counts, fallbacks = Counter(inner.ran), Counter(inner.fallbacks)
            with outer._lock:
                outer.ran.update(ran_counts)
                outer.fallbacks.update(fallbacks)
