"""Tiny Ref-Thinker and a fake *release* of it, for tests and install checks.

``build_tiny_ref_thinker`` writes a random Ref-Thinker with the real architecture at toy
sizes (LLaMA 32-wide x 2 layers, CLIP 32-wide x 3 layers at 224 px / patch 14, tiny BEATs,
2-layer Q-Formers with 8 queries), with an unmerged LoRA adapter like a converted release,
in the on-disk format of ``tgs models convert-ref-thinker``, so it loads through
``RefThinkerForCausalLM.from_pretrained`` exactly like the real model.

``write_fake_release`` writes what a user downloads: a base LLaMA directory, a CLIP
directory (a full ``CLIPModel``, as ``openai/clip-vit-large-patch14``), a BEATs ``.pt`` file
and the two released files, keyed exactly like TGS-Agent's (peft names under
``base_model.model.``, collected from ``named_parameters`` as the original trainer does).
It also returns the model those files describe, so the converter can be checked end to end.

The tokenizer is a small byte-fallback BPE trained on the Ref-Thinker prompt and a few
hundred words, wrapped in transformers' ``LlamaTokenizer`` (the real LLaMA-2 tokenizer
cannot be downloaded here); ``<unk>``, ``<s>``, ``</s>`` keep ids 0, 1, 2.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from tgs.testing.weights import fill_every_tensor
from tgs.think.ref_thinker.configuration import SPECIAL_TOKENS, RefThinkerConfig

if TYPE_CHECKING:
    from transformers import CLIPConfig, LlamaConfig, LlamaTokenizer

    from tgs.think.ref_thinker.modeling import RefThinkerForCausalLM

__all__ = [
    "RELEASE_CHECKPOINT",
    "TINY_LORA",
    "FakeRelease",
    "build_tiny_llama_tokenizer",
    "build_tiny_ref_thinker",
    "build_tiny_ref_thinker_model",
    "tiny_clip_config",
    "tiny_llama_config",
    "tiny_ref_thinker_config",
    "write_fake_release",
]

RELEASE_CHECKPOINT = "checkpoint-551"
TINY_LORA: dict[str, Any] = {"r": 8, "lora_alpha": 16, "lora_dropout": 0.05}

_TINY_VISION = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
    "patch_size": 14,
    "image_size": 224,
    "projection_dim": 16,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5,
}
_TINY_QFORMER = {
    "vocab_size": 64,
    "hidden_size": 32,
    "num_attention_heads": 4,
    "intermediate_size": 64,
    "max_position_embeddings": 32,
}
_TINY_LLAMA = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "max_position_embeddings": 2048,
    "rms_norm_eps": 1e-5,
}


# ------------------------------------------------------------------- tokenizer
def _tokenizer_corpus() -> list[str]:
    from tgs.testing.tiny_vision import TINY_WORDS
    from tgs.think.ref_thinker.prompts import build_prompt

    answer = (
        "<think>The dog barks loudly on the left.</think>\n<answer>\n<f_object> a black dog </f_object>\n"
        "<s_object> dog </s_object>\nThe corresponding bbox is: <frame> <box> 10, 20, 30, 40 </box> </frame>\n</answer>"
    )
    return [build_prompt("The object making the loudest sound."), answer, " ".join(TINY_WORDS)] * 2


def build_tiny_llama_tokenizer(vocab_size: int = 480) -> LlamaTokenizer:
    """A base LLaMA-style tokenizer (no added tokens): BPE with byte fallback, ids 0-2 special."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaTokenizer

    from tgs.think.ref_thinker.tokenizer_legacy import pin_legacy

    byte_tokens = [f"<0x{i:02X}>" for i in range(256)]
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<unk>", "<s>", "</s>", *byte_tokens], show_progress=False
    )
    bpe.train_from_iterator(_tokenizer_corpus(), trainer)
    model = json.loads(bpe.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    # legacy written explicitly (false: no extra "▁" after added tokens), so every directory made from
    # it loads the same way whatever a transformers version assumes for a missing key.
    return pin_legacy(LlamaTokenizer(vocab=model["vocab"], merges=merges, legacy=False), False)


def _with_added_tokens(tokenizer: LlamaTokenizer) -> LlamaTokenizer:
    tokenizer.add_tokens(list(SPECIAL_TOKENS), special_tokens=True)
    tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


# --------------------------------------------------------------------- configs
def tiny_llama_config(vocab_size: int) -> LlamaConfig:
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=vocab_size, **_TINY_LLAMA)


