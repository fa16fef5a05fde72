"""A whole Ground-Segment run over a synthetic benchmark, with fake stages: run directory,
resume == uninterrupted, failures recorded, thoughts formats, start-up checks, metrics."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from gs_fakes import FakeGrounder, FakeSegmenter, FakeVideoSegmenter

from tgs.core.settings import Settings
from tgs.data.benchmark import Benchmark
from tgs.data.synth import generate
from tgs.errors import MissingWeightsError, RunError
from tgs.presets import BEST, PAPER, SAM3, Preset, get_preset
from tgs.run_store import RunStore
from tgs.runners.ground_segment import GroundSegmentConfig, run_ground_segment
from tgs.runners.manifest import upgrade_manifest

SPLITS = ("test_s", "test_n")


@pytest.fixture(scope="module")
def bench_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    generate(root, videos=3, seed=0, size=(64, 48))
    return root


def _answer(s_object: str) -> str:
    f_object = s_object if s_object == "null" else f"the {s_object}"
    return f"<think>reasoning</think><answer><f_object> {f_object} </f_object><s_object> {s_object} </s_object></answer>"


@pytest.fixture(scope="module")
def original_thoughts(bench_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An inference_results.jsonl in the original format: null on the null split, one answer without tags."""
    lines = []
    for sample in Benchmark(bench_root, bench_root / "metadata.csv", SPLITS):
        if sample.is_null:
            predict = _answer("null")
        elif sample.uid.endswith("blue-hexagon_2"):
            predict = "I could not decide."
        else:
            predict = _answer(sample.uid.rsplit("_", 2)[1].replace("-", " "))
        lines.append(json.dumps({"uid": sample.uid, "ref": sample.expression.lower(), "predict": predict}))
    path = tmp_path_factory.mktemp("thoughts") / "inference_results.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def _config(root: Path, out: Path, preset=PAPER, thoughts: Path | None = None, **kw) -> GroundSegmentConfig:
    return GroundSegmentConfig(
        data=root, meta=root / "metadata.csv", out=out, preset=preset, thoughts=thoughts,
        direct=thoughts is None, splits=SPLITS, **kw,
    )


def _stages(preset):
    return FakeGrounder(), FakeVideoSegmenter() if preset.segment_mode == "video" else FakeSegmenter()


def _without_timings(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "timings"} for r in records]


def _snapshot(run: Path) -> tuple[list[dict], list[dict], dict[str, tuple[np.ndarray, np.ndarray]]]:
    store = RunStore(run)
    samples = sorted(_without_timings(list(store.latest("samples").values())), key=lambda r: r["uid"])
    boxes = sorted(store.latest("boxes").values(), key=lambda r: r["uid"])
    masks = {}
    for uid in store.done_uids("samples"):
        m = store.load_masks(uid)
        masks[uid] = (m.masks, m.probs)
    return samples, boxes, masks


def _assert_same_outputs(a: Path, b: Path) -> None:
    samples_a, boxes_a, masks_a = _snapshot(a)
    samples_b, boxes_b, masks_b = _snapshot(b)
    assert samples_a == samples_b
    assert boxes_a == boxes_b
    assert masks_a.keys() == masks_b.keys()
    for uid in masks_a:
        np.testing.assert_array_equal(masks_a[uid][0], masks_b[uid][0])
        np.testing.assert_array_equal(masks_a[uid][1], masks_b[uid][1])


