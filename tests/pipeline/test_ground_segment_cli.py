"""``tgs ground-segment`` and ``tgs models list --preset`` end to end, with the tiny model set
on ``tgs data synth`` output (the real Grounding DINO / SAM2 code paths, random weights)."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tgs.cli.main import build_app
from tgs.data.synth import generate
from tgs.run_store import RunStore

NULL_UID = "null_m-syn0-0002_0_10000_null_1"
UIDS = ("syn0-0002_0_10000_yellow-triangle_1", "syn0-0002_0_10000_red-circle_1", NULL_UID)


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(root, a 3-row metadata CSV, an original-format inference_results.jsonl)."""
    root = tmp_path_factory.mktemp("synth_cli")
    meta = generate(root, videos=3, seed=0, size=(64, 48))
    with meta.open(newline="") as fh:
        rows = [r for r in csv.reader(fh)]
    small = root / "small.csv"
    with small.open("w", newline="") as fh:
        csv.writer(fh).writerows([rows[0], *[r for r in rows[1:] if r[1] in UIDS]])
    answers = {
        UIDS[0]: "<think>it beeps</think><answer><f_object> the yellow triangle </f_object>"
        "<s_object> triangle </s_object></answer></s>",
        UIDS[1]: "<think>red</think><answer><f_object> the red circle </f_object><s_object> circle </s_object>",
        NULL_UID: "<think>nothing sounds</think><answer><f_object> null </f_object><s_object> null </s_object>",
    }
    thoughts = root / "inference_results.jsonl"
    thoughts.write_text("".join(json.dumps({"uid": u, "ref": "x", "predict": p}) + "\n" for u, p in answers.items()))
    return root, small, thoughts


def _invoke(*args: str):
    """(result, all output as one line: rich boxes and line wrapping removed)."""
    result = CliRunner().invoke(build_app(), list(args), catch_exceptions=False)
    text = result.output + (result.stderr if result.stderr_bytes is not None else "")
    return result, " ".join(re.sub(r"[│╭╮╰╯─┃┏┓┗┛━┡┩┢┪╇╈┳┻]", " ", text).split())


def _gs(bench, out: Path, preset: str, *extra: str):
    root, meta, thoughts = bench
    return _invoke(
        "ground-segment", "--data", str(root), "--meta", str(meta), "--split", "test_s", "--split", "test_n",
        "--thoughts", str(thoughts), "--preset", preset, "--models", "tiny", "--device", "cpu",
        "--out", str(out), *extra,
    )


def _outputs(run: Path) -> tuple[list[dict], dict[str, np.ndarray]]:
    store = RunStore(run)
    records = [{k: v for k, v in r.items() if k != "timings"} for r in store.records("samples")]
    masks = {}
    for uid in UIDS:
        m = store.load_masks(uid)
        masks[uid] = np.concatenate([m.masks.reshape(-1).astype(np.float32), m.probs.reshape(-1)])
    return records, masks


