"""``tgs.output_folder``: one writer per folder, and outputs that appear complete or not at all
(the rules ``tgs segment`` and run directories share); the streaming writers use partial names."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tgs.errors import RunError
from tgs.output_folder import StagedOutputs, holding_folder, lock_folder, partial_path


def _tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_partial_path_keeps_the_suffix_and_the_folder() -> None:
    assert partial_path(Path("out/overlay.mp4")) == Path("out/.overlay.partial.mp4")
    assert partial_path("out/masks.json") == Path("out/.masks.partial.json")


def test_a_second_writer_in_the_same_process_is_refused_unless_reentrant(tmp_path: Path) -> None:
    with StagedOutputs(tmp_path, marker="result.json", error=RunError):
        with pytest.raises(RunError, match=f"output folder {tmp_path} is being written by another process "
                                           f"\\(pid {os.getpid()}\\)"):
            StagedOutputs(tmp_path, marker="result.json", error=RunError).__enter__()
        assert lock_folder(tmp_path, "run directory", RunError) is None  # reentrant: this process holds it
    handle = lock_folder(tmp_path, "run directory", RunError)  # released on leaving
    assert handle is not None
    handle.close()


def test_a_holder_covers_the_writers_nested_in_its_thread_only(tmp_path: Path) -> None:
    """holding_folder: a StagedOutputs inside it in the same thread writes under its lock; another
    thread is refused while it holds the folder, and the folder is free once it is left."""
    import threading

    refused: list[BaseException] = []

    def other_writer() -> None:
        try:
            StagedOutputs(tmp_path, marker="result.json", error=RunError).__enter__()
        except RunError as exc:
            refused.append(exc)

    with holding_folder(tmp_path, "output folder", RunError):
        with StagedOutputs(tmp_path, marker="result.json", error=RunError) as staged:
            staged.path("result.json").write_text("new")
            staged.publish()
        thread = threading.Thread(target=other_writer)
        thread.start()
        thread.join()
        assert len(refused) == 1 and "is being written by another process" in str(refused[0])
        assert (tmp_path / "result.json").read_text() == "new"
    handle = lock_folder(tmp_path, "output folder", RunError, reentrant=False)  # released on leaving
    assert handle is not None
    handle.close()


def test_publish_replaces_ours_keeps_the_rest_and_puts_the_marker_last(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "masks" / "0").mkdir(parents=True)
    (out / "masks" / "1").mkdir()
    previous = {"result.json": "old", "video.mp4": "old video", "masks/0/a.png": "old a", "masks/0/keep.txt": "k",
                "masks/1/a.png": "old 1", "other.txt": "o"}
    for name, text in previous.items():
        (out / name).write_text(text)
    order: list[str] = []
    real_replace = os.replace

    def spy(src, dst):  # the order of the renames into place
        order.append(Path(dst).name)
        real_replace(src, dst)

    with StagedOutputs(out, marker="result.json", error=RunError) as staged:
        (staged.path("masks") / "0").mkdir(parents=True)
        (staged.path("masks") / "2").mkdir()
        (staged.path("masks") / "0" / "b.png").write_text("new b")
        (staged.path("masks") / "2" / "a.png").write_text("new 2")
        staged.path("video.mp4").write_text("new video")
        staged.path("result.json").write_text("new")
        assert _tree(out)["result.json"] == "old"  # nothing published yet
        os.replace = spy
        try:
            staged.publish(replaced=[out / "masks" / "0" / "a.png", out / "masks" / "1" / "a.png"])
        finally:
            os.replace = real_replace
    assert order[-1] == "result.json"
    assert _tree(out) == {
        "result.json": "new", "video.mp4": "new video", "other.txt": "o",
        "masks/0/b.png": "new b", "masks/0/keep.txt": "k", "masks/2/a.png": "new 2", ".lock": f"{os.getpid()}\n",
    }
    assert not (out / "masks" / "1").exists()  # emptied by the removal: removed
    assert not (out / ".partial").exists()


def test_an_error_keeps_the_previous_outputs_and_the_next_writer_removes_stale_partials(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "result.json").write_text("old")
    with pytest.raises(RuntimeError), StagedOutputs(out, marker="result.json", error=RunError) as staged:
        staged.path("result.json").write_text("half")
        raise RuntimeError("killed")
    assert _tree(out) == {".lock": str(os.getpid()) + "\n", "result.json": "old"}
    (out / ".partial").mkdir()
    (out / ".partial" / "left.mp4").write_text("a killed call's")
    with StagedOutputs(out, marker="result.json", error=RunError) as staged:
        assert list(staged.staging.iterdir()) == []


def test_overlay_writer_keeps_the_previous_file_until_it_closes(tmp_path: Path) -> None:
    from tgs.video_out import OverlayVideoWriter

    out = tmp_path / "overlay.mp4"
    out.write_bytes(b"previous complete video")
    writer = OverlayVideoWriter(out, 5.0)
    writer.write(np.zeros((16, 16, 3), np.uint8))
    assert out.read_bytes() == b"previous complete video"  # the new video is written under the partial name
    writer.close()
    assert out.read_bytes() != b"previous complete video" and not partial_path(out).exists()
    writer = OverlayVideoWriter(out, 5.0)
    writer.write(np.zeros((16, 16, 3), np.uint8))
    complete = out.read_bytes()
    writer.abort()
    assert out.read_bytes() == complete and not partial_path(out).exists()
