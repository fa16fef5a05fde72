"""``tgs think`` end to end on a synthetic benchmark with the tiny Ref-Thinker."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tgs.cli.main import build_app


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tgs.data.synth import generate

    return generate(tmp_path_factory.mktemp("bench"), videos=4, seed=0, size=(64, 48))


def _split_rows(meta: Path, *splits: str) -> dict[str, str]:
    with open(meta, newline="") as fh:
        return {row["uid"]: row["exp"] for row in csv.DictReader(fh) if row["split"] in splits}


def _think(meta: Path, out: Path, *extra: str, splits: tuple[str, ...] = ("test_s",)):
    args = ["think", "--data", str(meta.parent), "--meta", str(meta), "--models", "tiny", "--out", str(out),
            "--max-new-tokens", "4", "--batch-size", "4", *extra]  # fmt: skip
    for split in splits:
        args += ["--split", split]
    return CliRunner().invoke(build_app(), args)


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "thoughts.jsonl").read_text().splitlines()]


def test_think_writes_resumable_thoughts(bench: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = _think(bench, out)
    assert result.exit_code == 0, result.output
    expected = _split_rows(bench, "test_s")
    records = _records(out)
    assert [r["uid"] for r in records] == list(expected)
    for record in records:
        assert {"uid", "ref", "predict", "f_object", "s_object", "is_null", "status", "error"} <= set(record)
        assert record["ref"] == expected[record["uid"]] and record["thinker"] == "ref-thinker"
        assert record["status"] in ("ok", "null", "partial", "no_tags")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "think" and manifest["thinker"]["options"]["max_new_tokens"] == 4

    again = _think(bench, out)
    assert again.exit_code == 0 and len(_records(out)) == len(records)

    changed = _think(bench, out, "--max-new-tokens", "5")
    assert changed.exit_code == 1 and "another configuration" in changed.output


def test_sharing_is_the_preset_switch_think_reads(bench: Path, tmp_path: Path) -> None:
    """``--set share_across_expressions=false`` is the one way to turn Think's sharing off: the
    shared path then never runs, and the answers are the same. Other switches are Ground +
    Segment's and refused, and so are the retired flag and the thinker option."""
    shared, alone = tmp_path / "shared", tmp_path / "alone"
    assert _think(bench, shared).exit_code == 0
    result = _think(bench, alone, "--set", "share_across_expressions=false")
    assert result.exit_code == 0, result.output
    ran = {name: json.loads((out / "manifest.json").read_text())["fast_paths"]["ran"] for name, out in
           (("shared", shared), ("alone", alone))}  # fmt: skip
    assert ran["shared"].get("think.shared_prefix", 0) > 0 and "think.shared_prefix" not in ran["alone"]
    assert _records(alone) == _records(shared)
    for extra, words in (
        (("--set", "box_rule=first"), ("box_rule", "think does not read")),
        (("--no-share-across-expressions",), ("--set share_across_expressions=false",)),
        (("--thinker-opt", "share_across_expressions=false"), ("--set share_across_expressions=false",)),
    ):
        refused = _think(bench, tmp_path / "refused", *extra)
        text = "".join(refused.output.lower().split()).replace("│", "")  # the error panel unwrapped
        assert refused.exit_code == 2 and all("".join(w.lower().split()) in text for w in words), refused.output
    assert not (tmp_path / "refused").exists()


def test_a_sample_whose_clip_fails_is_recorded_and_retried(bench: Path, tmp_path: Path) -> None:
    from tgs.data.benchmark import media_folder
    from tgs.think.inputs import load_thoughts

    splits = ("test_s", "test_u")  # two videos: one loses a frame, the other is fine
    uids = list(_split_rows(bench, *splits))
    frame = bench.parent / "media" / media_folder(uids[0]) / "frames" / "3.jpg"
    hidden = frame.with_suffix(".bak")
    frame.rename(hidden)
    try:
        out = tmp_path / "run"
        result = _think(bench, out, splits=splits)
        assert result.exit_code == 0, result.output
        failed = [r for r in _records(out) if r["status"] == "failed"]
        assert failed and all("3.jpg" in r["error"] for r in failed)
        assert len(failed) < len(uids)
    finally:
        hidden.rename(frame)
    retry = _think(bench, out, splits=splits)
    assert retry.exit_code == 0, retry.output
    latest = {r["uid"]: r for r in _records(out)}
    assert all(r["status"] != "failed" for r in latest.values())
    assert len(_records(out)) == len(uids) + len(failed)  # only the failed ones were redone
    inputs = load_thoughts(out)  # readable by ground-segment
    assert set(inputs.thoughts) == set(uids)


def test_think_runs_any_thinker(bench: Path, tmp_path: Path) -> None:
    """``tgs think --thinker direct``: the same run directory and thoughts schema as Ref-Thinker's."""
    out = tmp_path / "direct"
    args = ["think", "--data", str(bench.parent), "--meta", str(bench), "--thinker", "direct", "--out", str(out),
            "--split", "test_s"]  # fmt: skip
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == 0, result.output
    records = _records(out)
    assert [r["uid"] for r in records] == list(_split_rows(bench, "test_s"))
    assert all(r["status"] == "direct" and r["thinker"] == "direct" for r in records)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["thinker"] == {"name": "direct", "options": {}}
    assert manifest["throughput"]["think"]["expressions"] == len(records)
    bad = CliRunner().invoke(build_app(), [*args[:-2], "--out", str(tmp_path / "x"), "--thinker-opt", "k=1"])
    assert bad.exit_code == 2 and "has no option 'k'" in bad.output


def test_real_models_need_a_model_directory(bench: Path, tmp_path: Path) -> None:
    args = ["think", "--data", str(bench.parent), "--meta", str(bench), "--out", str(tmp_path / "run")]
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == 1
    assert "convert-ref-thinker" in result.output
    assert not (tmp_path / "run").exists()
