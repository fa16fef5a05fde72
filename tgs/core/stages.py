"""The per-clip steps under :class:`tgs.core.flow.Pipeline` and every video session: Think over
(query, clip) items, and Ground + Segment of one clip's (thought, query) pairs.

They live below the pipeline and the session (which both use them) so that imports flow one
way: ``flow`` -> ``segment`` -> ``session`` -> ``stages``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from tgs.ground_segment import GroundSegmentResult, GroundSegmentStage
from tgs.presets import Preset
from tgs.think.base import Thinker, direct_thought
from tgs.think.registry import think_each
from tgs.types import Clip, Query, Thought

__all__ = ["ground_and_segment", "share_enabled", "think_items"]

logger = logging.getLogger(__name__)


def share_enabled(preset: Preset | None) -> bool:
    """The preset's ``share_across_expressions`` switch (on without a preset)."""
    return preset.share_across_expressions if preset is not None else True


def think_items(thinker: Thinker | None, items: Sequence[tuple[Query, Clip | None]]) -> list[Thought | Exception]:
    """One thought (or exception) per (query, clip) item, in one thinker call; without a thinker
    the thought is the expression itself (the paper's direct baseline).

    Items of one video should share one Clip object: a thinker that shares work across
    expressions groups them by it.
    """
    if thinker is None:
        return [direct_thought(q) for q, _ in items]
    return think_each(thinker, list(items))


def ground_and_segment(
    gs: GroundSegmentStage, clip: Clip, pairs: Sequence[tuple[Thought, Query]]
) -> list[GroundSegmentResult | Exception]:
    """Ground + Segment of every (thought, query) of one clip; failures per pair.

    Under ``share_across_expressions`` the pairs go through ``run_many`` together (frame
    work shared); an exception there fails every pair of the clip, as a bad clip does:
    it is an error, never a quiet switch to the one-by-one path (which would hide a broken
    shared path and its cost). Without sharing, or for one pair, each pair runs alone and
    fails alone.
    """
    if len(pairs) > 1 and share_enabled(gs.preset):
        try:
            results = list(gs.run_many(clip, list(pairs)))
            if len(results) != len(pairs):
                raise RuntimeError(f"run_many returned {len(results)} results for {len(pairs)} pairs")
        except Exception as exc:  # the clip's shared call failed: each of its pairs is recorded with it
            logger.debug("shared Ground + Segment failed", exc_info=True)
            return [exc] * len(pairs)
        return results
    out: list[GroundSegmentResult | Exception] = []
    for thought, query in pairs:
        try:
            out.append(gs.run(clip, thought, query))
        except Exception as exc:  # this pair fails; the others go on
            out.append(exc)
    return out
