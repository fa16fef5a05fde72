"""The trainable Ref-Thinker: peft LoRA on LLaMA, trained projectors / embeddings / lm_head, the rest frozen.

As TGS-Agent's ``finetune_hyperlora.py`` sets it up:

- LoRA (peft, adapter "default") on the LLaMA q/k/v/o/gate/up/down projections only, r=8,
  alpha=16, dropout 0.05; an init directory without an adapter gets a fresh one (lora_A
  Kaiming-uniform, lora_B zero: the adapter starts as a no-op), one with an adapter (a
  converted release, a previous fine-tune) keeps training it;
- trained in full: ``model.vl_projector``, ``model.al_projector``, ``model.embed_tokens``,
  ``lm_head`` (the original's ``save_modules`` plus embeddings and head);
- frozen: CLIP, BEATs, the LLaMA base weights and norms.

``RefThinkerTrainingModel`` wraps the model so that one ``forward(**batch)`` runs the whole
training step's forward (encoders, splicing, LLaMA, loss). DDP and DeepSpeed wrap this
module, so the splicing happens inside their forward as it must. The loss is LLaMA's
causal-LM cross entropy, averaged over the supervised tokens of the micro-batch (the
answer tokens and ``</s>``), exactly the original's reduction.

Parameters: trained ones are kept in float32; with ``bf16`` the frozen ones are loaded in
bfloat16 (the original loads the whole model in bf16; DeepSpeed keeps fp32 master copies of
the trained ones, which float32 trained parameters give without DeepSpeed).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers.modeling_outputs import CausalLMOutputWithPast

from tgs.errors import WeightsError
from tgs.think.ref_thinker.checkpoint import (
    LLM_LORA_TARGETS,
    inject_lora,
    shared_tensor_aliases,
)
from tgs.think.ref_thinker.modeling import RefThinkerForCausalLM, load_ref_thinker_model
from tgs.train.config import TRAINABLE_MODULES, TrainRecipe
from tgs.train.data import splice_labels

__all__ = [
    "RefThinkerTrainingModel",
    "TrainableSummary",
    "build_training_model",
    "freeze_for_training",
    "is_lora_parameter",
    "lora_differences",
    "trainable_state_dict",
]

logger = logging.getLogger(__name__)

_LORA_MARKERS = (".lora_A.", ".lora_B.")


def is_lora_parameter(name: str) -> bool:
    return any(marker in name for marker in _LORA_MARKERS)


@dataclass
class TrainableSummary:
    """How many parameters each group trains, and the totals (what the original writes to
    ``model_trainable_params.txt``)."""

    groups: dict[str, int] = field(default_factory=dict)
    trainable: int = 0
    total: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"groups": dict(self.groups), "trainable": self.trainable, "total": self.total}


def _group_of(name: str, prefixes: dict[str, str]) -> str | None:
    if is_lora_parameter(name):
        return "lora"
    for group, prefix in prefixes.items():
        if name.startswith(prefix):
            return group
    return None


def freeze_for_training(model: RefThinkerForCausalLM, recipe: TrainRecipe) -> TrainableSummary:
    """Set ``requires_grad`` on exactly LoRA + the recipe's module groups; returns the counts."""
    prefixes = {name: TRAINABLE_MODULES[name] for name in recipe.trainable_modules}
    summary = TrainableSummary(groups=dict.fromkeys(["lora", *prefixes], 0))
    for name, param in model.named_parameters():
        group = _group_of(name, prefixes)
        param.requires_grad_(group is not None)
        summary.total += param.numel()
        if group is not None:
            summary.groups[group] += param.numel()
            summary.trainable += param.numel()
    if summary.groups["lora"] == 0:
        raise WeightsError("the model has no LoRA parameters to train (internal: inject the adapter first)")
    return summary


def trainable_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The trained tensors (``requires_grad``) under their Ref-Thinker keys, shared tensors once."""
    aliases = shared_tensor_aliases(model)
    return {name: p for name, p in model.named_parameters() if p.requires_grad and name not in aliases}


def lora_differences(found: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """What differs between two LoRA settings in the weights' shape or scale (r, alpha, targets; not dropout)."""
    targets = (found.get("target_modules", LLM_LORA_TARGETS), wanted.get("target_modules", LLM_LORA_TARGETS))
    out = [f"{key}: {found.get(key)!r} vs {wanted.get(key)!r}" for key in ("r", "lora_alpha")
           if float(found.get(key, -1)) != float(wanted.get(key, -1))]  # fmt: skip
    if targets[0] != targets[1]:
        out.append(f"target_modules: {targets[0]!r} vs {targets[1]!r}")
    return out


def _check_lora_matches(config_lora: dict[str, Any], recipe: TrainRecipe, path: Path) -> None:
    differs = lora_differences(config_lora, recipe.lora)
    if differs:
        raise WeightsError(
            f"the init directory {path} already has a LoRA adapter that differs from the recipe "
            f"(directory vs recipe): {'; '.join(differs)}",
            path=path,
            fix="set the recipe's lora_* fields to the adapter's, or start from a directory without an adapter "
            "(e.g. one written by `tgs models init-ref-thinker`)",
        )


def _set_lora_dropout(model: RefThinkerForCausalLM, p: float) -> None:
    """Give an existing adapter the recipe's dropout (a training setting, not part of the weights)."""
    from peft.tuners.lora import LoraLayer

    for module in model.modules():
        if isinstance(module, LoraLayer):
            for name in list(module.lora_dropout.keys()):
                module.lora_dropout[name] = nn.Dropout(p) if p > 0 else nn.Identity()
    model.config.lora = {**model.config.lora, "lora_dropout": p}


