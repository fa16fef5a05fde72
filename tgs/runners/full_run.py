"""One call for a whole benchmark split: Think, Ground + Segment, evaluate; resumable at each stage.

Run directory::

    RUN/
      run.json          what was asked (thinker, preset, splits, models, thoughts source); a
                        rerun must ask the same, and each call adds its stage summaries
      think/            the Think stage, a Think run directory (manifest.json, thoughts.jsonl);
                        absent with ``thinker="direct"`` or reused ``thoughts``
      manifest.json     the Ground-Segment stage (``tgs.runners.ground_segment``): samples.jsonl,
      samples.jsonl     boxes.jsonl, masks/, then metrics.json + metrics_samples.jsonl, so
      masks/ ...        ``tgs eval --pred RUN`` and ``tgs report RUN`` read it as they read a
                        ``tgs ground-segment`` run

The two stages keep their own manifests, so they live in two directories (one
``manifest.json`` each). Stages:

1. **Think** (skipped with ``thinker="direct"``, the paper's baseline, and when ``thoughts``
   reuses an earlier Think: a thoughts file or run directory). Ref-Thinker runs through
   :func:`tgs.runners.think.run_think` (``RUN/think`` is exactly a ``tgs think`` run); the
   other thinkers (``omni``, ``api``) through the same stage driver and thoughts.jsonl schema.
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
import platform
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tgs.data.benchmark import Benchmark, Sample
from tgs.errors import RunError
from tgs.models.registry import MODEL_SPECS, ModelSet, require_models
from tgs.presets import BEST, Preset
from tgs.runners.executor import Executor, run_stage
from tgs.runners.ground_segment import GroundSegmentConfig, GroundSegmentOutcome, run_ground_segment
from tgs.runners.local import ProgressFactory, RunSummary
from tgs.runners.store import MANIFEST, RunStore
from tgs.think.inputs import resolve_thoughts_path

__all__ = [
    "RUN_FILE",
    "THINK_DIR",
    "FullRunConfig",
    "FullRunOutcome",
    "GenericThinkWorkerFactory",
    "StageReport",
    "run_full",
]

logger = logging.getLogger(__name__)

RUN_FILE = "run.json"
THINK_DIR = "think"
RUN_KIND = "full-run"
FINGERPRINT_KEYS = ("kind", "thinker", "thoughts", "data", "preset", "models")
"""run.json keys that must match for a rerun to resume (device and batch sizes may change)."""

_THINKER_MODEL_KEYS = {"omni": "omni", "ref-thinker": "ref_thinker"}
_REF_THINKER_OPTIONS = ("max_new_tokens", "mask_padding", "merge_lora", "prompt_variant")
_SECRET_OPTIONS = ("api_key",)


@dataclass(frozen=True)
class FullRunConfig:
    """Everything ``tgs run`` needs.

    thinker: "ref-thinker", "omni", "api" or "direct" (ground the expressions).
    thinker_source: the thinker's weights (a converted Ref-Thinker directory, an Omni hub
        id or directory); None: the registry default (Ref-Thinker has none).
    thinker_options: ref-thinker: ``max_new_tokens``, ``mask_padding``, ``merge_lora``, ``prompt_variant``;
        omni / api: the options of :func:`tgs.think.registry.build_thinker`.
    thoughts: reuse an earlier Think (a thoughts file, ours or the original
        ``inference_results.jsonl``, or a run directory holding thoughts.jsonl): no Think stage.
    splits: splits of the metadata CSV (None: every row).
    batch_size: samples per Think step; frame_batch_size: frames per Ground/Segment forward.
    """

    data: Path
    meta: Path
    out: Path
    splits: tuple[str, ...] | None = ("test_s",)
    thinker: str = "ref-thinker"
    thinker_source: str | None = None
    thinker_options: Mapping[str, Any] = field(default_factory=dict)
    thoughts: Path | None = None
    preset: Preset = BEST
    models: ModelSet = "real"
    gdino_source: str | None = None
    sam2_source: str | None = None
    device: str = "auto"
    dtype: str | None = None
    batch_size: int = 8
    frame_batch_size: int = 1
    protocols: tuple[str, ...] = ("tgs",)
    benchmark: str = "refavs"

    def __post_init__(self) -> None:
        from tgs.think.registry import THINKER_NAMES

        key = self.thinker.strip().lower().replace("_", "-")
        if key not in THINKER_NAMES:
            raise ValueError(f"unknown thinker {self.thinker!r}; available: {', '.join(THINKER_NAMES)}")
        object.__setattr__(self, "thinker", key)
        if self.models not in ("real", "tiny"):
            raise ValueError(f"models: expected 'real' or 'tiny', got {self.models!r}")
        if self.thoughts is not None and key == "direct":
            raise ValueError(
                "thoughts reuse an earlier Think; the direct thinker has none (drop one of them)"
            )
        if self.thoughts is not None and (self.thinker_source or self.thinker_options):
            raise ValueError("with reused thoughts nothing is thought: drop the thinker model and options")
        if key == "ref-thinker":
            unknown = sorted(set(self.thinker_options) - set(_REF_THINKER_OPTIONS))
            if unknown:
                raise ValueError(
                    f"ref-thinker has no run option {', '.join(unknown)}; "
                    f"accepted: {', '.join(_REF_THINKER_OPTIONS)}"
                )
        if self.batch_size < 1 or self.frame_batch_size < 1:
            raise ValueError(f"batch sizes must be >= 1, got {self.batch_size} and {self.frame_batch_size}")

    @property
    def runs_think(self) -> bool:
        """Whether this run has its own Think stage."""
        return self.thinker != "direct" and self.thoughts is None

    @property
    def think_dir(self) -> Path:
        return Path(self.out) / THINK_DIR

    def model_requests(self) -> list[tuple[str, str | None]]:
        """(registry key, source) of every model the run loads."""
        requests: list[tuple[str, str | None]] = []
        if self.runs_think and self.thinker in _THINKER_MODEL_KEYS:
            requests.append((_THINKER_MODEL_KEYS[self.thinker], self.thinker_source))
        sources = {"grounding_dino": self.gdino_source, self.preset.sam_model_key: self.sam2_source}
        requests.extend((key, sources[key]) for key in self.preset.model_keys())
        return requests


@dataclass(frozen=True)
class StageReport:
    """What one stage did in this call.

    status: "ran" (it ran now; its summary says what was new), "reused" (an earlier
        Think's file), "final" (Think not rerun: Ground + Segment had started), "none"
        (no Think: the direct thinker).
    """

    name: str
    status: str
    summary: RunSummary | None = None
    path: Path | None = None

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
        return record


@dataclass
class FullRunOutcome:
    run_dir: Path
    think: StageReport
    ground_segment: StageReport
    metrics: dict[str, Any] | None = None
    metrics_path: Path | None = None
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- run.json


def _public_options(options: Mapping[str, Any]) -> dict[str, Any]:
    return {k: ("***" if k in _SECRET_OPTIONS and v else v) for k, v in sorted(options.items())}


def _source_record(config: FullRunConfig) -> dict[str, Any]:
    models: dict[str, Any] = {"set": config.models}
    for key, source in config.model_requests():
        models[key] = "tiny" if config.models == "tiny" else (source or MODEL_SPECS[key].default_source)
    return models


def build_run_record(config: FullRunConfig) -> dict[str, Any]:
    """The content of run.json; ``FINGERPRINT_KEYS`` of it must match for a resume."""
    from tgs import __version__

    thoughts = None if config.thoughts is None else str(resolve_thoughts_path(config.thoughts).resolve())
    return {
        "kind": RUN_KIND,
        "thinker": {
            "name": config.thinker,
            "source": config.thinker_source,
            "options": _public_options(config.thinker_options),
        },
        "thoughts": thoughts,
        "data": {
            "benchmark": config.benchmark,
            "root": str(Path(config.data).resolve()),
            "meta": str(Path(config.meta).resolve()),
            "splits": list(config.splits) if config.splits is not None else None,
        },
        "preset": config.preset.to_dict(),
        "models": _source_record(config),
        "runtime": {
            "device": config.device,
            "dtype": config.dtype,
            "batch_size": config.batch_size,
            "frame_batch_size": config.frame_batch_size,
            "protocols": list(config.protocols),
        },
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": {"tgs": __version__, "python": platform.python_version()},
    }


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
            existing = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise RunError(
                f"corrupt {RUN_FILE}: {exc}", path=path, fix="restore it or use a new --out"
            ) from exc
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


class GenericThinkWorker:
    """The Think stage for ``omni`` / ``api`` in one process: the thinker built once, then batches."""

    def __init__(self, name: str, options: Mapping[str, Any]) -> None:
        from tgs.think.registry import build_thinker

        self.thinker = build_thinker(name, **dict(options))

    def process(self, batch: list[Sample]) -> list[dict[str, Any]]:
        from tgs.runners.think import think_batch

        return think_batch(self.thinker, batch)


@dataclass(frozen=True)
class GenericThinkWorkerFactory:
    """Picklable recipe of a :class:`GenericThinkWorker` (built where the samples run)."""

    name: str
    options: Mapping[str, Any]

    def __call__(self) -> GenericThinkWorker:
        return GenericThinkWorker(self.name, self.options)


def _think_manifest(config: FullRunConfig) -> dict[str, Any]:
    from tgs import __version__

    source = None
    if config.thinker in _THINKER_MODEL_KEYS:
        key = _THINKER_MODEL_KEYS[config.thinker]
        source = (
            "tiny" if config.models == "tiny" else (config.thinker_source or MODEL_SPECS[key].default_source)
        )
    return {
        "kind": "think",
        "thinker": config.thinker,
        "model": {"set": config.models, "source": source},
        "options": _public_options(config.thinker_options),
        "data": {
            "root": str(Path(config.data).resolve()),
            "meta": str(Path(config.meta).resolve()),
            "splits": list(config.splits) if config.splits is not None else None,
        },
        "command": {"device": config.device, "dtype": config.dtype, "batch_size": config.batch_size},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": {"tgs": __version__, "python": platform.python_version()},
    }


def _run_ref_thinker(
    config: FullRunConfig, progress: ProgressFactory | None, executor: Executor | None
) -> RunSummary:
    from tgs.runners.think import ThinkConfig, run_think

    think_config = ThinkConfig(
        data=config.data,
        meta=config.meta,
        out=config.think_dir,
        splits=config.splits,
        model=config.thinker_source,
        models=config.models,
        device=config.device,
        dtype=config.dtype,
        batch_size=config.batch_size,
        **dict(config.thinker_options),
    )
    return run_think(think_config, progress=progress, executor=executor).summary


def _run_other_thinker(
    config: FullRunConfig, progress: ProgressFactory | None, executor: Executor | None
) -> RunSummary:
    """omni / api through the same stage driver, writing the same thoughts.jsonl records as ``tgs think``."""
    from tgs.runners.think import THOUGHTS_STREAM

    bench = Benchmark(config.data, config.meta, config.splits, name=config.benchmark)
    options = dict(config.thinker_options)
    if config.thinker in _THINKER_MODEL_KEYS:
        options.update(source=config.thinker_source, models=config.models, device=config.device)
        if config.dtype is not None:
            options["dtype"] = config.dtype
    store = RunStore.open(config.think_dir, _think_manifest(config))
    try:
        return run_stage(
            list(bench),
            GenericThinkWorkerFactory(config.thinker, options),
            store=store,
            stream=THOUGHTS_STREAM,
            executor=executor,
            batch_size=config.batch_size,
            progress=progress,
        )
    finally:
        store.close()


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
    runner = _run_ref_thinker if config.thinker == "ref-thinker" else _run_other_thinker
    summary = runner(config, progress, executor)
    return StageReport("think", "ran", summary=summary, path=thoughts), thoughts


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
        shards them over a Ray cluster); the results are written here either way.
    """
    require_models(config.model_requests(), config.models)  # every missing model, before anything is written
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
        models=config.models,
        gdino_source=config.gdino_source,
        sam2_source=config.sam2_source,
        device=config.device,
        frame_batch_size=config.frame_batch_size,
        protocols=config.protocols,
    )
    gs: GroundSegmentOutcome = run_ground_segment(
        gs_config,
        progress=progress("ground-segment") if progress else None,
        eval_progress=eval_progress,
        executor=executor,
    )
    gs_report = StageReport("ground-segment", "ran", summary=gs.summary, path=Path(config.out))
    notes.extend(gs.notes)
    record["calls"].append(
        {
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "think": think_report.to_record(),
            "ground_segment": gs_report.to_record(),
            "metrics": None if gs.metrics_path is None else str(gs.metrics_path),
        }
    )
    _write_json(Path(config.out) / RUN_FILE, record)
    return FullRunOutcome(
        run_dir=Path(config.out),
        think=think_report,
        ground_segment=gs_report,
        metrics=gs.metrics,
        metrics_path=gs.metrics_path,
        notes=notes,
    )
