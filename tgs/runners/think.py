"""A Think run over a benchmark split: clips in, ``thoughts.jsonl`` out, resumable, any thinker.

Run directory (see ``tgs.run_store`` for the commit rule and
``tgs.runners.manifest`` for the manifest)::

    RUN/
      manifest.json    kind "think": thinker and its options, model sources, dtype,
                       benchmark; a rerun resumes only under the same ones (device and batch
                       size may change, except with Ref-Thinker's unmasked batching, where
                       the batch composition changes the answers); throughput of the last call
      thoughts.jsonl   one line per uid: {"uid", "ref", "predict", "f_object", "s_object",
                       "reasoning", "is_null", "status", "error", "thinker"}; the first three
                       are the original ``inference_results.jsonl`` fields, so the original
                       ground-segment scripts read this file as it is

The unit of work is a video: a batch holds whole videos (at least ``batch_size``
samples), each decoded once, and the thinker gets all of a video's expressions in one
call with one shared clip. A sample whose clip cannot be decoded or whose generation
fails is committed with status "failed" and its error, and the run goes on. A repeated
uid (the public CSV has a few) is thought about once, at its first row.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tgs.core.load_spec import LoadSpec, load_spec
from tgs.core.loading import check_thinker_options, load_model
from tgs.core.settings import Settings
from tgs.data.benchmark import Benchmark
from tgs.presets import BEST, Preset
from tgs.run_store import RunStore
from tgs.runners.executor import Executor, run_stage
from tgs.runners.local import ProgressFactory, RunSummary
from tgs.runners.manifest import (
    FINGERPRINT_KEYS,
    build_manifest,
    data_record,
    public_options,
    throughput_record,
    upgrade_manifest,
)
from tgs.runners.workers import ThinkWorker, video_of
from tgs.think.base import Thinker
from tgs.think.registry import canonical_name

__all__ = ["THOUGHTS_STREAM", "ThinkConfig", "ThinkOutcome", "ThinkWorkerFactory", "run_think"]

logger = logging.getLogger(__name__)

THOUGHTS_STREAM = "thoughts"
RUN_KIND = "think"


@dataclass(frozen=True)
class ThinkConfig:
    """Everything a Think run needs.

    thinker: "ref-thinker", "omni", "api" or "direct".
    thinker_options: the thinker's options (``tgs.core.loading.thinker_options``), e.g.
        ``max_new_tokens``, ``mask_padding`` (False: the original's unmasked batches),
        ``merge_lora``, ``prompt_variant`` for Ref-Thinker.
    settings: device, dtype and the thinker's model source ("tiny" for the tiny model).
    batch_size: samples per generate call (8 in the original).
    preset: Think reads its ``share_across_expressions`` (:data:`tgs.presets.THINK_SWITCHES`):
        the thinker shares a video's work among its expressions (changes no answer; off: each
        expression alone, the reference path). Not in the manifest: it changes no answer.
    limit: think about at most this many new samples in this call.
    """

    data: Path
    meta: Path
    out: Path
    splits: tuple[str, ...] | None = ("test_s",)
    thinker: str = "ref-thinker"
    thinker_options: Mapping[str, Any] = field(default_factory=dict)
    settings: Settings = field(default_factory=Settings)
    batch_size: int = 8
    preset: Preset = BEST
    limit: int | None = None
    benchmark: str = "refavs"

    def __post_init__(self) -> None:
        object.__setattr__(self, "thinker", canonical_name(self.thinker))
        object.__setattr__(self, "thinker_options", dict(self.thinker_options))
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")

    def load_spec(self) -> LoadSpec:
        """The thinker this run loads (:func:`tgs.core.load_spec.load_spec`)."""
        return load_spec(None, self.settings, thinker=self.thinker, thinker_options=self.thinker_options,
                         batch_size=self.batch_size, share=self.preset.share_across_expressions)  # fmt: skip

    @property
    def order_dependent(self) -> bool:
        """Whether answers depend on the batch composition (Ref-Thinker's unmasked batches)."""
        return self.thinker_options.get("mask_padding", True) is False


@dataclass
class ThinkOutcome:
    run_dir: Path
    summary: RunSummary
    thoughts_path: Path
    throughput: dict[str, Any] | None = None


def build_think_manifest(config: ThinkConfig, bench: Benchmark) -> dict[str, Any]:
    thinker: dict[str, Any] = {"name": config.thinker, "options": public_options(config.thinker_options)}
    if config.order_dependent:  # the answers then depend on the batch composition
        thinker["batch_size"] = config.batch_size
    return build_manifest(
        RUN_KIND,
        settings=config.settings,
        spec=config.load_spec(),
        data=data_record(config.benchmark, config.data, config.meta, bench.splits),
        thinker=thinker,
        runtime={"batch_size": config.batch_size, "limit": config.limit},
    )


@dataclass(frozen=True)
class ThinkWorkerFactory:
    """Picklable recipe of a :class:`~tgs.runners.workers.ThinkWorker` (built where samples run).

    thinker_factory: builds the thinker instead of loading it (tests pass fakes).
    """

    config: ThinkConfig
    thinker_factory: Callable[[], Thinker] | None = None

    def __call__(self) -> ThinkWorker:
        from tgs.core.flow import Pipeline

        config = self.config
        if self.thinker_factory is not None:
            thinker = self.thinker_factory()
        else:
            thinker = load_model(config.load_spec().thinker)
        return ThinkWorker(Pipeline(thinker))


def run_think(
    config: ThinkConfig,
    *,
    progress: ProgressFactory | None = None,
    thinker_factory: Callable[[], Thinker] | None = None,
    executor: Executor | None = None,
) -> ThinkOutcome:
    """Think about every sample of the chosen splits not yet done in ``config.out``.

    Order at start-up: the model is checked (a missing one fails before anything is
    written) and the options too, the benchmark CSV is read, the run directory is opened
    (a mismatching manifest fails), then the thinker is loaded where the samples run
    (this process, or each Ray worker) and samples run, video by video.
    """
    if thinker_factory is None:
        config.load_spec().require()
        check_thinker_options(config.thinker, config.thinker_options)
    bench = Benchmark(config.data, config.meta, config.splits, name=config.benchmark)
    store = RunStore.open(
        config.out, build_think_manifest(config, bench), fingerprint_keys=FINGERPRINT_KEYS, upgrade=upgrade_manifest
    )
    start = time.perf_counter()
    try:
        summary = run_stage(
            list(bench),
            ThinkWorkerFactory(config, thinker_factory),
            store=store,
            stream=THOUGHTS_STREAM,
            executor=executor,
            group_of=None if config.order_dependent else video_of,
            batch_size=config.batch_size,
            limit=config.limit,
            progress=progress,
        )
        throughput = throughput_record(summary.processed, time.perf_counter() - start)
        store.update_manifest(throughput={"think": throughput})
    finally:
        store.close()
    return ThinkOutcome(Path(config.out), summary, store.stream_path(THOUGHTS_STREAM), throughput)
