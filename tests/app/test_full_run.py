"""``tgs run`` end to end on a small synthetic benchmark with the tiny model set: Think,
Ground + Segment and evaluation in one command, resuming, and reusing an earlier Think."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tgs.cli.main import build_app
from tgs.core.loading import check_thinker_options
from tgs.core.settings import Settings
from tgs.data.benchmark import Benchmark
from tgs.data.synth import generate
from tgs.run_store import RunStore
from tgs.runners.full_run import FullRunConfig, run_full


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(root, metadata CSV) of three synthetic videos: splits train, val, test_s (+ test_n)."""
    root = tmp_path_factory.mktemp("bench")
    return root, generate(root, videos=3, seed=0, size=(64, 48))


def _invoke(*args: str):
    result = CliRunner().invoke(build_app(), list(args), catch_exceptions=False)
    text = result.output + (result.stderr if result.stderr_bytes is not None else "")
    return result, " ".join(re.sub(r"[│╭╮╰╯─┃┏┓┗┛━┡┩┢┪╇╈┳┻]", " ", text).split())


def _run(bench, out: Path, *extra: str, split: str = "test_s"):
    root, meta = bench
    return _invoke(
        "run",
        "--data",
        str(root),
        "--meta",
        str(meta),
        "--split",
        split,
        "--models",
        "tiny",
        "--device",
        "cpu",
        "--out",
        str(out),
        *extra,
    )


def _latest(run: Path, stream: str) -> dict[str, dict]:
    return RunStore(run).latest(stream)


def _metrics(run: Path) -> dict:
    data = json.loads((run / "metrics.json").read_text())
    return data["protocols"]["tgs"]["splits"]


def _uids(bench, split: str) -> set[str]:
    return set(Benchmark(bench[0], bench[1], [split]).uids())


