"""GroundSegmentStage under each preset, with fake stages that record what they receive."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from gs_fakes import FakeGrounder, FakeSegmenter, FakeVideoSegmenter, frame_boxes, make_clip

from tgs.ground_segment import GroundSegmentStage, choose_object_text, sam_boxes
from tgs.presets import BEST, PAPER, get_preset
from tgs.resize import resize_like_cv2
from tgs.think.base import direct_thought
from tgs.think.parser import parse_answer
from tgs.types import Boxes, Query

ANSWER = "<think>the dog barks</think><answer><f_object> a black dog </f_object><s_object> Dog </s_object></answer>"
NULL_ANSWER = "<think>nothing</think><answer><f_object> null </f_object><s_object> null </s_object></answer>"


def _query(split: str = "test_s", uid: str = "v_dog_1", expression: str = "the barking dog") -> Query:
    return Query(uid=uid, expression=expression, split=split)


def _run(preset, clip=None, answer=ANSWER, split="test_s", grounder=None, segmenter=None):
    clip = clip if clip is not None else make_clip()
    grounder = grounder or FakeGrounder()
    segmenter = segmenter or FakeSegmenter()
    query = _query(split)
    result = GroundSegmentStage(grounder, segmenter, preset).run(clip, parse_answer(query.uid, answer), query)
    return result, grounder, segmenter


# ----------------------------------------------------------------------------- boxes


CRAFTED = frame_boxes(
    [  # query order as the detector returns it; "first" is the lowest query index, not the best score
        ([10, 10, 20, 20], 0.50, 4),
        ([30, 5, 60, 40], 0.95, 9),
        ([0, 0, 8, 8], 0.12, 1),
    ]
)


def test_first_vs_best_on_crafted_boxes() -> None:
    boxes = Boxes((CRAFTED, frame_boxes([]), CRAFTED), (48, 64))
    assert boxes.select("first") == [2, None, 2]
    assert boxes.select("best") == [1, None, 1]


@pytest.mark.parametrize(("preset", "expected"), [(PAPER, [0, 0, 8, 8]), (BEST, [30, 5, 60, 40])])
def test_segmenter_gets_the_box_of_the_rule(preset, expected) -> None:
    clip = make_clip(frames=3)
    grounder = FakeGrounder(fixed=[CRAFTED, frame_boxes([]), CRAFTED])
    segmenter = FakeVideoSegmenter() if preset.segment_mode == "video" else FakeSegmenter()
    result, _, _ = _run(preset, clip, grounder=grounder, segmenter=segmenter)
    received = segmenter.boxes[0]
    assert received[1] is None
    scale = np.array([224 / 64, 224 / 48] * 2) if preset.sam_input == "squash224" else np.ones(4)
    np.testing.assert_allclose(received[0], np.array(expected) * scale, rtol=1e-6)
    frames = result.frame_records()
    assert frames[0]["box"] == expected and frames[1]["box"] is None and frames[0]["candidates"] == 3
    assert frames[0]["query_index"] == (1 if preset.box_rule == "first" else 9)
    assert frames[0]["score"] == pytest.approx(0.12 if preset.box_rule == "first" else 0.95)


def test_video_segmenter_receives_the_scores_of_the_chosen_boxes() -> None:
    segmenter = FakeVideoSegmenter()
    _run(BEST, make_clip(frames=3), grounder=FakeGrounder(fixed=[CRAFTED, frame_boxes([]), CRAFTED]),
         segmenter=segmenter)
    assert segmenter.scores[0][1] is None
    assert segmenter.scores[0][0] == pytest.approx(0.95) and segmenter.scores[0][2] == pytest.approx(0.95)


def test_sam_boxes_scale_xyxy_to_the_squashed_frame() -> None:
    boxes = Boxes((frame_boxes([([64.0, 36.0, 1280.0, 720.0], 0.5, 0)]),), (720, 1280))
    np.testing.assert_allclose(sam_boxes(boxes, [0], (224, 224))[0], [11.2, 11.2, 224.0, 224.0], rtol=1e-6)


# ------------------------------------------------------------------------- SAM2 input


def test_rb_swap_and_squash_only_in_paper() -> None:
    clip = make_clip(height=72, width=128)
    _, _, seg_paper = _run(PAPER, clip)
    expected = np.stack([resize_like_cv2(f, (224, 224)) for f in clip.frames])[..., ::-1]
    np.testing.assert_array_equal(seg_paper.clips[0].frames, expected)
    _, _, seg_best = _run(BEST, clip, segmenter=FakeVideoSegmenter())
    np.testing.assert_array_equal(seg_best.clips[0].frames, clip.frames)


def test_colour_and_size_switches_are_independent() -> None:
    clip = make_clip(height=72, width=128)
    _, _, seg = _run(get_preset("best", {"sam_colours": "swap_rb"}), clip, segmenter=FakeVideoSegmenter())
    np.testing.assert_array_equal(seg.clips[0].frames, clip.frames[..., ::-1])
    _, _, seg = _run(get_preset("paper", {"sam_colours": "rgb"}), clip)
    np.testing.assert_array_equal(seg.clips[0].frames, np.stack([resize_like_cv2(f, (224, 224)) for f in clip.frames]))


def test_grounder_always_sees_the_original_frames() -> None:
    seen = []

    class Recording(FakeGrounder):
        def ground(self, clip, text):
            seen.append(clip.frames)
            return super().ground(clip, text)

    clip = make_clip()
    _run(PAPER, clip, grounder=Recording())
    np.testing.assert_array_equal(seen[0], clip.frames)


# ------------------------------------------------------------------------------ masks


def test_mask_sizes() -> None:
    clip = make_clip(height=48, width=64)
    paper, _, _ = _run(PAPER, clip)
    assert paper.masks.masks.shape == (4, 224, 224) and paper.masks.probs.shape == (4, 224, 224)
    best, _, _ = _run(BEST, clip, segmenter=FakeVideoSegmenter())
    assert best.masks.masks.shape == (4, 48, 64) and best.masks.probs.shape == (4, 224, 224)
    full, _, _ = _run(get_preset("best", {"probs_size": "mask"}), clip, segmenter=FakeVideoSegmenter())
    assert full.masks.probs.shape == (4, 48, 64)
    np.testing.assert_array_equal(full.masks.masks, best.masks.masks)


def test_frame_without_box_gets_zero_mask_in_image_mode() -> None:
    result, _, _ = _run(PAPER, make_clip(), grounder=FakeGrounder(empty_frames=(1, 2)))
    assert not result.masks.masks[1].any() and not result.masks.probs[2].any()
    assert result.masks.masks[0].any() and result.chosen[1] is None


# ------------------------------------------------------------------------ object text


def test_paper_grounds_the_s_object_as_written() -> None:
    result, grounder, _ = _run(PAPER)
    assert grounder.calls == ["Dog"] and result.object_text.source == "tag"


def test_f_object_switch() -> None:
    _, grounder, _ = _run(get_preset("paper", {"object_tag": "f_object"}))
    assert grounder.calls == ["a black dog"]


def test_missing_tag_paper_grounds_error_best_grounds_expression(caplog: pytest.LogCaptureFixture) -> None:
    _, grounder, _ = _run(PAPER, answer="I think it is the dog")
    assert grounder.calls == ["Error"]
    with caplog.at_level(logging.WARNING, logger="tgs.ground_segment"):
        result, grounder, _ = _run(BEST, answer="I think it is the dog", segmenter=FakeVideoSegmenter())
    assert grounder.calls == ["the barking dog"] and result.object_text.source == "expression"
    assert "v_dog_1" in caplog.text and "grounding the expression" in caplog.text


def test_empty_tag() -> None:
    answer = "<f_object>a dog</f_object><s_object>  </s_object>"
    _, grounder, _ = _run(PAPER, answer=answer)
    assert grounder.calls == [""]  # the original grounds "" (caption ".")
    _, grounder, _ = _run(BEST, answer=answer, segmenter=FakeVideoSegmenter())
    assert grounder.calls == ["the barking dog"]


def test_paper_null_on_null_split_is_empty_with_override() -> None:
    result, grounder, segmenter = _run(PAPER, answer=NULL_ANSWER, split="test_n")
    assert grounder.calls == [] and segmenter.clips == []
    assert result.object_text.paper_null_override and result.object_text.text is None
    assert result.masks.masks.shape == (4, 224, 224) and not result.masks.masks.any()
    assert result.masks.probs is not None and not result.masks.probs.any()
    assert result.sample_record()["paper_null_override"] is True


def test_paper_null_elsewhere_grounds_the_literal_null() -> None:
    result, grounder, _ = _run(PAPER, answer=NULL_ANSWER, split="test_s")
    assert grounder.calls == ["null"] and not result.object_text.paper_null_override


def test_paper_null_rule_is_case_sensitive() -> None:
    answer = "<f_object>null</f_object><s_object>Null</s_object>"
    assert parse_answer("u", answer).is_null  # the parser calls it null ...
    result, grounder, _ = _run(PAPER, answer=answer, split="test_n")
    assert grounder.calls == ["Null"] and not result.object_text.paper_null_override  # ... the original does not


@pytest.mark.parametrize("split", ["test_n", "test_s", "test_u"])
def test_best_null_is_empty_on_every_split(split: str) -> None:
    result, grounder, _ = _run(BEST, answer=NULL_ANSWER, split=split, segmenter=FakeVideoSegmenter())
    assert grounder.calls == [] and result.object_text.source == "null"
    assert result.masks.masks.shape == (4, 48, 64) and not result.masks.masks.any()
    assert not result.object_text.paper_null_override


def test_direct_thought_grounds_the_expression() -> None:
    query = _query()
    text = choose_object_text(direct_thought(query), query, PAPER)
    assert (text.text, text.source) == ("the barking dog", "direct")


def test_records_and_contracts() -> None:
    result, _, _ = _run(PAPER)
    record = result.sample_record()
    assert record["mask_size"] == [224, 224] and len(record["frames"]) == 4
    assert set(record["timings"]) == {"ground", "select", "prepare", "segment", "resize"}
    candidates = result.candidates_record()
    assert [len(f["scores"]) for f in candidates["frames"]] == [2, 2, 2, 0]
    clip = make_clip()
    with pytest.raises(ValueError, match="thought for"):
        GroundSegmentStage(FakeGrounder(), FakeSegmenter(), PAPER).run(
            clip, parse_answer("other", ANSWER), _query()
        )
    wrong = FakeGrounder(fixed=[CRAFTED])  # one frame of boxes for a 4-frame clip
    with pytest.raises(ValueError, match="grounder returned boxes for 1 frames"):
        GroundSegmentStage(wrong, FakeSegmenter(), PAPER).run(clip, parse_answer("v_dog_1", ANSWER), _query())
