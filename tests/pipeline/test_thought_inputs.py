"""Reading thoughts files: the original inference_results.jsonl as is, ours, and malformed input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tgs.errors import DataError
from tgs.think.base import direct_thought, failed_record, thought_record
from tgs.think.inputs import load_thoughts
from tgs.think.parser import parse_answer
from tgs.types import ParseStatus, Query

ORIGINAL_PREDICT = (
    "<think>\nThe audio has a dog barking; the dog on the left is moving its mouth.\n</think>\n<answer>\n"
    "<f_object> the black dog on the left </f_object>\n<s_object> dog </s_object>\n"
    "The corresponding bbox is: <frame> <box> 0.1,0.2,0.3,0.4 </box> </frame>\n</answer></s>"
)


def _write_lines(path: Path, lines: list[str], trailing_newline: bool = True) -> Path:
    path.write_text("\n".join(lines) + ("\n" if trailing_newline else ""), encoding="utf-8")
    return path


def test_original_inference_results_format_is_accepted(tmp_path: Path) -> None:
    lines = [
        json.dumps({"uid": "a_dog_1", "ref": "the barking dog", "predict": ORIGINAL_PREDICT}),
        json.dumps({"uid": "b_cat_1", "ref": "the cat", "predict": "no tags at all"}),
        json.dumps({"uid": "null_c-x_null_1", "ref": "the piano",
                    "predict": "<f_object> null </f_object><s_object> null </s_object>"}),
    ]
    inputs = load_thoughts(_write_lines(tmp_path / "inference_results.jsonl", lines))
    assert len(inputs) == 3
    dog = inputs.get("a_dog_1")
    assert (dog.f_object, dog.s_object, dog.status) == ("the black dog on the left", "dog", ParseStatus.OK)
    assert dog.reasoning.startswith("The audio has a dog barking")
    assert inputs.get("b_cat_1").status is ParseStatus.NO_TAGS
    assert inputs.get("null_c-x_null_1").is_null
    assert len(inputs.sha256) == 64


def test_our_format_gives_the_same_thoughts(tmp_path: Path) -> None:
    thought = parse_answer("a_dog_1", ORIGINAL_PREDICT)
    direct = direct_thought(Query(uid="d_cow_1", expression="The cow."))
    lines = [
        json.dumps(thought_record(thought, ref="the barking dog", thinker="ref_thinker")),
        json.dumps(thought_record(direct, ref="The cow.", thinker="direct")),
    ]
    inputs = load_thoughts(_write_lines(tmp_path / "thoughts.jsonl", lines))
    assert inputs.get("a_dog_1") == thought
    assert inputs.get("d_cow_1") == direct


def test_run_directory_is_accepted(tmp_path: Path) -> None:
    run = tmp_path / "think_run"
    run.mkdir()
    _write_lines(run / "thoughts.jsonl", [json.dumps({"uid": "a_dog_1", "ref": "", "predict": ORIGINAL_PREDICT})])
    assert load_thoughts(run).path == run / "thoughts.jsonl"
    with pytest.raises(DataError, match=r"without thoughts\.jsonl"):
        load_thoughts(tmp_path)


def test_first_successful_line_wins_and_failures_are_kept(tmp_path: Path) -> None:
    lines = [
        json.dumps(failed_record("a_dog_1", "the barking dog", "CUDA out of memory")),
        json.dumps({"uid": "a_dog_1", "ref": "", "predict": "<s_object>dog</s_object>"}),
        json.dumps({"uid": "a_dog_1", "ref": "", "predict": "<s_object>cat</s_object>"}),
        json.dumps(failed_record("b_cat_1", "the cat", "decode error")),
    ]
    inputs = load_thoughts(_write_lines(tmp_path / "t.jsonl", lines))
    assert inputs.get("a_dog_1").s_object == "dog"
    with pytest.raises(DataError, match="the thinker failed on b_cat_1: decode error"):
        inputs.get("b_cat_1")
    with pytest.raises(DataError, match="no thought for c_cow_1"):
        inputs.get("c_cow_1")


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ("{not json", "line 2 is not valid JSON"),
        ('["uid", "predict"]', "line 2 is a JSON list"),
        ('{"ref": "x", "predict": "y"}', "line 2 has no 'uid'"),
        ('{"uid": "b_cat_1", "ref": "x"}', "line 2: .*no 'predict'"),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path: Path, bad_line: str, message: str) -> None:
    good = json.dumps({"uid": "a_dog_1", "ref": "", "predict": ORIGINAL_PREDICT})
    path = _write_lines(tmp_path / "bad.jsonl", [good, bad_line, good])
    with pytest.raises(DataError, match=message) as info:
        load_thoughts(path)
    assert str(path) in str(info.value)


def test_torn_last_line_is_skipped_blank_lines_ignored(tmp_path: Path) -> None:
    good = json.dumps({"uid": "a_dog_1", "ref": "", "predict": ORIGINAL_PREDICT})
    path = _write_lines(tmp_path / "torn.jsonl", [good, "", '{"uid": "b_cat_1", "pre'], trailing_newline=False)
    inputs = load_thoughts(path)
    assert set(inputs.thoughts) == {"a_dog_1"}


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="thoughts file not found"):
        load_thoughts(tmp_path / "nope.jsonl")
