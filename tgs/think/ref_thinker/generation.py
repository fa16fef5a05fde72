"""Greedy generation for Ref-Thinker batches, with a correct attention mask.

The original (``inference_hyper_lora.py``) calls ``generate(inputs_embeds=...)`` on a
left-padded batch of 8 without an attention mask, so every sample attends to its batch's
padding embeddings and its answer depends on which samples it was batched with. Here the
mask of the spliced sequence goes to ``generate`` (which derives the position ids from it
with the original's own formula, ``cumsum(mask) - 1``), so a sample's answer is the same
in any batch. ``mask_padding=False`` reproduces the original behaviour for comparison.

As in the original, a half-precision model runs under ``torch.autocast`` of its dtype.

``decode="static"`` preallocates the KV cache (transformers' ``StaticCache``) so that every
decoding step has the same shapes, which is what ``torch.compile`` / CUDA graphs need;
``compile=True`` then lets ``generate`` compile the decoding step (transformers' own
auto-compilation, ``CompileConfig``). Both give the eager dynamic-cache answers (tested in
fp32); they are meant for a GPU, where a 7B decoding step is bound by kernel launches.

:func:`prefill_clip` encodes a clip once and prefills the prompt prefix common to its
expressions; :func:`generate_after_prefix` continues batch rows from such prefixes
(``sharing.py``) instead of prefilling each whole prompt.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

from tgs.think.ref_thinker.modeling import RefThinkerForCausalLM
from tgs.think.ref_thinker.processing import RefThinkerBatch
from tgs.think.ref_thinker.sharing import PrefixedRow, prefill_prefix, row_cache, splice_rows

__all__ = [
    "DECODE_MODES",
    "DecodeMode",
    "GenerationSettings",
    "generate_after_prefix",
    "generate_ids",
    "prefill_clip",
    "prefixed_inputs",
]

DecodeMode = Literal["dynamic", "static"]
DECODE_MODES: tuple[str, ...] = ("dynamic", "static")


@dataclass(frozen=True)
class GenerationSettings:
    """How answers are generated.

    max_new_tokens: 256 in the original (a longer answer is cut, usually before its tags).
    mask_padding: pass the attention mask (True, fixed) or not (False, the original's bug).
    autocast: run a bf16/fp16 model under torch.autocast, as the original does.
    min_new_tokens: suppress ``</s>`` before this many tokens (0: off; benchmarks use it
        to time answers of a fixed length).
    decode: "dynamic" (a growing ``DynamicCache``, the default) or "static" (a
        preallocated ``StaticCache``; fixed shapes per step, for compiled decoding).
    compile: compile the decoding step with ``torch.compile`` (needs ``decode="static"``).
    compile_backend: ``torch.compile``'s backend ("inductor"; tests pass a lighter one).
    """

    max_new_tokens: int = 256
    mask_padding: bool = True
    autocast: bool = True
    min_new_tokens: int = 0
    decode: DecodeMode = "dynamic"
    compile: bool = False
    compile_backend: str | Callable[..., Any] = "inductor"

    def __post_init__(self) -> None:
        if self.decode not in DECODE_MODES:
            raise ValueError(f"decode: expected one of {', '.join(DECODE_MODES)}, got {self.decode!r}")
        if self.compile and self.decode != "static":
            raise ValueError("compile=True needs decode='static' (compiled steps need a fixed-size cache)")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if not 0 <= self.min_new_tokens <= self.max_new_tokens:
            raise ValueError(f"min_new_tokens must be in [0, max_new_tokens], got {self.min_new_tokens}")


def _autocast(model: RefThinkerForCausalLM, enabled: bool) -> contextlib.AbstractContextManager:
    dtype = model.lm_head.weight.dtype
    if not enabled or dtype not in (torch.bfloat16, torch.float16):
        return contextlib.nullcontext()
    return torch.autocast(device_type=model.lm_head.weight.device.type, dtype=dtype)


def _generation_config(settings: GenerationSettings, device: torch.device, *, eos_token_id: int, pad_token_id: int,
                       static_cache: bool) -> Any:  # fmt: skip
    """The greedy ``GenerationConfig``; ``static_cache`` asks generate to allocate a ``StaticCache``."""
    from transformers import CompileConfig, GenerationConfig

    options: dict[str, Any] = {}
    if settings.compile:
        mode = "reduce-overhead" if device.type == "cuda" else "default"  # CUDA graphs on a GPU
        compile_config = CompileConfig(fullgraph=False, backend=settings.compile_backend, mode=mode)
        # transformers compiles automatically on accelerators only; its own flag (meant for tests) extends that to CPUs.
        compile_config._compile_all_devices = True
        options["compile_config"] = compile_config
    else:
        options["disable_compile"] = True  # generate would otherwise compile a static cache on a GPU by itself
    if static_cache:
        options["cache_implementation"] = "static"
    return GenerationConfig(
        max_new_tokens=settings.max_new_tokens,
        min_new_tokens=settings.min_new_tokens or None,
        do_sample=False,
        num_beams=1,
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
        use_cache=True,
        **options,
    )


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
    device = model.lm_head.weight.device
    dtype = model.lm_head.weight.dtype
    batch = batch.to(device, dtype)
    config = _generation_config(settings, device, eos_token_id=eos_token_id, pad_token_id=pad_token_id,
                                static_cache=settings.decode == "static")  # fmt: skip
    with _autocast(model, settings.autocast):
        spliced = model.prepare_multimodal_inputs(
            batch.input_ids, batch.attention_mask, batch.pixel_values, batch.audio_fbank
        )
        kwargs = {"inputs_embeds": spliced.inputs_embeds, "generation_config": config}
        if settings.mask_padding:
            kwargs["attention_mask"] = spliced.attention_mask
        output = model.generate(**kwargs)
    return output.tolist()


@torch.inference_mode()
def prefill_clip(
    model: RefThinkerForCausalLM,
    pixel_values: torch.Tensor,
    audio_fbank: torch.Tensor,
    prompts: Sequence[Sequence[int]],
    settings: GenerationSettings,
) -> list[PrefixedRow]:
    """One clip, several prompts: encoders + projectors once, the common prefix prefilled once.

    pixel_values [T, 3, H, W] and audio_fbank [T, F, 128] of the clip; prompts: token ids of
    each expression's prompt. Returns one row per prompt, all holding the same prefix.
    """
    device = model.lm_head.weight.device
    dtype = model.lm_head.weight.dtype
    with _autocast(model, settings.autocast):
        features = {
            model.config.video_token_index: model.encode_video(pixel_values[None].to(device, dtype)),
            model.config.audio_token_index: model.encode_audio(audio_fbank[None].to(device, dtype)),
        }
        prefix_embeds, suffixes = splice_rows(model, prompts, features)
        prefix = prefill_prefix(model, prefix_embeds)
    return [PrefixedRow(prefix, suffix) for suffix in suffixes]


@torch.inference_mode()
def generate_after_prefix(
    model: RefThinkerForCausalLM,
    rows: Sequence[PrefixedRow],
    settings: GenerationSettings,
    *,
    eos_token_id: int,
    pad_token_id: int,
) -> list[list[int]]:
    """Generated ids per row (greedy), each row continuing its prefilled prefix with its own suffix.

    The rows' prefixes are copied into one batch cache (right-aligned, padding masked); the
    suffixes are left padded after them, and ``generate`` prefills them and decodes. Needs
    the masked mode (the pads between prefix and suffix must not be attended).
    """
    if not settings.mask_padding:
        raise ValueError("sharing a prefilled prefix needs mask_padding=True")
    if not rows:
        return []
    device = model.lm_head.weight.device
    config = _generation_config(settings, device, eos_token_id=eos_token_id, pad_token_id=pad_token_id,
                                static_cache=False)  # fmt: skip
    with _autocast(model, settings.autocast):
        output = model.generate(**prefixed_inputs(model, rows, settings), generation_config=config)
    return output.tolist()


def prefixed_inputs(model: RefThinkerForCausalLM, rows: Sequence[PrefixedRow], settings: GenerationSettings) -> dict:
    """``generate`` keyword arguments for rows continuing prefilled prefixes: cache, embeddings, mask.

    generate takes the whole sequence's embeddings and mask, feeds only what the cache
    lacks (the suffixes) and derives every position from the mask (``cumsum - 1``).
    ``settings.decode == "static"`` gives a ``StaticCache`` sized for ``max_new_tokens``.
    """
    device = model.lm_head.weight.device
    suffix_width = max(row.suffix_embeds.shape[0] for row in rows)
    prefix_width = max(row.prefix.length for row in rows)
    cache, prefix_mask = row_cache(
        model, rows, static=settings.decode == "static", max_len=prefix_width + suffix_width + settings.max_new_tokens
    )
    first = rows[0].suffix_embeds
    embeds = first.new_zeros(len(rows), prefix_width + suffix_width, first.shape[1])
    suffix_mask = torch.zeros(len(rows), suffix_width, dtype=torch.long, device=device)
    for b, row in enumerate(rows):
        length = row.suffix_embeds.shape[0]
        embeds[b, prefix_width + suffix_width - length :] = row.suffix_embeds
        suffix_mask[b, suffix_width - length :] = 1
    return {"inputs_embeds": embeds, "attention_mask": torch.cat([prefix_mask, suffix_mask], dim=1), "cache": cache}
