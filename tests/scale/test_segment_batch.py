"""``tgs segment --batch``: many clips into one folder, equal to one ``tgs segment`` per clip,
resumable (a rerun recomputes nothing; a kill -9 then a rerun equals an uninterrupted batch),
fault-isolated (a corrupt file is an error line), and the same on the Ray executor.

Clips: 12 synthetic clips (``tgs.data.synth.write_video``), one clip without audio and
a corrupt file, 1 s at 8 fps and 64x48 so that the tiny models keep the module short.
Every process runs torch with one thread (tests/conftest.py, the Ray workers' num_cpus=1,
OMP_NUM_THREADS=1 in the subprocesses), so outputs are bitwise comparable.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from killed_runs import reap, start_killable
from segment_outputs import mask_files, result_json
from typer.testing import CliRunner

from tgs.cli.main import build_app
from tgs.core.segment import segment_video
from tgs.core.settings import Settings
from tgs.data.synth import write_video
from tgs.errors import DataError
from tgs.runners import segment_batch
from tgs.runners.batch_list import RESERVED_NAMES, read_batch_list
from tgs.runners.segment_batch import SegmentBatchWorker, SegmentOptions, latest_index, segment_many

pytestmark = pytest.mark.slow

GOOD = 12
SIZE = (64, 48)
EXPRESSIONS = ("the red object", "the blue object")
TINY = ["--thinker", "direct", "--models", "tiny", "--device", "cpu"]
OPTIONS = SegmentOptions(thinker="direct", settings=Settings.tiny(device="cpu"))


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """clips/*.mp4 and list.csv: 12 clips (the first with two expressions, as two rows), a silent one, a corrupt one."""
    root = tmp_path_factory.mktemp("batch_clips")
    rows = ["video,expression"]
    for i in range(GOOD):
        write_video(root / "clips" / f"clip{i:02d}.mp4", 1, 8, SIZE, seed=i)
        rows.append(f"clips/clip{i:02d}.mp4,{EXPRESSIONS[0]}")
        if i == 0:
            rows.append(f"clips/clip{i:02d}.mp4,{EXPRESSIONS[1]}")
    write_video(root / "clips" / "silent.mp4", 1, 8, SIZE, seed=20, with_audio=False)
    (root / "clips" / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x01" * 200)
    rows += [f"clips/silent.mp4,{EXPRESSIONS[0]}", f"clips/corrupt.mp4,{EXPRESSIONS[0]}"]
    (root / "list.csv").write_text("\n".join(rows) + "\n")
    return root


def _batch_cli(clips: Path, out: Path, *extra: str):
    result = CliRunner().invoke(build_app(), ["segment", "--batch", str(clips / "list.csv"), "--out", str(out),
                                              *TINY, *extra])
    return result


@pytest.fixture(scope="module")
def local_batch(clips: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The uninterrupted batch, through the CLI, in this process."""
    out = tmp_path_factory.mktemp("batch") / "out"
    result = _batch_cli(clips, out)
    assert result.exit_code == 0, result.output
    return out


def _index(out: Path) -> dict:
    return {key: {k: v for k, v in line.items() if k != "timings"} for key, line in latest_index(out).items()}


def _assert_same_batch(out: Path, reference: Path, *, unique: bool = True, uids: set[str] | None = None) -> None:
    """Same latest index lines (timings aside), same outputs; unique: no expression has two ok lines
    (a video redone because its outputs went missing gets new lines after its old ones);
    uids: compare only these videos of the reference."""
    expected = {key: line for key, line in _index(reference).items() if uids is None or key[0] in uids}
    assert _index(out) == expected
    for line in latest_index(reference).values():
        if line["status"] == "ok" and (uids is None or line["uid"] in uids):
            folder = line["outputs"]["folder"]
            assert mask_files(out / folder) == mask_files(reference / folder)
            assert result_json(out / folder) == result_json(reference / folder)
    ok = [(r["uid"], r["expression_index"]) for r in _lines(out) if r["status"] == "ok"]
    assert len(ok) == len(set(ok)) or not unique  # no expression committed twice


def _lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "index.jsonl").read_text().splitlines()]


# --------------------------------------------------------------------------- reading lists


def test_list_forms_give_the_same_videos(tmp_path: Path) -> None:
    (tmp_path / "v").mkdir()
    for name in ("a.mp4", "b c.mkv"):
        (tmp_path / "v" / name).write_bytes(b"")
    (tmp_path / "v" / "notes.txt").write_text("not a video")
    (tmp_path / "expr.txt").write_text("# comment\nthe dog\n\nthe car\n")
    (tmp_path / "list.tsv").write_text("id\tvideo\texpression\texpression_2\nA\tv/a.mp4\tthe dog\tthe car\n"
                                       "bc\tv/b c.mkv\tthe dog\t\nbc\tv/b c.mkv\tthe car\t\n")
    (tmp_path / "list.jsonl").write_text('{"id": "A", "video": "v/a.mp4", "expressions": ["the dog", "the car"]}\n'
                                         '{"id": "bc", "video": "v/b c.mkv", "expression": "the dog"}\n\n'
                                         '{"id": "bc", "video": "v/b c.mkv", "expression": "the car"}\n')
    table, jsonl = read_batch_list(tmp_path / "list.tsv"), read_batch_list(tmp_path / "list.jsonl")
    assert table == jsonl
    assert [(v.uid, v.video, v.expressions) for v in table] == [
        ("A", tmp_path / "v" / "a.mp4", ("the dog", "the car")),
        ("bc", tmp_path / "v" / "b c.mkv", ("the dog", "the car")),
    ]
    folder = read_batch_list(tmp_path / "v", tmp_path / "expr.txt")
    assert [(v.uid, v.video.name, v.expressions) for v in folder] == [
        ("a", "a.mp4", ("the dog", "the car")), ("b_c", "b c.mkv", ("the dog", "the car"))]


@pytest.mark.parametrize(("text", "message"), [
    ("video,label\na.mp4,x\n", "needs a 'video' column and an 'expression' column"),
    ("video,expression\na.mp4,\n", "list.csv:2: no expression for a.mp4"),
    ("video,expression\nx/a.mp4,dog\ny/a.mp4,cat\n", "would both be written to the folder 'a'"),
    ("video,expression\nv/index.jsonl.mp4,dog\n",
     "list.csv:2: index.jsonl.mp4 (folder 'index.jsonl') would be written over the batch's own index.jsonl"),
    ("id,video,expression\nMasks,a.mp4,dog\n", "list.csv:2: id 'Masks' would be written over the batch's own Masks"),
])
def test_bad_lists_are_one_line_errors_naming_the_row(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "list.csv").write_text(text)
    result = CliRunner().invoke(build_app(), ["segment", "--batch", str(tmp_path / "list.csv"), "--out",
                                              str(tmp_path / "out"), *TINY])
    assert result.exit_code != 0 and message in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("name", sorted(RESERVED_NAMES))
def test_a_folder_name_the_batch_keeps_for_itself_is_refused(tmp_path: Path, name: str) -> None:
    """A video's folder named like the batch's own files would overwrite them (or they it)."""
    (tmp_path / "by_id.jsonl").write_text(json.dumps({"id": name, "video": "a.mp4", "expression": "dog"}) + "\n")
    with pytest.raises(DataError, match=f"by_id.jsonl:1: id '{re.escape(name)}' would be written over") as caught:
        read_batch_list(tmp_path / "by_id.jsonl")
    assert caught.value.fix == "give the row another id"
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / f"{name}.mp4").write_bytes(b"")  # a folder of videos: the name comes from the file
    if not name.startswith("."):  # a file name's leading dot becomes "_" (no hidden folders): no clash
        with pytest.raises(DataError, match="would be written over the batch's own") as caught:
            read_batch_list(tmp_path / "videos", ["dog"])
        assert "id column" in caught.value.fix
    else:
        assert [v.uid for v in read_batch_list(tmp_path / "videos", ["dog"])] == ["_" + name[1:]]


def test_batch_options_misused_are_usage_errors(tmp_path: Path) -> None:
    listing = tmp_path / "list.csv"
    listing.write_text("video,expression\na.mp4,the dog\n")
    cases = [
        (["segment", "a.mp4", "the dog", "--executor", "ray"], "only with --batch (many videos): leave --executor out"),
        (["segment", "--batch", str(listing), "a.mp4", "--out", str(tmp_path / "o")], "from its list, not from"),
        (["segment", "--batch", str(listing)], "--batch needs --out DIR"),
        (["segment", "--batch", str(listing), "--out", str(tmp_path / "o"), "--expressions", str(listing)],
         "a list file carries its expressions in its rows"),
    ]
    for args, message in cases:
        result = CliRunner().invoke(build_app(), [*args, *TINY])
        flat = " ".join(result.output.replace("│", " ").split())
        assert result.exit_code != 0 and message in flat and "Traceback" not in result.output, result.output


@pytest.mark.parametrize(("extra", "message"), [
    (["--models", "tiny", "--device", "tpu"], "device 'tpu' is not a device name"),
    pytest.param(["--models", "tiny", "--device", "cuda"], "CUDA is not available",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")),
    (["--gdino", "{missing}"], "missing model weights: - grounding_dino: {missing}"),
    (["--preset", "paper", "--fps", "1", "--sam2", "edgetam_video"],
     "--sam2 edgetam_video names a video (propagation) model"),
], ids=["bad-device", "cuda-without-cuda", "missing-weights", "video-model-for-image-preset"])
def test_what_every_video_shares_is_refused_once_before_any_work(
    clips: Path, tmp_path: Path, extra: list[str], message: str
) -> None:
    """The device, the models and the options are every video's: a bad one is one error line and
    nothing written, not a failed line per video and exit 0 (each video's file is still its own)."""
    out, missing = tmp_path / "out", str(tmp_path / "no_weights")
    args = ["segment", "--batch", str(clips / "list.csv"), "--out", str(out), "--thinker", "direct"]
    result = CliRunner().invoke(build_app(), [*args, *(a.format(missing=missing) for a in extra)])
    flat = " ".join(result.output.replace("│", " ").split())
    assert result.exit_code == 1 and message.format(missing=missing) in flat, result.output
    assert "Traceback" not in result.output
    assert not out.exists()


# --------------------------------------------------------------------------- the local batch


def test_every_clip_equals_a_single_segment_and_the_corrupt_one_is_an_error_line(
    clips: Path, local_batch: Path, tmp_path: Path
) -> None:
    lines = latest_index(local_batch)
    assert len(lines) == GOOD + 3  # clip00 has two expressions
    corrupt = lines[("corrupt", 0)]
    assert corrupt["status"] == "failed" and corrupt["error_kind"] == "media" and corrupt["outputs"] is None
    silent = lines[("silent", 0)]
    assert silent["status"] == "ok" and "no audio track" in silent["warnings"][0]
    for i in range(GOOD):
        uid = f"clip{i:02d}"
        texts = list(EXPRESSIONS if i == 0 else EXPRESSIONS[:1])
        assert [lines[(uid, k)]["status"] for k in range(len(texts))] == ["ok"] * len(texts)
        single = tmp_path / uid  # what `tgs segment CLIP EXPR... --out single` writes
        segment_video(clips / "clips" / f"{uid}.mp4", texts, thinker="direct", settings=Settings.tiny(device="cpu"),
                      out=single)
        assert mask_files(local_batch / uid) == mask_files(single)
        assert result_json(local_batch / uid) == result_json(single)
        assert (local_batch / uid / "overlay.mp4").is_file()


def test_a_rerun_recomputes_nothing_that_succeeded(
    clips: Path, local_batch: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    _copy(local_batch, out)
    calls = _count_segment_calls(monkeypatch)
    result = _batch_cli(clips, out)
    assert result.exit_code == 0, result.output
    assert calls == ["corrupt"]  # a failed video is retried, as in `tgs run`; nothing else runs
    _assert_same_batch(out, local_batch)


def test_the_options_id_of_a_batch_made_before_the_precision_left_the_preset_is_kept() -> None:
    """A video is redone when its options id changes; these ids were written by main@347e330, when
    ``dtype`` was still a preset switch (paper fp32, best and sam3 auto): the same options keep them,
    so such a batch resumes instead of redoing every video."""
    assert SegmentOptions().fingerprint() == "913b32a5eda885ba"
    assert SegmentOptions(preset="paper", settings=Settings.tiny(), fps=1.0).fingerprint() == "e33696aa52f9db8c"
    assert SegmentOptions(preset="sam3", settings=Settings(dtype="bf16")).fingerprint() == "40dbe927ca208cfa"


def test_a_done_clip_whose_outputs_went_missing_is_redone(
    clips: Path, local_batch: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    _copy(local_batch, out)
    (out / "clip03" / "masks" / "0" / "00002.png").unlink()  # checked, not assumed
    (out / "clip05" / "result.json").unlink()
    calls = _count_segment_calls(monkeypatch)
    assert _batch_cli(clips, out).exit_code == 0
    assert sorted(calls) == ["clip03", "clip05", "corrupt"]
    _assert_same_batch(out, local_batch, unique=False)


def _copy(source: Path, target: Path) -> None:
    import shutil

    shutil.copytree(source, target)
    (target / ".lock").unlink(missing_ok=True)


def _count_segment_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The uids of the videos segment_video runs on from now on (in this process)."""
    calls: list[str] = []
    real = segment_batch.segment_video

    def spy(video, expressions, *, out, **kwargs):
        calls.append(Path(out).name)
        return real(video, expressions, out=out, **kwargs)

    monkeypatch.setattr(segment_batch, "segment_video", spy)
    return calls


def test_models_load_once_for_the_whole_batch(clips: Path, tmp_path: Path) -> None:
    workers: list[SegmentBatchWorker] = []

    def factory() -> SegmentBatchWorker:
        workers.append(SegmentBatchWorker(tmp_path / "out", OPTIONS))
        return workers[-1]

    videos = [v for v in read_batch_list(clips / "list.csv") if v.uid in ("clip01", "clip02", "silent")]
    outcome = segment_many(videos, tmp_path / "out", OPTIONS, worker_factory=factory)
    assert outcome.summary.succeeded == 3
    [worker] = workers
    assert worker.segmented == 3
    # the first video loads the thinker and the (Grounding DINO, propagation model) pair; the others reuse them
    assert worker.cache.stats["thinkers"] == {"loads": 1, "hits": 2, "held": 1}
    assert worker.cache.stats["stages"] == {"loads": 1, "hits": 2, "held": 1}


class _NoRun:
    """An executor that keeps the worker factory it is given and runs nothing."""

    name = "norun"

    def __init__(self) -> None:
        self.factories: list = []

    def map(self, factory, batches):
        self.factories.append(factory)
        return iter(())


def test_a_relative_out_reaches_the_workers_absolute(
    clips: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Ray worker runs in a folder of its own: the OUT it unpickles must not depend on the driver's."""
    monkeypatch.chdir(tmp_path)
    executor = _NoRun()
    outcome = segment_many(read_batch_list(clips / "list.csv")[:1], "relative/out", OPTIONS, executor=executor)
    [factory] = executor.factories
    shipped = pickle.loads(pickle.dumps(factory))  # what a worker gets
    assert shipped.out == tmp_path / "relative" / "out" and shipped().out == tmp_path / "relative" / "out"
    assert outcome.out == tmp_path / "relative" / "out"


class _RaisesOn:
    """A batch worker whose whole call raises on ``uid`` (as a worker_crash or a failed batch ends:
    an exception in place of the video's records)."""

    def __init__(self, out: Path, uid: str) -> None:
        self.inner, self.uid = SegmentBatchWorker(out, OPTIONS), uid

    def process(self, batch):
        if any(item.uid == self.uid for item in batch):
            raise RuntimeError(f"worker lost on {self.uid}")
        return self.inner.process(batch)


def test_a_video_that_ends_as_an_exception_gets_one_failed_line_per_expression_and_attempt(
    clips: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    videos = [v for v in read_batch_list(clips / "list.csv") if v.uid in ("clip00", "clip01")]
    failing = [("clip00", 0, "failed"), ("clip00", 1, "failed"), ("clip01", 0, "ok")]
    outcome = segment_many(videos, out, OPTIONS, worker_factory=lambda: _RaisesOn(out, "clip00"))
    assert outcome.summary.succeeded == 1 and [f.uid for f in outcome.summary.failures] == ["clip00"]
    lines = _lines(out)
    assert [(r["uid"], r["expression_index"], r["status"]) for r in lines] == failing
    for line in lines[:2]:  # clip00 has two expressions: one line each, with the error
        assert line["error"] == "worker lost on clip00" and line["error_kind"] == "RuntimeError"
        assert line["expression"] == EXPRESSIONS[line["expression_index"]] and line["outputs"] is None
    # a rerun retries it: one more line per expression for that attempt, nothing else written
    segment_many(videos, out, OPTIONS, worker_factory=lambda: _RaisesOn(out, "clip00"))
    assert [(r["uid"], r["expression_index"], r["status"]) for r in _lines(out)] == [*failing, *failing[:2]]
    # ... and once it succeeds, its ok lines are the latest; clip01 is not redone
    segment_many(videos, out, OPTIONS)
    assert [(r["uid"], r["expression_index"], r["status"]) for r in _lines(out)[5:]] == [
        ("clip00", 0, "ok"), ("clip00", 1, "ok")]
    assert {key: line["status"] for key, line in latest_index(out).items()} == {
        ("clip00", 0): "ok", ("clip00", 1): "ok", ("clip01", 0): "ok"}


def test_a_rerun_cuts_the_index_lines_of_an_uncommitted_video_only(tmp_path: Path) -> None:
    """Committed failures keep their lines (also last in the index); a video killed between its index
    lines and its videos line loses them, and a torn line goes too."""
    def line(uid: str, k: int, status: str) -> str:
        return json.dumps({"uid": uid, "expression_index": k, "status": status}) + "\n"

    committed = line("a", 0, "ok") + line("b", 0, "failed") + line("b", 1, "failed") + line("b", 0, "failed")
    committed += line("b", 1, "failed")  # b failed twice, both committed
    (tmp_path / "videos.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [
        {"uid": "a", "status": "ok"}, {"uid": "b", "status": "failed"},
        {"uid": "a", "status": "failed", "error_kind": segment_batch.REDONE_KIND},  # a's outputs went missing
        {"uid": "b", "status": "failed"}]))
    (tmp_path / "index.jsonl").write_text(committed)
    store = segment_batch.RunStore(tmp_path)
    segment_batch.cut_uncommitted_index(store)
    assert (tmp_path / "index.jsonl").read_text() == committed
    # killed after a's redo and b's third try wrote their lines, before their videos lines
    (tmp_path / "index.jsonl").write_text(committed + line("a", 0, "ok") + line("b", 0, "failed") + '{"uid": "b", "ex')
    segment_batch.cut_uncommitted_index(store)
    assert (tmp_path / "index.jsonl").read_text() == committed


def test_one_writer_per_folder(clips: Path, tmp_path: Path) -> None:
    """A second batch on a folder another process writes stops at once, naming that process."""
    out = tmp_path / "out"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from tgs.run_store import RunStore; store = RunStore(sys.argv[1]); store.lock(); "
         "print('locked', flush=True); sys.stdin.read()", str(out)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"  # the lock is held from here on
        result = _batch_cli(clips, out)
        assert result.exit_code == 1 and f"being written by another process (pid {holder.pid})" in result.output
        assert not (out / "index.jsonl").exists()
    finally:
        holder.stdin.close()
        holder.wait()


# --------------------------------------------------------------------------- kill -9, then a rerun


def _start(clips: Path, out: Path, *extra: str, kill_after: int | None = None) -> subprocess.Popen:
    command = [sys.executable, "-m", "tgs.cli.main", "segment", "--batch", str(clips / "list.csv"), "--out", str(out),
               *TINY, *extra]
    return start_killable(command, kill_after)


def _index_lines(out: Path) -> int:
    try:
        return (out / "index.jsonl").read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


@pytest.mark.timeout(900)
def test_kill_9_mid_batch_then_rerun_equals_uninterrupted(clips: Path, local_batch: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    # killed from outside once 3 index lines are written (so in the middle of a later video) ...
    run = _start(clips, out)
    while _index_lines(out) < 3:
        assert run.poll() is None, run.stderr.read().decode()[-2000:]
        time.sleep(0.01)  # polling interval only: the kill point is fixed by what the batch wrote
    os.kill(run.pid, signal.SIGKILL)
    run.wait()
    run.stderr.close()
    done = _index_lines(out)
    assert 3 <= done < GOOD + 3
    # ... then by itself right after committing 4 more videos
    run = _start(clips, out, kill_after=4)
    _, stderr = run.communicate(timeout=600)
    assert run.returncode == -signal.SIGKILL, stderr.decode()[-2000:]
    final = _start(clips, out)
    _, stderr = final.communicate(timeout=600)
    assert final.returncode == 0, stderr.decode()[-2000:]
    _assert_same_batch(out, local_batch)


# --------------------------------------------------------------------------- on Ray
# The driver-kill test first: its subprocesses start their own Ray instance, before this
# module's in-process one (the fixture below) exists.


@pytest.mark.timeout(900)
def test_ray_driver_killed_then_rerun_equals_local(clips: Path, local_batch: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray.data")
    out = tmp_path / "out"
    ray_options = ("--executor", "ray", "--workers", "2")
    run = _start(clips, out, *ray_options, kill_after=5)
    _, stderr = run.communicate(timeout=600)
    reap(run)
    assert run.returncode == -signal.SIGKILL, stderr.decode()[-2000:]
    assert 5 <= len(_lines(out)) < GOOD + 3
    final = _start(clips, out)  # the rerun resumes whatever executor it runs on (local: one Ray start less)
    _, stderr = final.communicate(timeout=600)
    assert final.returncode == 0, stderr.decode()[-2000:]
    _assert_same_batch(out, local_batch)


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory):
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    home = os.environ.get("TGS_HOME") or str(tmp_path_factory.getbasetemp() / "tgs_home")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"TGS_HOME": home, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}})
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the crashing worker below
    yield
    ray.shutdown()


class _CrashOnce:
    """A batch worker whose process dies (like an OOM kill) on ``uid`` while ``marker`` is absent."""

    def __init__(self, out: Path, uid: str, marker: Path) -> None:
        self.inner, self.uid, self.marker = SegmentBatchWorker(out, OPTIONS), uid, marker

    def process(self, batch):
        for item in batch:
            if item.uid == self.uid and not self.marker.exists():
                self.marker.write_text(str(os.getpid()))
                os._exit(1)
        return self.inner.process(batch)


def test_ray_with_two_workers_equals_local_even_when_a_worker_dies(
    ray_cluster, clips: Path, local_batch: Path, tmp_path: Path
) -> None:
    from tgs.runners.executor import make_executor

    videos = read_batch_list(clips / "list.csv")
    executor = make_executor("ray", workers=2)
    outcome = segment_many(videos, tmp_path / "ray", OPTIONS, executor=executor)
    assert executor.stats.workers == 2 and outcome.summary.succeeded == GOOD + 1
    _assert_same_batch(tmp_path / "ray", local_batch)

    out, marker = tmp_path / "ray_killed", tmp_path / "died"
    some = videos[:5]  # clip00 (two expressions) to clip04
    executor = make_executor("ray", workers=2)
    outcome = segment_many(some, out, OPTIONS, executor=executor,
                           worker_factory=lambda: _CrashOnce(out, "clip03", marker))
    assert marker.exists()  # a worker really died in the middle of the batch; Ray restarted it
    assert outcome.summary.succeeded == len(some) and executor.stats.crashed_samples == 0
    _assert_same_batch(out, local_batch, uids={v.uid for v in some})
    assert len(_lines(out)) == len(some) + 1  # nothing lost, nothing duplicated