def tiny_clip_config() -> CLIPConfig:
    from transformers import CLIPConfig

    text = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
            "vocab_size": 100, "max_position_embeddings": 16, "projection_dim": 16}  # fmt: skip
    return CLIPConfig(text_config=text, vision_config=dict(_TINY_VISION), projection_dim=16)


def tiny_ref_thinker_config(base_vocab_size: int, lora: dict[str, Any] | None = None) -> RefThinkerConfig:
    """Tiny sizes, same structure; CLIP feature layer 2 of 3 stands for 23 of 24."""
    from tgs.think.ref_thinker.beats import TINY_BEATS_CONFIG

    return RefThinkerConfig(
        vocab_size=base_vocab_size + len(SPECIAL_TOKENS),
        first_added_token_id=base_vocab_size,
        pad_token_id=2,
        vision_config=dict(_TINY_VISION),
        vision_feature_layer=2,
        audio_config=TINY_BEATS_CONFIG.to_dict(),
        qformer_config=dict(_TINY_QFORMER),
        num_video_query_tokens=8,
        num_audio_query_tokens=8,
        lora=lora,
        **_TINY_LLAMA,
    )


# ---------------------------------------------------------------------- models
@torch.no_grad()
def _spread_logits(model: torch.nn.Module) -> None:
    """Widen the LM head so greedy decoding is not decided by float noise between near-ties."""
    model.lm_head.weight.normal_(0.0, 1.0)


@torch.no_grad()
def _randomize_lora(model: torch.nn.Module, generator: torch.Generator) -> None:
    """peft starts lora_B at zero (a no-op adapter); a test must see the adapter act."""
    for name, param in model.named_parameters():
        if "lora_B" in name or "lora_A" in name:
            param.copy_(torch.randn(param.shape, generator=generator) * 0.2)


def build_tiny_ref_thinker_model(
    seed: int = 0, *, lora: bool = True
) -> tuple[RefThinkerForCausalLM, LlamaTokenizer]:
    """(model, tokenizer with added tokens): a random tiny Ref-Thinker in eval mode, fp32 on CPU."""
    from tgs.think.ref_thinker.beats import build_tiny_beats
    from tgs.think.ref_thinker.checkpoint import inject_lora
    from tgs.think.ref_thinker.modeling import RefThinkerForCausalLM

    tokenizer = _with_added_tokens(build_tiny_llama_tokenizer())
    config = tiny_ref_thinker_config(len(tokenizer) - len(SPECIAL_TOKENS), dict(TINY_LORA) if lora else None)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = RefThinkerForCausalLM(config)
        model.model.audio_encoder.audio_encoder.load_state_dict(build_tiny_beats(seed).state_dict())
        fill_every_tensor(model, seed + 2)
        _spread_logits(model)
        if lora:
            inject_lora(model, config.lora)
            _randomize_lora(model, torch.Generator().manual_seed(seed + 1))
    return model.eval(), tokenizer


def _save_processor_files(out_dir: Path, tokenizer: LlamaTokenizer) -> None:
    from transformers import CLIPImageProcessorPil

    tokenizer.save_pretrained(str(out_dir))
    CLIPImageProcessorPil().save_pretrained(str(out_dir))


def build_tiny_ref_thinker(out_dir: Path, seed: int = 0) -> Path:
    """Write the tiny Ref-Thinker directory (registry tiny builder for ``ref_thinker``)."""
    out_dir = Path(out_dir)
    model, tokenizer = build_tiny_ref_thinker_model(seed)
    model.save_pretrained(out_dir)
    _save_processor_files(out_dir, tokenizer)
    return out_dir


# --------------------------------------------------------------------- release
@dataclass(frozen=True)
class FakeRelease:
    """Paths of a fake TGS-Agent download, and the model its files describe.

    model: the fine-tuned model (peft-wrapped, LoRA unmerged, fp32) whose logits a correct
        conversion must reproduce.
    """

    llama_dir: Path
    clip_dir: Path
    beats_path: Path
    release_dir: Path
    non_lora_trainables: Path
    finetune_weights: Path
    model: Any


