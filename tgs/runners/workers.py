"""Stage workers: a batch of benchmark samples -> the pipeline core, video by video -> records.

A worker is built where the samples run (this process, or a Ray actor) from a picklable
factory, holds one :class:`~tgs.core.flow.Pipeline` and turns each batch into one outcome
per sample. Batches hold whole videos (``run_stage(group_of=video_of)``), so a video is
decoded once and its expressions reach the thinker and Ground + Segment together.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from tgs.core.flow import ExpressionResult, Pipeline, VideoItems
from tgs.data.benchmark import Sample
from tgs.runners.local import error_kind
from tgs.runners.outcomes import SampleOutput
from tgs.think.base import failed_record, thought_record
from tgs.types import Query, Thought

__all__ = ["BOXES_STREAM", "GroundSegmentWorker", "ThinkWorker", "video_of", "videos_of"]

BOXES_STREAM = "boxes"


def video_of(sample: Sample) -> str:
    """The unit of work of a sample: its decoded media folder (``null_c-<vid>`` for null rows)."""
    return sample.folder


def videos_of(
    batch: Sequence[Sample],
    *,
    decode_audio: bool,
    thoughts_for: Callable[[Sample], Thought | Exception] | None = None,
) -> tuple[list[VideoItems], dict[str, Exception]]:
    """(the batch as videos, samples that failed before decoding: uid -> error).

    Each video is decoded once, by the first of its samples (they share the folder).
    """
    groups: dict[str, list[tuple[Sample, Query]]] = {}
    early: dict[str, Exception] = {}
    for sample in batch:
        try:
            query = sample.query()
        except Exception as exc:  # an unusable expression fails only this sample
            early[sample.uid] = exc
            continue
        groups.setdefault(video_of(sample), []).append((sample, query))
    videos = []
    for key, members in groups.items():
        thoughts = None
        if thoughts_for is not None:
            thoughts = tuple(_thought_or_error(thoughts_for, s) for s, _ in members)
        loader = functools.partial(members[0][0].load_clip, decode_audio=decode_audio)
        videos.append(VideoItems(loader, tuple(q for _, q in members), thoughts, key=key))
    return videos, early


def _thought_or_error(thoughts_for: Callable[[Sample], Thought | Exception], sample: Sample) -> Thought | Exception:
    try:
        return thoughts_for(sample)
    except Exception as exc:  # e.g. no thought for this uid: the sample fails
        return exc


def _results(pipeline: Pipeline, videos: list[VideoItems]) -> dict[str, ExpressionResult]:
    return {r.uid: r for r in pipeline.run_videos(videos)}


class ThinkWorker:
    """The Think stage: a batch of samples -> one thoughts.jsonl record per sample (failures too)."""

    def __init__(self, pipeline: Pipeline) -> None:
        if pipeline.thinker is None:
            raise ValueError("a Think worker needs a pipeline with a thinker")
        self.pipeline = pipeline

    @property
    def name(self) -> str:
        return str(getattr(self.pipeline.thinker, "name", "thinker"))

    def process(self, batch: list[Sample]) -> list[dict[str, Any]]:
        videos, early = videos_of(batch, decode_audio=True)
        results = _results(self.pipeline, videos)
        records = []
        for sample in batch:
            error = early.get(sample.uid)
            result = results.get(sample.uid)
            if error is None and result is not None and result.error is not None:
                error = result.error
            if error is not None:
                record = failed_record(sample.uid, sample.expression, str(error) or type(error).__name__, self.name)
                record["error_kind"] = error_kind(error)
            else:
                assert result is not None and result.thought is not None
                record = thought_record(result.thought, sample.expression, self.name)
            records.append(record)
        return records


class GroundSegmentWorker:
    """The Ground + Segment stage: a batch of samples -> record, masks and candidate boxes per sample.

    thoughts_for: the thought of a sample (a reused Think); None: ground the expressions.
    """

    def __init__(self, pipeline: Pipeline, thoughts_for: Callable[[Sample], Thought] | None) -> None:
        if pipeline.ground_segment is None:
            raise ValueError("a Ground + Segment worker needs a pipeline with Ground + Segment")
        self.pipeline = pipeline
        self.thoughts_for = thoughts_for

    def process(self, batch: list[Sample]) -> list[SampleOutput | Exception]:
        videos, early = videos_of(batch, decode_audio=False, thoughts_for=self.thoughts_for)
        results = _results(self.pipeline, videos)
        out: list[SampleOutput | Exception] = []
        for sample in batch:
            if sample.uid in early:
                out.append(early[sample.uid])
                continue
            result = results[sample.uid]
            if result.error is not None:
                out.append(result.error)
                continue
            gs = result.ground_segment
            assert gs is not None
            record = {"split": sample.split, "vid": sample.vid, "expression": sample.expression, **gs.sample_record()}
            record["timings"] = {"load": round(result.timings.get("decode", 0.0), 6), **record["timings"]}
            out.append(SampleOutput(record=record, masks=gs.masks, streams={BOXES_STREAM: [gs.candidates_record()]}))
        return out
