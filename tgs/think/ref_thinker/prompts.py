"""The Ref-Thinker prompts, character for character as TGS-Agent builds them.

Source: ``dataset/unified_dataset.py`` (``UnifiedTestDataset`` for inference,
``UnifiedDataset`` for training). There is no chat template: the text starts with the
literal ``<s>`` (the tokenizer maps it to the BOS id) and the expression is lower-cased.
The two variants differ only around the expression: the inference prompt says
``expression the object ...``, the training prompt ``expression: 'the object ...'`` (a
train/test mismatch of the original, kept in ``paper`` behaviour and selectable here).
"""

from __future__ import annotations

from typing import Literal

__all__ = ["ANSWER_FORMAT", "PromptVariant", "build_prompt", "training_target"]

PromptVariant = Literal["inference", "training"]

BOS_TEXT = "<s>"
EOS_TEXT = "</s>"

_MEDIA = (
    "This is a video:\n<video_start><video><video_end>\n"
    "This is an audio:\n<audio_start><audio><audio_end>\n"
)
_TASK = ", analyze the video and audio, and then generate a reasoning chain (<think>) and final answer (<answer>).\n"
ANSWER_FORMAT = (
    "Your output must follow this format:\n"
    "<think>\nYour reasoning here\n</think>\n"
    "<answer>\n<f_object> ... </f_object>\n<s_object> ... </s_object>\n"
    "The corresponding bbox is: <frame> <box> ... </box> </frame>\n</answer>"
)


def build_prompt(expression: str, variant: PromptVariant = "inference") -> str:
    """The full prompt text (starting with ``<s>``) for one referring expression."""
    exp = expression.lower()
    if variant == "inference":
        reference = f"Given the referential expression {exp}"
    elif variant == "training":
        reference = f"Given the referential expression: '{exp}'"
    else:
        raise ValueError(f"prompt variant: expected 'inference' or 'training', got {variant!r}")
    return BOS_TEXT + _MEDIA + reference + _TASK + ANSWER_FORMAT


def training_target(answer: str) -> str:
    """The supervised continuation: the reasoning chain followed by ``</s>`` (loss is on this only)."""
    return answer + EOS_TEXT
