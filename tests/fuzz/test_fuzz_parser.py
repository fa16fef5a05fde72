"""Property tests of the shared tag parser (tgs.think.parser).

The reference for tag extraction is the original scripts' own rule,
``re.search(rf"<{tag}>\\s*(.*?)\\s*</{tag}>", text, re.DOTALL)`` then ``.strip()``: on every
generated text our extractor must give exactly what that regex gives. Texts are drawn from an
alphabet rich in tag fragments, whitespace and case variants of "null", so that nested,
repeated, unclosed and empty tags are common rather than rare.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tgs.think.parser import extract_tag, parse_answer
from tgs.types import ParseStatus

SETTINGS = settings(max_examples=200, deadline=None, derandomize=True)

TAGS = ("think", "f_object", "s_object")
FRAGMENTS = [
    f"<{t}>" for t in TAGS
] + [f"</{t}>" for t in TAGS] + [
    "<answer>", "</answer>", "<", ">", "</", "/", "null", "NULL", "Null", " ", "\n", "\t", "\u00a0",
    "\u2003", "a", "dog", "the red circle", "é", "</s>",
]
tagged_text = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=4)), max_size=30).map("".join)
any_text = st.one_of(st.text(max_size=200), tagged_text)

# The pathological input that made the original regex backtrack cubically (4k characters: 25 s).
UNCLOSED_WHITESPACE = "<think>" + " " * 5000


def regex_reference(text: str, tag: str) -> str | None:
    """What the original ground-segment scripts extract (None where they fall back to "Error")."""
    match = re.search(rf"<{tag}>\s*(.*?)\s*</{tag}>", text, re.DOTALL)
    return match.group(1).strip() if match else None


@SETTINGS
@given(text=tagged_text, tag=st.sampled_from(TAGS))
@example(text="<f_object> a <f_object> b </f_object> c </f_object>", tag="f_object")
@example(text="<f_object>\u2003\n x \u00a0</f_object>", tag="f_object")
def test_extract_tag_equals_the_original_regex(text: str, tag: str) -> None:
    assert extract_tag(text, tag) == regex_reference(text, tag)


@SETTINGS
@given(text=any_text)
@example(text=UNCLOSED_WHITESPACE)
@example(text="<f_object></f_object><s_object>\n</s_object>")
def test_parse_never_raises_and_tags_exclude_their_closing_tag(text: str) -> None:
    thought = parse_answer("u_x_1", text)
    assert thought.raw == text
    for tag, value in (("f_object", thought.f_object), ("s_object", thought.s_object), ("think", thought.reasoning)):
        if value is not None:
            assert f"</{tag}>" not in value
            assert value == value.strip()
    # The status is a function of which tags are present and whether they say null.
    present = [v for v in (thought.f_object, thought.s_object) if v is not None]
    if thought.is_null:
        assert thought.status is ParseStatus.NULL
    elif len(present) == 2:
        assert thought.status is ParseStatus.OK
    elif len(present) == 1:
        assert thought.status is ParseStatus.PARTIAL
    else:
        assert thought.status is ParseStatus.NO_TAGS
        assert thought.error


@pytest.mark.timeout(60)  # quadratic backtracking would take hours on these; linear takes milliseconds
def test_extraction_is_linear_on_unclosed_tags() -> None:
    """Long unclosed answers (an endpoint that rambles) parse at once, not in minutes."""
    texts = ["<think>" + " " * 200_000, "<f_object>" * 20_000, "<s_object>" + "\n \t" * 50_000 + "</s_object"]
    for text in texts:
        thought = parse_answer("u_x_1", text)
        assert thought.status is ParseStatus.NO_TAGS


# Object strings as a thinker writes them: anything that holds no tag of the answer format.
object_text = st.text(max_size=40).filter(lambda s: not any(f"{t}>" in s for t in (*TAGS, "answer")))


@SETTINGS
@given(f_obj=object_text, s_obj=object_text, reasoning=object_text)
@example(f_obj=" a black dog ", s_obj="dog", reasoning="the dog barks")
@example(f_obj="\n", s_obj="", reasoning="")
def test_well_formed_answer_round_trips(f_obj: str, s_obj: str, reasoning: str) -> None:
    answer = (
        f"<think>{reasoning}</think>\n<answer>\n<f_object> {f_obj} </f_object>\n<s_object> {s_obj} </s_object>\n"
        "The corresponding bbox is: <frame> <box> [1, 2, 3, 4] </box> </frame>\n</answer></s>"
    )
    thought = parse_answer("u_x_1", answer)
    assert thought.f_object == f_obj.strip()
    assert thought.s_object == s_obj.strip()
    assert thought.reasoning == reasoning.strip()
    both_null = f_obj.strip().lower() == "null" and s_obj.strip().lower() == "null"
    assert thought.is_null is both_null
    assert thought.status is (ParseStatus.NULL if both_null else ParseStatus.OK)


@SETTINGS
@given(prefix=object_text, first=object_text, middle=st.text(max_size=30), second=object_text,
       tag=st.sampled_from(TAGS))
def test_first_match_wins(prefix: str, first: str, middle: str, second: str, tag: str) -> None:
    text = f"{prefix}<{tag}>{first}</{tag}>{middle}<{tag}>{second}</{tag}>"
    assert extract_tag(text, tag) == first.strip()


def _null_variant(draw: st.DrawFn) -> str:
    """'null' in a random case with random whitespace around it."""
    flips = draw(st.lists(st.booleans(), min_size=4, max_size=4))
    word = "".join(c.upper() if up else c for c, up in zip("null", flips))
    pad = st.text(alphabet=" \t\n\u00a0", max_size=3)
    return draw(pad) + word + draw(pad)


@st.composite
def tag_value(draw: st.DrawFn) -> tuple[str, str | None]:
    """(how the tag is written in the answer, or "" if absent; what kind of value: None/null/other)."""
    kind = draw(st.sampled_from(["absent", "null", "other"]))
    if kind == "absent":
        return "", None
    if kind == "null":
        return _null_variant(draw), "null"
    other = draw(object_text.filter(lambda s: s.strip().lower() != "null"))
    return other, "other"


@SETTINGS
@given(f=tag_value(), s=tag_value(), noise=st.text(alphabet="abc <>/\n", max_size=20))
@example(f=(" NuLl\n", "null"), s=("", None), noise="")
@example(f=("null", "null"), s=("nulll", "other"), noise="")
def test_null_exactly_when_every_present_tag_says_null(
    f: tuple[str, str | None], s: tuple[str, str | None], noise: str
) -> None:
    parts = [noise]
    if f[1] is not None:
        parts.append(f"<f_object>{f[0]}</f_object>")
    if s[1] is not None:
        parts.append(f"<s_object>{s[0]}</s_object>")
    thought = parse_answer("u_x_1", "".join(parts))
    kinds = [k for k in (f[1], s[1]) if k is not None]
    expected = bool(kinds) and all(k == "null" for k in kinds)
    assert thought.is_null is expected
