"""Ref-Thinker answers as the decoder returns them, read by the shared parser."""

from __future__ import annotations

import pytest
from ref_thinker_helpers import tiny_model_dir

from tgs.think.parser import parse_answer
from tgs.think.ref_thinker.processing import RefThinkerProcessor
from tgs.types import ParseStatus

WELL_FORMED = (
    "<think>\nThe barking comes from the left, where a black dog stands.\n</think>\n<answer>\n"
    "<f_object> a black dog on the left </f_object>\n<s_object> dog </s_object>\n"
    "The corresponding bbox is: <frame> <box> 10, 20, 30, 40 </box> </frame>\n</answer>"
)


@pytest.fixture(scope="module")
def processor() -> RefThinkerProcessor:
    return RefThinkerProcessor.from_pretrained(tiny_model_dir())


def _generated(processor: RefThinkerProcessor, text: str, *, eos: bool = True, cut: int | None = None) -> str:
    """Text -> token ids (as the model would emit them) -> the processor's decoded answer."""
    ids = processor.tokenizer(text, add_special_tokens=False)["input_ids"][:cut]
    if eos:
        ids = [*ids, processor.tokenizer.eos_token_id, processor.tokenizer.eos_token_id]
    (decoded,) = processor.decode([ids])
    return decoded


def test_well_formed_answer(processor: RefThinkerProcessor) -> None:
    text = _generated(processor, WELL_FORMED)
    assert text.endswith("</answer></s>")
    thought = parse_answer("u", text)
    assert thought.status is ParseStatus.OK
    assert (thought.f_object, thought.s_object) == ("a black dog on the left", "dog")
    assert thought.reasoning == "The barking comes from the left, where a black dog stands."
    assert not thought.is_null and thought.raw == text


def test_null_answer(processor: RefThinkerProcessor) -> None:
    text = _generated(processor, WELL_FORMED.replace("a black dog on the left", "null").replace("> dog <", "> null <"))
    thought = parse_answer("u", text)
    assert thought.is_null and thought.status is ParseStatus.NULL


def test_truncated_answer_keeps_what_was_generated(processor: RefThinkerProcessor) -> None:
    """Cut inside <s_object> (max_new_tokens reached): f_object survives, s_object is absent."""
    ids = processor.tokenizer(WELL_FORMED, add_special_tokens=False)["input_ids"]
    s_open = processor.tokenizer.convert_tokens_to_ids("<s_object>")
    text = _generated(processor, WELL_FORMED, eos=False, cut=ids.index(s_open) + 2)
    assert not text.endswith("</s>")
    thought = parse_answer("u", text)
    assert thought.status is ParseStatus.PARTIAL
    assert thought.f_object == "a black dog on the left" and thought.s_object is None


def test_answer_without_tags(processor: RefThinkerProcessor) -> None:
    thought = parse_answer("u", _generated(processor, "the dog is barking"))
    assert thought.status is ParseStatus.NO_TAGS and thought.f_object is None and thought.s_object is None
