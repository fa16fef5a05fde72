"""One fine-tuning run: inputs checked, model built, HF Trainer run, checkpoints written.

Output folder::

    OUT/
      train_manifest.json      recipe, data (paths, hashes, row counts), init (path, hash),
                               world size, versions; a resume must match it
      trainable_parameters.json  trained parameter counts per group (LoRA, projectors, ...)
      train_log.jsonl          one line per logged step: loss, learning_rate, grad_norm, epoch
      checkpoint-<step>/       see tgs.train.checkpoints (resumable and exportable)

Start-up order: inputs are validated (CSV, targets joined, init present) before anything is
written; an existing run is only continued with ``resume=True`` and an equal manifest.
Works in one process (CPU or GPU) and under ``torchrun`` / ``accelerate launch`` (DDP) or
DeepSpeed: every process runs this same function; only the main process writes.
"""

from __future__ import annotations

import json
import logging
import platform
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tgs.errors import DataError, MissingWeightsError, RunError
from tgs.train.checkpoints import checkpoint_step, file_sha256, latest_checkpoint
from tgs.train.config import TrainRecipe, deepspeed_config_path
from tgs.train.data import MissingTargets

__all__ = ["LOG_STREAM", "MANIFEST_NAME", "TrainJob", "TrainOutcome", "run_training"]

logger = logging.getLogger(__name__)

MANIFEST_NAME = "train_manifest.json"
LOG_STREAM = "train_log.jsonl"
MANIFEST_FORMAT = "tgs-train-run/1"
# Recipe fields that may change when a run is resumed (they do not change what is computed).
RESUMABLE_CHANGES = frozenset(
    {"dataloader_num_workers", "logging_steps", "report_to", "save_total_limit", "checkpoint_model", "save_steps",
     "save_strategy", "max_steps", "num_train_epochs"}
)  # fmt: skip


@dataclass(frozen=True)
class TrainJob:
    """Inputs of a run.

    data / meta: benchmark root and metadata CSV; targets: the instruction-tuning JSON;
    init: the Ref-Thinker directory training starts from; out: the run folder.
    crab: folder with Crab's audio_pretrain.bin / visual_pretrain.bin to load onto init's projectors.
    device: auto (CUDA when present), cpu, or cuda.
    """

    data: Path
    meta: Path
    targets: Path
    init: Path
    out: Path
    recipe: TrainRecipe = field(default_factory=TrainRecipe)
    resume: bool = False
    crab: Path | None = None
    device: str = "auto"
    null_audio_dir: str = "media_cross"
    show_progress: bool = True

    def __post_init__(self) -> None:
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device: expected auto, cpu or cuda, got {self.device!r}")


@dataclass
class TrainOutcome:
    out: Path
    last_checkpoint: Path | None
    global_step: int
    losses: list[float]
    log_history: list[dict[str, Any]]
    trainable: dict[str, Any]
    num_rows: int
    missing: MissingTargets
    is_main: bool = True  # False on the other processes of a distributed run


