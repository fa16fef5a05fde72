"""A Ground-Segment run over a benchmark: thoughts in, masks + boxes + metrics out, resumable.

Run directory (see ``tgs.run_store`` for the commit rule)::

    RUN/
      manifest.json     kind "ground-segment" (schema: ``tgs.runners.manifest``): preset
                        (every switch), thoughts file hash or "direct", benchmark, model
                        sources, dtype (a rerun resumes only under the same ones), runtime
                        settings, versions and the last call's throughput (informational)
      samples.jsonl     one record per uid (schema below); failed samples too
      boxes.jsonl       every candidate box per frame (original pixels, scores, query index)
      masks/<uid>.npz   masks bool [T, h, w] and probabilities float32 [T, h, w]
      metrics.json      J/F/S per split and protocol (``tgs eval`` on this directory)

samples.jsonl record of a finished sample::

    {"uid", "status": "ok", "split", "vid", "expression",
     "object_text": str|null, "object_source": "tag"|"direct"|"error_literal"|"expression"|"null",
     "thought_status": "ok"|"null"|"partial"|"no_tags"|"direct",
     "paper_null_override": bool,     # paper null rule fired: nothing grounded, empty masks (S = 0)
     "frames": [{"box": [x0, y0, x1, y1]|null, "score", "query_index", "candidates"}, ...],
     "mask_size": [h, w], "timings": {"load", "ground", "select", "prepare", "segment", "resize", "save"}}

and of a failed one ``{"uid", "status": "failed", "error", "error_kind"}``. Order at
start-up: the needed models are checked (missing ones fail with the full list before
anything is read or written), then the benchmark and the thoughts, then the run
directory is opened, then the models are loaded (where the samples run: in this
process, or in each Ray worker with ``executor=``), then samples run video by video (a
worker gets all of a video's pending samples; the clip is decoded once and its expressions
are grounded and segmented together). The driver is the only writer of the run
directory, whatever the executor.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tgs.core.load_spec import LoadSpec, load_spec
from tgs.core.settings import Settings
from tgs.data.benchmark import Benchmark, Sample
from tgs.ground_segment import Grounder, GroundSegmentStage, Segmenter
from tgs.presets import Preset
from tgs.run_store import RunStore
from tgs.runners.executor import Executor, run_stage
from tgs.runners.local import ProgressFactory, RunSummary
from tgs.runners.manifest import (
    FINGERPRINT_KEYS,
    build_manifest,
    data_record,
    throughput_record,
    upgrade_manifest,
)
from tgs.runners.workers import BOXES_STREAM, GroundSegmentWorker, video_of
from tgs.think.inputs import ThoughtInputs, load_thoughts
from tgs.types import Thought

__all__ = [
    "BOXES_STREAM",
    "SAMPLES_STREAM",
    "GroundSegmentConfig",
    "GroundSegmentOutcome",
    "GroundSegmentWorkerFactory",
    "load_stages",
    "run_ground_segment",
]

logger = logging.getLogger(__name__)

SAMPLES_STREAM = "samples"
METRICS_FILE = "metrics.json"
RUN_KIND = "ground-segment"


@dataclass(frozen=True)
class GroundSegmentConfig:
    """Everything a Ground-Segment run needs.

    thoughts: a thoughts file (ours or the original ``inference_results.jsonl``) or a
        ``tgs think`` run directory; exclusive with ``direct`` (ground the expressions).
    splits: splits of the metadata CSV to run (None: every row).
    settings: device, dtype (None: :func:`tgs.presets.default_dtype`) and the Grounding DINO / SAM2 sources.
    frame_batch_size: frames per Grounding DINO / SAM2 image forward (1 = the paper's loop).
    limit: at most this many new samples in this call (a rerun goes on).
    protocols: evaluation protocols for metrics.json ("tgs", "refavs").
    """

    data: Path
    meta: Path
    out: Path
    preset: Preset
    thoughts: Path | None = None
    direct: bool = False
    splits: tuple[str, ...] | None = None
    benchmark: str = "refavs"
    settings: Settings = field(default_factory=Settings)
    frame_batch_size: int = 1
    limit: int | None = None
    evaluate: bool = True
    protocols: tuple[str, ...] = ("tgs",)

    def __post_init__(self) -> None:
        if (self.thoughts is None) == (not self.direct):
            raise ValueError("give exactly one of thoughts (a thoughts file) or direct=True")
        if self.frame_batch_size < 1:
            raise ValueError(f"frame_batch_size: expected >= 1, got {self.frame_batch_size}")

    def load_spec(self) -> LoadSpec:
        """Grounding DINO and the segmenter this run loads (:func:`tgs.core.load_spec.load_spec`)."""
        return load_spec(self.preset, self.settings, direct=self.direct, frame_batch_size=self.frame_batch_size)


@dataclass
class GroundSegmentOutcome:
    run_dir: Path
    summary: RunSummary
    metrics: dict[str, Any] | None = None
    metrics_path: Path | None = None
    notes: list[str] = field(default_factory=list)
    throughput: dict[str, Any] | None = None


def build_gs_manifest(config: GroundSegmentConfig, bench: Benchmark, inputs: ThoughtInputs | None) -> dict[str, Any]:
    """The run manifest (``tgs.runners.manifest``); the thoughts are identified by content."""
    thoughts = {"mode": "direct"} if inputs is None else {"mode": "file", "sha256": inputs.sha256}
    manifest = build_manifest(
        RUN_KIND,
        settings=config.settings,
        spec=config.load_spec(),
        data=data_record(config.benchmark, config.data, config.meta, bench.splits),
        preset=config.preset,
        thoughts=thoughts,
        runtime={"frame_batch_size": config.frame_batch_size},
    )
    manifest["thoughts_path"] = None if inputs is None else str(inputs.path.resolve())
    return manifest


def load_stages(config: GroundSegmentConfig) -> tuple[Grounder, Segmenter]:
    """Grounding DINO and the SAM2 segmenter the run's preset asks for, loaded strictly."""
    from tgs.core.loading import load_stages_from

    return load_stages_from(config.load_spec())


@dataclass(frozen=True)
class _ThoughtOf:
    """Picklable: a sample's thought from the thoughts file."""

    inputs: ThoughtInputs

    def __call__(self, sample: Sample) -> Thought:
        return self.inputs.get(sample.uid)


@dataclass(frozen=True)
class GroundSegmentWorkerFactory:
    """Picklable recipe of a :class:`~tgs.runners.workers.GroundSegmentWorker` (config, thoughts,
    optional ready stages)."""

    config: GroundSegmentConfig
    inputs: ThoughtInputs | None
    stages: tuple[Grounder, Segmenter] | None = None

    def __call__(self) -> GroundSegmentWorker:
        from tgs.core.flow import Pipeline

        grounder, segmenter = self.stages if self.stages is not None else load_stages(self.config)
        pipeline = Pipeline(None, GroundSegmentStage(grounder, segmenter, self.config.preset))
        return GroundSegmentWorker(pipeline, None if self.inputs is None else _ThoughtOf(self.inputs))


def run_ground_segment(
    config: GroundSegmentConfig,
    *,
    stages: tuple[Grounder, Segmenter] | None = None,
    progress: ProgressFactory | None = None,
    eval_progress: Callable[[int], None] | None = None,
    executor: Executor | None = None,
) -> GroundSegmentOutcome:
    """Run (or resume) Ground + Segment over the benchmark, then evaluate; see the module docstring.

    stages: ready grounder and segmenter (tests pass fakes); default: load them from the
        registry after checking that every needed model is present.
    executor: where samples run (default: in this process); see ``tgs.runners.executor``.
        The models are loaded where the samples run; the results are written here.
    """
    if stages is None:
        config.load_spec().require()
    bench = Benchmark(config.data, config.meta, config.splits, name=config.benchmark)
    inputs = None if config.direct else load_thoughts(config.thoughts)  # type: ignore[arg-type]
    if inputs is not None:
        _log_coverage(bench, inputs)
    store = RunStore.open(
        config.out, build_gs_manifest(config, bench, inputs), fingerprint_keys=FINGERPRINT_KEYS, upgrade=upgrade_manifest
    )
    start = time.perf_counter()
    try:
        summary = run_stage(
            bench,
            GroundSegmentWorkerFactory(config, inputs, stages),
            store=store,
            stream=SAMPLES_STREAM,
            executor=executor,
            extra_streams=(BOXES_STREAM,),
            group_of=video_of,
            limit=config.limit,
            progress=progress,
        )
        throughput = throughput_record(summary.processed, time.perf_counter() - start)
        store.update_manifest(throughput={"ground_segment": throughput})
    finally:
        store.close()
    outcome = GroundSegmentOutcome(run_dir=Path(config.out), summary=summary, throughput=throughput)
    if not config.evaluate:
        return outcome
    if summary.stopped_early:
        outcome.notes.append(f"{summary.remaining} samples left (--limit): not evaluated; rerun to finish")
        return outcome
    outcome.metrics, outcome.metrics_path = _evaluate(config, bench, eval_progress)
    return outcome


def _log_coverage(bench: Benchmark, inputs: ThoughtInputs) -> None:
    from tgs.think.inputs import coverage_problems

    for problem in coverage_problems(inputs, bench.uids()):
        logger.warning("%s", problem)


def _evaluate(
    config: GroundSegmentConfig, bench: Benchmark, progress: Callable[[int], None] | None
) -> tuple[dict[str, Any], Path]:
    from tgs.eval import evaluate, save_metrics

    splits = list(bench.splits) if bench.splits is not None else None
    result = evaluate(bench, Path(config.out), list(config.protocols), splits, progress=progress)
    metrics_path, _ = save_metrics(result, Path(config.out) / METRICS_FILE)
    return result, metrics_path
