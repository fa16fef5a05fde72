"""``kill -9`` of ``tgs ground-segment`` at several points, then a rerun, gives exactly the
outputs of an uninterrupted run; so does a run directory with a torn line, a stray
``masks/*.tmp`` and the boxes line of a sample that never committed."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from killed_runs import reap, start_killable

from tgs.core.settings import Settings
from tgs.data.synth import generate
from tgs.presets import BEST
from tgs.run_store import MANIFEST, RunStore
from tgs.runners.ground_segment import GroundSegmentConfig, load_stages, run_ground_segment

pytestmark = pytest.mark.slow

SPLITS = ("test_s", "test_n")
UIDS = (
    "syn0-0002_0_10000_yellow-triangle_1",
    "syn0-0002_0_10000_red-circle_1",
    "syn0-0002_0_10000_blue-hexagon_2",
    "null_m-syn0-0002_0_10000_null_1",
    "null_m-syn0-0002_0_10000_null_2",
    "syn0-0002_0_10000_yellow-triangle_2",
)


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(root, a metadata CSV of the 6 samples above)."""
    root = tmp_path_factory.mktemp("synth_kill")
    meta = generate(root, videos=3, seed=0, size=(64, 48))
    with meta.open(newline="") as fh:
        rows = list(csv.reader(fh))
    small = root / "small.csv"
    kept = [row for row in rows[1:] if row[1] in UIDS]
    assert len(kept) == len(UIDS)
    with small.open("w", newline="") as fh:
        csv.writer(fh).writerows([rows[0], *kept])
    return root, small


def _config(bench: tuple[Path, Path], out: Path, **kw) -> GroundSegmentConfig:
    root, meta = bench
    return GroundSegmentConfig(data=root, meta=meta, out=out, preset=BEST, direct=True, splits=SPLITS,
                               settings=Settings.tiny(), evaluate=False, **kw)


@pytest.fixture(scope="module")
def stages(bench: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory):
    return load_stages(_config(bench, tmp_path_factory.mktemp("unused")))


