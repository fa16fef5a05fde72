"""Ref-Thinker: LLaMA whose ``<video>`` / ``<audio>`` tokens are replaced by projected features.

Module tree (so the state-dict keys equal the original ``UnifiedForCausalLM``'s)::

    RefThinkerForCausalLM            (LlamaForCausalLM)
      model                          RefThinkerModel (LlamaModel)
        embed_tokens, layers, norm   LLaMA
        visual_encoder.vision_tower  CLIPVisionModel (frozen)
        vl_projector                 VisualProjector (LayerNorm, Q-Former, MLP)
        audio_encoder.audio_encoder  BEATs (frozen)
        al_projector                 AudioProjector
      lm_head

Shapes: pixel_values float [B, T, 3, 224, 224] (T = 10 frames), audio_fbank float
[B, T, 98, 128] (T = 10 one-second chunks). Each frame gives ``num_video_query_tokens``
(32) embeddings, each chunk ``num_audio_query_tokens`` (32), so a clip is spliced in as
320 + 320 LLM tokens. The model sees tensors only; prompts, images and audio files are the
processor's business.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn
from transformers import CLIPVisionConfig, CLIPVisionModel, LlamaForCausalLM, LlamaModel
from transformers.cache_utils import Cache
from transformers.modeling_outputs import BaseModelOutputWithPooling, CausalLMOutputWithPast
from transformers.models.llama.modeling_llama import LlamaPreTrainedModel

from tgs.errors import MissingWeightsError, WeightsError
from tgs.think.ref_thinker.beats import BEATs, BEATsConfig
from tgs.think.ref_thinker.checkpoint import (
    WEIGHTS_NAME,
    check_keys,
    inject_lora,
    save_ref_thinker_model,
    shared_tensor_aliases,
    tie_shared,
)
from tgs.think.ref_thinker.configuration import RefThinkerConfig
from tgs.think.ref_thinker.projector import AudioProjector, VisualProjector

__all__ = [
    "AudioEncoder",
    "CLIPVisionTower",
    "MultimodalInputs",
    "RefThinkerForCausalLM",
    "RefThinkerModel",
    "VisualEncoder",
    "build_empty_model",
    "load_ref_thinker_model",
    "splice_multimodal",
]

logger = logging.getLogger(__name__)


class CLIPVisionTower(nn.Module):
    """Holds CLIP's vision transformer as ``vision_model``.

    transformers 4.x (the original's) ``CLIPVisionModel`` kept its transformer under a
    ``vision_model`` attribute; 5.x flattened it. This one-level wrapper restores the old
    key names (``vision_tower.vision_model.encoder.layers.N...``), which are also the names
    the CLIP checkpoints themselves use. State dicts in the flat 5.x naming load too.
    """

    def __init__(self, config: CLIPVisionConfig) -> None:
        super().__init__()
        self.vision_model = CLIPVisionModel(config)
        self.register_load_state_dict_pre_hook(_accept_flat_clip_keys)

    def forward(self, pixel_values: torch.Tensor, output_hidden_states: bool = False) -> BaseModelOutputWithPooling:
        return self.vision_model(pixel_values, output_hidden_states=output_hidden_states)


def _accept_flat_clip_keys(module: nn.Module, state_dict: dict, prefix: str, *args: Any) -> None:
    """Also load state dicts in transformers 5.x's flat CLIPVisionModel naming (no ``vision_model.``)."""
    inner = prefix + "vision_model."
    for key in [k for k in state_dict if k.startswith(prefix) and not k.startswith(inner)]:
        state_dict[inner + key[len(prefix) :]] = state_dict.pop(key)


class VisualEncoder(nn.Module):
    """Frozen CLIP vision tower; returns the patch tokens of one hidden layer.

    pixel_values [N, 3, H, W] -> [N, P, vision_width], P = (H / patch)^2 (+1 with the CLS
    token when ``select_feature == 'cls_patch'``). The features are CLIP's
    ``hidden_states[feature_layer]``: index 0 is the embedding output (after the pre-LayerNorm),
    so 23 is the output of the 23rd of CLIP-L's 24 layers.

    They are computed by running the embeddings and the first ``feature_layer`` encoder layers
    explicitly, not read from ``output_hidden_states=True``: transformers 5 collects hidden
    states with forward hooks installed lazily, and the first ``output_hidden_states`` /
    ``output_attentions`` call on the LLM re-installs them on the nested CLIP model without
    checking that CLIP already has them. From then on CLIP returns every layer twice
    (``[emb, L1, L1, L2, L2, ...]``) and ``hidden_states[23]`` is layer 12. The explicit path
    gives the same tensor bit for bit, whatever the call history, and skips the layers after
    the chosen one.
    """

    def __init__(self, config: RefThinkerConfig) -> None:
        super().__init__()
        self.feature_layer = config.vision_feature_layer
        self.select_feature = config.vision_feature_select
        self.vision_tower = CLIPVisionTower(config.vision)
        self.vision_tower.requires_grad_(False)

    @torch.no_grad()
    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        vision = self.vision_tower.vision_model
        hidden = vision.embeddings(pixel_values.to(vision.embeddings.patch_embedding.weight.dtype))
        hidden = vision.pre_layrnorm(hidden)
        layers = vision.encoder.layers
        # hidden_states has len(layers) + 1 entries; a negative index counts from its end.
        for layer in layers[: self.feature_layer % (len(layers) + 1)]:
            hidden = layer(hidden, None)  # CLIPEncoder's call: no attention mask for images
        return hidden[:, 1:] if self.select_feature == "patch" else hidden


class AudioEncoder(nn.Module):
    """Frozen BEATs; fbank [N, T, 128] -> encoder features [N, (T // 16) * 8, audio_width]."""

    def __init__(self, config: RefThinkerConfig) -> None:
        super().__init__()
        self.audio_encoder = BEATs(BEATsConfig.from_dict(config.audio_config, source="RefThinkerConfig.audio_config"))
        self.audio_encoder.requires_grad_(False)

    @torch.no_grad()
    def forward(self, fbank: torch.Tensor) -> torch.Tensor:
        dtype = self.audio_encoder.patch_embedding.weight.dtype
        return self.audio_encoder.extract_features(fbank.to(dtype))


class RefThinkerModel(LlamaModel):
    """LlamaModel plus the encoders and projectors, under the original attribute names."""

    config_class = RefThinkerConfig

    def __init__(self, config: RefThinkerConfig) -> None:
        super().__init__(config)
        llm_width = config.hidden_size
        self.visual_encoder = VisualEncoder(config)
        self.vl_projector = VisualProjector(
            config.qformer(config.vision_width), config.num_video_query_tokens, llm_width, config.projector_depth
        )
        self.audio_encoder = AudioEncoder(config)
        self.al_projector = AudioProjector(
            config.qformer(config.audio_width), config.num_audio_query_tokens, llm_width, config.projector_depth
        )


class MultimodalInputs:
    """What the LLM consumes after splicing: left-padded embeddings, mask and positions.

    inputs_embeds float [B, L, D]; attention_mask int64 [B, L] (0 on padding);
    position_ids int64 [B, L] = cumsum(mask) - 1, 0 on padding (the original's formula).
    """

    __slots__ = ("attention_mask", "inputs_embeds", "position_ids")

    def __init__(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor) -> None:
        self.inputs_embeds = inputs_embeds
        self.attention_mask = attention_mask
        self.position_ids = position_ids


def splice_multimodal(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    embed: nn.Embedding,
    features: Mapping[int, torch.Tensor],
    pad_token_id: int,
) -> MultimodalInputs:
    """Replace each placeholder token by its features, then left-pad the batch again.

    input_ids / attention_mask: int [B, L], left padded (mask 0 on padding).
    features: placeholder token id -> float [B, n, D], the n embeddings that replace that
        token in sample b. Each placeholder must occur exactly once per sample.
    Padding positions get ``embed(pad_token_id)`` and mask 0, as in the original, so the
    unmasked (original) batching sees the same pad embeddings.
    """
    if input_ids.shape != attention_mask.shape or input_ids.ndim != 2:
        raise ValueError(
            f"input_ids {tuple(input_ids.shape)} and attention_mask {tuple(attention_mask.shape)}: expected equal [B, L]"
        )
    rows: list[torch.Tensor] = []
    for b in range(input_ids.shape[0]):
        ids = input_ids[b][attention_mask[b].bool()]
        positions = {token: (ids == token).nonzero().flatten().tolist() for token in features}
        for token, found in positions.items():
            if len(found) != 1:
                raise ValueError(f"sample {b}: expected one placeholder token {token}, found {len(found)}")
        pieces: list[torch.Tensor] = []
        start = 0
        for index, token in sorted((found[0], token) for token, found in positions.items()):
            pieces.append(embed(ids[start:index]))
            pieces.append(features[token][b].to(pieces[-1].dtype))
            start = index + 1
        pieces.append(embed(ids[start:]))
        rows.append(torch.cat(pieces, dim=0))
    longest = max(row.shape[0] for row in rows)
    device = input_ids.device
    pad = embed(torch.tensor([pad_token_id], device=device))
    embeds, masks = [], []
    for row in rows:
        missing = longest - row.shape[0]
        embeds.append(torch.cat([pad.expand(missing, -1), row], dim=0))
        masks.append(torch.cat([torch.zeros(missing, dtype=torch.long, device=device),
                                torch.ones(row.shape[0], dtype=torch.long, device=device)]))  # fmt: skip
    mask = torch.stack(masks)
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    return MultimodalInputs(torch.stack(embeds), mask, position_ids)


class RefThinkerForCausalLM(LlamaForCausalLM):
    """LLaMA causal LM with Ref-Thinker's encoders; ``forward`` also accepts raw modalities.

    ``prepare_multimodal_inputs`` builds the spliced embeddings once; ``generate`` (HF's)
    then runs on ``inputs_embeds`` with the returned attention mask.
    """

    config_class = RefThinkerConfig
    _no_split_modules: ClassVar[list[str]] = ["LlamaDecoderLayer", "CLIPEncoderLayer"]

    def __init__(self, config: RefThinkerConfig) -> None:
        # Skip LlamaForCausalLM.__init__: it would build a plain LlamaModel first.
        LlamaPreTrainedModel.__init__(self, config)
        self.model = RefThinkerModel(config)
        self.vocab_size = config.vocab_size
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    # ------------------------------------------------------------- persistence
    @classmethod
    def from_pretrained(  # type: ignore[override]
        cls,
        path: str | Path,
        *,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> RefThinkerForCausalLM:
        """Load a Ref-Thinker directory with strict key checks (see ``checkpoint.py``).

        Replaces transformers' loader on purpose: that one initialises missing weights at
        random with a warning, does not know the unmerged-LoRA layout, and would break the
        Q-Former's tied MLM head. Only local directories are accepted.
        """
        return load_ref_thinker_model(path, device=device, dtype=dtype)

    def save_pretrained(self, path: str | Path, *, dtype: torch.dtype | None = None) -> Path:  # type: ignore[override]
        """Write ``config.json`` + ``model.safetensors`` readable by ``from_pretrained``."""
        return save_ref_thinker_model(self, path, dtype=dtype)

    # ----------------------------------------------------------------- encoders
    def encode_video(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """pixel_values [B, T, 3, H, W] -> [B, T * num_video_query_tokens, hidden_size]."""
        if pixel_values.ndim != 5:
            raise ValueError(f"pixel_values: expected [B, T, 3, H, W], got shape {tuple(pixel_values.shape)}")
        b, t = pixel_values.shape[:2]
        features = self.model.visual_encoder(pixel_values.flatten(0, 1))
        tokens = self.model.vl_projector(features.to(self.model.vl_projector.visual_ln.weight.dtype))
        return tokens.reshape(b, t * tokens.shape[1], tokens.shape[2])

    def encode_audio(self, audio_fbank: torch.Tensor) -> torch.Tensor:
        """audio_fbank [B, T, F, 128] -> [B, T * num_audio_query_tokens, hidden_size]."""
        if audio_fbank.ndim != 4:
            raise ValueError(f"audio_fbank: expected [B, T, frames, 128], got shape {tuple(audio_fbank.shape)}")
        b, t = audio_fbank.shape[:2]
        features = self.model.audio_encoder(audio_fbank.flatten(0, 1))
        tokens = self.model.al_projector(features.to(self.model.al_projector.audio_ln.weight.dtype))
        return tokens.reshape(b, t * tokens.shape[1], tokens.shape[2])

    def prepare_multimodal_inputs(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        audio_fbank: torch.Tensor | None = None,
    ) -> MultimodalInputs:
        """Encode the modalities and splice them in place of ``<video>`` / ``<audio>``."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        features: dict[int, torch.Tensor] = {}
        if pixel_values is not None:
            features[self.config.video_token_index] = self.encode_video(pixel_values)
        if audio_fbank is not None:
            features[self.config.audio_token_index] = self.encode_audio(audio_fbank)
        return splice_multimodal(
            input_ids, attention_mask, self.model.embed_tokens, features, int(self.config.pad_token_id)
        )

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        pixel_values: torch.Tensor | None = None,
        audio_fbank: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> CausalLMOutputWithPast:
        """LLaMA's forward; with ``pixel_values`` / ``audio_fbank`` the prompt ids are spliced first.

        In that case the returned logits are over the spliced (left-padded) sequence, whose
        mask and positions ``prepare_multimodal_inputs`` defines.
        """
        if inputs_embeds is None and (pixel_values is not None or audio_fbank is not None):
            if input_ids is None:
                raise ValueError("pixel_values / audio_fbank need the prompt input_ids to splice into")
            if labels is not None:
                raise ValueError("labels with raw modalities are not supported; splice first and pass labels aligned")
            spliced = self.prepare_multimodal_inputs(input_ids, attention_mask, pixel_values, audio_fbank)
            input_ids = None
            inputs_embeds = spliced.inputs_embeds
            attention_mask = spliced.attention_mask
            position_ids = spliced.position_ids
        return super().forward(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            labels=labels,
            use_cache=use_cache,
            logits_to_keep=logits_to_keep,
            **kwargs,
        )


# --------------------------------------------------------------------------- loading


def build_empty_model(config: RefThinkerConfig) -> RefThinkerForCausalLM:
    """The model with parameters on the meta device (no memory, no random init), buffers real."""
    from accelerate import init_empty_weights

    from tgs.think.ref_thinker.qformer import QFormer

    with init_empty_weights(include_buffers=False):
        model = RefThinkerForCausalLM(config)
        if config.lora:
            inject_lora(model, config.lora)
    # accelerate re-wraps every registered parameter, which unties shared ones: tie again.
    for module in model.modules():
        if isinstance(module, QFormer):
            module.tie_weights()
    return model


def load_ref_thinker_model(
    path: str | Path, *, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
) -> RefThinkerForCausalLM:
    """Load a Ref-Thinker directory strictly; the model is in eval mode on ``device``/``dtype``."""
    from safetensors import safe_open

    path = Path(path)
    weights = path / WEIGHTS_NAME
    if not (path / "config.json").is_file() or not weights.is_file():
        raise MissingWeightsError(
            f"{path} is not a Ref-Thinker directory (needs config.json and {WEIGHTS_NAME})",
            path=path,
            fix="convert the released checkpoint with `tgs models convert-ref-thinker`, or use `--models tiny`",
        )
    config = RefThinkerConfig.from_pretrained(str(path))
    model = build_empty_model(config)
    aliases = shared_tensor_aliases(model)
    expected = {k: v for k, v in model.state_dict().items() if k not in aliases}
    state: dict[str, torch.Tensor] = {}
    with safe_open(str(weights), framework="pt", device="cpu") as handle:
        check_keys(expected, dict.fromkeys(handle.keys()), weights)
        wrong = []
        for key, target in expected.items():
            tensor = handle.get_tensor(key)
            if tuple(tensor.shape) != tuple(target.shape):
                wrong.append(f"{key}: file {tuple(tensor.shape)}, model {tuple(target.shape)}")
            if tensor.is_floating_point():
                tensor = tensor.to(dtype)
            state[key] = tensor
    if wrong:
        raise WeightsError(f"{weights}: {len(wrong)} tensor(s) of the wrong shape: {'; '.join(wrong[:5])}", path=weights)
    for alias, owner in aliases.items():
        state[alias] = state[owner]
    model.load_state_dict(state, strict=True, assign=True)
    tie_shared(model, aliases)
    model.to(device=device, dtype=dtype)
    logger.info("loaded Ref-Thinker from %s (%s, %s)", path, device, dtype)
    return model.eval()
