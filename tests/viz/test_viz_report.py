"""The HTML report: values from metrics.json, escaped untrusted text, embedded images only.

Run directories are built here with RunStore (masks + samples/thoughts records) on a
synthetic benchmark and evaluated with the real ``tgs.eval``, so the test does not
depend on the models.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import re
from importlib import resources
from pathlib import Path

import jinja2
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from tgs.cli.main import build_app
from tgs.data.benchmark import Benchmark
from tgs.data.synth import generate
from tgs.eval import evaluate, save_metrics
from tgs.report import build_report, load_run
from tgs.report.html import _environment, class_means, rank_samples
from tgs.report.run_data import SampleScore
from tgs.run_store import RunStore
from tgs.think.base import failed_record, thought_record
from tgs.think.parser import parse_answer
from tgs.types import Masks

EVIL = '<script>alert("x")</script>'
ESCAPED_EVIL = "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;"  # jinja2's autoescape (markupsafe) form
SPLITS = ("test_s", "test_u", "test_n")


@pytest.fixture(scope="module")
def bench_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    meta = generate(root, videos=4, seed=0, size=(64, 48))
    return root, meta


def _prediction(gt: np.ndarray, kind: int) -> np.ndarray:
    """kind 0: the ground truth (J = 1); 1: empty (J = 0); 2: the ground truth's top half."""
    if kind == 0:
        return gt.copy()
    if kind == 1:
        return np.zeros_like(gt)
    half = gt.copy()
    half[:, gt.shape[1] // 2 :] = False
    return half


def _box(mask: np.ndarray) -> list[float] | None:
    ys, xs = np.nonzero(mask)
    return None if xs.size == 0 else [float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())]


def make_run(run_dir: Path, root: Path, meta: Path, *, models: str = "tiny", object_tag: str = "s_object",
             fail_uid: str | None = None, with_metrics: bool = True) -> Path:
    bench = Benchmark(root, meta, SPLITS)
    manifest = {
        "kind": "ground-segment",
        "preset": {"name": "best", "object_tag": object_tag},
        "thoughts": {"mode": "file", "sha256": "0" * 64},
        "thoughts_path": str(run_dir / "thoughts.jsonl"),
        "data": {"benchmark": "refavs", "root": str(root), "splits": list(SPLITS),
                 "meta_sha256": hashlib.sha256(meta.read_bytes()).hexdigest()},
        "models": {"set": models},
        "versions": {"tgs": "test"},
    }
    with RunStore.open(run_dir, manifest) as store:
        for index, sample in enumerate(bench):
            raw = f"<think>I hear {EVIL} & a sound</think><f_object>the {index}</f_object><s_object>obj {index}</s_object>"
            store.append("thoughts", thought_record(parse_answer(sample.uid, raw), sample.expression))
            if sample.uid == fail_uid:
                store.append("samples", {"uid": sample.uid, "status": "failed", "error": f"boom {EVIL}",
                                         "error_kind": "MediaError"})
                continue
            gt = np.zeros((10, 48, 64), bool) if sample.is_null else sample.load_gt()
            pred = _prediction(gt, index % 3) if not sample.is_null else gt.copy()
            if sample.is_null:
                pred[:, :10, :10] = True  # a non-empty answer to a null reference: S > 0
            store.save_masks(sample.uid, Masks(pred, pred.astype(np.float32)))
            store.append("samples", {
                "uid": sample.uid, "status": "ok", "split": sample.split, "vid": sample.vid,
                "expression": f"{EVIL} {sample.expression}", "object_text": f"obj {index}", "object_source": "tag",
                "frames": [{"box": _box(m), "score": 0.9, "query_index": 0, "candidates": 1} for m in pred],
                "mask_size": [48, 64],
            })
        store.append("thoughts", failed_record("ghost_uid_1", "x", f"decode error {EVIL}"))
    if with_metrics:
        save_metrics(evaluate(bench, run_dir, ["tgs", "refavs"]), run_dir / "metrics.json")
    return run_dir


@pytest.fixture(scope="module")
def run_dir(bench_files, tmp_path_factory):
    root, meta = bench_files
    fail = Benchmark(root, meta, SPLITS).uids()[1]
    return make_run(tmp_path_factory.mktemp("run") / "run_s", root, meta, fail_uid=fail)


@pytest.fixture(scope="module")
def report_html(run_dir):
    path = build_report(run_dir, top_k=2)
    assert path == run_dir / "report.html"
    return path.read_text(encoding="utf-8")