def _set_qformer_dropout(model: RefThinkerForCausalLM, p: float) -> None:
    """The recipe's dropout in every projector Q-Former (parameter-free: weights are unaffected)."""
    from tgs.think.ref_thinker.qformer import QFormer

    for module in model.modules():
        if isinstance(module, QFormer):
            for sub in module.modules():
                if isinstance(sub, nn.Dropout):
                    sub.p = p


def _cast_trainable_to_float32(model: nn.Module) -> None:
    for param in model.parameters():
        if param.requires_grad and param.dtype != torch.float32:
            param.data = param.data.float()


class RefThinkerTrainingModel(nn.Module):
    """``forward(input_ids, attention_mask, labels, pixel_values, audio_fbank)`` -> loss and logits.

    Inputs as ``RefThinkerTrainCollator`` makes them. The prompt is spliced with the
    projected frames and audio (``prepare_multimodal_inputs``) and the labels with -100 at
    every multimodal position (``splice_labels``); the loss is the mean cross entropy over
    the supervised (answer) tokens of the batch. ``thinker`` is the Ref-Thinker itself,
    whose state-dict keys are the released ones.
    """

    def __init__(self, thinker: RefThinkerForCausalLM, *, frozen_encoders_mode: str = "train") -> None:
        super().__init__()
        if frozen_encoders_mode not in ("train", "eval"):
            raise ValueError(f"frozen_encoders_mode: expected 'train' or 'eval', got {frozen_encoders_mode!r}")
        self.thinker = thinker
        self.frozen_encoders_mode = frozen_encoders_mode

    @property
    def config(self) -> Any:
        return self.thinker.config

    def train(self, mode: bool = True) -> RefThinkerTrainingModel:
        """Train mode everywhere, except CLIP / BEATs when ``frozen_encoders_mode == "eval"``.

        HF Trainer calls ``model.train()`` before every step; in the original this also put
        the frozen encoders (which it had set to eval) back into train mode.
        """
        super().train(mode)
        if mode and self.frozen_encoders_mode == "eval":
            self.thinker.model.visual_encoder.eval()
            self.thinker.model.audio_encoder.eval()
        return self

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        labels: torch.Tensor,
        pixel_values: torch.Tensor,
        audio_fbank: torch.Tensor,
    ) -> CausalLMOutputWithPast:
        config = self.thinker.config
        spliced = self.thinker.prepare_multimodal_inputs(input_ids, attention_mask, pixel_values, audio_fbank)
        lengths = {
            config.video_token_index: pixel_values.shape[1] * config.num_video_query_tokens,
            config.audio_token_index: audio_fbank.shape[1] * config.num_audio_query_tokens,
        }
        spliced_labels = splice_labels(input_ids, attention_mask, labels, lengths)
        if spliced_labels.shape != spliced.attention_mask.shape:
            raise RuntimeError(  # internal: splice_labels and splice_multimodal disagree
                f"spliced labels {tuple(spliced_labels.shape)} vs embeddings {tuple(spliced.attention_mask.shape)}"
            )
        return self.thinker(
            inputs_embeds=spliced.inputs_embeds,
            attention_mask=spliced.attention_mask,
            position_ids=spliced.position_ids,
            labels=spliced_labels,
            use_cache=False,
        )

    def trainable_named_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        """(Ref-Thinker key, parameter) of every trained parameter, shared ones once."""
        yield from trainable_state_dict(self.thinker).items()


def build_training_model(
    init_dir: str | Path, recipe: TrainRecipe, *, for_deepspeed: bool = False
) -> tuple[RefThinkerTrainingModel, TrainableSummary]:
    """Load ``init_dir`` strictly and make it trainable as the recipe says.

    Seeds nothing itself: call ``transformers.set_seed(recipe.seed)`` first so the fresh
    LoRA initialisation is reproducible. With ``for_deepspeed`` the trained parameters stay
    in the load dtype (DeepSpeed casts the module and keeps its own fp32 master weights).
    Returns the wrapper (in train mode, on CPU) and the parameter counts.
    """
    init_dir = Path(init_dir)
    dtype = torch.bfloat16 if recipe.bf16 else torch.float32
    thinker = load_ref_thinker_model(init_dir, device="cpu", dtype=dtype)
    if thinker.config.lora:
        _check_lora_matches(thinker.config.lora, recipe, init_dir)
        _set_lora_dropout(thinker, recipe.lora_dropout)
        logger.info("continuing to train the LoRA adapter of %s", init_dir)
    else:
        thinker.config.lora = recipe.lora
        inject_lora(thinker, thinker.config.lora)
        logger.info("added a fresh LoRA adapter (r=%d, alpha=%g)", recipe.lora_r, recipe.lora_alpha)
    _set_qformer_dropout(thinker, recipe.qformer_dropout)
    summary = freeze_for_training(thinker, recipe)
    if not for_deepspeed:
        _cast_trainable_to_float32(thinker)
    thinker.config.use_cache = False
    if recipe.gradient_checkpointing:
        thinker.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    model = RefThinkerTrainingModel(thinker, frozen_encoders_mode=recipe.frozen_encoders_mode)
    model.train()
    logger.info(
        "trainable parameters: %s of %s (%s)",
        f"{summary.trainable:,}",
        f"{summary.total:,}",
        ", ".join(f"{k} {v:,}" for k, v in summary.groups.items()),
    )
    return model, summary
