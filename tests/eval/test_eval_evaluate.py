"""evaluate() and `tgs eval` end to end on a small generated benchmark."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from tgs.data.benchmark import ref_avs_bench
from tgs.data.synth import generate
from tgs.eval import RefAVSProtocol, TGSProtocol, evaluate, save_metrics, write_prediction
from tgs.eval.tgs_protocol import load_gt_tgs
from tgs.types import Masks

MISSING = 3


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("synth")
    meta = generate(root, 8, seed=0, size=(64, 48))
    return root, meta


def oracle_predictions(bench, out: Path, skip: int = MISSING) -> tuple[Path, list[str]]:
    """GT masks at 224 (the tgs protocol's own GT) as predictions; null rows empty; a few missing."""
    skipped = []
    for sample in bench:
        if sample.split == "test_s" and len(skipped) < skip:
            skipped.append(sample.uid)
            continue
        if sample.is_null:
            masks = Masks(np.zeros((10, 224, 224), bool))
        else:
            masks = Masks(load_gt_tgs(sample.mask_paths))
        write_prediction(out, sample.uid, masks, probs_format=None)
    return out, skipped


def test_evaluate_oracle_scores_and_counts_missing(synth, tmp_path):
    root, meta = synth
    bench = ref_avs_bench(root, meta)
    pred, skipped = oracle_predictions(bench, tmp_path / "pred")
    result = evaluate(bench, pred, ("tgs", "refavs"))
    assert result["splits"] == ["test_s", "test_u", "test_n"]  # the papers' test splits, by default
    counts = bench.count_by_split()
    tgs = result["protocols"]["tgs"]["splits"]
    assert tgs["test_s"]["count"] == counts["test_s"] and tgs["test_s"]["missing"] == MISSING
    assert tgs["test_u"] == {"count": counts["test_u"], "missing": 0, "unscored": 0,
                             "J": pytest.approx(1.0, abs=1e-6), "F": pytest.approx(1.0, abs=1e-6)}
    assert tgs["test_n"]["S"] == 0.0 and "J" not in tgs["test_n"]
    assert tgs["test_s"]["J"] < 1.0  # the missing ones were scored as empty, not skipped
    refavs = result["protocols"]["refavs"]["splits"]
    assert refavs["test_s"]["missing"] == MISSING
    assert refavs["test_s"]["batches"] == -(-counts["test_s"] // 4)
    mean = result["protocols"]["tgs"]["mean"]
    assert mean["splits"] == ["test_s", "test_u"]
    assert mean["J"] == pytest.approx((tgs["test_s"]["J"] + tgs["test_u"]["J"]) / 2)

    records = [r for r in result["samples"] if r["protocol"] == "tgs" and r["split"] == "test_s"]
    by_uid = {r["uid"]: r for r in records}
    assert all(by_uid[u]["missing"] for u in skipped)
    sample = bench[skipped[0]]
    direct = TGSProtocol().score(sample.uid, sample.split, None, load_gt_tgs(sample.mask_paths), 10)
    assert by_uid[skipped[0]]["J"] == pytest.approx(direct.J) and by_uid[skipped[0]]["F"] == pytest.approx(direct.F)
    assert np.mean([r["J"] for r in records]) == pytest.approx(tgs["test_s"]["J"])


def test_evaluate_repeated_uid_tgs_last_row_refavs_every_row(synth, tmp_path):
    root, meta = synth
    rows = list(csv.reader(meta.open(newline="")))
    header, body = rows[0], rows[1:]
    first = next(r for r in body if r[2] == "test_s")
    other_fid = next(r[3] for r in body if r[0] == first[0] and r[3] != first[3])
    dup_meta = tmp_path / "dup.csv"
    with dup_meta.open("w", newline="") as fh:
        csv.writer(fh).writerows([header, *body, [first[0], first[1], "test_s", other_fid, "again"]])
    bench = ref_avs_bench(root, dup_meta, ["test_s"])
    pred = tmp_path / "pred"
    uid = first[1]
    masks = Masks(load_gt_tgs(bench[uid].mask_paths))  # matches the first row's fid
    write_prediction(pred, uid, masks, probs_format=None)
    result = evaluate(bench, pred, ("tgs", "refavs"))
    unique = len(set(bench.uids()))
    assert result["protocols"]["tgs"]["splits"]["test_s"]["count"] == unique
    assert result["protocols"]["refavs"]["splits"]["test_s"]["count"] == len(bench)
    tgs_rec = next(r for r in result["samples"] if r["protocol"] == "tgs" and r["uid"] == uid)
    assert tgs_rec["J"] < 0.99  # scored against the last row's (other) object
    refavs_recs = [r for r in result["samples"] if r["protocol"] == "refavs" and r["uid"] == uid]
    assert len(refavs_recs) == 2


def test_evaluate_in_memory_equals_folder(synth, tmp_path):
    root, meta = synth
    bench = ref_avs_bench(root, meta, ["test_u"])
    rng = np.random.default_rng(5)
    memory = {}
    for sample in bench:
        probs = rng.random((10, 40, 30)).astype(np.float32)
        memory[sample.uid] = Masks(probs > 0.7, probs)
        write_prediction(tmp_path, sample.uid, memory[sample.uid], probs_format="npy")
    protocols = (TGSProtocol(), RefAVSProtocol())
    a = evaluate(bench, memory, protocols)
    b = evaluate(bench, tmp_path, protocols)
    assert a["protocols"] == b["protocols"]


def test_save_metrics_writes_json_and_jsonl(synth, tmp_path):
    root, meta = synth
    bench = ref_avs_bench(root, meta, ["test_n"])
    result = evaluate(bench, {}, ("tgs",))
    metrics, samples = save_metrics(result, tmp_path / "out" / "metrics.json")
    data = json.loads(metrics.read_text())
    assert "samples" not in data and data["protocols"]["tgs"]["splits"]["test_n"]["missing"] == len(bench)
    assert samples.name == "metrics_samples.jsonl"
    lines = [json.loads(line) for line in samples.read_text().splitlines()]
    assert len(lines) == len(bench) and {"protocol", "uid", "split", "S", "missing"} <= set(lines[0])


def test_unknown_split_and_protocol_are_clear_errors(synth):
    from tgs.errors import DataError

    root, meta = synth
    bench = ref_avs_bench(root, meta)
    with pytest.raises(DataError, match="Did you mean 'test_s'"):
        evaluate(bench, {}, ("tgs",), ["test_ss"])
    with pytest.raises(ValueError, match="Did you mean 'refavs'"):
        evaluate(bench, {}, ("refav",))


def _cli() -> typer.Typer:
    from tgs.cli.main import build_app

    return build_app()


def test_cli_eval_both_protocols(synth, tmp_path):
    root, meta = synth
    bench = ref_avs_bench(root, meta)
    pred, _ = oracle_predictions(bench, tmp_path / "pred")
    out = tmp_path / "report" / "metrics.json"
    result = CliRunner().invoke(
        _cli(),
        ["eval", "--data", str(root), "--meta", str(meta), "--pred", str(pred), "--protocol", "both",
         "--split", "test_s", "--split", "test_n", "--out", str(out)],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert "protocol tgs" in result.output and "protocol refavs" in result.output
    assert "had no prediction and were scored as full masks on the null split" in " ".join(result.output.split())
    data = json.loads(out.read_text())
    assert data["splits"] == ["test_s", "test_n"] and set(data["protocols"]) == {"tgs", "refavs"}
    assert data["version"] and data["timestamp"]
    assert data["protocols"]["tgs"]["splits"]["test_s"]["missing"] == MISSING
    lines = (out.parent / "metrics_samples.jsonl").read_text().splitlines()
    assert len(lines) == 2 * sum(1 for s in bench if s.split in ("test_s", "test_n"))


def test_cli_eval_bad_paths_exit_with_message(synth, tmp_path):
    root, meta = synth
    result = CliRunner().invoke(
        _cli(), ["eval", "--data", str(root), "--meta", str(meta), "--pred", str(tmp_path / "none")]
    )
    assert result.exit_code == 1
    assert "predictions folder not found" in result.output


def test_missing_null_prediction_is_never_rewarded(tmp_path: Path) -> None:
    """A failed null sample must not score the perfect S = 0 an empty mask would get."""
    from tgs.data.benchmark import Benchmark
    from tgs.data.synth import generate

    meta = generate(tmp_path / "bench", videos=3, seed=1)
    bench = Benchmark(tmp_path / "bench", meta, splits="test_n")
    assert len(bench) > 0
    worst = evaluate(bench, {}, ("tgs", "refavs"))
    empty = evaluate(bench, {}, ("tgs",), missing="empty")
    assert worst["missing_policy"] == "worst"
    assert worst["protocols"]["tgs"]["splits"]["test_n"]["S"] == pytest.approx(1.0)
    assert worst["protocols"]["refavs"]["splits"]["test_n"]["S"] == pytest.approx(1.0)
    assert worst["protocols"]["tgs"]["splits"]["test_n"]["missing"] == len(bench)
    assert empty["protocols"]["tgs"]["splits"]["test_n"]["S"] == 0.0
    with pytest.raises(ValueError, match="missing"):
        evaluate(bench, {}, ("tgs",), missing="skip")


def test_unreadable_ground_truth_is_reported_not_fatal(tmp_path: Path) -> None:
    from tgs.data.benchmark import Benchmark

    meta = generate(tmp_path / "bench", videos=3, seed=2)
    bench = Benchmark(tmp_path / "bench", meta, splits="test_s")
    samples = list(bench)
    victim = samples[0]
    victim.mask_paths[3].unlink()
    result = evaluate(bench, {}, ("tgs",))
    stats = result["protocols"]["tgs"]["splits"]["test_s"]
    broken = {s.uid for s in samples if s.mask_paths[3] == victim.mask_paths[3]}
    assert stats["unscored"] == len(broken)
    assert stats["count"] == len({s.uid for s in samples}) - len(broken)
    assert {e["uid"] for e in result["unscored"]} == broken
    assert str(victim.mask_paths[3]) in result["unscored"][0]["error"]
