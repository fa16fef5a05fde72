"""The Ray executor gives what the local one gives, and survives its workers dying.

One local Ray instance (2 CPUs) serves the whole module. Every worker runs torch with one
thread, as this process does (tests/conftest.py), so floating-point results are bitwise
comparable across processes.
"""

from __future__ import annotations

import csv
import os
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from ray import cloudpickle  # noqa: E402

from tgs.core.settings import Settings  # noqa: E402
from tgs.data.synth import generate  # noqa: E402
from tgs.presets import BEST, PAPER  # noqa: E402
from tgs.run_store import RunStore  # noqa: E402
from tgs.runners.executor import make_executor  # noqa: E402
from tgs.runners.ground_segment import GroundSegmentConfig, run_ground_segment  # noqa: E402
from tgs.runners.ray_executor import RayExecutor  # noqa: E402
from tgs.runners.think import ThinkConfig, run_think  # noqa: E402
from tgs.think.registry import build_thinker  # noqa: E402

pytestmark = pytest.mark.slow

SPLITS = ("test_s", "test_n")
SMALL = (
    "syn0-0002_0_10000_yellow-triangle_1",
    "syn0-0002_0_10000_red-circle_1",
    "syn0-0002_0_10000_blue-hexagon_2",
    "null_m-syn0-0002_0_10000_null_1",
)
# Thinker hooks below are pickled by value into the Ray workers, which cannot import this file.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory):
    """A 2-CPU local Ray instance whose workers share this session's tiny-model cache."""
    home = os.environ.get("TGS_HOME") or str(tmp_path_factory.getbasetemp() / "tgs_home")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"TGS_HOME": home, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}},
    )
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 synthetic videos: 9 samples in test_s + test_n; ``small.csv`` holds 4 of them."""
    root = tmp_path_factory.mktemp("synth_ray")
    meta = generate(root, videos=3, seed=0, size=(64, 48))
    with meta.open(newline="") as fh:
        rows = list(csv.reader(fh))
    with (root / "small.csv").open("w", newline="") as fh:
        csv.writer(fh).writerows([rows[0], *[row for row in rows[1:] if row[1] in SMALL]])
    return root


# --------------------------------------------------------------------------- think


def _direct_thinker():
    return build_thinker("direct")


class _CrashOnce:
    """The direct thinker, whose process dies (like an OOM kill) at ``uid`` while ``marker`` is absent."""

    name = "direct"

    def __init__(self, uid: str, marker: Path, always: bool = False) -> None:
        self.inner, self.uid, self.marker, self.always = build_thinker("direct"), uid, marker, always

    def think(self, items):
        for query, _ in items:
            if query.uid == self.uid and (self.always or not self.marker.exists()):
                self.marker.write_text(str(os.getpid()))
                os._exit(1)
        return self.inner.think(items)


def _think(bench: Path, out: Path, executor=None, factory=_direct_thinker, batch_size: int = 2):
    config = ThinkConfig(data=bench, meta=bench / "metadata.csv", out=out, splits=SPLITS, thinker="direct",
                         settings=Settings.tiny(), batch_size=batch_size)
    return run_think(config, thinker_factory=factory, executor=executor)


def _sorted_lines(path: Path) -> list[bytes]:
    return sorted(path.read_bytes().splitlines(keepends=True))


@pytest.fixture(scope="module")
def local_thoughts(bench: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    outcome = _think(bench, tmp_path_factory.mktemp("think") / "local")
    assert outcome.summary.succeeded == 9
    return outcome.thoughts_path


@pytest.mark.parametrize("workers", [1, 2])
def test_think_on_ray_equals_local(ray_cluster, bench: Path, local_thoughts: Path, tmp_path: Path,
                                   workers: int) -> None:
    executor = RayExecutor(workers=workers)
    outcome = _think(bench, tmp_path / "ray", executor)
    assert executor.stats.workers == workers and executor.stats.restarts == 0
    assert outcome.summary.succeeded == 9 and outcome.summary.failed == 0
    assert _sorted_lines(outcome.thoughts_path) == _sorted_lines(local_thoughts)


def test_killed_worker_is_replaced_and_nothing_lost_or_duplicated(
    ray_cluster, bench: Path, local_thoughts: Path, tmp_path: Path
) -> None:
    victim = "syn0-0002_0_10000_red-circle_1"
    marker = tmp_path / "died"
    executor = make_executor("ray", workers=2)
    outcome = _think(bench, tmp_path / "ray", executor, lambda: _CrashOnce(victim, marker))
    assert marker.exists()  # a worker really died on the victim
    assert executor.stats.restarts == 1 and executor.stats.requeued_batches >= 1
    assert outcome.summary.succeeded == 9 and outcome.summary.failed == 0
    lines = outcome.thoughts_path.read_bytes().splitlines(keepends=True)
    assert len(lines) == 9  # each uid committed once
    assert sorted(lines) == _sorted_lines(local_thoughts)


def test_a_sample_that_always_kills_its_worker_is_failed_alone(
    ray_cluster, bench: Path, local_thoughts: Path, tmp_path: Path
) -> None:
    """Its batch is retried, then split; the sample is recorded as a worker crash and the run completes."""
    victim = "syn0-0002_0_10000_red-circle_1"
    executor = RayExecutor(workers=1, max_attempts=1)
    outcome = _think(bench, tmp_path / "ray", executor, lambda: _CrashOnce(victim, tmp_path / "m", True))
    summary = outcome.summary
    assert summary.failures_by_kind() == {"worker_crash": 1} and summary.succeeded == 8
    assert executor.stats.crashed_samples == 1 and executor.stats.restarts == 2  # the batch, then the sample alone
    records = RunStore(outcome.run_dir).records("thoughts")
    assert sorted(r["uid"] for r in records) == sorted(RunStore(local_thoughts.parent).latest("thoughts"))
    failed = next(r for r in records if r["uid"] == victim)
    assert failed["status"] == "failed" and failed["error_kind"] == "worker_crash"
    assert "died 1 times while processing this sample" in failed["error"]


def test_a_worker_that_cannot_start_stops_the_run_with_its_error(ray_cluster, bench: Path, tmp_path: Path) -> None:
    def broken():
        raise FileNotFoundError("no weights in /models/x")

    with pytest.raises(Exception, match=r"a Ray worker could not start: no weights in /models/x") as info:
        _think(bench, tmp_path / "ray", RayExecutor(workers=2), broken)
    assert getattr(info.value, "kind", None) == "FileNotFoundError"
    assert RunStore(tmp_path / "ray").records("thoughts") == []


def test_more_workers_than_the_cluster_holds_is_an_error(ray_cluster, bench: Path, tmp_path: Path) -> None:
    with pytest.raises(Exception, match=r"cannot hold 3 worker\(s\) needing CPU=1 each"):
        _think(bench, tmp_path / "ray", RayExecutor(workers=3))
    with pytest.raises(Exception, match=r"cannot hold .* needing GPU=1"):
        _think(bench, tmp_path / "ray2", RayExecutor(resources={"num_gpus": 1}))


# --------------------------------------------------------------------------- ground-segment


def _gs_outputs(run: Path) -> tuple[dict, list[bytes], dict]:
    store = RunStore(run)
    records = {r["uid"]: {k: v for k, v in r.items() if k != "timings"} for r in store.records("samples")}
    masks = {uid: store.load_masks(uid) for uid in records}
    return records, _sorted_lines(run / "boxes.jsonl"), masks


@pytest.mark.parametrize(("preset", "worker_counts"), [(BEST, (1, 2)), (PAPER, (2,))], ids=["best", "paper"])
def test_ground_segment_on_ray_equals_local(ray_cluster, bench: Path, tmp_path: Path, preset, worker_counts) -> None:
    def config(out: Path, share: bool = True) -> GroundSegmentConfig:
        return GroundSegmentConfig(data=bench, meta=bench / "small.csv", out=out, direct=True,
                                   preset=replace(preset, share_across_expressions=share),
                                   splits=SPLITS, settings=Settings.tiny(), evaluate=False)

    # the reference: local, one expression at a time; Ray shares each video's work in its worker
    local_run = run_ground_segment(config(tmp_path / "local", share=False)).run_dir
    assert RunStore(local_run).manifest()["fast_paths"] == {"ran": {}, "fallbacks": []}  # the plain path only
    local = _gs_outputs(local_run)
    assert sorted(local[0]) == sorted(SMALL) and all(r["status"] == "ok" for r in local[0].values())
    assert sum(int(m.masks.sum()) for m in local[2].values()) > 0  # something was segmented
    for workers in worker_counts:
        executor = RayExecutor(workers=workers)
        outcome = run_ground_segment(config(tmp_path / f"ray{workers}"), executor=executor)
        assert executor.stats.workers == workers and outcome.summary.succeeded == len(SMALL)
        # counted in the workers, carried to the driver's manifest: the shared path ran once, for the
        # one video with 3 expressions (the null clip has 1), with both shared stage methods, no fallback
        assert RunStore(outcome.run_dir).manifest()["fast_paths"] == {
            "ran": {"ground.many": 1, "ground_segment.shared": 1, "segment.many": 1}, "fallbacks": []}
        records, boxes, masks = _gs_outputs(outcome.run_dir)
        assert records == local[0]
        assert boxes == local[1]
        for uid, expected in local[2].items():
            np.testing.assert_array_equal(masks[uid].masks, expected.masks)
            np.testing.assert_array_equal(masks[uid].probs, expected.probs)
