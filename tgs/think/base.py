"""The Thinker protocol, the direct (no-reasoning) thinker, and the thoughts.jsonl schema.

A thoughts.jsonl line carries the original ``inference_results.jsonl`` fields (``uid``,
``ref``, ``predict``) so the original ground-segment scripts can read our files, plus the
parsed fields so ours need not re-parse::

    {"uid": str, "ref": str, "predict": str,          # as the original writes them
     "f_object": str|null, "s_object": str|null, "reasoning": str,
     "is_null": bool, "status": "ok"|"null"|"partial"|"no_tags"|"direct"|"failed",
     "error": str|null, "thinker": str}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from tgs import fast_paths
from tgs.errors import ParseError
from tgs.think.parser import parse_answer
from tgs.types import Clip, ParseStatus, Query, Thought

__all__ = ["DirectThinker", "PerItemThinker", "Thinker", "batch_failed", "thought_from_record", "thought_record"]

FAILED = "failed"


@runtime_checkable
class Thinker(Protocol):
    """Turns (query, clip) pairs into Thoughts; one call may batch several samples."""

    name: str

    def think(self, items: Sequence[tuple[Query, Clip | None]]) -> list[Thought]: ...


class PerItemThinker:
    """Base of thinkers that report one outcome per item (``think_each``).

    Runners call ``think_each`` so one sample's failure touches only its record; the
    plain Thinker protocol's ``think`` raises the first failure.
    """

    name: str

    def think_each(self, items: Sequence[tuple[Query, Clip | None]]) -> list[Thought | Exception]:
        raise NotImplementedError

    def think(self, items: Sequence[tuple[Query, Clip | None]]) -> list[Thought]:
        """The Thinker protocol: one Thought per item, or the first item's failure raised."""
        outcomes = self.think_each(items)
        for outcome in outcomes:
            if isinstance(outcome, Exception):
                raise outcome
        return outcomes  # type: ignore[return-value]


class DirectThinker:
    """The paper's baseline: the expression itself is the object text, no reasoning."""

    name = "direct"

    def think(self, items: Sequence[tuple[Query, Clip | None]]) -> list[Thought]:
        return [direct_thought(query) for query, _ in items]


def direct_thought(query: Query) -> Thought:
    text = query.expression
    return Thought(
        uid=query.uid,
        raw=text,
        reasoning="",
        f_object=text,
        s_object=text,
        is_null=False,
        status=ParseStatus.DIRECT,
    )


def thought_record(thought: Thought, ref: str, thinker: str = "") -> dict[str, Any]:
    """The JSON line written to thoughts.jsonl for one thought."""
    return {
        "uid": thought.uid,
        "ref": ref,
        "predict": thought.raw,
        "f_object": thought.f_object,
        "s_object": thought.s_object,
        "reasoning": thought.reasoning,
        "is_null": thought.is_null,
        "status": thought.status.value,
        "error": thought.error,
        "thinker": thinker,
    }


def failed_record(uid: str, ref: str, error: str, thinker: str = "") -> dict[str, Any]:
    """The thoughts.jsonl line of a sample whose thinking failed (decode error, OOM, ...)."""
    return {
        "uid": uid,
        "ref": ref,
        "predict": "",
        "f_object": None,
        "s_object": None,
        "reasoning": "",
        "is_null": False,
        "status": FAILED,
        "error": error,
        "thinker": thinker,
    }


def thought_from_record(record: Mapping[str, Any]) -> Thought:
    """A Thought from one thoughts.jsonl line: ours, or the original's ``{uid, ref, predict}``.

    The original format has only the raw text, so it is parsed with the shared parser; our
    format is re-parsed too, so that both give identical Thoughts for the same text.
    """
    uid = record.get("uid")
    if not isinstance(uid, str) or not uid:
        raise ParseError(f"thought record without a 'uid': {dict(record)!r:.200}")
    if record.get("status") == FAILED:
        raise ParseError(f"the thinker failed on {uid}: {record.get('error')}")
    if record.get("status") == ParseStatus.DIRECT.value:
        ref = record.get("ref")
        return direct_thought(Query(uid=uid, expression=str(ref if ref is not None else record["predict"])))
    predict = record.get("predict")
    if not isinstance(predict, str):
        raise ParseError(f"thought record for {uid} has no 'predict' text")
    return parse_answer(uid, predict)


def batch_failed(exc: Exception) -> None:
    """A batch of samples failed: counted as the ``think.batch`` fallback (logged once per reason);
    the caller retries its samples one by one, so one bad sample fails alone."""
    fast_paths.fell_back("think.batch", f"a batch failed ({type(exc).__name__}: {str(exc)[:200]}); its samples "
                                        "were retried one by one")
