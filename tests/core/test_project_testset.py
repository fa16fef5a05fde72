"""benchmarks/project_testset.py: the test-set projection from gpu_all.sh's reports, hand-computed."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "project_testset.py"


def _module():
    spec = importlib.util.spec_from_file_location("project_testset", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def test_projection_uses_today_and_best_rows(tmp_path: Path) -> None:
    (tmp_path / "video_sharing.json").write_text(json.dumps({"reports": [
        {"dtype": "bf16", "frames_per_s_unshared": 7.0, "frames_per_s_shared": 35.0}]}))
    (tmp_path / "think_decode.json").write_text(json.dumps({"results": [
        {"decode": "dynamic", "batch": 8, "samples_per_s_at_256": 4.0, "same_answers": True},
        {"decode": "static+compile", "batch": 32, "samples_per_s_at_256": 20.0, "same_answers": True},
        {"decode": "static+compile", "batch": 64, "samples_per_s_at_256": 99.0, "same_answers": False},
    ]}))
    result = _module().project(tmp_path)
    n = 4972
    assert result["projected_minutes"]["today"] == pytest.approx((n / 4.0 + n * 10 / 7.0) / 60)
    assert result["projected_minutes"]["new"] == pytest.approx((n / 20.0 + n * 10 / 35.0) / 60)
    assert result["think_samples_per_s"]["new_mode"] == "static+compile, batch 32"  # answers must agree
