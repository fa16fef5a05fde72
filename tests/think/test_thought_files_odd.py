"""Thoughts files with odd content: binary lines, uids that are not rows, repeated answers."""

from __future__ import annotations

import json

import pytest

from tgs.errors import DataError
from tgs.think.inputs import coverage_problems, load_thoughts

ANSWER = "<think>x</think><f_object>a dog</f_object><s_object>dog</s_object>"


def _line(uid: str) -> bytes:
    return (json.dumps({"uid": uid, "ref": "r", "predict": ANSWER}) + "\n").encode()


def test_a_binary_line_is_named_as_not_utf8(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_bytes(_line("v_dog_1") + b"\xff\xfe\x00\x01garbage\n")
    with pytest.raises(DataError, match="line 2 is not UTF-8") as info:
        load_thoughts(path)
    assert "utf-16" not in str(info.value)


def test_unknown_missing_and_repeated_uids_are_reported(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_bytes(_line("v_dog_1") + _line("v_dog_1") + _line("other_cat_1"))
    inputs = load_thoughts(path)
    assert inputs.repeated == {"v_dog_1": 1}
    problems = coverage_problems(inputs, ["v_dog_1", "v_cat_2"])
    text = " ".join(problems)
    assert "'v_cat_2'" in text  # a row without a thought
    assert "'other_cat_1'" in text  # a thought for no row
    assert "more than one answer" in text and "'v_dog_1'" in text
    assert coverage_problems(load_thoughts(tmp_path / "t.jsonl"), ["v_dog_1", "other_cat_1"]) == [problems[-1]]


def test_failed_thought_fix_does_not_promise_a_resume_of_this_run(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps({"uid": "v_dog_1", "status": "failed", "error": "boom"}) + "\n")
    with pytest.raises(DataError) as info:
        load_thoughts(path).get("v_dog_1")
    assert "new run directory" in str(info.value)
