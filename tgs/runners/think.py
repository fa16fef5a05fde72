"""A Think run over a benchmark split: clips in, ``thoughts.jsonl`` out, resumable.

Run directory (see ``tgs.runners.store`` for the commit rule)::

    RUN/
      manifest.json    thinker, model source, generation settings, benchmark; a rerun
                       resumes only under the same ones (device and batch size may change,
                       except with the original's unmasked batching, where the batch
                       composition changes the answers)
      thoughts.jsonl   one line per uid: {"uid", "ref", "predict", "f_object", "s_object",
                       "reasoning", "is_null", "status", "error", "thinker"}; the first three
                       are the original ``inference_results.jsonl`` fields, so the original
                       ground-segment scripts read this file as it is

Each clip is decoded once per sample; a sample whose clip cannot be decoded or whose
generation fails is committed with status "failed" and its error, and the run goes on.
A repeated uid (the public CSV has a few) is thought about once, at its first row, which
is the row the original ground-segment scripts end up using.
"""

from __future__ import annotations

import logging
import platform
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tgs.data.benchmark import Benchmark, Sample
from tgs.models.registry import ModelSet, resolve_source
from tgs.runners.executor import Executor, run_stage
from tgs.runners.local import ProgressFactory, RunSummary, error_kind
from tgs.runners.store import RunStore
from tgs.think.base import Thinker, failed_record, thought_record
from tgs.think.registry import build_thinker, think_each
from tgs.types import Clip, Query, Thought

__all__ = ["THOUGHTS_STREAM", "ThinkConfig", "ThinkOutcome", "ThinkWorker", "ThinkWorkerFactory", "run_think"]

logger = logging.getLogger(__name__)

THOUGHTS_STREAM = "thoughts"
RUN_KIND = "think"


@dataclass(frozen=True)
class ThinkConfig:
    """Everything a Ref-Thinker Think run needs.

    model: a converted Ref-Thinker directory (None with ``models="tiny"``).
    batch_size: samples per generate call (8 in the original).
    mask_padding: False reproduces the original's unmasked batched generation.
    merge_lora: fold the LoRA adapter into the LLaMA weights at load (False: keep it, as the original).
    limit: think about at most this many new samples in this call.
    """

    data: Path
    meta: Path
    out: Path
    splits: tuple[str, ...] | None = ("test_s",)
    model: str | None = None
    models: ModelSet = "real"
    device: str | None = None
    dtype: str | None = None
    batch_size: int = 8
    max_new_tokens: int = 256
    mask_padding: bool = True
    merge_lora: bool = True
    prompt_variant: str = "inference"
    limit: int | None = None

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.models not in ("real", "tiny"):
            raise ValueError(f"models: expected 'real' or 'tiny', got {self.models!r}")


@dataclass
class ThinkOutcome:
    run_dir: Path
    summary: RunSummary
    thoughts_path: Path


def _version_of(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def build_manifest(config: ThinkConfig, bench: Benchmark, model_source: str, dtype: str) -> dict[str, Any]:
    import torch

    from tgs import __version__

    generation: dict[str, Any] = {
        "max_new_tokens": config.max_new_tokens,
        "mask_padding": config.mask_padding,
        "prompt_variant": config.prompt_variant,
        "lora": "merged" if config.merge_lora else "adapter",
        "greedy": True,
        "dtype": dtype,
    }
    if not config.mask_padding:  # the answers then depend on the batch composition
        generation["batch_size"] = config.batch_size
    return {
        "kind": RUN_KIND,
        "thinker": "ref-thinker",
        "model": {"set": config.models, "source": model_source},
        "generation": generation,
        "data": {
            "root": str(Path(config.data).resolve()),
            "meta": str(Path(config.meta).resolve()),
            "splits": list(bench.splits) if bench.splits is not None else None,
        },
        "command": {"device": config.device, "batch_size": config.batch_size, "limit": config.limit},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": {
            "tgs": __version__,
            "torch": torch.__version__,
            "transformers": _version_of("transformers"),
            "peft": _version_of("peft"),
            "python": platform.python_version(),
        },
    }


