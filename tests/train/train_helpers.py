"""Helpers shared by the training tests (imported as a plain module, like tests/think's helpers)."""

from __future__ import annotations

from pathlib import Path

import torch

from tgs.think.ref_thinker.modeling import RefThinkerForCausalLM
from tgs.train.config import TrainRecipe
from tgs.train.crab import CRAB_AUDIO_NAME, CRAB_VISUAL_NAME


def fast_recipe(**changes: object) -> TrainRecipe:
    """The paper's recipe shrunk for a CPU test: fp32, batch 2, no accumulation, no workers."""
    base = {
        "bf16": False,
        "per_device_train_batch_size": 2,
        "gradient_accumulation_steps": 1,
        "dataloader_num_workers": 0,
        "learning_rate": 1e-3,
        "save_strategy": "steps",
        "save_steps": 1000,
    }
    return TrainRecipe().replace(**{**base, **changes})


def write_crab(folder: Path, donor: RefThinkerForCausalLM, *, extra: dict | None = None) -> dict[str, torch.Tensor]:
    """Crab-style files: each projector's named parameters + embed_tokens + lm_head (no peft prefix)."""
    folder.mkdir(parents=True, exist_ok=True)
    named = {k: v.detach().clone() for k, v in donor.named_parameters()}
    shared = {"model.embed_tokens.weight": named["model.embed_tokens.weight"]}
    audio = {k: v for k, v in named.items() if k.startswith("model.al_projector.")}
    visual = {k: v for k, v in named.items() if k.startswith("model.vl_projector.")}
    audio_head = named["lm_head.weight"] + 1.0  # the visual file's head must win
    torch.save({**audio, **shared, "lm_head.weight": audio_head, **(extra or {})}, folder / CRAB_AUDIO_NAME)
    torch.save({**visual, **shared, "lm_head.weight": named["lm_head.weight"]}, folder / CRAB_VISUAL_NAME)
    return named
