"""The shared tag parser against well-formed, truncated and tag-less answers."""

from __future__ import annotations

import pytest

from tgs.think.base import DirectThinker, failed_record, thought_from_record, thought_record
from tgs.think.parser import extract_tag, parse_answer
from tgs.types import ParseStatus, Query

WELL_FORMED = (
    "<think>\nThe dog barks loudly while the cat is silent.\n</think>\n<answer>\n"
    "<f_object> a black dog barking </f_object>\n<s_object> dog </s_object>\n"
    "The corresponding bbox is: <frame> <box> [1, 2, 3, 4] </box> </frame>\n</answer></s>"
)


def test_well_formed_answer() -> None:
    t = parse_answer("u1", WELL_FORMED)
    assert t.status is ParseStatus.OK
    assert t.f_object == "a black dog barking"
    assert t.s_object == "dog"
    assert t.reasoning == "The dog barks loudly while the cat is silent."
    assert not t.is_null
    assert t.raw == WELL_FORMED


def test_first_match_non_greedy() -> None:
    text = "<s_object> cat </s_object> junk <s_object> dog </s_object>"
    assert extract_tag(text, "s_object") == "cat"


def test_multiline_content_is_stripped() -> None:
    assert extract_tag("<f_object>\n  red\n  circle \n</f_object>", "f_object") == "red\n  circle"


def test_truncated_answer_is_partial() -> None:
    text = "<think>long reasoning</think><answer><f_object> guitar </f_object><s_object> gui"
    t = parse_answer("u2", text)
    assert t.status is ParseStatus.PARTIAL
    assert t.f_object == "guitar"
    assert t.s_object is None


def test_truncated_think_gives_empty_reasoning() -> None:
    t = parse_answer("u", "<think>never closed")
    assert t.reasoning == ""
    assert t.status is ParseStatus.NO_TAGS


def test_tagless_answer() -> None:
    t = parse_answer("u3", "I cannot tell.")
    assert t.status is ParseStatus.NO_TAGS
    assert t.f_object is None and t.s_object is None
    assert t.error


@pytest.mark.parametrize("value", ["null", "Null", " NULL "])
def test_null_answers(value: str) -> None:
    t = parse_answer("u4", f"<f_object>{value}</f_object><s_object>{value}</s_object>")
    assert t.is_null
    assert t.status is ParseStatus.NULL
    # the raw tag text is kept for the paper preset's exact comparison
    assert t.s_object == value.strip()


def test_half_null_is_not_null() -> None:
    t = parse_answer("u", "<f_object>null</f_object><s_object>dog</s_object>")
    assert not t.is_null


def test_record_round_trip_ours_and_original() -> None:
    t = parse_answer("vid_dog_1", WELL_FORMED)
    ours = thought_record(t, ref="the loudest object", thinker="ref-thinker")
    original = {"uid": "vid_dog_1", "ref": "the loudest object", "predict": WELL_FORMED}
    assert thought_from_record(ours) == t
    assert thought_from_record(original) == t


def test_direct_thinker_and_failed_record() -> None:
    (t,) = DirectThinker().think([(Query("u", "The red circle"), None)])
    assert t.status is ParseStatus.DIRECT and t.s_object == "The red circle"
    assert thought_from_record(thought_record(t, ref="The red circle")) == t
    with pytest.raises(Exception, match="failed"):
        thought_from_record(failed_record("u", "x", "decode error"))
