"""A tiny random Qwen2.5-Omni thinker with a working processor, built offline.

The real architecture and the real processor classes at toy sizes: a 2-layer text model
of width 32, a 2-block vision encoder, a 2-layer audio encoder, and a
``Qwen2_5OmniProcessor`` made of ``Qwen2VLImageProcessor``, ``Qwen2VLVideoProcessor``,
``WhisperFeatureExtractor`` and a ``Qwen2Tokenizer``. Everything is saved with
``save_pretrained`` and loads back through the same ``from_pretrained`` calls as
``Qwen/Qwen2.5-Omni-3B``.

The real tokenizer (151k tokens) cannot be downloaded here, so :func:`tiny_qwen_tokenizer`
trains a byte-level BPE of a few hundred tokens on the zero-shot prompts and adds the
special tokens the processor and the model look up by name: ``<|im_start|>``,
``<|im_end|>``, ``<|endoftext|>`` (eos and padding), ``<|IMAGE|>``, ``<|VIDEO|>``,
``<|AUDIO|>``, ``<|vision_bos|>``/``<|vision_eos|>`` and ``<|audio_bos|>``/``<|audio_eos|>``.
The thinker config's token ids are set to this tokenizer's ids. The chat template is our
own ChatML template with the multimodal markers the Qwen2.5-Omni template writes
(``<|vision_bos|><|VIDEO|><|vision_eos|>`` for a video part); a real checkpoint brings its
own template.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from tgs.testing.weights import fill_every_tensor

__all__ = ["TINY_CHAT_TEMPLATE", "build_tiny_omni", "tiny_omni_config", "tiny_omni_processor", "tiny_qwen_tokenizer"]

# Named special tokens: the processor reads tokenizer.<name> and tokenizer.<name>_id.
NAMED_SPECIAL_TOKENS = {
    "image_token": "<|IMAGE|>",
    "video_token": "<|VIDEO|>",
    "audio_token": "<|AUDIO|>",
    "vision_bos_token": "<|vision_bos|>",
    "vision_eos_token": "<|vision_eos|>",
    "audio_bos_token": "<|audio_bos|>",
    "audio_eos_token": "<|audio_eos|>",
}
CHAT_TOKENS = ("<|im_start|>", "<|im_end|>")
END_OF_TEXT = "<|endoftext|>"

TINY_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'video' %}<|vision_bos|><|VIDEO|><|vision_eos|>"
    "{% elif part['type'] == 'image' %}<|vision_bos|><|IMAGE|><|vision_eos|>"
    "{% elif part['type'] == 'audio' %}<|audio_bos|><|AUDIO|><|audio_eos|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}"
    "{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

TINY_VOCAB_SIZE = 512
HIDDEN = 32


def _training_texts() -> list[str]:
    from tgs.think.prompting import ANSWER_TEMPLATE, QWEN_OMNI_SYSTEM_PROMPT, build_instruction

    examples = ("the dog that barks", "the man playing the guitar on the left", "the loudest instrument")
    texts = [QWEN_OMNI_SYSTEM_PROMPT, ANSWER_TEMPLATE, "null", "system", "user", "assistant"]
    for expression in examples:
        texts.append(build_instruction(expression, has_audio=True))
        texts.append(build_instruction(expression, has_audio=False))
    return texts


def tiny_qwen_tokenizer() -> Any:
    """A byte-level BPE ``Qwen2Tokenizer`` of ~512 tokens with the Qwen2.5-Omni special tokens."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers.models.qwen2.tokenization_qwen2 import Qwen2Tokenizer

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=TINY_VOCAB_SIZE,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_training_texts(), trainer=trainer)
    model = json.loads(bpe.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ", 1)) for m in model["merges"]]
    tokenizer = Qwen2Tokenizer(
        vocab=model["vocab"],
        merges=merges,
        unk_token=END_OF_TEXT,
        eos_token=END_OF_TEXT,
        pad_token=END_OF_TEXT,
        extra_special_tokens=dict(NAMED_SPECIAL_TOKENS),
    )
    tokenizer.add_special_tokens({"extra_special_tokens": list(CHAT_TOKENS)}, replace_extra_special_tokens=False)
    return tokenizer


def tiny_omni_processor() -> Any:
    """The real processor classes, small frames (28-56 px per side) for the tiny vision encoder."""
    from transformers import Qwen2_5OmniProcessor, WhisperFeatureExtractor
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    pixels = {"min_pixels": 28 * 28, "max_pixels": 56 * 56}
    return Qwen2_5OmniProcessor(
        image_processor=Qwen2VLImageProcessor(**pixels),
        video_processor=Qwen2VLVideoProcessor(**pixels),
        feature_extractor=WhisperFeatureExtractor(feature_size=128, sampling_rate=16000),
        tokenizer=tiny_qwen_tokenizer(),
        chat_template=TINY_CHAT_TEMPLATE,
    )


def tiny_omni_config(tokenizer: Any) -> Any:
    """A Qwen2.5-Omni thinker config at toy size whose token ids match ``tokenizer``."""
    from transformers import Qwen2_5OmniThinkerConfig

    ids = {name: tokenizer.convert_tokens_to_ids(token) for name, token in NAMED_SPECIAL_TOKENS.items()}
    eos = [tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.convert_tokens_to_ids(END_OF_TEXT)]
    return Qwen2_5OmniThinkerConfig(
        audio_config={
            "num_mel_bins": 128,
            "encoder_layers": 2,
            "encoder_attention_heads": 2,
            "encoder_ffn_dim": 64,
            "d_model": HIDDEN,
            "output_dim": HIDDEN,
        },
        vision_config={
            "depth": 2,
            "hidden_size": HIDDEN,
            "intermediate_size": 64,
            "num_heads": 2,
            "out_hidden_size": HIDDEN,
            "fullatt_block_indexes": [1],
        },
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": HIDDEN,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            # head_dim 16 -> 8 rotary frequencies split over (time, height, width)
            "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [2, 3, 3]},
            "max_position_embeddings": 8192,
            "pad_token_id": tokenizer.pad_token_id,
            "eos_token_id": eos,
        },
        audio_token_index=ids["audio_token"],
        image_token_index=ids["image_token"],
        video_token_index=ids["video_token"],
        audio_start_token_id=ids["audio_bos_token"],
        audio_end_token_id=ids["audio_eos_token"],
        vision_start_token_id=ids["vision_bos_token"],
        vision_end_token_id=ids["vision_eos_token"],
    )


def build_tiny_omni(out_dir: str | Path, seed: int = 0) -> Path:
    """Build, seed and save the tiny thinker and its processor in ``out_dir``; returns it."""
    from transformers import GenerationConfig, Qwen2_5OmniThinkerForConditionalGeneration

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    processor = tiny_omni_processor()
    config = tiny_omni_config(processor.tokenizer)
    torch.manual_seed(seed)
    model = Qwen2_5OmniThinkerForConditionalGeneration(config).eval()
    fill_every_tensor(model, seed + 2)
    model.generation_config = GenerationConfig(
        eos_token_id=config.text_config.eos_token_id, pad_token_id=processor.tokenizer.pad_token_id
    )
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out
