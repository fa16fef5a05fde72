"""One call for a whole benchmark split: Think, Ground + Segment, evaluate; resumable at each stage.

Run directory::

    RUN/
      run.json          the run's manifest (schema: ``tgs.runners.manifest``, kind "full-run"):
                        thinker, preset, splits, models, thoughts source; a rerun must ask the
                        same; each call adds its stage summaries and throughput
                        (expressions/s per stage), the last call's also under "throughput"
      think/            the Think stage, a Think run directory (manifest.json, thoughts.jsonl);
                        absent with ``thinker="direct"`` or reused ``thoughts``
      manifest.json     the Ground-Segment stage (``tgs.runners.ground_segment``): samples.jsonl,
      samples.jsonl     boxes.jsonl, masks/, then metrics.json + metrics_samples.jsonl, so
      masks/ ...        ``tgs eval --pred RUN`` and ``tgs report RUN`` read it as they read a
                        ``tgs ground-segment`` run

The two stages keep their own manifests, so they live in two directories (one
``manifest.json`` each). Stages:

1. **Think** (skipped with ``thinker="direct"``, the paper's baseline, and when ``thoughts``
   reuses an earlier Think: a thoughts file or run directory), through
   :func:`tgs.runners.think.run_think` for every thinker (``RUN/think`` is exactly a
   ``tgs think`` run).
2. **Ground + Segment** from ``RUN/think/thoughts.jsonl`` (or the reused file), then the
   evaluation (:func:`tgs.runners.ground_segment.run_ground_segment`).

Resuming: each stage skips the uids it has committed. Once Ground + Segment has started,
the Think stage is final: its file's hash is part of the Ground-Segment manifest, so a
sample whose thinking failed stays failed in this run (it is recorded with the thinker's
error); retry it by thinking again into a new run directory.

Every model the run needs is checked before anything is written; the missing ones are
listed together.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tgs.core.load_spec import LoadSpec, load_spec
from tgs.core.loading import check_thinker_options
from tgs.core.settings import Settings
from tgs.data.benchmark import Benchmark
from tgs.errors import RunError
from tgs.presets import BEST, Preset
from tgs.run_store import MANIFEST
from tgs.runners.executor import Executor
from tgs.runners.ground_segment import GroundSegmentConfig, GroundSegmentOutcome, run_ground_segment
from tgs.runners.local import ProgressFactory, RunSummary
from tgs.runners.manifest import (
    FINGERPRINT_KEYS,
    build_manifest,
    data_record,
    public_options,
    upgrade_manifest,
)
from tgs.runners.think import ThinkConfig, run_think
from tgs.think.inputs import resolve_thoughts_path
from tgs.think.registry import canonical_name

__all__ = ["RUN_FILE", "THINK_DIR", "FullRunConfig", "FullRunOutcome", "StageReport", "run_full"]

logger = logging.getLogger(__name__)

RUN_FILE = "run.json"
THINK_DIR = "think"
RUN_KIND = "full-run"


@dataclass(frozen=True)
class FullRunConfig:
    """Everything ``tgs run`` needs.

    thinker: "ref-thinker", "omni", "api" or "direct" (ground the expressions).
    thinker_options: the thinker's options (one table: ``tgs.core.loading.thinker_options``).
    thoughts: reuse an earlier Think (a thoughts file, ours or the original
        ``inference_results.jsonl``, or a run directory holding thoughts.jsonl): no Think stage.
    settings: device, dtype and every model's source ("tiny" for the tiny models).
    splits: splits of the metadata CSV (None: every row).
    batch_size: samples per Think step; frame_batch_size: frames per Ground/Segment forward.
    """

    data: Path
    meta: Path
    out: Path
    splits: tuple[str, ...] | None = ("test_s",)
    thinker: str = "ref-thinker"
    thinker_options: Mapping[str, Any] = field(default_factory=dict)
    thoughts: Path | None = None
    preset: Preset = BEST
    settings: Settings = field(default_factory=Settings)
    batch_size: int = 8
    frame_batch_size: int = 1
    protocols: tuple[str, ...] = ("tgs",)
    benchmark: str = "refavs"

    def __post_init__(self) -> None:
        key = canonical_name(self.thinker)
        object.__setattr__(self, "thinker", key)
        object.__setattr__(self, "thinker_options", dict(self.thinker_options))
        if self.thoughts is not None and key == "direct":
            raise ValueError("thoughts reuse an earlier Think; the direct thinker has none (drop one of them)")
        given_model = self.settings.source("thinker") not in (None, "tiny")
        if self.thoughts is not None and (given_model or self.thinker_options):
            raise ValueError("with reused thoughts nothing is thought: drop the thinker model and options")
        if self.batch_size < 1 or self.frame_batch_size < 1:
            raise ValueError(f"batch sizes must be >= 1, got {self.batch_size} and {self.frame_batch_size}")

    @property
    def runs_think(self) -> bool:
        """Whether this run has its own Think stage."""
        return self.thinker != "direct" and self.thoughts is None

    @property
    def think_dir(self) -> Path:
        return Path(self.out) / THINK_DIR

    def load_spec(self) -> LoadSpec:
        """Every model the run loads: its own thinker (when it thinks) and Ground + Segment."""
        return load_spec(self.preset, self.settings, thinker=self.thinker if self.runs_think else None,
                         direct=self.thinker == "direct")  # fmt: skip


@dataclass(frozen=True)
class StageReport:
    """What one stage did in this call.

    status: "ran" (it ran now; its summary says what was new), "reused" (an earlier
        Think's file), "final" (Think not rerun: Ground + Segment had started), "none"
        (no Think: the direct thinker).
    throughput: expressions processed in this call and their rate (``tgs.runners.manifest``).
    """

    name: str
    status: str
    summary: RunSummary | None = None
    path: Path | None = None
    throughput: Mapping[str, Any] | None = None

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "status": self.status,
            "path": None if self.path is None else str(self.path),
        }
        if self.summary is not None:
            record.update(
                total=self.summary.total,
                done_now=self.summary.succeeded,
                already_done=self.summary.skipped,
                failed=self.summary.failed,
                left=self.summary.remaining,
            )
        if self.throughput is not None:
            record["throughput"] = dict(self.throughput)
        return record


@dataclass
class FullRunOutcome:
    run_dir: Path
    think: StageReport
    ground_segment: StageReport
    metrics: dict[str, Any] | None = None
    metrics_path: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def throughput(self) -> dict[str, Any]:
        """Per stage that ran in this call: expressions, seconds, expressions/s."""
        return {
            stage.name.replace("-", "_"): dict(stage.throughput)
            for stage in (self.think, self.ground_segment)
            if stage.throughput is not None
        }


# --------------------------------------------------------------------------- run.json


def build_run_record(config: FullRunConfig) -> dict[str, Any]:
    """The content of run.json; ``FINGERPRINT_KEYS`` of it must match for a resume."""
    thoughts = None
    if config.thoughts is not None:
        thoughts = {"mode": "path", "path": str(resolve_thoughts_path(config.thoughts).resolve())}
    thinker = {"name": config.thinker, "options": public_options(config.thinker_options)}
    return build_manifest(
        RUN_KIND,
        settings=config.settings,
        spec=config.load_spec(),
        data=data_record(config.benchmark, config.data, config.meta, config.splits),
        thinker=thinker,
        preset=config.preset,
        thoughts=thoughts,
        runtime={
            "batch_size": config.batch_size,
            "frame_batch_size": config.frame_batch_size,
            "protocols": list(config.protocols),
        },
    )


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(dict(data), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _open_run(config: FullRunConfig) -> dict[str, Any]:
    """Create RUN/run.json, or check that an existing one asked for the same run."""
    out = Path(config.out)
    path = out / RUN_FILE
    record = build_run_record(config)
    if path.exists():
        try:
            existing = upgrade_manifest(json.loads(path.read_text(encoding="utf-8")))
        except json.JSONDecodeError as exc:
            raise RunError(f"corrupt {RUN_FILE}: {exc}", path=path, fix="restore it or use a new --out") from exc
        diffs = [k for k in FINGERPRINT_KEYS if existing.get(k) != record.get(k)]
        if diffs:
            shown = "; ".join(f"{k}: {existing.get(k)!r} -> {record.get(k)!r}" for k in diffs[:4])
            raise RunError(
                f"run directory {out} was made for another run ({shown})",
                path=path,
                fix="use a new --out directory, or rerun with the original settings",
            )
        record["created"] = existing.get("created", record["created"])
        record["calls"] = existing.get("calls", [])
    elif (out / MANIFEST).exists():
        raise RunError(
            f"{out} holds a run not made by `tgs run` (no {RUN_FILE})",
            path=out / MANIFEST,
            fix="use a new --out directory",
        )
    else:
        out.mkdir(parents=True, exist_ok=True)
        record["calls"] = []
        _write_json(path, record)
    return record


# --------------------------------------------------------------------------- think


def _think_stage(
    config: FullRunConfig, progress: ProgressFactory | None, executor: Executor | None
) -> tuple[StageReport, Path | None]:
    """(what Think did, the thoughts file Ground + Segment reads; None = ground the expressions)."""
    if config.thinker == "direct":
        return StageReport("think", "none"), None
    if config.thoughts is not None:
        path = resolve_thoughts_path(config.thoughts)
        return StageReport("think", "reused", path=path), path
    thoughts = config.think_dir / "thoughts.jsonl"
    if (Path(config.out) / MANIFEST).exists() and thoughts.exists():
        logger.info("Ground + Segment has started in %s: Think is final", config.out)
        return StageReport("think", "final", path=thoughts), thoughts
    think_config = ThinkConfig(
        data=config.data,
        meta=config.meta,
        out=config.think_dir,
        splits=config.splits,
        thinker=config.thinker,
        thinker_options=config.thinker_options,
        settings=config.settings,
        batch_size=config.batch_size,
        preset=config.preset,
        benchmark=config.benchmark,
    )
    outcome = run_think(think_config, progress=progress, executor=executor)
    return StageReport("think", "ran", summary=outcome.summary, path=thoughts, throughput=outcome.throughput), thoughts


# --------------------------------------------------------------------------- the run


def run_full(
    config: FullRunConfig,
    *,
    progress: Callable[[str], ProgressFactory | None] | None = None,
    eval_progress: Callable[[int], None] | None = None,
    executor: Executor | None = None,
) -> FullRunOutcome:
    """Think, Ground + Segment and evaluate one benchmark split (or resume); see the module docstring.

    progress: called with a stage name ("think", "ground-segment"); returns that stage's
        progress factory (or None).
    executor: where both stages' samples run (default: in this process; ``make_executor("ray")``
        shards them over a Ray cluster, a whole video per worker); the results are written here.
    """
    config.load_spec().require()  # every missing model, before anything is written
    if config.runs_think:
        check_thinker_options(config.thinker, config.thinker_options)
    Benchmark(config.data, config.meta, config.splits, name=config.benchmark)  # a bad CSV or split fails here
    record = _open_run(config)
    think_report, thoughts = _think_stage(config, progress("think") if progress else None, executor)
    notes: list[str] = []
    if think_report.summary is not None and think_report.summary.failed:
        notes.append(
            f"{think_report.summary.failed} sample(s) failed in Think; Ground + Segment records them as "
            "failed. Think is final once Ground + Segment has started: to retry them, think into a new "
            "run directory"
        )
    gs_config = GroundSegmentConfig(
        data=config.data,
        meta=config.meta,
        out=config.out,
        preset=config.preset,
        thoughts=thoughts,
        direct=thoughts is None,
        splits=config.splits,
        benchmark=config.benchmark,
        settings=config.settings,
        frame_batch_size=config.frame_batch_size,
        protocols=config.protocols,
    )
    start = time.perf_counter()
    gs: GroundSegmentOutcome = run_ground_segment(
        gs_config,
        progress=progress("ground-segment") if progress else None,
        eval_progress=eval_progress,
        executor=executor,
    )
    logger.debug("ground-segment stage and evaluation: %.3f s", time.perf_counter() - start)
    gs_report = StageReport(
        "ground-segment", "ran", summary=gs.summary, path=Path(config.out), throughput=gs.throughput
    )
    notes.extend(gs.notes)
    outcome = FullRunOutcome(
        run_dir=Path(config.out),
        think=think_report,
        ground_segment=gs_report,
        metrics=gs.metrics,
        metrics_path=gs.metrics_path,
        notes=notes,
    )
    record["calls"].append(
        {
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "think": think_report.to_record(),
            "ground_segment": gs_report.to_record(),
            "metrics": None if gs.metrics_path is None else str(gs.metrics_path),
        }
    )
    record["throughput"] = outcome.throughput
    _write_json(Path(config.out) / RUN_FILE, record)
    return outcome