def think_batch(thinker: Thinker, batch: list[Sample]) -> list[dict[str, Any]]:
    """Records of one batch: clips decoded once, failures recorded per sample."""
    items: list[tuple[Query, Clip | None]] = []
    decode_errors: dict[int, Exception] = {}
    for index, sample in enumerate(batch):
        try:
            items.append((sample.query(), sample.load_clip()))
        except Exception as exc:  # a missing or corrupt file fails only this sample
            decode_errors[index] = exc
    outcomes = iter(think_each(thinker, items)) if items else iter(())
    records = []
    for index, sample in enumerate(batch):
        outcome: Thought | Exception = decode_errors[index] if index in decode_errors else next(outcomes)
        if isinstance(outcome, Exception):
            record = failed_record(sample.uid, sample.expression, str(outcome) or type(outcome).__name__, thinker.name)
            record["error_kind"] = error_kind(outcome)
        else:
            record = thought_record(outcome, sample.expression, thinker.name)
        records.append(record)
    return records


class ThinkWorker:
    """The Think stage in one process: the thinker loaded once, then batches thought about.

    Built by :class:`ThinkWorkerFactory` where it runs (this process for the local
    executor, a Ray actor otherwise); the device is resolved there.
    """

    def __init__(
        self, config: ThinkConfig, model_source: str, thinker_factory: Callable[[str], Thinker] | None
    ) -> None:
        if thinker_factory is not None:
            self.thinker = thinker_factory(model_source)
        else:
            from tgs.devices import resolve_device, resolve_dtype

            device = resolve_device(config.device)
            self.thinker = _load_ref_thinker(config, model_source, device, resolve_dtype(config.dtype, device))

    def process(self, batch: list[Sample]) -> list[dict[str, Any]]:
        return think_batch(self.thinker, batch)


@dataclass(frozen=True)
class ThinkWorkerFactory:
    """Picklable recipe of a :class:`ThinkWorker`."""

    config: ThinkConfig
    model_source: str
    thinker_factory: Callable[[str], Thinker] | None = None

    def __call__(self) -> ThinkWorker:
        return ThinkWorker(self.config, self.model_source, self.thinker_factory)


def run_think(
    config: ThinkConfig,
    *,
    progress: ProgressFactory | None = None,
    thinker_factory: Callable[[str], Thinker] | None = None,
    executor: Executor | None = None,
) -> ThinkOutcome:
    """Think about every sample of the chosen splits not yet done in ``config.out``.

    Order at start-up: the model is located (a missing one fails before anything is
    written), the benchmark CSV is read, the run directory is opened (a mismatching
    manifest fails), then the model is loaded and samples run.
    thinker_factory: builds the thinker from the model path (tests pass fakes); with the
        Ray executor it is pickled to every worker.
    executor: where samples run (default: in this process; the model is loaded where
        they run); see ``tgs.runners.executor``. Results are written here.
    """
    from tgs.devices import resolve_device, resolve_dtype

    model_source = resolve_source("ref_thinker", config.model, config.models)
    bench = Benchmark(config.data, config.meta, config.splits)
    device = resolve_device(config.device)
    dtype = resolve_dtype(config.dtype, device)
    manifest = build_manifest(config, bench, model_source if config.models == "real" else "tiny", str(dtype))
    store = RunStore.open(config.out, manifest)
    try:
        summary = run_stage(
            list(bench),
            ThinkWorkerFactory(config, model_source, thinker_factory),
            store=store,
            stream=THOUGHTS_STREAM,
            executor=executor,
            batch_size=config.batch_size,
            limit=config.limit,
            progress=progress,
        )
    finally:
        store.close()
    return ThinkOutcome(Path(config.out), summary, store.stream_path(THOUGHTS_STREAM))


def _load_ref_thinker(config: ThinkConfig, source: str, device: Any, dtype: Any) -> Thinker:
    return build_thinker(
        "ref-thinker",
        source=source,
        device=device,
        dtype=dtype,
        batch_size=config.batch_size,
        prompt_variant=config.prompt_variant,
        max_new_tokens=config.max_new_tokens,
        mask_padding=config.mask_padding,
        merge_lora=config.merge_lora,
    )
