"""A Ground-Segment run over a benchmark: thoughts in, masks + boxes + metrics out, resumable.

Run directory (see ``tgs.runners.store`` for the commit rule)::

    RUN/
      manifest.json     preset (every switch), thoughts file hash or "direct", benchmark,
                        model sources (a rerun resumes only under the same ones), runtime
                        settings and versions (informational)
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
process, or in each Ray worker with ``executor=``), then samples run. The driver is the
only writer of the run directory, whatever the executor.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tgs.data.benchmark import Benchmark, Sample
from tgs.models.registry import MODEL_SPECS, ModelSet, require_models
from tgs.pipeline import Grounder, GroundSegmentPipeline, Segmenter
from tgs.presets import Preset
from tgs.runners.executor import Executor, SampleOutput, run_stage
from tgs.runners.local import ProgressFactory, RunSummary, per_item
from tgs.runners.store import RunStore
from tgs.think.base import direct_thought
from tgs.think.inputs import ThoughtInputs, load_thoughts
from tgs.types import Thought

__all__ = [
    "BOXES_STREAM",
    "FINGERPRINT_KEYS",
    "SAMPLES_STREAM",
    "GroundSegmentConfig",
    "GroundSegmentOutcome",
    "GroundSegmentWorker",
    "GroundSegmentWorkerFactory",
    "load_stages",
    "run_ground_segment",
]

logger = logging.getLogger(__name__)

SAMPLES_STREAM = "samples"
BOXES_STREAM = "boxes"
METRICS_FILE = "metrics.json"
RUN_KIND = "ground-segment"
FINGERPRINT_KEYS = ("kind", "preset", "thoughts", "data", "models")
"""Manifest keys that must match for a rerun to resume (runtime settings may change)."""


@dataclass(frozen=True)
class GroundSegmentConfig:
    """Everything a Ground-Segment run needs.

    thoughts: a thoughts file (ours or the original ``inference_results.jsonl``) or a
        ``tgs think`` run directory; exclusive with ``direct`` (ground the expressions).
    splits: splits of the metadata CSV to run (None: every row).
    gdino_source / sam2_source: hub ids or local directories (None: the registry default);
        ignored with ``models="tiny"``.
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
    models: ModelSet = "real"
    gdino_source: str | None = None
    sam2_source: str | None = None
    device: str = "auto"
    frame_batch_size: int = 1
    limit: int | None = None
    evaluate: bool = True
    protocols: tuple[str, ...] = ("tgs",)

    def __post_init__(self) -> None:
        if (self.thoughts is None) == (not self.direct):
            raise ValueError("give exactly one of thoughts (a thoughts file) or direct=True")
        if self.models not in ("real", "tiny"):
            raise ValueError(f"models: expected 'real' or 'tiny', got {self.models!r}")
        if self.frame_batch_size < 1:
            raise ValueError(f"frame_batch_size: expected >= 1, got {self.frame_batch_size}")

    def model_requests(self) -> list[tuple[str, str | None]]:
        """(registry key, source) of every model the preset needs."""
        sources = {"grounding_dino": self.gdino_source, self.preset.sam_model_key: self.sam2_source}
        return [(key, sources[key]) for key in self.preset.model_keys()]


@dataclass
class GroundSegmentOutcome:
    run_dir: Path
    summary: RunSummary
    metrics: dict[str, Any] | None = None
    metrics_path: Path | None = None
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- set-up


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _model_sources(config: GroundSegmentConfig) -> dict[str, Any]:
    sources: dict[str, Any] = {"set": config.models}
    for key, source in config.model_requests():
        sources[key] = "tiny" if config.models == "tiny" else (source or MODEL_SPECS[key].default_source)
    return sources


def build_manifest(config: GroundSegmentConfig, bench: Benchmark, inputs: ThoughtInputs | None) -> dict[str, Any]:
    """The run manifest; ``FINGERPRINT_KEYS`` of it must match for a resume."""
    import torch

    from tgs import __version__

    thoughts = {"mode": "direct"} if inputs is None else {"mode": "file", "sha256": inputs.sha256}
    return {
        "kind": RUN_KIND,
        "preset": config.preset.to_dict(),
        "thoughts": thoughts,  # the content identifies the input; the file may move between reruns
        "thoughts_path": None if inputs is None else str(inputs.path.resolve()),
        "data": {
            "benchmark": config.benchmark,
            "root": str(Path(config.data).resolve()),
            "meta_sha256": _file_sha256(Path(config.meta)),
            "splits": list(bench.splits) if bench.splits is not None else None,
        },
        "models": _model_sources(config),
        "runtime": {"device": config.device, "frame_batch_size": config.frame_batch_size},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": {
            "tgs": __version__,
            "torch": torch.__version__,
            "transformers": _version_of("transformers"),
            "python": platform.python_version(),
        },
    }