def test_table_values_are_those_of_metrics_json(run_dir, report_html):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for protocol, block in metrics["protocols"].items():
        assert f"protocol {protocol}" in report_html
        for split, stats in block["splits"].items():
            for key in ("J", "F", "S"):
                if key in stats:
                    assert f">{stats[key]:.4f}<" in report_html, (protocol, split, key)
        assert f">{block['mean']['J']:.4f}<" in report_html
    # a failed sample has no prediction: it is counted as missing, shown in red
    assert metrics["protocols"]["tgs"]["splits"]["test_s"]["missing"] == 1
    assert '<tr class="bad"><td>test_s</td>' in report_html


def test_untrusted_text_is_escaped(report_html):
    assert "<script" not in report_html.lower()
    assert ESCAPED_EVIL in report_html  # expression, reasoning and errors all carry it
    assert f"boom {ESCAPED_EVIL}" in report_html
    assert f"decode error {ESCAPED_EVIL}" in report_html
    assert f"I hear {ESCAPED_EVIL} &amp; a sound" in report_html


def test_escaped_form_reads_back_as_the_text():
    assert html.unescape(ESCAPED_EVIL) == EVIL


def test_templates_are_package_data_and_autoescape_values():
    """The page comes from jinja2 templates shipped in the package; a value is escaped by the environment."""
    templates = resources.files("tgs.report") / "templates"
    assert {"report.html", "_macros.html", "report.css"} <= {entry.name for entry in templates.iterdir()}
    environment = _environment()
    assert environment.autoescape is True
    card = environment.get_template("_macros.html").module.card
    page = str(card({"rank": 1, "uid": "u<1>", "metrics": [("J", "0.500")], "rows": [("expression", EVIL)],
                     "reasoning": EVIL, "strip_uri": None, "notes": [EVIL]}))
    assert "<script" not in page and page.count(ESCAPED_EVIL) == 3 and "u&lt;1&gt;" in page
    assert page.startswith('<div class="card"><h3>1. u&lt;1&gt; <span class="sub">J 0.500</span></h3>')
    with pytest.raises(jinja2.UndefinedError):  # a value the template needs and the code forgot is an error
        environment.get_template("report.html").render(title="t")


