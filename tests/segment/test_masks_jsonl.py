"""masks.jsonl: one complete, flushed line per emitted frame; a torn last line is dropped on reading."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import numpy as np
import pytest
from killed_runs import kill_when_ready

from tgs.errors import DataError
from tgs.masks_jsonl import MASKS_JSONL_FORMAT, MasksJsonlSink, read_masks_jsonl
from tgs.types import FrameResult


def result(index: int, masks: np.ndarray, *, texts: list[str | None] | None = None, **fields) -> FrameResult:
    count, height, width = masks.shape
    defaults = dict(
        time=index / 25, image=np.zeros((height, width, 3), np.uint8), masks=masks,
        boxes=[None] * count, scores=np.full(count, np.nan, np.float32),
        grounded=np.zeros(count, bool), seeded=np.zeros(count, bool),
        details=None if texts is None else [None if t is None else {"object_text": t} for t in texts],
    )
    return FrameResult(index=index, **{**defaults, **fields})


def hand_masks(index: int) -> np.ndarray:
    """Two objects on a 2x3 frame; object 0 is the hand-encoded L shape, object 1 moves."""
    masks = np.zeros((2, 2, 3), bool)
    masks[0] = [[0, 1, 1], [0, 1, 0]]
    masks[1, index % 2, index % 3] = True
    return masks


def test_round_trip_of_hand_made_masks(tmp_path: Path):
    path = tmp_path / "masks.jsonl"
    sink = MasksJsonlSink(path, ["the dog", "the ball"], fps=25.0, source="rtsp://cam")
    sink.add(result(0, hand_masks(0), texts=["a brown dog", "a red ball"], boxes=[(1.0, 0.0, 3.0, 2.0), None],
                    scores=np.array([0.5, np.nan], np.float32), grounded=np.array([True, True]),
                    seeded=np.array([True, False]), latency=0.04, skipped=0))
    sink.add(result(3, hand_masks(3), texts=["a brown dog", "a red ball"], latency=0.05, skipped=2))
    sink.add(result(4, hand_masks(4), texts=["the small dog", "a red ball"], latency=None))
    sink.close()

    read = read_masks_jsonl(path)
    assert not read.torn
    assert read.header == {"format": MASKS_JSONL_FORMAT, "height": 2, "width": 3, "fps": 25.0,
                           "source": "rtsp://cam", "objects": [{"id": 0, "name": "the dog"}, {"id": 1, "name": "the ball"}]}
    assert [(f["frame"], f["time"], f["latency"], f["skipped"]) for f in read.frames] == [
        (0, 0.0, pytest.approx(0.04), 0), (3, 0.12, pytest.approx(0.05), 2), (4, 0.16, None, 0)]
    first = read.frames[0]["objects"]
    # Column-major runs of the L shape [[0,1,1],[0,1,0]]: 2 zeros, 3 ones, 1 zero; COCO writes
    # each small run as one character chr(48 + n).
    assert first[0]["rle"] == {"size": [2, 3], "counts": "231"}
    assert first[0] | {"rle": None} == {"id": 0, "rle": None, "box": [1.0, 0.0, 3.0, 2.0], "score": 0.5,
                                         "grounded": True, "seeded": True, "object_text": "a brown dog"}
    assert first[1]["box"] is None and first[1]["score"] is None  # NaN score: null
    # The object text only where it changed: both on the first frame, object 0's on frame 4.
    texts = [[o.get("object_text") for o in f["objects"]] for f in read.frames]
    assert texts == [["a brown dog", "a red ball"], [None, None], ["the small dog", None]]
    for position, index in enumerate((0, 3, 4)):
        assert np.array_equal(read.masks(position), hand_masks(index))


def test_every_change_of_object_text_is_written_null_and_returns_included(tmp_path: Path):
    """A live expression's text over time: no answer yet (None), "dog", "cat", a null answer
    (None), "cat" again, "dog" again, unchanged; a frame whose details lack the key says
    nothing. Each change is written, to null and back to an earlier text too, so the last
    ``object_text`` at or before a frame is the text in force there."""
    path = tmp_path / "masks.jsonl"
    sink = MasksJsonlSink(path, ["the pet"])
    texts = [None, "dog", "cat", None, "cat", "dog", "dog", "no key"]
    for i, text in enumerate(texts):
        details = [{"other": 1}] if text == "no key" else [{"object_text": text}]
        sink.add(result(i, hand_masks(i)[:1], details=details))
    sink.close()
    missing = object()
    written = [f["objects"][0].get("object_text", missing) for f in read_masks_jsonl(path).frames]
    assert written == [None, "dog", "cat", None, "cat", "dog", missing, missing]


def test_a_torn_last_line_is_dropped_and_a_broken_line_elsewhere_is_an_error(tmp_path: Path):
    path = tmp_path / "masks.jsonl"
    sink = MasksJsonlSink(path, ["a"])
    for i in range(3):
        sink.add(result(i, hand_masks(i)[:1]))
    sink.close()
    lines = path.read_bytes().split(b"\n")
    assert len(lines) == 5 and lines[-1] == b""  # header, 3 frames, nothing after the last newline
    path.write_bytes(b"\n".join(lines[:3]) + b"\n" + lines[3][: len(lines[3]) // 2])  # killed mid-line 4
    read = read_masks_jsonl(path)
    assert read.torn and [f["frame"] for f in read.frames] == [0, 1]
    path.write_bytes(lines[0] + b"\n" + lines[1][:10] + b"\n" + lines[2] + b"\n")
    with pytest.raises(DataError, match="line 2 is not JSON"):
        read_masks_jsonl(path)
    path.write_bytes(json.dumps({"format": "tgs-dense-masks/1"}).encode() + b"\n")
    with pytest.raises(DataError, match=MASKS_JSONL_FORMAT):
        read_masks_jsonl(path)
    path.write_bytes(lines[0][:7])  # killed inside the header: no complete line
    assert read_masks_jsonl(path).header is None and read_masks_jsonl(path).frames == []


def test_fsync_runs_on_the_first_line_then_at_most_once_per_interval(tmp_path: Path, monkeypatch):
    synced: list[float] = []
    now = iter([0.0, 0.3, 0.9, 1.0, 1.2, 2.1, 2.2, 2.3])
    clock_value = [0.0]

    def clock() -> float:
        clock_value[0] = next(now)
        return clock_value[0]

    monkeypatch.setattr("tgs.masks_jsonl.os.fsync", lambda fd: synced.append(clock_value[0]))
    sink = MasksJsonlSink(tmp_path / "masks.jsonl", ["a"], fsync_every=1.0, clock=clock)
    for i in range(7):
        sink.add(result(i, hand_masks(i)[:1]))
    # Frames at t = 0, 0.3, 0.9, 1.0, 1.2, 2.1, 2.2: synced at 0 (the first line), at 1.0 (1 s
    # after 0) and at 2.1 (1.1 s after 1.0); close() syncs whatever came after (t = 2.3).
    sink.close()
    assert synced == [0.0, 1.0, 2.1, 2.3] and sink.fsyncs == 4


def test_abort_keeps_the_complete_frames_and_empty_sessions(tmp_path: Path):
    path = tmp_path / "masks.jsonl"
    sink = MasksJsonlSink(path, ["a", "b"])
    sink.add(result(0, hand_masks(0)))
    sink.abort()
    assert [f["frame"] for f in read_masks_jsonl(path).frames] == [0]
    with pytest.raises(ValueError, match="after close"):
        sink.add(result(1, hand_masks(1)))

    untouched = tmp_path / "never.jsonl"
    MasksJsonlSink(untouched, ["a"]).abort()
    assert not untouched.exists()  # aborted before the first frame: nothing created
    empty = tmp_path / "empty.jsonl"
    MasksJsonlSink(empty, ["a"], size=(4, 6)).close()
    read = read_masks_jsonl(empty)
    assert read.header["height"] == 4 and read.header["width"] == 6 and read.frames == []


def test_frames_that_do_not_fit_are_refused(tmp_path: Path):
    sink = MasksJsonlSink(tmp_path / "masks.jsonl", ["a", "b"], size=(2, 3))
    with pytest.raises(ValueError, match="1 expressions"):
        sink.add(result(0, hand_masks(0)[:1]))
    with pytest.raises(ValueError, match="4x3"):
        sink.add(result(0, np.zeros((2, 4, 3), bool)))
    sink.abort()


def killed_stream_masks(index: int) -> np.ndarray:
    """Even frames: noise (lines of tens of kB, several I/O buffers each); odd frames: empty
    masks (lines of a few hundred bytes, which only a flush gets out of the buffer)."""
    if index % 2:
        return np.zeros((3, 240, 320), bool)
    return np.random.default_rng(index).random((3, 240, 320)) < 0.5


def _write_then_hang(path: str, count: int, ready) -> None:
    """The writer to be killed: ``count`` frames written, then it signals and waits."""
    sink = MasksJsonlSink(path, ["a", "b", "c"])
    for i in range(count):
        sink.add(result(i, killed_stream_masks(i)))
    ready.set()
    signal.pause()


def test_sigkill_leaves_only_complete_lines(tmp_path: Path):
    path = tmp_path / "masks.jsonl"
    kill_when_ready(_write_then_hang, (str(path), 6))
    assert path.read_bytes().endswith(b"\n")  # every line was flushed whole before the kill
    read = read_masks_jsonl(path)
    assert not read.torn and [f["frame"] for f in read.frames] == list(range(6))
    for position in range(6):
        assert np.array_equal(read.masks(position), killed_stream_masks(position))
