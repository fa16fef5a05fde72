"""HF Trainer for Ref-Thinker: the paper's loss reduction and schedule, and checkpoints that resume and run.

What differs from ``transformers.Trainer``:

- loss: the model's mean cross entropy over the micro-batch's supervised tokens; the Trainer
  divides it by the accumulation steps (``loss_is_scaled_for_ga = False``), as
  transformers 4.37 did for the original (no cross-batch token averaging);
- schedule: ``deepspeed_warmup_decay`` builds ``tgs.train.schedules.warmup_decay_scheduler``;
  the others are HF's;
- saving: a checkpoint holds ``trainable.safetensors`` + ``train_checkpoint.json``
  (``tgs.train.checkpoints``) instead of a full model file; under ZeRO-3 the trained
  parameters are gathered first. The Trainer's own optimizer, scheduler, RNG and
  ``trainer_state.json`` (step, epoch, data position) files sit beside them, so a resumed run
  continues exactly; with ``checkpoint_model: full`` every checkpoint also gets ``model/``;
- resuming (without DeepSpeed, whose engine restores its own files) loads
  ``trainable.safetensors`` strictly after checking the init directory's hash.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer, TrainerCallback

from tgs.errors import WeightsError
from tgs.train.checkpoints import (
    MODEL_SUBDIR,
    TRAINABLE_WEIGHTS,
    apply_trainable_tensors,
    read_checkpoint_record,
    read_trainable_tensors,
    write_checkpoint_weights,
)
from tgs.train.config import TrainRecipe
from tgs.train.model import RefThinkerTrainingModel
from tgs.train.schedules import warmup_decay_scheduler

__all__ = ["JsonlLogCallback", "RefThinkerTrainer"]

logger = logging.getLogger(__name__)


class RefThinkerTrainer(Trainer):
    """``transformers.Trainer`` over a ``RefThinkerTrainingModel``.

    checkpoint_record: what every checkpoint's ``train_checkpoint.json`` records besides the
        step (init path and hash, LoRA settings, recipe, trainable counts).
    """

    loss_is_scaled_for_ga = False  # a per-micro-batch mean: the Trainer divides by the accumulation steps

    def __init__(self, *args: Any, recipe: TrainRecipe, checkpoint_record: Mapping[str, Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.model, RefThinkerTrainingModel):
            raise TypeError(f"RefThinkerTrainer trains a RefThinkerTrainingModel, got {type(self.model).__name__}")
        self.recipe = recipe
        self.checkpoint_record = dict(checkpoint_record)

    # ------------------------------------------------------------------ loss
    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, torch.Tensor],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> Any:
        outputs = model(**inputs)
        return (outputs.loss, outputs) if return_outputs else outputs.loss

    # -------------------------------------------------------------- schedule
    def create_scheduler(self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None) -> Any:
        if self.lr_scheduler is None and self.recipe.lr_scheduler == "deepspeed_warmup_decay":
            self.lr_scheduler = warmup_decay_scheduler(
                optimizer if optimizer is not None else self.optimizer, num_training_steps, self.recipe.warmup_ratio
            )
            self._created_lr_scheduler = True
            return self.lr_scheduler
        return super().create_scheduler(num_training_steps, optimizer)

    # ---------------------------------------------------------------- saving
    def _trainable_tensors(self) -> dict[str, torch.Tensor] | None:
        """The trained tensors on CPU, on the main process (None elsewhere).

        Under ZeRO-3 the parameters are partitioned: every rank takes part in the gather.
        """
        named = dict(self.model.trainable_named_parameters())
        if self.is_deepspeed_enabled and any(hasattr(p, "ds_id") for p in named.values()):
            import deepspeed

            with deepspeed.zero.GatheredParameters(list(named.values()), modifier_rank=None):
                return {k: p.detach().cpu().clone() for k, p in named.items()} if self.args.should_save else None
        return {k: p.detach().cpu().clone() for k, p in named.items()} if self.args.should_save else None

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """Write the trained tensors and the checkpoint record (main process)."""
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        tensors = self._trainable_tensors()
        if tensors is not None:
            record = {**self.checkpoint_record, "global_step": self.state.global_step, "epoch": self.state.epoch}
            write_checkpoint_weights(output_dir, tensors, record)
            logger.info("saved %d trained tensors to %s", len(tensors), output_dir)

    def _save_checkpoint(self, model: torch.nn.Module, trial: Any) -> None:
        super()._save_checkpoint(model, trial)
        if self.recipe.checkpoint_model == "full" and self.args.should_save:
            from tgs.train.export import export_checkpoint

            checkpoint = Path(self._get_output_dir(trial=trial)) / f"checkpoint-{self.state.global_step}"
            export_checkpoint(checkpoint, checkpoint / MODEL_SUBDIR, overwrite=True)

    # --------------------------------------------------------------- loading
    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: torch.nn.Module | None = None) -> None:
        """Restore the trained tensors (strictly) from a checkpoint of this run."""
        checkpoint = Path(resume_from_checkpoint)
        record = read_checkpoint_record(checkpoint)
        ours = self.checkpoint_record["init"]["sha256"]
        if record["init"]["sha256"] != ours:
            raise WeightsError(
                f"{checkpoint} was trained from another init ({record['init']['path']}) than this run's",
                path=checkpoint,
                fix="resume with the same --init the run started with",
            )
        target = self.model if model is None else self.accelerator.unwrap_model(model)
        expected = {name for name, _ in target.trainable_named_parameters()}
        apply_trainable_tensors(target.thinker, read_trainable_tensors(checkpoint), expected, checkpoint / TRAINABLE_WEIGHTS)
        logger.info("resumed the trained tensors of %s (step %s)", checkpoint, record["global_step"])


class JsonlLogCallback(TrainerCallback):
    """Appends every Trainer log (loss, learning rate, grad norm, ...) to ``train_log.jsonl`` and the logger."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero or not logs:
            return
        entry = {"step": state.global_step, "epoch": state.epoch, **logs}
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")
            fh.flush()
        if "loss" in logs:
            logger.info(
                "step %d/%d  loss %.4f  lr %.3g", state.global_step, state.max_steps, logs["loss"], logs.get("learning_rate", 0.0)
            )
