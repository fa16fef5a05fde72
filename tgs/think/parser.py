"""The one tag parser shared by every thinker.

Ref-Thinker answers look like::

    <think>...</think>
    <answer>
    <f_object> a black dog </f_object>
    <s_object> dog </s_object>
    The corresponding bbox is: <frame> <box> ... </box> </frame>
    </answer></s>

The original scripts extract each tag with a non-greedy regex, first match, whitespace
stripped, and fall back to the literal ``"Error"`` when a tag is missing. We keep the
extraction rule exactly and record the fallback as a status instead of a fake object name;
the ``paper`` preset turns a missing tag back into ``"Error"`` where it must.
"""

from __future__ import annotations

from tgs.types import ParseStatus, Thought

__all__ = ["NULL_ANSWER", "PAPER_MISSING_TAG", "extract_tag", "parse_answer"]

# What the original grounds when a tag is missing.
PAPER_MISSING_TAG = "Error"
# The literal answer that means "nothing is referred to" (compared exactly, as the original does).
NULL_ANSWER = "null"


def extract_tag(text: str, tag: str) -> str | None:
    r"""Content of the first ``<tag> ... </tag>`` in ``text``, stripped; None if absent.

    Same result as the original ``re.search(rf"<{tag}>\s*(.*?)\s*</{tag}>", text, re.DOTALL)``
    followed by ``.strip()``: the first opening tag, up to the first closing tag after it.
    Written with ``str.find`` because that regex backtracks cubically on a long run of
    whitespace after an unclosed tag (a 4k-character answer took 25 s), linear here.
    """
    opening, closing = f"<{tag}>", f"</{tag}>"
    start = text.find(opening)
    if start < 0:
        return None
    start += len(opening)
    end = text.find(closing, start)
    return text[start:end].strip() if end >= 0 else None


def _is_null(f_object: str | None, s_object: str | None) -> bool:
    """The answer names no object: every tag that is present says exactly ``null``."""
    present = [t for t in (f_object, s_object) if t is not None]
    return bool(present) and all(t.strip().lower() == NULL_ANSWER for t in present)


def parse_answer(uid: str, text: str) -> Thought:
    """Parse a thinker's raw answer into a Thought.

    ``is_null`` is True when the object tags say ``null`` (case-insensitive, so "Null" is
    not grounded as an object); the paper's exact, case-sensitive comparison on the chosen
    tag is applied by the ``paper`` preset, which keeps the raw tag text.
    """
    if not isinstance(text, str):
        raise TypeError(f"thinker answer for {uid!r}: expected str, got {type(text).__name__}")
    reasoning = extract_tag(text, "think") or ""
    f_object = extract_tag(text, "f_object")
    s_object = extract_tag(text, "s_object")
    is_null = _is_null(f_object, s_object)
    if is_null:
        status = ParseStatus.NULL
    elif f_object is not None and s_object is not None:
        status = ParseStatus.OK
    elif f_object is not None or s_object is not None:
        status = ParseStatus.PARTIAL
    else:
        status = ParseStatus.NO_TAGS
    error = None
    if status is ParseStatus.NO_TAGS:
        error = "no <f_object> or <s_object> tag in the answer"
    return Thought(
        uid=uid,
        raw=text,
        reasoning=reasoning,
        f_object=f_object,
        s_object=s_object,
        is_null=is_null,
        status=status,
        error=error,
    )