def _release_state(named: list[tuple[str, torch.Tensor]], keep: tuple[str, ...], *, lora: bool | None) -> dict:
    """named_parameters filtered like the original trainer, as plain CPU tensors."""
    out = {}
    for name, tensor in named:
        if lora is False and "lora_" in name:
            continue
        if any(k in name for k in keep):
            out[name] = tensor.detach().cpu().clone()
    return out


def write_fake_release(out_dir: Path, seed: int = 0, *, dtype: torch.dtype = torch.float32) -> FakeRelease:
    """Write base LLaMA, CLIP, BEATs and the two released files under ``out_dir``.

    The released files are made the way TGS-Agent makes them: ``get_peft_model`` on the LLM
    before the multimodal modules exist, embeddings resized to +21 tokens, then
    ``checkpoint-551/finetune_weights.bin`` = named parameters matching vl_projector,
    al_projector or lora (an earlier state of the projectors, so that the load order
    matters) and ``non_lora_trainables.bin`` = the final projectors, embed_tokens and lm_head.
    """
    from peft import LoraConfig, get_peft_model
    from transformers import CLIPImageProcessorPil, CLIPModel, LlamaForCausalLM

    from tgs.think.ref_thinker.beats import load_beats_checkpoint, write_tiny_beats_checkpoint
    from tgs.think.ref_thinker.checkpoint import LLM_LORA_TARGETS
    from tgs.think.ref_thinker.modeling import RefThinkerForCausalLM

    out_dir = Path(out_dir)
    llama_dir, clip_dir = out_dir / "Llama-2-7b-chat-hf", out_dir / "clip-vit-large-patch14"
    beats_path = out_dir / "BEATs_iter3_plus_AS2M_finetuned_on_AS2M_cpt2.pt"
    release_dir = out_dir / "TGS-Agent"
    generator = torch.Generator().manual_seed(seed + 7)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        base_tokenizer = build_tiny_llama_tokenizer()
        base = LlamaForCausalLM(tiny_llama_config(len(base_tokenizer)))
        fill_every_tensor(base, seed + 2)
        base.save_pretrained(str(llama_dir))
        base_tokenizer.save_pretrained(str(llama_dir))
        clip = CLIPModel(tiny_clip_config())
        fill_every_tensor(clip, seed + 3)
        clip.save_pretrained(str(clip_dir))
        CLIPImageProcessorPil().save_pretrained(str(clip_dir))
        write_tiny_beats_checkpoint(beats_path, seed)

        # The fine-tuned model: base weights + LoRA + resized embeddings + projectors.
        config = tiny_ref_thinker_config(len(base_tokenizer))
        model = RefThinkerForCausalLM(config).eval()
        fill_every_tensor(model, seed + 4)  # the projectors; the rest is loaded below
        model.model.layers.load_state_dict(base.model.layers.state_dict())
        model.model.norm.load_state_dict(base.model.norm.state_dict())
        model.model.visual_encoder.vision_tower.vision_model.load_state_dict(clip.vision_model.state_dict())
        model.model.audio_encoder.audio_encoder.load_state_dict(load_beats_checkpoint(beats_path).state_dict())
        _spread_logits(model)
        lora = LoraConfig(target_modules=LLM_LORA_TARGETS, task_type="CAUSAL_LM", **TINY_LORA)
        peft_model = get_peft_model(model, lora).eval()
        _randomize_lora(peft_model, generator)

    named = list(peft_model.named_parameters())
    final = _release_state(named, ("vl_projector", "al_projector", "lora", "lm_head", "embed_tokens"), lora=False)
    checkpoint = _release_state(named, ("vl_projector", "al_projector", "lora"), lora=None)
    for key, tensor in checkpoint.items():  # an earlier epoch's projectors
        if "projector" in key and tensor.is_floating_point():
            tensor.add_(torch.randn(tensor.shape, generator=generator) * 0.05)
    release_dir.mkdir(parents=True, exist_ok=True)
    (release_dir / RELEASE_CHECKPOINT).mkdir(exist_ok=True)
    non_lora_path = release_dir / "non_lora_trainables.bin"
    finetune_path = release_dir / RELEASE_CHECKPOINT / "finetune_weights.bin"
    cast = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in final.items()}
    torch.save(cast, non_lora_path)
    torch.save({k: (v.to(dtype) if v.is_floating_point() else v) for k, v in checkpoint.items()}, finetune_path)
    return FakeRelease(llama_dir, clip_dir, beats_path, release_dir, non_lora_path, finetune_path, peft_model)