def _versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {"python": platform.python_version()}
    for package in ("tgs", "torch", "transformers", "peft", "accelerate", "deepspeed"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = None
    return out


def _training_arguments(job: TrainJob, *, deepspeed: str | None) -> Any:
    from transformers import TrainingArguments

    recipe = job.recipe
    if job.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise DataError("--device cuda was asked for, but no CUDA device is visible", fix="use --device cpu or auto")
    return TrainingArguments(
        output_dir=str(job.out),
        per_device_train_batch_size=recipe.per_device_train_batch_size,
        gradient_accumulation_steps=recipe.gradient_accumulation_steps,
        learning_rate=recipe.learning_rate,
        num_train_epochs=recipe.num_train_epochs,
        max_steps=recipe.max_steps,
        warmup_steps=recipe.warmup_ratio,  # < 1: a ratio (ceil(ratio * steps)), as the paper's warmup_ratio
        lr_scheduler_type="linear" if recipe.lr_scheduler == "deepspeed_warmup_decay" else recipe.lr_scheduler,
        weight_decay=recipe.weight_decay,
        adam_beta1=recipe.adam_beta1,
        adam_beta2=recipe.adam_beta2,
        adam_epsilon=recipe.adam_epsilon,
        max_grad_norm=recipe.max_grad_norm,
        optim="adamw_torch",
        bf16=recipe.bf16,
        seed=recipe.seed,
        logging_steps=recipe.logging_steps,
        save_strategy=recipe.save_strategy,
        save_steps=recipe.save_steps,
        save_total_limit=recipe.save_total_limit,
        report_to=list(recipe.report_to) or "none",
        deepspeed=deepspeed,
        ddp_find_unused_parameters=recipe.ddp_find_unused_parameters,
        dataloader_num_workers=recipe.dataloader_num_workers,
        remove_unused_columns=False,
        use_cpu=job.device == "cpu",
        disable_tqdm=not job.show_progress,
        eval_strategy="no",
    )


def _data_record(job: TrainJob, num_rows: int, missing: MissingTargets) -> dict[str, Any]:
    return {
        "root": str(Path(job.data).resolve()),
        "meta": str(Path(job.meta).resolve()),
        "meta_sha256": file_sha256(job.meta),
        "targets": str(Path(job.targets).resolve()),
        "targets_sha256": file_sha256(job.targets),
        "splits": list(job.recipe.splits),
        "rows": num_rows,
        "rows_without_target": missing.count,
    }


def _manifest(job: TrainJob, args: Any, init_record: dict[str, str], data_record: dict[str, Any]) -> dict[str, Any]:
    return {
        "format": MANIFEST_FORMAT,
        "recipe": job.recipe.to_dict(),
        "data": data_record,
        "init": init_record,
        "crab": str(Path(job.crab).resolve()) if job.crab else None,
        "world_size": args.world_size,
        "global_batch_size": job.recipe.global_batch_size(args.world_size),
        "device": str(args.device),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": _versions(),
    }


def _compare_manifest(old: dict[str, Any], new: dict[str, Any], path: Path) -> None:
    """Refuse to resume under another recipe, data, init or global batch; list every difference."""
    differences = []
    old_recipe, new_recipe = old.get("recipe", {}), new["recipe"]
    for key in sorted(set(old_recipe) | set(new_recipe)):
        if key not in RESUMABLE_CHANGES and old_recipe.get(key) != new_recipe.get(key):
            differences.append(f"recipe.{key}: {old_recipe.get(key)!r} -> {new_recipe.get(key)!r}")
    for section, keys in (("data", ("meta_sha256", "targets_sha256", "splits", "rows")), ("init", ("sha256",))):
        for key in keys:
            if old.get(section, {}).get(key) != new[section].get(key):
                differences.append(f"{section}.{key} changed")
    if old.get("global_batch_size") != new["global_batch_size"]:
        differences.append(f"global batch {old.get('global_batch_size')} -> {new['global_batch_size']}")
    if differences:
        raise RunError(
            f"{path} was started with other settings: {'; '.join(differences)}",
            path=path,
            fix="resume with the same recipe, data, init and number of processes, or start a new --out",
        )
    for key in sorted(RESUMABLE_CHANGES):
        if old_recipe.get(key) != new_recipe.get(key):
            logger.warning("resuming with %s changed: %r -> %r", key, old_recipe.get(key), new_recipe.get(key))


def _open_output(job: TrainJob, manifest: dict[str, Any], is_main: bool) -> Path | None:
    """Check the run folder against ``resume``; write the manifest; return the checkpoint to resume."""
    out = Path(job.out)
    manifest_path = out / MANIFEST_NAME
    last = latest_checkpoint(out)
    if job.resume:
        if last is None:
            raise RunError(
                f"nothing to resume in {out}: no checkpoint-<step> folder written by `tgs train`",
                path=out,
                fix="drop --resume to start a new run",
            )
        if manifest_path.is_file():
            _compare_manifest(json.loads(manifest_path.read_text(encoding="utf-8")), manifest, manifest_path)
    elif last is not None or manifest_path.is_file():
        raise RunError(
            f"{out} already holds a training run" + (f" (last checkpoint {last.name})" if last else ""),
            path=out,
            fix="pass --resume to continue it, or choose a new --out",
        )
    _barrier()  # every process has checked the folder before the main one writes to it
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
        if not manifest_path.is_file():
            manifest_path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        if job.resume and last is not None:
            _truncate_log(out / LOG_STREAM, checkpoint_step(last) or 0)
    return last if job.resume else None


def _truncate_log(path: Path, step: int) -> None:
    """Drop log lines after ``step``: the resumed run logs those steps again."""
    if not path.is_file():
        return
    kept = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip() and json.loads(line).get("step", 0) <= step]
    path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def _check_init(init: Path) -> Path:
    from tgs.think.ref_thinker.checkpoint import WEIGHTS_NAME

    weights = Path(init) / WEIGHTS_NAME
    if not weights.is_file() or not (Path(init) / "config.json").is_file():
        raise MissingWeightsError(
            f"{init} is not a Ref-Thinker directory (needs config.json and {WEIGHTS_NAME})",
            path=init,
            fix="build one with `tgs models init-ref-thinker` (paper: base LLaMA + Crab projectors), convert a "
            "release with `tgs models convert-ref-thinker`, or use --models tiny",
        )
    return weights