@pytest.fixture(scope="module")
def paper_run(bench, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli_runs") / "paper"
    result, text = _gs(bench, out, "paper")
    assert result.exit_code == 0, text
    return out


@pytest.mark.slow
def test_paper_end_to_end(paper_run: Path) -> None:
    store = RunStore(paper_run)
    records = store.latest("samples")
    assert [r["uid"] for r in store.records("samples")] == list(UIDS)
    assert all(r["status"] == "ok" for r in records.values())
    assert records[UIDS[0]]["object_text"] == "triangle" and records[UIDS[0]]["mask_size"] == [224, 224]
    assert records[NULL_UID]["paper_null_override"]
    masks = store.load_masks(UIDS[0])
    assert masks.masks.shape == (10, 224, 224) and masks.probs.shape == (10, 224, 224)
    assert masks.probs.min() >= 0.0 and masks.probs.max() <= 1.0
    grounded = [f for f in records[UIDS[0]]["frames"] if f["box"] is not None]
    assert grounded, "the tiny grounder keeps boxes above 0.1 on synthetic frames"
    for frame in grounded:
        assert frame["score"] > 0.1 and isinstance(frame["query_index"], int)
    metrics = json.loads((paper_run / "metrics.json").read_text())
    assert metrics["protocols"]["tgs"]["splits"]["test_n"]["S"] == 0.0
    assert metrics["protocols"]["tgs"]["splits"]["test_s"]["count"] == 2
    assert len(store.records("boxes")) == 3


@pytest.mark.slow
def test_resume_after_limit_equals_uninterrupted_tiny_models(bench, paper_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "paper_parts"
    first, text = _gs(bench, out, "paper", "--limit", "1")
    assert first.exit_code == 0, text
    assert "not evaluated" in text and not (out / "metrics.json").exists()
    second, text = _gs(bench, out, "paper")
    assert second.exit_code == 0, text
    records_full, masks_full = _outputs(paper_run)
    records_parts, masks_parts = _outputs(out)
    assert records_parts == records_full
    for uid in UIDS:
        np.testing.assert_array_equal(masks_parts[uid], masks_full[uid])


@pytest.mark.slow
def test_best_end_to_end(bench, tmp_path: Path) -> None:
    out = tmp_path / "best"
    result, text = _gs(bench, out, "best", "--protocol", "both")
    assert result.exit_code == 0, text
    store = RunStore(out)
    records = store.latest("samples")
    assert all(r["status"] == "ok" for r in records.values())
    assert records[UIDS[0]]["mask_size"] == [48, 64]  # full resolution
    null = store.load_masks(NULL_UID)
    assert null.masks.shape == (10, 48, 64) and not null.masks.any()
    propagated = store.load_masks(UIDS[0])
    assert propagated.masks.shape == (10, 48, 64) and propagated.probs.shape == (10, 224, 224)
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["protocols"]) == {"tgs", "refavs"}
    assert json.loads((out / "manifest.json").read_text())["models"] == {
        "set": "tiny", "grounding_dino": "tiny", "sam2_video": "tiny"}


def test_missing_weights_fail_before_any_sample(bench, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result, text = _gs(bench, out, "paper", "--models", "real", "--gdino", str(tmp_path / "gdino"),
                       "--sam2", str(tmp_path / "sam2"))
    assert result.exit_code == 1
    assert "missing model weights" in text and "grounding_dino" in text and "sam2" in text
    assert not out.exists()


def test_bad_switch_lists_the_choices(bench, tmp_path: Path) -> None:
    result, text = _gs(bench, tmp_path / "run", "paper", "--set", "box_rule=top")
    assert result.exit_code == 2 and "first, best" in text
    result, text = _invoke("ground-segment", "--data", str(tmp_path), "--out", str(tmp_path / "r"))
    assert result.exit_code == 2 and "exactly one of --thoughts FILE or --direct" in text


@pytest.mark.parametrize(("preset", "shown", "hidden"), [("paper", "sam2 ", "sam2_video"), ("best", "sam2_video", "ref_thinker")])
def test_models_list_shows_what_a_preset_needs(preset: str, shown: str, hidden: str) -> None:
    result, text = _invoke("models", "list", "--preset", preset, "--models", "tiny")
    assert result.exit_code == 0, text
    assert "grounding_dino" in text and shown in text and hidden not in text
    result, text = _invoke("models", "list", "--preset", "paper", "--set", "segment_mode=video", "--models", "tiny")
    assert "sam2_video" in text


@pytest.mark.slow
def test_sam3_end_to_end(bench, tmp_path: Path) -> None:
    """The sam3 preset: SAM 3 alone (no Grounding DINO), every candidate in the sample records."""
    out = tmp_path / "sam3"
    result, text = _gs(bench, out, "sam3", "--set", "sam3_threshold=0.2")
    assert result.exit_code == 0, text
    store = RunStore(out)
    records = store.latest("samples")
    assert all(r["status"] == "ok" for r in records.values())
    record = records[UIDS[0]]
    assert record["mask_size"] == [48, 64] and record["sam3"]["rule"] == "clip_best"
    assert record["sam3"]["candidates"] and record["sam3"]["chosen"]  # the tiny model's scores are ~0.25
    chosen = record["sam3"]["chosen"][0]
    assert any(f["query_index"] == chosen for f in record["frames"] if f["box"] is not None)
    assert not store.load_masks(NULL_UID).masks.any()  # a null answer grounds nothing
    assert store.load_masks(UIDS[0]).masks.any()
    assert json.loads((out / "manifest.json").read_text())["models"] == {"set": "tiny", "sam3_video": "tiny"}
    assert "J" in json.dumps(json.loads((out / "metrics.json").read_text()))
