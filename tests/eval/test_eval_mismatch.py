"""``tgs eval`` against the wrong benchmark: refused, and the run's metrics.json is kept."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from tgs.cli.main import build_app
from tgs.data.benchmark import Benchmark
from tgs.data.synth import generate
from tgs.errors import DataError
from tgs.eval import evaluate, write_prediction
from tgs.types import Masks


@pytest.fixture(scope="module")
def two_benches(tmp_path_factory):
    a, b = tmp_path_factory.mktemp("a"), tmp_path_factory.mktemp("b")
    return (a, generate(a, 1, 0, (64, 48))), (b, generate(b, 1, 7, (64, 48)))


def _predict_all(bench: Benchmark, out):
    for sample in bench:
        write_prediction(out, sample.uid, Masks(masks=np.zeros((10, 48, 64), bool)))


def test_eval_refuses_predictions_of_another_benchmark_and_keeps_metrics(two_benches, tmp_path):
    (root_a, meta_a), (root_b, meta_b) = two_benches
    pred = tmp_path / "pred"
    bench_a = Benchmark(root_a, meta_a)
    _predict_all(bench_a, pred)
    splits = sorted({s.split for s in bench_a})
    evaluate(bench_a, pred, splits=splits)  # the right benchmark scores
    (pred / "metrics.json").write_text('{"mine": 1}')
    with pytest.raises(DataError, match="none of the"):
        evaluate(Benchmark(root_b, meta_b), pred, splits=sorted({s.split for s in Benchmark(root_b, meta_b)}))
    result = CliRunner().invoke(
        build_app(), ["eval", "--data", str(root_b), "--meta", str(meta_b), "--pred", str(pred), "--split", "train"]
    )
    assert result.exit_code == 1 and "none of the" in result.output
    assert json.loads((pred / "metrics.json").read_text()) == {"mine": 1}