def test_page_is_self_contained(report_html):
    assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/|url\(|@import", report_html, re.IGNORECASE)
    for attr in re.findall(r'\b(?:src|href)\s*=\s*"([^"]*)"', report_html):
        assert attr.startswith("data:image/"), attr
    assert report_html.count('src="data:image/png;base64,') == 2  # J histograms, J by class


def test_best_and_worst_cards_with_strips(run_dir, report_html):
    strips = re.findall(r'src="data:image/jpeg;base64,([^"]+)"', report_html)
    # best 2 + worst 2 by J, and the null sample(s) ranked by S
    nulls = sum(1 for r in load_run(run_dir).samples.values() if r["uid"].startswith("null_"))
    assert len(strips) == 4 + min(2, nulls)
    with Image.open(io.BytesIO(base64.b64decode(strips[0]))) as image:
        assert image.height == 96 and image.width > 96 * 5
    # the cards are the extremes of the per-sample J that tgs eval wrote, in order
    records = [json.loads(line) for line in (run_dir / "metrics_samples.jsonl").read_text().splitlines()]
    scored = sorted((-r["J"], r["uid"]) for r in records if r["protocol"] == "tgs" and "J" in r and not r["missing"])
    best_uids = [uid for _, uid in scored[:2]]
    worst_uids = [uid for _, uid in scored[::-1][:2]]
    cards = re.findall(r'<div class="card"><h3>\d+\. ([^ <]+) ', report_html)
    assert cards[:4] == best_uids + worst_uids
    best, worst = report_html.index("Best 2 by J"), report_html.index("Worst 2 by J")
    assert f"J {-scored[0][0]:.3f}" in report_html[best:worst]
    assert f"J {-scored[-1][0]:.3f}" in report_html[worst:]
    assert "tiny untrained models" in report_html
    assert "obj " in report_html and "reasoning" in report_html


def test_failures_table_lists_both_stages(run_dir, report_html):
    failures = {(f.stage, f.kind) for f in load_run(run_dir).failures}
    assert failures == {("ground-segment", "MediaError"), ("think", "think")}
    assert "Failures (2)" in report_html and "ghost_uid_1" in report_html


def test_ranking_and_class_means_by_hand():
    scores = [
        SampleScore("v_dog_1", "test_s", 0.5, 0.5, None, False),
        SampleScore("v_dog_2", "test_s", 0.9, 0.9, None, False),
        SampleScore("v_cat_1", "test_u", 0.1, 0.1, None, False),
        SampleScore("v_cat_2", "test_u", 0.0, 0.0, None, True),  # missing: never ranked
        SampleScore("null_c-v_null_1", "test_n", None, None, 0.3, False),
    ]
    best, worst = rank_samples(scores, 2)
    assert [s.uid for s in best] == ["v_dog_2", "v_dog_1"]
    assert [s.uid for s in worst] == ["v_cat_1"]
    assert class_means(scores) == [("dog", pytest.approx(0.7), 2), ("cat", pytest.approx(0.05), 2)]


def test_report_without_metrics_or_benchmark(bench_files, tmp_path):
    root, meta = bench_files
    run = make_run(tmp_path / "run_plain", root, meta, models="real", with_metrics=False)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["data"]["root"] = str(tmp_path / "gone")
    (run / "manifest.json").write_text(json.dumps(manifest))
    html_text = build_report(run, out=tmp_path / "r.html").read_text()
    assert "No metrics" in html_text and "tiny untrained models" not in html_text
    assert "not readable" in html_text  # the missing benchmark is a note, not a crash
    assert "data:image/" not in html_text  # nothing ranked, nothing plotted


def test_compare_f_object_with_s_object(bench_files, run_dir, tmp_path):
    root, meta = bench_files
    other = make_run(tmp_path / "run_f", root, meta, object_tag="f_object")
    html_text = build_report(run_dir, out=tmp_path / "c.html", top_k=0, compare=[other]).read_text()
    assert "<h2>f_object vs s_object</h2>" in html_text
    assert "run_f (f_object)" in html_text and "run_s (s_object)" in html_text
    assert html_text.count('src="data:image/png;base64,') == 3  # histograms, classes, comparison
    assert "data:image/jpeg" not in html_text  # top_k=0


def test_cli_report(run_dir, tmp_path):
    runner = CliRunner()
    out = tmp_path / "cli.html"
    result = runner.invoke(build_app(), ["report", str(run_dir), "--out", str(out), "--top-k", "1",
                                         "--protocol", "refavs"])
    assert result.exit_code == 0, result.output
    assert out.is_file() and "ranked by J under protocol refavs" in out.read_text()
    bad = runner.invoke(build_app(), ["report", str(run_dir), "--out", str(out), "--protocol", "nope"])
    assert bad.exit_code == 1 and "available: tgs, refavs" in bad.output
    missing = runner.invoke(build_app(), ["report", str(tmp_path / "nothing")])
    assert missing.exit_code == 1 and "not a run directory" in missing.output


def test_thoughts_come_from_the_file_the_manifest_names(bench_files, tmp_path):
    root, meta = bench_files
    uid = Benchmark(root, meta, SPLITS).uids()[0]
    thoughts = tmp_path / "inference_results.jsonl"  # the original format: uid, ref, predict
    answer = "<think>because <i>loud</i></think><f_object>a red circle</f_object><s_object>circle</s_object>"
    thoughts.write_text(json.dumps({"uid": uid, "ref": "x", "predict": answer}) + "\n")
    manifest = {"kind": "ground-segment", "thoughts": {"mode": "file", "sha256": "0" * 64}, "thoughts_path": str(thoughts)}
    RunStore.open(tmp_path / "run", manifest).close()
    run = load_run(tmp_path / "run")
    assert run.thoughts[uid].reasoning == "because <i>loud</i>" and run.thoughts[uid].s_object == "circle"
    thoughts.unlink()
    assert any("is gone" in note for note in load_run(tmp_path / "run").notes)


def test_strip_scales_masks_stored_at_another_resolution(bench_files, tmp_path):
    from tgs.report.strips import open_benchmark, sample_strip

    root, meta = bench_files
    bench = Benchmark(root, meta, SPLITS)
    sample = next(s for s in bench if not s.is_null)
    manifest = {"kind": "ground-segment", "data": {"benchmark": "refavs", "root": str(root)}}
    with RunStore.open(tmp_path / "run", manifest) as store:
        store.save_masks(sample.uid, Masks(np.ones((10, 24, 32), bool)))  # half the 48x64 frames
    run = load_run(tmp_path / "run")
    opened, notes = open_benchmark(run.manifest)
    assert opened is not None and notes == []
    strip, strip_notes = sample_strip(run, sample.uid, opened, max_frames=3, thumb_height=48)
    assert strip_notes == []
    assert strip.shape == (48, 3 * 64 + 2 * 4, 3)
    # every thumbnail pixel is blended with red (the whole frame is predicted): red dominates
    thumb = strip[:, :64].astype(int)
    assert (thumb[..., 0] > thumb[..., 2]).mean() > 0.9
