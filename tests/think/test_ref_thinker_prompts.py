"""Ref-Thinker prompts: character for character as the original builds them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tgs.think.ref_thinker.prompts import build_prompt, training_target

# The template as the notes on the original quote it (tests/fixtures/original/README.md).
ORIGINAL_TEMPLATE = Path(__file__).resolve().parents[1] / "fixtures" / "original" / "inference_prompt.txt"

# The original's test-dataset instruction for exp = "The Object Making The Loudest Sound.",
# written out by hand from dataset/unified_dataset.py (UnifiedTestDataset), "<s>" prepended.
EXPECTED_INFERENCE = (
    "<s>This is a video:\n<video_start><video><video_end>\n"
    "This is an audio:\n<audio_start><audio><audio_end>\n"
    "Given the referential expression the object making the loudest sound., analyze the video and audio, "
    "and then generate a reasoning chain (<think>) and final answer (<answer>).\n"
    "Your output must follow this format:\n"
    "<think>\nYour reasoning here\n</think>\n"
    "<answer>\n<f_object> ... </f_object>\n<s_object> ... </s_object>\n"
    "The corresponding bbox is: <frame> <box> ... </box> </frame>\n</answer>"
)


def test_inference_prompt_is_the_original_text() -> None:
    assert build_prompt("The Object Making The Loudest Sound.") == EXPECTED_INFERENCE


def test_training_prompt_differs_only_around_the_expression() -> None:
    train = build_prompt("The Cat", "training")
    infer = build_prompt("The Cat", "inference")
    assert "Given the referential expression: 'the cat', analyze" in train
    assert train.replace("expression: 'the cat',", "expression the cat,") == infer


def test_unknown_variant_is_rejected() -> None:
    with pytest.raises(ValueError, match="inference"):
        build_prompt("x", "chat")  # type: ignore[arg-type]


def test_training_target_ends_with_eos() -> None:
    assert training_target("<think>a</think>") == "<think>a</think></s>"


def test_inference_prompt_equals_original_template() -> None:
    """The original's template (with \\n escapes) equals ours for {exp.lower()}."""
    documented = ORIGINAL_TEMPLATE.read_text(encoding="utf-8").rstrip("\n")
    assert documented.startswith("<s>This is a video:") and documented.endswith("</answer>")
    documented = documented.replace("\\n", "\n").replace("{exp.lower()}", "a red car")
    assert build_prompt("A Red Car") == documented