def test_paper_run_writes_the_run_directory(bench_root: Path, original_thoughts: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    outcome = run_ground_segment(_config(bench_root, out, PAPER, original_thoughts), stages=_stages(PAPER))
    assert outcome.summary.failed == 0 and outcome.summary.succeeded == 9
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["preset"] == PAPER.to_dict()
    assert manifest["thoughts"]["mode"] == "file" and len(manifest["thoughts"]["sha256"]) == 64
    assert manifest["models"] == {"set": "real", "grounding_dino": "IDEA-Research/grounding-dino-tiny",
                                  "sam2": "facebook/sam2.1-hiera-large"}
    records = RunStore(out).latest("samples")
    triangle = records["syn0-0002_0_10000_yellow-triangle_1"]
    assert triangle["object_text"] == "yellow triangle" and triangle["object_source"] == "tag"
    assert triangle["mask_size"] == [224, 224] and len(triangle["frames"]) == 10
    assert triangle["frames"][3]["box"] is None  # the fake grounder finds nothing on frame 3
    assert triangle["frames"][0]["query_index"] == 2  # the first query, not the best-scoring one (7)
    assert set(triangle["timings"]) >= {"load", "ground", "segment", "save"}
    assert records["syn0-0002_0_10000_blue-hexagon_2"]["object_text"] == "Error"
    null = records["null_m-syn0-0002_0_10000_null_1"]
    assert null["paper_null_override"] and null["object_text"] is None
    # metrics.json from the evaluation of this directory; the null rule gives S = 0
    metrics = json.loads((out / "metrics.json").read_text())
    tgs = metrics["protocols"]["tgs"]["splits"]
    assert tgs["test_n"]["S"] == 0.0 and tgs["test_n"]["count"] == 2
    assert tgs["test_s"]["count"] == 7 and tgs["test_s"]["missing"] == 0 and 0.0 <= tgs["test_s"]["J"] <= 1.0


def test_best_run_and_null_masks(bench_root: Path, original_thoughts: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    outcome = run_ground_segment(_config(bench_root, out, BEST, original_thoughts), stages=_stages(BEST))
    assert outcome.summary.failed == 0
    store = RunStore(out)
    records = store.latest("samples")
    assert records["syn0-0002_0_10000_blue-hexagon_2"]["object_source"] == "expression"
    assert records["syn0-0002_0_10000_blue-hexagon_2"]["object_text"] == "The hexagon."
    null_uid = "null_m-syn0-0002_0_10000_null_1"
    assert records[null_uid]["object_source"] == "null" and not records[null_uid]["paper_null_override"]
    masks = store.load_masks(null_uid)
    assert masks.masks.shape == (10, 48, 64) and not masks.masks.any()
    assert store.load_masks("syn0-0002_0_10000_red-circle_1").masks.any()


def test_direct_mode_grounds_expressions(bench_root: Path, tmp_path: Path) -> None:
    grounder, segmenter = _stages(PAPER)
    run_ground_segment(_config(bench_root, tmp_path / "run", PAPER, evaluate=False), stages=(grounder, segmenter))
    assert grounder.calls[:2] == ["The triangle.", "The yellow object."]
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["thoughts"] == {"mode": "direct"}
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_resume_after_limit_equals_uninterrupted(bench_root: Path, original_thoughts: Path, tmp_path: Path) -> None:
    full, parts = tmp_path / "full", tmp_path / "parts"
    run_ground_segment(_config(bench_root, full, PAPER, original_thoughts), stages=_stages(PAPER))
    first = run_ground_segment(_config(bench_root, parts, PAPER, original_thoughts, limit=4), stages=_stages(PAPER))
    assert first.summary.stopped_early and first.metrics is None and "not evaluated" in first.notes[0]
    second = run_ground_segment(_config(bench_root, parts, PAPER, original_thoughts), stages=_stages(PAPER))
    assert second.summary.skipped == 4 and second.summary.succeeded == 5
    _assert_same_outputs(full, parts)
    assert len(RunStore(parts).records("samples")) == 9  # nothing redone


def test_resume_after_interruption_equals_uninterrupted(bench_root: Path, tmp_path: Path) -> None:
    full, broken = tmp_path / "full", tmp_path / "broken"
    run_ground_segment(_config(bench_root, full, BEST, evaluate=False), stages=_stages(BEST))
    grounder, segmenter = FakeGrounder(), FakeVideoSegmenter()
    segmenter.fail_after = 8  # Ctrl-C while the 9th sample (2nd of the 2nd video) is being segmented
    with pytest.raises(KeyboardInterrupt):
        run_ground_segment(_config(bench_root, broken, BEST, evaluate=False), stages=(grounder, segmenter))
    # a video's results are committed when the video is done: whole videos are on disk, in order
    order = [r["uid"] for r in RunStore(full).records("samples")]
    done = [r["uid"] for r in RunStore(broken).records("samples")]
    assert len(done) == 7 and done == order[:7]
    folder = {uid: uid.rsplit("_", 2)[0] for uid in order}
    assert folder[order[len(done)]] != folder[done[-1]]  # the interrupted video left nothing behind
    run_ground_segment(_config(bench_root, broken, BEST, evaluate=False), stages=_stages(BEST))
    _assert_same_outputs(full, broken)


def test_failing_sample_is_recorded_and_retried(bench_root: Path, original_thoughts: Path, tmp_path: Path) -> None:
    root = tmp_path / "data"
    shutil.copytree(bench_root, root)
    frame = root / "media" / "syn0-0002_0_10000" / "frames" / "5.jpg"
    frame.rename(frame.with_suffix(".bak"))
    thoughts = tmp_path / "thoughts.jsonl"
    kept = [line for line in original_thoughts.read_text().splitlines() if "null_2" not in line]
    thoughts.write_text("\n".join(kept) + "\n")
    out = tmp_path / "run"
    outcome = run_ground_segment(_config(root, out, PAPER, thoughts), stages=_stages(PAPER))
    summary = outcome.summary
    assert summary.failed == 8 and summary.succeeded == 1  # 7 samples of the video + the uid without thought
    assert summary.failures_by_kind() == {"media": 7, "data": 1}
    records = RunStore(out).latest("samples")
    assert "5.jpg" in records["syn0-0002_0_10000_red-circle_1"]["error"]
    assert "no thought for null_m-syn0-0002_0_10000_null_2" in records["null_m-syn0-0002_0_10000_null_2"]["error"]
    assert outcome.metrics is not None
    assert outcome.metrics["protocols"]["tgs"]["splits"]["test_s"]["missing"] == 7
    frame.with_suffix(".bak").rename(frame)
    again = run_ground_segment(_config(root, out, PAPER, thoughts), stages=_stages(PAPER))
    assert again.summary.succeeded == 7 and again.summary.failed == 1 and again.summary.skipped == 1


def test_resume_refuses_another_preset_or_thoughts(bench_root: Path, original_thoughts: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    run_ground_segment(_config(bench_root, out, PAPER, original_thoughts, limit=1), stages=_stages(PAPER))
    with pytest.raises(RunError, match=r"another configuration.*preset"):
        run_ground_segment(_config(bench_root, out, get_preset("paper", {"box_rule": "best"}), original_thoughts),
                           stages=_stages(PAPER))
    with pytest.raises(RunError, match=r"another configuration.*thoughts"):
        run_ground_segment(_config(bench_root, out, PAPER), stages=_stages(PAPER))
    # runtime settings may change between runs, and the thoughts file may move
    moved = tmp_path / "moved.jsonl"
    shutil.copy(original_thoughts, moved)
    again = run_ground_segment(_config(bench_root, out, PAPER, moved, limit=1, frame_batch_size=4),
                               stages=_stages(PAPER))
    assert again.summary.skipped == 1 and again.summary.succeeded == 1


NEWER_SWITCHES = ("segmenter", "sam3_choice", "sam3_threshold", "batch_captions")
"""Preset switches added after run directories had been made (absent from their manifests)."""


def _rewrite_preset(out: Path, change) -> None:
    path = out / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest["preset"])
    path.write_text(json.dumps(manifest))


def test_a_manifest_older_than_a_switch_resumes_but_another_value_is_refused(
    bench_root: Path, original_thoughts: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    run_ground_segment(_config(bench_root, out, PAPER, original_thoughts, limit=1), stages=_stages(PAPER))

    def forget(preset: dict) -> None:  # the manifest an older version wrote: no such switches yet
        for key in NEWER_SWITCHES:
            del preset[key]

    _rewrite_preset(out, forget)
    again = run_ground_segment(_config(bench_root, out, PAPER, original_thoughts, limit=1), stages=_stages(PAPER))
    assert again.summary.skipped == 1 and again.summary.succeeded == 1
    assert not set(NEWER_SWITCHES) & set(json.loads((out / "manifest.json").read_text())["preset"])

    # a recorded value is compared as it is: one that differs from today's still refuses the resume
    _rewrite_preset(out, lambda preset: preset.update(batch_captions=not PAPER.batch_captions))
    with pytest.raises(RunError, match=r"another configuration.*preset"):
        run_ground_segment(_config(bench_root, out, PAPER, original_thoughts), stages=_stages(PAPER))


def test_a_manifest_whose_preset_recorded_a_dtype_resumes(
    bench_root: Path, original_thoughts: Path, tmp_path: Path
) -> None:
    """Made while the precision was also a preset switch: the preset block holds the dtype the run
    used (paper: fp32). The precision block carries it; the resume compares that, not the switch."""
    out = tmp_path / "run"
    run_ground_segment(_config(bench_root, out, PAPER, original_thoughts, limit=1), stages=_stages(PAPER))
    assert json.loads((out / "manifest.json").read_text())["precision"] == {"dtype": "fp32"}  # paper's default
    _rewrite_preset(out, lambda preset: preset.update(dtype="fp32"))
    again = run_ground_segment(_config(bench_root, out, PAPER, original_thoughts, limit=1), stages=_stages(PAPER))
    assert again.summary.skipped == 1 and again.summary.succeeded == 1
    # another precision than the one recorded still refuses the resume, whatever channel named it
    bf16 = _config(bench_root, out, PAPER, original_thoughts, settings=Settings(dtype="bf16"))
    with pytest.raises(RunError, match=r"another configuration.*precision"):
        run_ground_segment(bf16, stages=_stages(PAPER))


def test_upgrade_fills_only_absent_switches_from_the_recorded_preset() -> None:
    without = {k: v for k, v in SAM3.to_dict().items() if k != "segmenter"}
    assert upgrade_manifest({"kind": "ground-segment", "preset": without})["preset"] == SAM3.to_dict()  # sam3's
    custom = {k: v for k, v in replace(BEST, name="custom", box_threshold=0.3).to_dict().items() if k != "segmenter"}
    assert upgrade_manifest({"preset": custom})["preset"]["segmenter"] == Preset().segmenter  # the default
    recorded = {**BEST.to_dict(), "batch_captions": not BEST.batch_captions}
    assert upgrade_manifest({"preset": recorded})["preset"] == recorded  # a recorded value is never replaced
    assert upgrade_manifest({"kind": "think", "preset": None}) == {"kind": "think", "preset": None}
    # the precision left the preset for the settings: an old preset block's dtype is dropped, not compared
    old = {**PAPER.to_dict(), "dtype": "bf16"}
    assert upgrade_manifest({"preset": old, "precision": {"dtype": "bf16"}}) == {
        "preset": PAPER.to_dict(), "precision": {"dtype": "bf16"}}


def test_missing_weights_fail_before_anything_is_written(bench_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    config = _config(bench_root, out, BEST, settings=Settings(
        sources={"grounding_dino": str(tmp_path / "no_gdino"), "sam2": str(tmp_path / "no_sam2")}))
    with pytest.raises(MissingWeightsError) as info:
        run_ground_segment(config)
    message = str(info.value)
    assert "grounding_dino" in message and "sam2_video" in message and "no_sam2" in message
    assert not out.exists()


def test_config_needs_exactly_one_input(bench_root: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        GroundSegmentConfig(data=bench_root, meta=bench_root / "metadata.csv", out=tmp_path, preset=PAPER,
                            thoughts=tmp_path / "t.jsonl", direct=True)
