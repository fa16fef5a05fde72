"""``tgs eval`` of a run directory scores the splits the run was made on, and never overwrites the
run's metrics with splits it does not hold (their samples were never run: scoring them would count
each as a failure and lower the mean)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from gs_fakes import FakeGrounder, FakeSegmenter
from typer.testing import CliRunner

from tgs.cli.main import build_app
from tgs.data.synth import generate
from tgs.presets import PAPER
from tgs.runners.ground_segment import GroundSegmentConfig, run_ground_segment


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(benchmark root with test_s, test_u and test_n rows, a run made on test_s only)."""
    root = tmp_path_factory.mktemp("bench")
    generate(root, videos=4, seed=0, size=(64, 48))
    out = tmp_path_factory.mktemp("runs") / "run"
    config = GroundSegmentConfig(data=root, meta=root / "metadata.csv", out=out, preset=PAPER, direct=True,
                                 splits=("test_s",))  # fmt: skip
    run_ground_segment(config, stages=(FakeGrounder(), FakeSegmenter()))
    return root, out


def test_eval_without_split_scores_the_runs_own_splits(run: tuple[Path, Path]) -> None:
    root, out = run
    before = json.loads((out / "metrics.json").read_text())
    assert list(before["protocols"]["tgs"]["splits"]) == ["test_s"]
    result = CliRunner().invoke(build_app(), ["eval", "--data", str(root), "--pred", str(out)])
    assert result.exit_code == 0, result.output
    after = json.loads((out / "metrics.json").read_text())
    assert list(after["protocols"]["tgs"]["splits"]) == ["test_s"]
    assert after["protocols"] == before["protocols"]  # the same samples, the same scores


def test_a_split_the_run_lacks_is_a_clear_error_and_the_metrics_stay(run: tuple[Path, Path]) -> None:
    root, out = run
    saved = (out / "metrics.json").read_bytes()
    args = ["eval", "--data", str(root), "--pred", str(out), "--split", "test_s", "--split", "test_u"]
    result = CliRunner().invoke(build_app(), args)
    output = " ".join(result.output.split())
    assert result.exit_code == 1, output
    assert "test_u" in output and "test_s" in output and "omit --split" in output, output
    assert "unexpected" not in output.lower(), output
    assert (out / "metrics.json").read_bytes() == saved