@pytest.fixture(scope="module")
def reference(bench: tuple[Path, Path], stages, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted run (in this process, one torch thread like the subprocesses below)."""
    out = tmp_path_factory.mktemp("reference") / "run"
    outcome = run_ground_segment(_config(bench, out), stages=stages)
    assert outcome.summary.succeeded == len(UIDS)
    return out


def _samples(run: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "timings"} for r in RunStore(run).records("samples")]


def _assert_same_outputs(run: Path, reference: Path) -> None:
    assert _samples(run) == _samples(reference)  # same records, same order, each once
    assert (run / "boxes.jsonl").read_bytes() == (reference / "boxes.jsonl").read_bytes()
    names = sorted(p.name for p in (run / "masks").iterdir())
    assert names == sorted(p.name for p in (reference / "masks").iterdir())  # no .tmp left behind
    store, expected = RunStore(run), RunStore(reference)
    for uid in UIDS:
        got, want = store.load_masks(uid), expected.load_masks(uid)
        np.testing.assert_array_equal(got.masks, want.masks)
        np.testing.assert_array_equal(got.probs, want.probs)


# --------------------------------------------------------------------------- kill -9 of the CLI


def _start(bench: tuple[Path, Path], out: Path, kill_after: int | None = None, *extra: str) -> subprocess.Popen:
    root, meta = bench
    command = [
        sys.executable, "-m", "tgs.cli.main", "ground-segment", "--data", str(root), "--meta", str(meta),
        "--split", SPLITS[0], "--split", SPLITS[1], "--direct", "--preset", "best", "--models", "tiny",
        "--device", "cpu", "--no-eval", "--out", str(out), *extra,
    ]
    return start_killable(command, kill_after)


def _committed(out: Path) -> int:
    try:
        return (out / "samples.jsonl").read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def _kill_when(process: subprocess.Popen, ready) -> None:
    """SIGKILL the run once ``ready()`` (a file the run wrote) holds; pytest-timeout bounds a hang."""
    while not ready():
        if process.poll() is not None:
            raise AssertionError(f"the run ended before the kill point: {process.stderr.read().decode()[-2000:]}")
        time.sleep(0.01)  # polling interval only: no assertion depends on the clock
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    process.stderr.close()


@pytest.mark.timeout(900)
def test_kill_9_at_several_points_then_rerun_equals_uninterrupted(
    bench: tuple[Path, Path], reference: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    # Points fixed by what the run has written, not by the clock: at once (while importing),
    # as soon as the manifest exists (reading, loading models), then after 1 and 3 commits.
    _kill_when(_start(bench, out), lambda: True)
    assert _committed(out) == 0
    _kill_when(_start(bench, out), lambda: (out / MANIFEST).is_file())
    assert _committed(out) < len(UIDS)
    for target in (1, 3):  # committed samples at the kill (those of earlier runs included)
        _kill_when(_start(bench, out), lambda target=target: _committed(out) >= target)
        assert target <= _committed(out) < len(UIDS)
    final = _start(bench, out)
    _, stderr = final.communicate(timeout=300)
    assert final.returncode == 0, stderr.decode()[-2000:]
    _assert_same_outputs(out, reference)


def test_kill_9_in_the_middle_of_a_video_then_rerun_equals_uninterrupted(
    bench: tuple[Path, Path], reference: Path, tmp_path: Path
) -> None:
    """The unit of work is a video, resume is per expression: killed after 2 of a video's 4
    expressions were committed (then after 1 more), the reruns do only the missing ones."""
    records = RunStore(reference).records("samples")
    folders = [r["uid"].rsplit("_", 2)[0] for r in records]
    first_video = [i for i, f in enumerate(folders) if f == folders[0]]
    assert len(first_video) == 4 and first_video == [0, 1, 2, 3]  # a video's expressions are together
    out = tmp_path / "run"
    for kill_after, committed in ((2, 2), (1, 3)):  # each time inside the first video
        process = _start(bench, out, kill_after=kill_after)
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == -signal.SIGKILL, stderr.decode()[-2000:]
        assert _committed(out) == committed
        done = [r["uid"] for r in RunStore(out).records("samples")]
        assert done == [r["uid"] for r in records[:committed]]
    final = _start(bench, out)
    _, stderr = final.communicate(timeout=300)
    assert final.returncode == 0, stderr.decode()[-2000:]
    _assert_same_outputs(out, reference)


@pytest.mark.timeout(900)
def test_kill_9_of_the_ray_driver_then_rerun_loses_and_duplicates_nothing(
    bench: tuple[Path, Path], reference: Path, tmp_path: Path
) -> None:
    """``--executor ray``: the driver commits as batches come back; killed after 2 commits (its
    Ray instance and workers die with it), a rerun ends with each sample once, as uninterrupted
    (in another order: Ray commits samples as they finish)."""
    pytest.importorskip("ray.data")
    out = tmp_path / "run"
    process = _start(bench, out, 2, "--executor", "ray", "--workers", "2")
    _, stderr = process.communicate(timeout=600)
    reap(process)  # the Ray agents the killed driver left in its group
    assert process.returncode == -signal.SIGKILL, stderr.decode()[-2000:]
    assert _committed(out) == 2
    final = _start(bench, out)
    _, stderr = final.communicate(timeout=300)
    assert final.returncode == 0, stderr.decode()[-2000:]
    key = lambda record: record["uid"]  # noqa: E731
    assert sorted(_samples(out), key=key) == sorted(_samples(reference), key=key)
    lines = (out / "boxes.jsonl").read_bytes().splitlines()
    assert sorted(lines) == sorted((reference / "boxes.jsonl").read_bytes().splitlines())
    store, expected = RunStore(out), RunStore(reference)
    for uid in UIDS:
        np.testing.assert_array_equal(store.load_masks(uid).masks, expected.load_masks(uid).masks)
        np.testing.assert_array_equal(store.load_masks(uid).probs, expected.load_masks(uid).probs)


# --------------------------------------------------------------------------- crafted crash leftovers


def test_torn_line_stray_tmp_and_orphan_boxes_are_redone(
    bench: tuple[Path, Path], stages, reference: Path, tmp_path: Path
) -> None:
    """The state of a kill while the 3rd sample commits: mask renamed, boxes line written,
    half its record written, and a 4th mask write cut short."""
    out = tmp_path / "run"
    first = run_ground_segment(_config(bench, out, limit=2), stages=stages)
    assert first.summary.processed == 2
    third, fourth = [r["uid"] for r in RunStore(reference).records("samples")][2:4]
    ref_samples = (reference / "samples.jsonl").read_bytes().splitlines(keepends=True)
    ref_boxes = (reference / "boxes.jsonl").read_bytes().splitlines(keepends=True)
    assert RunStore(reference).records("samples")[2]["uid"] == third
    with open(out / "boxes.jsonl", "ab") as fh:
        fh.write(ref_boxes[2])
    with open(out / "samples.jsonl", "ab") as fh:
        fh.write(ref_samples[2][: len(ref_samples[2]) // 2])
    (out / "masks" / f"{third}.npz").write_bytes((reference / "masks" / f"{third}.npz").read_bytes())
    (out / "masks" / f"{fourth}.npz.tmp").write_bytes(b"PK\x03\x04 cut short")
    assert len(RunStore(out).done_uids("samples")) == 2  # the torn record does not count

    again = run_ground_segment(_config(bench, out), stages=stages)
    assert again.summary.skipped == 2 and again.summary.succeeded == len(UIDS) - 2
    _assert_same_outputs(out, reference)
