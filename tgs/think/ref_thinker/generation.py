"""Greedy generation for Ref-Thinker batches, with a correct attention mask.

The original (``inference_hyper_lora.py``) calls ``generate(inputs_embeds=...)`` on a
left-padded batch of 8 without an attention mask, so every sample attends to its batch's
padding embeddings and its answer depends on which samples it was batched with. Here the
mask of the spliced sequence goes to ``generate`` (which derives the position ids from it
with the original's own formula, ``cumsum(mask) - 1``), so a sample's answer is the same
in any batch. ``mask_padding=False`` reproduces the original behaviour for comparison.

As in the original, a half-precision model runs under ``torch.autocast`` of its dtype.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from tgs.think.ref_thinker.modeling import RefThinkerForCausalLM
from tgs.think.ref_thinker.processing import RefThinkerBatch

__all__ = ["GenerationSettings", "generate_ids"]


@dataclass(frozen=True)
class GenerationSettings:
    """How answers are generated.

    max_new_tokens: 256 in the original (a longer answer is cut, usually before its tags).
    mask_padding: pass the attention mask (True, fixed) or not (False, the original's bug).
    autocast: run a bf16/fp16 model under torch.autocast, as the original does.
    min_new_tokens: suppress ``</s>`` before this many tokens (0: off; benchmarks use it
        to time answers of a fixed length).
    """

    max_new_tokens: int = 256
    mask_padding: bool = True
    autocast: bool = True
    min_new_tokens: int = 0

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if not 0 <= self.min_new_tokens <= self.max_new_tokens:
            raise ValueError(f"min_new_tokens must be in [0, max_new_tokens], got {self.min_new_tokens}")


def _autocast(model: RefThinkerForCausalLM, enabled: bool) -> contextlib.AbstractContextManager:
    dtype = model.lm_head.weight.dtype
    if not enabled or dtype not in (torch.bfloat16, torch.float16):
        return contextlib.nullcontext()
    return torch.autocast(device_type=model.lm_head.weight.device.type, dtype=dtype)


@torch.inference_mode()
def generate_ids(
    model: RefThinkerForCausalLM,
    batch: RefThinkerBatch,
    settings: GenerationSettings,
    *,
    eos_token_id: int,
    pad_token_id: int,
) -> list[list[int]]:
    """Generated token ids per sample (prompt excluded), greedy, up to ``max_new_tokens``."""
    from transformers import GenerationConfig

    device = model.lm_head.weight.device
    dtype = model.lm_head.weight.dtype
    batch = batch.to(device, dtype)
    config = GenerationConfig(
        max_new_tokens=settings.max_new_tokens,
        min_new_tokens=settings.min_new_tokens or None,
        do_sample=False,
        num_beams=1,
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
        use_cache=True,
    )
    with _autocast(model, settings.autocast):
        spliced = model.prepare_multimodal_inputs(
            batch.input_ids, batch.attention_mask, batch.pixel_values, batch.audio_fbank
        )
        kwargs = {"inputs_embeds": spliced.inputs_embeds, "generation_config": config}
        if settings.mask_padding:
            kwargs["attention_mask"] = spliced.attention_mask
        output = model.generate(**kwargs)
    return output.tolist()
