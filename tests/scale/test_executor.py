"""The executor layer without Ray: choosing an executor, the driver's commit order, crash
recovery of a run directory, errors that cross process boundaries."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from tgs.errors import MediaError
from tgs.run_store import RunStore
from tgs.runners.executor import (
    LocalExecutor,
    SampleError,
    SampleOutput,
    commit_outcome,
    make_executor,
    parse_resources,
    portable_error,
    recover_run,
    run_stage,
)
from tgs.runners.local import RunSummary
from tgs.types import Masks


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, {}),
        ("", {}),
        ("gpu=1", {"num_gpus": 1.0}),
        ("gpu=0.5, cpu=2", {"num_gpus": 0.5, "num_cpus": 2.0}),
        ("CPUS=4,accelerator_type_a100=1", {"num_cpus": 4.0, "accelerator_type_a100": 1.0}),
    ],
)
def test_parse_resources(text: str | None, expected: dict[str, float]) -> None:
    assert parse_resources(text) == expected


@pytest.mark.parametrize("text", ["gpu", "gpu=", "gpu=-1", "=2", "gpu=one", "gpu=1,gpu=2"])
def test_parse_resources_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="resources"):
        parse_resources(text)


def test_make_executor_local_and_its_limits() -> None:
    assert isinstance(make_executor("local"), LocalExecutor)
    assert isinstance(make_executor("LOCAL", workers=1), LocalExecutor)
    with pytest.raises(ValueError, match="takes no address, workers"):
        make_executor("local", address="auto", workers=2)
    with pytest.raises(ValueError, match="takes no resources"):
        make_executor("local", resources="gpu=1")
    with pytest.raises(ValueError, match="unknown executor 'dask'; available: local, ray"):
        make_executor("dask")


def test_sample_error_keeps_kind_and_message_through_pickle() -> None:
    original = MediaError("frame 5.jpg cannot be decoded", path="/data/x/5.jpg", fix="check it")
    carried = pickle.loads(pickle.dumps(portable_error(original)))
    assert isinstance(carried, SampleError)
    assert str(carried) == str(original) and carried.kind == "media" and carried.original_type == "MediaError"

    class NeedsTwo(Exception):  # a library error that does not survive pickling on its own
        def __init__(self, a: str, b: str) -> None:
            super().__init__(f"{a}/{b}")

    carried = pickle.loads(pickle.dumps(portable_error(NeedsTwo("x", "y"))))
    assert str(carried) == "x/y" and carried.kind == "NeedsTwo"


class _Worker:
    """Doubles numbers; masks of ones; a boxes line per item; 3 fails."""

    def __init__(self) -> None:
        self.built = True

    def process(self, batch: list[int]) -> list:
        out: list = []
        for n in batch:
            if n == 3:
                out.append(MediaError(f"item {n} is broken", path=f"/data/{n}"))
                continue
            masks = Masks(masks=np.full((1, 2, 3), n % 2 == 0), probs=np.full((1, 2, 3), n / 10, np.float32))
            record = {"value": 2 * n, "timings": {"work": 0.0}}
            out.append(SampleOutput(record=record, masks=masks, streams={"boxes": [{"uid": f"u{n}", "n": n}]}))
        return out


def _run(store: RunStore, items: list[int], **kw) -> object:
    return run_stage(items, _Worker, store=store, stream="samples", extra_streams=("boxes",),
                     uid_of=lambda n: f"u{n}", **kw)


def test_run_stage_commits_masks_extras_then_record(tmp_path: Path) -> None:
    store = RunStore.open(tmp_path / "run", {"kind": "test"})
    summary = _run(store, [1, 2, 3, 4], batch_size=3)
    store.close()
    assert summary.succeeded == 3 and summary.failures_by_kind() == {"media": 1}
    records = store.records("samples")
    assert [r["uid"] for r in records] == ["u1", "u2", "u3", "u4"]
    assert records[1]["value"] == 4 and records[1]["status"] == "ok"
    assert set(records[1]["timings"]) == {"work", "save"} and records[1]["timings"]["save"] >= 0
    assert records[2] == {"uid": "u3", "status": "failed", "error": "item 3 is broken (file: /data/3)",
                          "error_kind": "media"}
    assert [r["n"] for r in store.records("boxes")] == [1, 2, 4]
    np.testing.assert_array_equal(store.load_masks("u2").masks, np.ones((1, 2, 3), bool))
    np.testing.assert_array_equal(store.load_masks("u1").probs, np.full((1, 2, 3), 0.1, np.float32))


def test_nothing_to_do_builds_no_worker(tmp_path: Path) -> None:
    store = RunStore.open(tmp_path / "run", {"kind": "test"})
    _run(store, [1, 2])

    def no_worker() -> _Worker:
        raise AssertionError("a worker was built with nothing to do")

    summary = run_stage([1, 2], no_worker, store=store, stream="samples", uid_of=lambda n: f"u{n}")
    store.close()
    assert summary.skipped == 2 and summary.processed == 0


def test_recover_run_cuts_what_a_kill_left(tmp_path: Path) -> None:
    """A run killed while committing u5: its mask write, boxes line and half its record are undone."""
    run = tmp_path / "run"
    store = RunStore.open(run, {"kind": "test"})
    _run(store, [1, 2, 3, 4])
    store.close()
    reference = {name: (run / f"{name}.jsonl").read_bytes() for name in ("samples", "boxes")}
    # u3 failed: a retry's boxes line followed by a kill must go as well
    (run / "boxes.jsonl").open("a").write(json.dumps({"uid": "u3", "n": 3}) + "\n")
    (run / "boxes.jsonl").open("a").write(json.dumps({"uid": "u5", "n": 5}) + "\n" + '{"uid": "u6", "n"')
    (run / "samples.jsonl").open("a").write('{"uid": "u5", "status": "ok", "val')
    (run / "masks" / "u5.npz.tmp").write_bytes(b"half a zip")
    store = RunStore(run)
    recover_run(store, "samples", ("boxes",))
    assert (run / "boxes.jsonl").read_bytes() == reference["boxes"]
    assert not list((run / "masks").glob("*.tmp"))
    # the torn record is cut by the store on the next append; the rerun then matches a clean one
    summary = _run(store, [1, 2, 3, 4, 5])
    store.close()
    assert summary.skipped == 3 and [f.uid for f in summary.failures] == ["u3"]
    lines = (run / "samples.jsonl").read_bytes()
    assert lines.startswith(reference["samples"]) and lines.count(b"\n") == 6
    assert [r["n"] for r in store.records("boxes")] == [1, 2, 4, 5]


def test_an_executor_returning_a_batch_twice_is_refused(tmp_path: Path) -> None:
    class Twice(LocalExecutor):
        name = "twice"

        def map(self, factory, batches):
            for pair in super().map(factory, batches):
                yield pair
                yield pair

    store = RunStore.open(tmp_path / "run", {"kind": "test"})
    with pytest.raises(RuntimeError, match="returned u1 twice"):
        _run(store, [1], executor=Twice())
    store.close()


def test_encoded_output_commits_the_same_masks(tmp_path: Path) -> None:
    """What a Ray worker sends (masks as file bytes) gives the file the driver would write."""
    masks = Masks(masks=np.eye(5, 7, dtype=bool)[None].repeat(3, 0), probs=np.linspace(0, 1, 105, dtype=np.float32)
                  .reshape(3, 5, 7))
    output = SampleOutput(record={"timings": {}}, masks=masks, streams={"boxes": [{"uid": "a"}]})
    encoded = output.encoded()
    assert encoded.masks is None and isinstance(encoded.mask_file, bytes) and encoded.streams == output.streams
    assert SampleOutput(record={}).encoded().mask_file is None
    with pytest.raises(ValueError, match="not both"):
        SampleOutput(record={}, masks=masks, mask_file=b"x")
    store = RunStore.open(tmp_path / "run", {"kind": "test"})
    summary = RunSummary()
    commit_outcome(store, "samples", "a", encoded, summary)
    commit_outcome(store, "samples", "b", output, summary)
    store.close()
    for uid in ("a", "b"):
        loaded = store.load_masks(uid)
        np.testing.assert_array_equal(loaded.masks, masks.masks)
        np.testing.assert_array_equal(loaded.probs, masks.probs)
    assert summary.succeeded == 2 and len(store.records("boxes")) == 2


@pytest.mark.parametrize(
    ("device", "expected"),
    [("cuda", {"num_gpus": 1.0, "num_cpus": 1.0}), ("cpu", {"num_cpus": 1.0}), ("auto", None)],
)
def test_cli_device_decides_the_ray_workers_resources(device: str, expected: dict | None) -> None:
    """``--device cuda --executor ray``: one GPU per worker (one worker per GPU of the machine)."""
    pytest.importorskip("ray")
    from tgs.cli.common import WORKER_DEVICE_ENV
    from tgs.cli.executor_options import executor_from_options

    runner = executor_from_options("ray", None, None, None, device)  # nothing is started until a run
    assert runner.name == "ray" and runner.resources == expected
    assert runner.runtime_env["worker_process_setup_hook"] == "tgs.cli.common.ray_worker_setup"
    assert runner.runtime_env["env_vars"] == {WORKER_DEVICE_ENV: device}
    given = executor_from_options("ray", None, None, "gpu=0.5", device)
    assert given.resources == {"num_gpus": 0.5}  # --resources-per-worker wins


def test_cli_refuses_one_named_gpu_for_ray_workers() -> None:
    pytest.importorskip("ray")
    import typer

    from tgs.cli.executor_options import executor_from_options

    with pytest.raises(typer.BadParameter, match="use --device cuda"):
        executor_from_options("ray", None, None, None, "cuda:1")
    assert executor_from_options("local", None, None, None, "cuda:1").name == "local"


def test_ray_worker_setup_applies_the_process_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    import tgs.cli.common as common

    seen: list[str] = []
    monkeypatch.setattr(common, "prepare_process", seen.append)
    monkeypatch.setenv(common.WORKER_DEVICE_ENV, "cpu")
    common.ray_worker_setup()
    assert seen == ["cpu"]
