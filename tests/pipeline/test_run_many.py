"""Ground + Segment for several expressions of one video: run_many == [run(...)] per expression."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from float32_error import SAM2_PROB_TOL, TINY_GDINO_CHAIN, float32_bound
from gs_fakes import FakeGrounder, FakeSegmenter, FakeVideoSegmenter, make_clip

from tgs import fast_paths
from tgs.core.loading import load_stages
from tgs.core.settings import Settings
from tgs.ground_segment import GroundSegmentResult, GroundSegmentStage
from tgs.presets import BEST, PAPER, get_preset
from tgs.think.parser import parse_answer
from tgs.types import Clip, Query, Thought

ANSWERS = {
    "guitar": "<think>a</think><answer><f_object> the red guitar </f_object><s_object> Guitar </s_object></answer>",
    "null": "<think>b</think><answer><f_object> null </f_object><s_object> null </s_object></answer>",
    "no_tag": "<think>c</think><answer><f_object> a dog </f_object></answer>",
    "dog": "<think>d</think><answer><f_object> a small dog </f_object><s_object> the dog. </s_object></answer>",
    "person": "<think>e</think><answer><f_object> a man </f_object><s_object> the man on the left </s_object></answer>",
}


def _pairs(split: str = "test_s") -> list[tuple[Thought, Query]]:
    pairs = []
    for k, (name, answer) in enumerate(ANSWERS.items()):
        query = Query(uid=f"vid_{name}_{k}", expression=f"the {name} making the sound", split=split)
        pairs.append((parse_answer(query.uid, answer), query))
    return pairs


def _clip() -> Clip:
    rng = np.random.default_rng(11)
    frames = rng.integers(0, 256, size=(4, 72, 128, 3), dtype=np.uint8)
    frames[:, 20:50, 30:90] = (200, 40, 40)
    return Clip(frames, None, None, np.arange(4, dtype=np.float64))


def assert_same_results(expected: list[GroundSegmentResult], got: list[GroundSegmentResult]) -> None:
    assert [r.uid for r in got] == [r.uid for r in expected]
    for a, b in zip(expected, got):
        assert a.object_text == b.object_text and a.thought_status == b.thought_status
        assert a.chosen == b.chosen and a.boxes.text == b.boxes.text
        for fa, fb in zip(a.boxes.frames, b.boxes.frames):
            np.testing.assert_array_equal(fa.query_index, fb.query_index)
            # other batch shapes: twice the tiny models' float32 bounds (tests/float32_error.py)
            np.testing.assert_allclose(fb.scores, fa.scores, rtol=0, atol=float32_bound(TINY_GDINO_CHAIN, 1.0, 2))
            np.testing.assert_allclose(fb.xyxy, fa.xyxy, rtol=0, atol=float32_bound(TINY_GDINO_CHAIN, 224.0, 2))
        np.testing.assert_array_equal(a.masks.masks, b.masks.masks)
        np.testing.assert_allclose(b.masks.probs, a.masks.probs, rtol=0, atol=SAM2_PROB_TOL)
        assert set(b.timings) == set(a.timings)
        assert a.sample_record()["frames"] == b.sample_record()["frames"]


@pytest.mark.parametrize(
    ("preset", "split"),
    [(PAPER, "test_s"), (PAPER, "test_n"), (get_preset("best", {"segment_mode": "image"}), "test_s")],
    ids=["paper", "paper-null-split", "best-image"],
)
def test_run_many_equals_run_per_expression_on_tiny_models(preset, split: str) -> None:
    grounder, segmenter = load_stages(preset, Settings.tiny(device="cpu", dtype="fp32"))
    grounder.box_threshold = 0.3  # the tiny model's scores: keep a few boxes per frame, not all
    stage = GroundSegmentStage(grounder, segmenter, preset)
    clip, pairs = _clip(), _pairs(split)
    expected = [stage.run(clip, thought, query) for thought, query in pairs]
    got = stage.run_many(clip, pairs)
    assert_same_results(expected, got)
    sources = [r.object_text.source for r in got]
    if preset.name == "paper":
        assert sources[2] == "error_literal"  # missing tag: the original grounds "Error"
        assert got[1].object_text.paper_null_override is (split == "test_n")
    else:
        assert sources[1] == "null" and sources[2] == "expression"
    assert any(c is not None for r in got for c in r.chosen), "the comparison needs chosen boxes"
    assert got[0].masks.masks.any()
    assert stage.run_many(clip, pairs[:1])[0].masks.masks.tolist() == expected[0].masks.masks.tolist()


def test_run_many_in_video_mode_falls_back_to_the_segmenter_loop() -> None:
    """The video segmenter is used through ``segment`` (with grounding scores) when it has no segment_many."""
    preset = BEST
    grounder, segmenter = load_stages(preset, Settings.tiny(device="cpu", dtype="fp32"))
    grounder.box_threshold = 0.3
    stage = GroundSegmentStage(grounder, segmenter, preset)
    clip, pairs = _clip(), _pairs()
    expected = [stage.run(clip, thought, query) for thought, query in pairs]
    assert_same_results(expected, stage.run_many(clip, pairs))


class ManyGrounder(FakeGrounder):
    def __init__(self) -> None:
        super().__init__()
        self.many_calls: list[list[str]] = []

    def ground_many(self, clip, texts):
        self.many_calls.append(list(texts))
        return [FakeGrounder.ground(self, clip, t) for t in texts]


class ManySegmenter(FakeVideoSegmenter):
    def __init__(self) -> None:
        super().__init__()
        self.many_scores: list[object] = []

    def segment_many(self, clip, boxes_per_object, scores_per_object=None):
        self.many_scores.append(scores_per_object)
        return [FakeSegmenter.segment(self, clip, boxes) for boxes in boxes_per_object]


def test_run_many_uses_the_shared_methods_once_per_clip() -> None:
    grounder, segmenter = ManyGrounder(), ManySegmenter()
    stage = GroundSegmentStage(grounder, segmenter, BEST)
    clip, pairs = make_clip(), _pairs()
    results = stage.run_many(clip, pairs)
    assert grounder.many_calls == [["Guitar", "the no_tag making the sound", "the dog.", "the man on the left"]]
    assert len(segmenter.many_scores) == 1 and len(segmenter.many_scores[0]) == 4  # null answer not segmented
    assert segmenter.many_scores[0][0][3] is None  # frame 3 has no box in the fake grounder
    assert results[1].object_text.source == "null" and not results[1].masks.masks.any()
    shared = results[0].timings
    assert set(shared) == {"ground", "select", "prepare", "segment", "resize"}
    assert shared["ground"] == results[2].timings["ground"]  # a shared step is split equally


def test_sharing_off_loops_run_and_never_calls_the_shared_methods() -> None:
    grounder, segmenter = ManyGrounder(), ManySegmenter()
    preset = get_preset("best", {"share_across_expressions": "false"})
    stage = GroundSegmentStage(grounder, segmenter, preset)
    clip, pairs = make_clip(), _pairs()
    off = stage.run_many(clip, pairs)
    assert grounder.many_calls == [] and segmenter.many_scores == []
    on = GroundSegmentStage(ManyGrounder(), ManySegmenter(), BEST).run_many(clip, pairs)
    assert_same_results(off, on)


def test_run_many_without_shared_methods_and_mismatched_pairs(caplog: pytest.LogCaptureFixture) -> None:
    stage = GroundSegmentStage(FakeGrounder(), FakeSegmenter(), PAPER)
    clip, pairs = make_clip(), _pairs()
    expected = [stage.run(clip, t, q) for t, q in pairs]
    with caplog.at_level(logging.WARNING, logger="tgs.fast_paths"), fast_paths.counting() as ledger:
        assert_same_results(expected, stage.run_many(clip, pairs))
        stage.run_many(clip, pairs)
    # stages without shared methods: each fallback said once (with its reason) and counted per call
    assert ledger.fallbacks == {("ground.many", "FakeGrounder has no ground_many(); one text at a time"): 2,
                                ("segment.many", "FakeSegmenter has no segment_many(); one text at a time"): 2}
    assert caplog.text.count("FakeGrounder has no ground_many()") == 1
    assert caplog.text.count("FakeSegmenter has no segment_many()") == 1
    assert stage.run_many(clip, []) == []
    thought, _ = pairs[0]
    with pytest.raises(ValueError, match="given with query"):
        stage.run_many(clip, [(thought, pairs[1][1])])