def run_training(job: TrainJob, *, callbacks: Sequence[Any] = ()) -> TrainOutcome:
    """Fine-tune Ref-Thinker as ``job`` says; returns where the checkpoints are and the losses.

    callbacks: extra ``transformers.TrainerCallback``s (tests use one to interrupt a run).
    """
    from transformers import PrinterCallback, set_seed

    from tgs.data.benchmark import Benchmark
    from tgs.think.ref_thinker.processing import RefThinkerProcessor
    from tgs.train.crab import apply_crab_projectors
    from tgs.train.data import RefThinkerTrainCollator, RefThinkerTrainDataset, join_targets, load_targets
    from tgs.train.model import build_training_model
    from tgs.train.trainer import JsonlLogCallback, RefThinkerTrainer

    recipe = job.recipe
    init_weights = _check_init(job.init)
    bench = Benchmark(job.data, job.meta, list(recipe.splits), null_audio_dir=job.null_audio_dir)
    rows, missing = join_targets(bench, load_targets(job.targets), policy=recipe.missing_targets, targets_path=job.targets)
    deepspeed = str(deepspeed_config_path(recipe.deepspeed)) if recipe.deepspeed else None
    args = _training_arguments(job, deepspeed=deepspeed)  # sets up the process group under torchrun

    init_record = {"path": str(Path(job.init).resolve()), "sha256": file_sha256(init_weights)}
    manifest = _manifest(job, args, init_record, _data_record(job, len(rows), missing))
    resume_from = _open_output(job, manifest, args.should_save)

    set_seed(recipe.seed)
    model, summary = build_training_model(job.init, recipe, for_deepspeed=deepspeed is not None)
    crab_report = apply_crab_projectors(model.thinker, job.crab) if job.crab else None
    processor = RefThinkerProcessor.from_pretrained(job.init, prompt_variant=recipe.prompt_variant)  # type: ignore[arg-type]
    config = model.thinker.config
    dataset = RefThinkerTrainDataset(
        rows, processor, prompt_variant=recipe.prompt_variant,  # type: ignore[arg-type]
        placeholder_ids=(config.video_token_index, config.audio_token_index),
    )  # fmt: skip
    if args.should_save:
        counts = {**summary.to_dict(), "crab": crab_report.to_dict() if crab_report else None}
        (Path(job.out) / "trainable_parameters.json").write_text(json.dumps(counts, indent=2) + "\n", encoding="utf-8")
    logger.info(
        "training on %d rows (%d without target skipped); global batch %d", len(rows), missing.count,
        recipe.global_batch_size(args.world_size),
    )  # fmt: skip

    trainer = RefThinkerTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=RefThinkerTrainCollator(int(config.pad_token_id)),
        callbacks=[JsonlLogCallback(Path(job.out) / LOG_STREAM), *callbacks],
        recipe=recipe,
        checkpoint_record={"init": init_record, "lora": dict(config.lora), "recipe": recipe.to_dict(),
                           "trainable": summary.to_dict(), "crab": manifest["crab"]},
    )  # fmt: skip
    if not job.show_progress:
        trainer.remove_callback(PrinterCallback)
    result = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    history = list(trainer.state.log_history)
    return TrainOutcome(
        out=Path(job.out),
        last_checkpoint=latest_checkpoint(job.out),
        global_step=int(result.global_step),
        losses=[float(h["loss"]) for h in history if "loss" in h],
        log_history=history,
        trainable=summary.to_dict(),
        num_rows=len(rows),
        missing=missing,
        is_main=bool(args.should_save),
    )
