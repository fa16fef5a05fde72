"""Configuration of Ref-Thinker: LLaMA plus the CLIP / BEATs encoders and Q-Former projectors.

``RefThinkerConfig`` extends ``LlamaConfig`` (the language model reads its usual fields)
with the multimodal parts. Every default equals the released TGS-Agent checkpoint:
LLaMA-2-7b-chat with 21 added tokens (vocabulary 32021), CLIP ViT-L/14 at 224 px whose
``hidden_states[23]`` feed the projector, BEATs iter3+ (768-d), and two 2-layer
bert-base Q-Formers with 32 queries each.

The sub-model settings are stored as plain dicts so ``config.json`` stays readable and
is written and read by the ordinary ``save_pretrained`` / ``from_pretrained`` of the
config; ``vision`` / ``qformer`` / ``audio`` turn them into typed objects.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, fields
from typing import Any

from huggingface_hub.dataclasses import strict
from transformers import CLIPVisionConfig, LlamaConfig

from tgs.think.ref_thinker.beats import BEATsConfig

__all__ = [
    "DEFAULT_AUDIO_CONFIG",
    "DEFAULT_VISION_CONFIG",
    "LORA_TARGET_MODULES",
    "SPECIAL_TOKENS",
    "QFormerConfig",
    "RefThinkerConfig",
]

# The tokens the original adds to the LLaMA tokenizer, in this order (ids 32000-32020 on
# LLaMA-2): modality placeholders and delimiters, then the reasoning/answer tags.
SPECIAL_TOKENS: tuple[str, ...] = (
    "<image>", "<image_start>", "<image_end>",
    "<video>", "<video_start>", "<video_end>",
    "<audio>", "<audio_start>", "<audio_end>",
    "<think>", "</think>",
    "<answer>", "</answer>",
    "<f_object>", "</f_object>",
    "<s_object>", "</s_object>",
    "<frame>", "</frame>",
    "<box>", "</box>",
)  # fmt: skip

# peft LoRA targets of the released fine-tune (r=8, alpha=16, dropout 0.05).
LORA_TARGET_MODULES: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "down_proj", "up_proj")

# openai/clip-vit-large-patch14, vision tower only.
DEFAULT_VISION_CONFIG: dict[str, Any] = {
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "patch_size": 14,
    "image_size": 224,
    "projection_dim": 768,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5,
}

# BEATs_iter3_plus_AS2M_finetuned_on_AS2M_cpt2.pt's cfg block (see BEATsConfig), with layer
# drop off as the original sets it after loading. A conversion takes the file's own cfg.
DEFAULT_AUDIO_CONFIG: dict[str, Any] = {**BEATsConfig().to_dict(), "encoder_layerdrop": 0.0}


@dataclass(frozen=True)
class QFormerConfig:
    """BLIP-2 Q-Former sizes; the defaults are bert-base-uncased with 2 layers.

    ``encoder_width`` is the width of the features the queries cross-attend to (1024 for
    CLIP ViT-L, 768 for BEATs); the projector sets it.
    """

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 2
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    max_position_embeddings: int = 512
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    cross_attention_freq: int = 1
    encoder_width: int = 768
    initializer_range: float = 0.02
    # bert-base's dropout, active only in training (the original trains its Q-Formers with it).
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"QFormerConfig: hidden_size {self.hidden_size} is not a multiple of "
                f"num_attention_heads {self.num_attention_heads}"
            )
        if self.cross_attention_freq < 1:
            raise ValueError(f"QFormerConfig: cross_attention_freq must be >= 1, got {self.cross_attention_freq}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QFormerConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"QFormerConfig: unknown field(s) {unknown}; known: {sorted(known)}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@strict
class RefThinkerConfig(LlamaConfig):
    """LLaMA config plus the multimodal parts of Ref-Thinker.

    vision_config: CLIPVisionConfig fields (dict).
    vision_feature_layer: index into CLIP's ``hidden_states`` (0 = embeddings), 23 in the
        paper: the output of the 23rd of 24 layers.
    audio_config: BEATs 'cfg' fields (dict).
    qformer_config: QFormerConfig fields without ``encoder_width`` (dict).
    num_video_query_tokens / num_audio_query_tokens: Q-Former queries per frame / chunk.
    projector_depth: Linear layers after the Q-Former (2: Linear-GELU-Linear).
    num_frames: frames per clip and audio chunks per clip.
    first_added_token_id: id of ``<image>``, the first of SPECIAL_TOKENS (32000 on LLaMA-2).
    lora: peft LoRA settings when the weights keep an unmerged adapter, else None.
    """

    model_type = "ref_thinker"

    vocab_size: int = 32021
    max_position_embeddings: int = 4096
    rms_norm_eps: float = 1e-5
    pad_token_id: int | None = 2
    vision_config: dict | None = None
    vision_feature_layer: int = 23
    vision_feature_select: str = "patch"
    audio_config: dict | None = None
    qformer_config: dict | None = None
    num_video_query_tokens: int = 32
    num_audio_query_tokens: int = 32
    projector_depth: int = 2
    num_frames: int = 10
    first_added_token_id: int = 32000
    lora: dict | None = None

    def __post_init__(self, **kwargs: Any) -> None:
        if self.vision_config is None:
            self.vision_config = dict(DEFAULT_VISION_CONFIG)
        if self.audio_config is None:
            self.audio_config = dict(DEFAULT_AUDIO_CONFIG)
        if self.qformer_config is None:
            self.qformer_config = {}
        super().__post_init__(**kwargs)
        self._check()

    def _check(self) -> None:
        layers = int(self.vision_config.get("num_hidden_layers", 12))
        if not -layers <= self.vision_feature_layer <= layers:
            raise ValueError(
                f"vision_feature_layer {self.vision_feature_layer} is outside CLIP's hidden_states "
                f"(0..{layers} for a {layers}-layer tower)"
            )
        if self.vision_feature_select not in ("patch", "cls_patch"):
            raise ValueError(f"vision_feature_select: expected 'patch' or 'cls_patch', got {self.vision_feature_select!r}")
        if self.projector_depth < 1:
            raise ValueError(f"projector_depth must be >= 1, got {self.projector_depth}")
        last = self.first_added_token_id + len(SPECIAL_TOKENS) - 1
        if last >= self.vocab_size:
            raise ValueError(
                f"the {len(SPECIAL_TOKENS)} added tokens need ids {self.first_added_token_id}..{last}, "
                f"but vocab_size is {self.vocab_size}"
            )
        if "encoder_width" in self.qformer_config:
            raise ValueError("qformer_config must not set encoder_width: it follows the encoder widths")
        QFormerConfig.from_dict(self.qformer_config)  # validates the fields

    # ------------------------------------------------------------------ views
    def token_id(self, token: str) -> int:
        """Id of one of SPECIAL_TOKENS."""
        try:
            return self.first_added_token_id + SPECIAL_TOKENS.index(token)
        except ValueError:
            raise KeyError(f"{token!r} is not an added token; added: {', '.join(SPECIAL_TOKENS)}") from None

    @property
    def video_token_index(self) -> int:
        return self.token_id("<video>")

    @property
    def audio_token_index(self) -> int:
        return self.token_id("<audio>")

    @property
    def vision(self) -> CLIPVisionConfig:
        return CLIPVisionConfig(**self.vision_config)

    @property
    def vision_width(self) -> int:
        return int(self.vision_config["hidden_size"])

    @property
    def audio_width(self) -> int:
        return int(self.audio_config["encoder_embed_dim"])

    def qformer(self, encoder_width: int) -> QFormerConfig:
        return QFormerConfig.from_dict({**self.qformer_config, "encoder_width": encoder_width})

    @property
    def patches_per_frame(self) -> int:
        side = int(self.vision_config["image_size"]) // int(self.vision_config["patch_size"])
        return side * side + (1 if self.vision_feature_select == "cls_patch" else 0)


def _register_auto_config() -> None:
    """Let AutoConfig (used by AutoTokenizer on a model directory) recognise ``ref_thinker``."""
    from transformers import AutoConfig

    with contextlib.suppress(ValueError):  # already registered (module reloaded)
        AutoConfig.register(RefThinkerConfig.model_type, RefThinkerConfig)


_register_auto_config()