@pytest.mark.slow
def test_direct_run_end_to_end_then_resume(bench, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result, text = _run(bench, out, "--thinker", "direct")
    assert result.exit_code == 0, text
    assert "UNTRAINED TINY MODELS" in text
    uids = _uids(bench, "test_s")
    samples = _latest(out, "samples")
    assert set(samples) == uids and all(r["status"] == "ok" for r in samples.values())
    assert all(r["object_source"] == "direct" for r in samples.values())
    assert not (out / "think").exists()  # the direct thinker has no Think stage
    first = _metrics(out)
    assert first["test_s"]["count"] == len(uids) and 0.0 <= first["test_s"]["J"] <= 1.0
    record = json.loads((out / "run.json").read_text())
    assert record["thinker"]["name"] == "direct" and len(record["calls"]) == 1
    # throughput of the call, per stage, in run.json and in the stage's manifest (here on the CPU)
    rate = record["throughput"]["ground_segment"]
    assert rate["expressions"] == len(uids) and rate["seconds"] > 0
    assert rate["expressions_per_s"] == pytest.approx(rate["expressions"] / rate["seconds"], rel=1e-3)
    assert record["calls"][0]["ground_segment"]["throughput"] == rate
    assert json.loads((out / "manifest.json").read_text())["throughput"]["ground_segment"] == rate
    assert "expressions/s" in text
    masks = {uid: RunStore(out).load_masks(uid).masks for uid in uids}

    # rerun: nothing new is done, the metrics are the same
    result, text = _run(bench, out, "--thinker", "direct")
    assert result.exit_code == 0, text
    record = json.loads((out / "run.json").read_text())
    assert record["calls"][-1]["ground_segment"]["done_now"] == 0
    assert record["calls"][-1]["ground_segment"]["already_done"] == len(uids)
    assert len(RunStore(out).records("samples")) == len(uids)  # no sample written twice
    again = _metrics(out)
    assert again["test_s"]["J"] == first["test_s"]["J"] and again["test_s"]["F"] == first["test_s"]["F"]
    assert all(np.array_equal(RunStore(out).load_masks(uid).masks, m) for uid, m in masks.items())


@pytest.mark.slow
def test_think_stage_then_reuse_of_its_thoughts(bench, tmp_path: Path) -> None:
    first = tmp_path / "first"
    result, text = _run(
        bench, first, "--thinker", "ref-thinker", "--thinker-opt", "max_new_tokens=8", "--batch-size", "2"
    )
    assert result.exit_code == 0, text
    uids = _uids(bench, "test_s")
    thoughts_file = first / "think" / "thoughts.jsonl"
    thoughts = _latest(first / "think", "thoughts")
    assert set(thoughts) == uids and {r["thinker"].replace("_", "-") for r in thoughts.values()} == {
        "ref-thinker"
    }
    manifest = json.loads((first / "manifest.json").read_text())
    assert manifest["thoughts"]["sha256"] == hashlib.sha256(thoughts_file.read_bytes()).hexdigest()
    assert set(_latest(first, "samples")) == uids
    rates = json.loads((first / "run.json").read_text())["throughput"]
    assert rates["think"]["expressions"] == len(uids) and rates["ground_segment"]["expressions"] == len(uids)

    # rerun: Think is final once Ground + Segment has started; nothing is redone
    result, text = _run(
        bench, first, "--thinker", "ref-thinker", "--thinker-opt", "max_new_tokens=8", "--batch-size", "2"
    )
    assert result.exit_code == 0, text
    call = json.loads((first / "run.json").read_text())["calls"][-1]
    assert call["think"]["status"] == "final" and call["ground_segment"]["done_now"] == 0

    # a new run reusing the first run's thoughts: no Think, the same masks
    second = tmp_path / "second"
    result, text = _run(bench, second, "--thoughts", str(first / "think"))
    assert result.exit_code == 0, text
    assert not (second / "think").exists()
    call = json.loads((second / "run.json").read_text())["calls"][-1]
    assert call["think"]["status"] == "reused" and call["think"]["path"] == str(thoughts_file)
    for uid in uids:
        assert np.array_equal(RunStore(second).load_masks(uid).masks, RunStore(first).load_masks(uid).masks)
    assert _metrics(second) == _metrics(first)


@pytest.mark.slow
def test_other_thinkers_write_the_same_thoughts_schema(bench, tmp_path: Path) -> None:
    root, meta = bench
    config = FullRunConfig(
        data=root,
        meta=meta,
        out=tmp_path / "omni",
        splits=("test_n",),
        thinker="omni",
        thinker_options={"max_new_tokens": 8},
        settings=Settings.tiny(),
        batch_size=2,
    )
    outcome = run_full(config)
    assert outcome.think.status == "ran" and outcome.think.summary.total == len(_uids(bench, "test_n"))
    records = RunStore(tmp_path / "omni" / "think").records("thoughts")
    keys = {
        "uid",
        "ref",
        "predict",
        "f_object",
        "s_object",
        "reasoning",
        "is_null",
        "status",
        "error",
        "thinker",
    }
    assert records and all(keys <= set(r) and r["thinker"] == "omni" for r in records)
    assert outcome.metrics is not None and "test_n" in outcome.metrics["protocols"]["tgs"]["splits"]


def test_rerun_with_other_settings_is_refused(bench, tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "run.json").write_text(json.dumps({"kind": "full-run", "thinker": {"name": "omni"}}))
    result, text = _run(bench, out, "--thinker", "direct")
    assert result.exit_code == 1
    assert "run.json" in text and "another run" in text


def test_missing_weights_fail_before_anything_is_written(bench, tmp_path: Path) -> None:
    root, meta = bench
    out = tmp_path / "run"
    result, text = _invoke(
        "run", "--data", str(root), "--meta", str(meta), "--thinker", "ref-thinker", "--out", str(out)
    )
    assert result.exit_code == 1
    for key in ("ref_thinker", "grounding_dino", "sam2_video"):
        assert key in text
    assert "--models tiny" in text and not out.exists()


def test_config_rejects_contradictions(bench, tmp_path: Path) -> None:
    root, meta = bench
    with pytest.raises(ValueError, match="direct thinker"):
        FullRunConfig(data=root, meta=meta, out=tmp_path, thinker="direct", thoughts=tmp_path / "t.jsonl")
    with pytest.raises(ValueError, match="has no option 'temperature'"):
        check_thinker_options("ref-thinker", {"temperature": 1.0})
    with pytest.raises(ValueError, match="set by the command's own options"):
        check_thinker_options("omni", {"device": "cuda"})
    check_thinker_options("ref-thinker", {"autocast": True, "max_new_tokens": 4})  # one table for every command
    with pytest.raises(ValueError, match="unknown thinker"):
        FullRunConfig(data=root, meta=meta, out=tmp_path, thinker="gpt")