def _version_of(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def load_stages(config: GroundSegmentConfig) -> tuple[Grounder, Segmenter]:
    """Grounding DINO and the SAM2 segmenter the run's preset asks for, loaded strictly."""
    from tgs.pipeline import load_stages as load_preset_stages

    sources = dict(config.model_requests())
    return load_preset_stages(
        config.preset,
        models=config.models,
        gdino_source=sources["grounding_dino"],
        sam2_source=sources[config.preset.sam_model_key],
        device=config.device,
        frame_batch_size=config.frame_batch_size,
        direct=config.direct,
    )


# --------------------------------------------------------------------------- one sample


def _thought_for(sample: Sample, inputs: ThoughtInputs | None) -> Thought:
    return direct_thought(sample.query()) if inputs is None else inputs.get(sample.uid)


def process_sample(
    sample: Sample, *, pipeline: GroundSegmentPipeline, inputs: ThoughtInputs | None
) -> SampleOutput:
    """Ground and segment one benchmark sample: its record, masks and candidate boxes, as data.

    Any error (no thought, a missing frame, a model failure) propagates to the runner,
    which records the sample as failed. The driver writes the outputs (and adds the
    ``save`` timing); this function touches no file but the sample's media.
    """
    thought = _thought_for(sample, inputs)
    start = time.perf_counter()
    clip = sample.load_clip(decode_audio=False)  # audio is not used after Think
    loaded = time.perf_counter()
    result = pipeline.run(clip, thought, sample.query())
    record = {"split": sample.split, "vid": sample.vid, "expression": sample.expression, **result.sample_record()}
    record["timings"] = {"load": round(loaded - start, 6), **record["timings"]}
    return SampleOutput(record=record, masks=result.masks, streams={BOXES_STREAM: [result.candidates_record()]})


class GroundSegmentWorker:
    """The Ground-Segment stage in one process: models loaded once, then samples processed.

    Built by :class:`GroundSegmentWorkerFactory` where it runs (this process for the local
    executor, a Ray actor otherwise).
    """

    def __init__(
        self, config: GroundSegmentConfig, inputs: ThoughtInputs | None, stages: tuple[Grounder, Segmenter] | None
    ) -> None:
        grounder, segmenter = stages if stages is not None else load_stages(config)
        pipeline = GroundSegmentPipeline(grounder, segmenter, config.preset)
        self.process = per_item(functools.partial(process_sample, pipeline=pipeline, inputs=inputs))


@dataclass(frozen=True)
class GroundSegmentWorkerFactory:
    """Picklable recipe of a :class:`GroundSegmentWorker` (config, thoughts, optional ready stages)."""

    config: GroundSegmentConfig
    inputs: ThoughtInputs | None
    stages: tuple[Grounder, Segmenter] | None = None

    def __call__(self) -> GroundSegmentWorker:
        return GroundSegmentWorker(self.config, self.inputs, self.stages)


# --------------------------------------------------------------------------- the run


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
        require_models(config.model_requests(), config.models)
    bench = Benchmark(config.data, config.meta, config.splits, name=config.benchmark)
    inputs = None if config.direct else load_thoughts(config.thoughts)  # type: ignore[arg-type]
    if inputs is not None:
        _log_coverage(bench, inputs)
    store = RunStore.open(
        config.out, build_manifest(config, bench, inputs), resume=True, fingerprint_keys=FINGERPRINT_KEYS
    )
    try:
        summary = run_stage(
            bench,
            GroundSegmentWorkerFactory(config, inputs, stages),
            store=store,
            stream=SAMPLES_STREAM,
            executor=executor,
            extra_streams=(BOXES_STREAM,),
            limit=config.limit,
            progress=progress,
        )
    finally:
        store.close()
    outcome = GroundSegmentOutcome(run_dir=Path(config.out), summary=summary)
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
