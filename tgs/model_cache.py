"""Keep loaded models between ``segment_video`` calls, for long-lived callers (the web demo).

A one-shot CLI call loads the thinker, Grounding DINO and SAM2, uses them once and
releases them: right on a small machine, but a server would pay the whole load time on
every request. A :class:`ModelCache` is the explicit opt-in: it keeps at most
``max_thinkers`` thinkers and ``max_stage_pairs`` (Grounding DINO, SAM2) pairs, each kind
evicting its least recently used entry. The caller owns it (no global state) and passes
it as ``segment_video(..., cache=...)``; the key says everything that changes what would
be loaded (see ``tgs.core.segment`` for the keys), so a hit returns exactly what a fresh
load would.

Holding models costs memory: with the defaults (one of each) the thinker stays resident
while Ground + Segment run, where an uncached call releases it first. ``max_thinkers=0``
keeps only the stage pair (the thinker is then loaded per call and released).
"""

from __future__ import annotations

import gc
import logging
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import fields, is_dataclass
from typing import Any, TypeVar

__all__ = ["ModelCache", "freeze"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


def freeze(value: Any) -> Hashable:
    """``value`` as a hashable cache-key part: mappings become sorted item tuples, sequences tuples.

    Anything else that is not hashable is keyed by ``repr`` (two such values then match only
    when their reprs do, which at worst costs a reload, never a wrong hit for plain data).
    """
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    if isinstance(value, (set, frozenset)):
        return tuple(sorted(repr(freeze(v)) for v in value))
    if is_dataclass(value) and not isinstance(value, type):
        return (
            type(value).__qualname__,
            tuple((f.name, freeze(getattr(value, f.name))) for f in fields(value)),
        )
    try:
        hash(value)
    except TypeError:
        return ("repr", repr(value))
    return value


def release_memory() -> None:
    """Give back the memory of dropped models (Python objects, then CUDA's cached blocks)."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


class _LruSlots:
    """At most ``capacity`` loaded objects by key; the least recently used one goes first."""

    def __init__(self, kind: str, capacity: int) -> None:
        if not isinstance(capacity, int) or capacity < 0:
            raise ValueError(f"{kind} cache size: expected an integer >= 0, got {capacity!r}")
        self.kind = kind
        self.capacity = capacity
        self.entries: OrderedDict[Hashable, Any] = OrderedDict()
        self.loads = 0
        self.hits = 0

    def get(self, key: Hashable, load: Callable[[], T], label: str) -> T:
        if key in self.entries:
            self.entries.move_to_end(key)
            self.hits += 1
            logger.info("model cache: reusing %s %s", self.kind, label)
            return self.entries[key]
        if self.capacity and len(self.entries) >= self.capacity:
            self._evict_oldest()  # before loading: never hold capacity + 1 models at once
        value = load()
        self.loads += 1
        if self.capacity:
            self.entries[key] = value
        return value

    def _evict_oldest(self) -> None:
        while len(self.entries) >= self.capacity:
            self.entries.popitem(last=False)
            logger.info("model cache: evicted the least recently used %s", self.kind)
        release_memory()

    def clear(self) -> None:
        self.entries.clear()


class ModelCache:
    """Loaded thinkers and (Grounding DINO, SAM2) stage pairs, kept between calls, LRU-evicted.

    max_thinkers / max_stage_pairs: how many of each kind stay loaded (0: none kept; that
    kind is loaded per call, as without a cache). One lock serialises lookups and loads,
    so two threads never load the same model twice; using the returned models concurrently
    is the caller's business (the demo runs one request at a time).
    """

    def __init__(self, max_thinkers: int = 1, max_stage_pairs: int = 1) -> None:
        self._thinkers = _LruSlots("thinker", max_thinkers)
        self._stages = _LruSlots("Grounding DINO + SAM2 pair", max_stage_pairs)
        self._lock = threading.Lock()

    def thinker(self, key: Hashable, load: Callable[[], T], label: str = "") -> T:
        """The thinker cached under ``key``, or ``load()``'s result (kept if there is room)."""
        with self._lock:
            return self._thinkers.get(key, load, label)

    def stages(self, key: Hashable, load: Callable[[], T], label: str = "") -> T:
        """The (grounder, segmenter) pair cached under ``key``, or ``load()``'s result."""
        with self._lock:
            return self._stages.get(key, load, label)

    @property
    def stats(self) -> dict[str, dict[str, int]]:
        """Loads, hits and entries held, per kind (for logs and tests)."""
        return {
            name: {"loads": slots.loads, "hits": slots.hits, "held": len(slots.entries)}
            for name, slots in (("thinkers", self._thinkers), ("stages", self._stages))
        }

    def __len__(self) -> int:
        return len(self._thinkers.entries) + len(self._stages.entries)

    def clear(self) -> None:
        """Drop every cached model and give back its memory."""
        with self._lock:
            self._thinkers.clear()
            self._stages.clear()
        release_memory()
