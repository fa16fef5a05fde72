"""``tgs segment SOURCE ...`` on a live source, end to end: the CLI in a subprocess (tiny models,
the direct thinker) on a synthetic clip served in real time by ``ffmpeg -re`` (25 fps, 320x240,
MPEG-TS) to a local TCP port or a pipe.

What holds whatever the machine's speed (the real-time policy emits what it can):

- masks.jsonl has one complete line per emitted frame, and the frame numbers account for
  every decoded frame: each line's ``frame`` is the previous one's + 1 + its ``skipped``, the
  skipped counts sum to result.json's, and decoded == emitted + skipped (+ unread at a stop);
- the PNGs (``--png``) are exactly the emitted frames' and equal masks.jsonl's masks;
- the overlay holds a skipped frame's place: it has one frame per source frame up to the last
  emitted one;
- SIGINT ends the run cleanly (exit 0, result.json, the overlay complete); SIGKILL leaves only
  complete lines and a readable overlay; ``--reconnect`` resumes after the sender is killed and
  restarted on the same port, and result.json records the gap.

The tests wait for lines in masks.jsonl (polling, bounded), never for a guessed time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from killed_runs import reap, start_killable
from live_streams import RATE, SIZE, TcpServer, ffmpeg_args, free_port, needs_ffmpeg, wait_listening
from PIL import Image

from tgs.masks_jsonl import read_masks_jsonl

pytestmark = needs_ffmpeg

EXPRESSIONS = ("the red ball", "the clock")
TINY = ("--thinker", "direct", "--models", "tiny", "--device", "cpu")
DEADLINE_S = 180.0  # a bound on waiting for a loaded machine, not a timing assertion


def _serve(port: int, seconds: float | None) -> TcpServer:
    server = TcpServer(port, seconds)
    wait_listening(port)
    return server


def _command(source: str, out: Path, *extra: str, thinker: str = "direct") -> list[str]:
    return [sys.executable, "-X", "faulthandler", "-m", "tgs.cli.main", "segment", source, *EXPRESSIONS,
            "--thinker", thinker, "--models", "tiny", "--device", "cpu", "--out", str(out), *extra]


def _lines(path: Path) -> list[dict]:
    return read_masks_jsonl(path).frames if path.is_file() else []


def _wait_for(run: subprocess.Popen, condition, what: str) -> None:
    """Poll until ``condition()`` holds; fail naming ``what`` if the run exits first or the bound passes."""
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if run.poll() is not None:
            raise AssertionError(f"the run exited ({run.returncode}) before {what}: {run.stderr.read().decode()[-2000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _finish(run: subprocess.Popen) -> tuple[int, str]:
    try:
        _, err = run.communicate(timeout=DEADLINE_S)
    finally:
        reap(run)
    return run.returncode, err.decode(errors="replace")


def _overlay_frames(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def _check_frame_accounting(lines: list[dict]) -> None:
    """Every line's frame number is the previous one's + 1 + the frames skipped between them."""
    previous = -1
    for line in lines:
        assert line["frame"] == previous + 1 + line["skipped"], line["frame"]
        assert [o["id"] for o in line["objects"]] == [0, 1]
        assert all(o["rle"]["size"] == list(SIZE) for o in line["objects"])
        assert line["latency"] is not None and line["latency"] >= 0
        previous = line["frame"]


def _check_result(out: Path) -> dict:
    """result.json against masks.jsonl and the overlay; returns result.json."""
    result = json.loads((out / "result.json").read_text())
    live = result["live"]
    log = read_masks_jsonl(out / "masks.jsonl")
    assert not log.torn and log.header["objects"] == [{"id": 0, "name": EXPRESSIONS[0]}, {"id": 1, "name": EXPRESSIONS[1]}]
    lines = log.frames
    _check_frame_accounting(lines)
    assert len(lines) == live["frames_emitted"] == result["output"]["num_frames"] > 0
    assert sum(line["skipped"] for line in lines) == live["frames_skipped"]
    counts = live["source_frames"]
    assert counts["frames_emitted"] == live["frames_emitted"]
    assert counts["frames_decoded"] == counts["frames_emitted"] + counts["frames_skipped"] + counts["frames_unread"]
    assert counts["frames_decoded"] > lines[-1]["frame"]  # every line names a decoded frame
    overlay = _overlay_frames(out / "overlay.mp4")
    assert len(overlay) == lines[-1]["frame"] + 1  # a skipped frame holds its place
    assert overlay[0].shape == (*SIZE, 3)
    return result


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "live"


def test_a_stream_to_its_end_masks_every_emitted_frame(out: Path) -> None:
    seconds = 3
    with _serve(free_port(), seconds) as server:
        run = start_killable(_command(server.url, out, "--png"))
        code, err = _finish(run)
    assert code == 0, err
    result = _check_result(out)
    live = result["live"]
    assert live["frames_decoded"] == seconds * RATE and live["source_frames"]["frames_unread"] == 0
    assert live["frames_skipped"] == seconds * RATE - live["frames_emitted"]  # skipped == decoded - emitted
    assert live["gaps"] == [] and live["kind"] == "stream" and live["policy"] == "realtime"
    assert result["video"]["path"] == server.url and result["output"]["mode"] == "live"
    assert result["video"]["has_audio"] and result["video"]["height"] == SIZE[0]  # the served clip has a sine
    assert [e["object_text"] for e in result["expressions"]] == list(EXPRESSIONS)  # direct: the expressions
    log = read_masks_jsonl(out / "masks.jsonl")
    emitted = [line["frame"] for line in log.frames]
    for k in range(len(EXPRESSIONS)):
        pngs = sorted(int(p.stem) for p in (out / "masks" / str(k)).glob("*.png"))
        assert pngs == emitted
    for position in (0, len(emitted) // 2, len(emitted) - 1):
        masks = log.masks(position)
        for k in range(len(EXPRESSIONS)):
            png = np.asarray(Image.open(out / "masks" / str(k) / f"{emitted[position]:05d}.png")) > 0
            assert np.array_equal(png, masks[k])


def test_the_thinker_thinks_in_the_background_and_its_answers_apply_from_then(out: Path) -> None:
    seconds = 13  # the first think comes with the first complete 10 s window
    with _serve(free_port(), seconds) as server:
        run = start_killable(_command(server.url, out, thinker="ref-thinker"))  # tiny, random: answers no_tags
        code, err = _finish(run)
    assert code == 0, err
    result = _check_result(out)
    think = result["live"]["think"]
    assert think["thinks"]["started"] == think["thinks"]["finished"] == 1 and think["window_seconds"] == 10.0
    lines = read_masks_jsonl(out / "masks.jsonl").frames
    for k, expression in enumerate(result["expressions"]):
        [span] = expression["answers"]  # one think: one span, over the window it saw
        assert span["start"] == 0.0 and 10.0 <= span["end"] < seconds and span["windows"] == 1
        # the text is written where it changes: null on the first frame (no answer yet), then the answer
        named = [line for line in lines if "object_text" in line["objects"][k]]
        assert [line["objects"][k]["object_text"] for line in named] == [None, expression["object_text"]]
        assert named[0]["frame"] == lines[0]["frame"]
        answered = named[1]
        # the answer applies from the first frame after it: grounded there, nothing before it
        assert answered["time"] >= span["end"] and answered["objects"][k]["grounded"]
        before = [line for line in lines if line["time"] < answered["time"]]
        assert before and not any(line["objects"][k]["grounded"] or line["objects"][k]["box"] for line in before)


def test_a_stream_piped_into_standard_input(out: Path) -> None:
    seconds = 2
    sender = subprocess.Popen(ffmpeg_args(seconds, ["-f", "mpegts", "-"]), stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE)
    try:
        run = subprocess.run(_command("-", out, "--every-frame"), stdin=sender.stdout, capture_output=True,
                             timeout=DEADLINE_S, env={**os.environ, "OMP_NUM_THREADS": "1"})
    finally:
        sender.kill()
        sender.wait()
    assert run.returncode == 0, run.stderr.decode()[-2000:]
    result = _check_result(out)
    # every-frame: nothing skipped, every frame of the clip emitted in order
    assert result["live"]["kind"] == "stdin" and result["live"]["policy"] == "every-frame"
    assert result["live"]["frames_emitted"] == seconds * RATE and result["live"]["frames_skipped"] == 0


def test_sigint_ends_the_run_cleanly_with_every_output_valid(out: Path) -> None:
    with _serve(free_port(), None) as server:
        run = start_killable(_command(server.url, out))
        _wait_for(run, lambda: len(_lines(out / "masks.jsonl")) >= 20, "20 frames in masks.jsonl")
        run.send_signal(signal.SIGINT)
        code, err = _finish(run)
    assert code == 0, err
    result = _check_result(out)
    assert "SIGINT" in result["live"]["end"]
    assert "Traceback" not in err


def test_sigterm_ends_the_run_cleanly(out: Path) -> None:
    with _serve(free_port(), None) as server:
        run = start_killable(_command(server.url, out))
        _wait_for(run, lambda: len(_lines(out / "masks.jsonl")) >= 5, "5 frames in masks.jsonl")
        run.send_signal(signal.SIGTERM)
        code, err = _finish(run)
    assert code == 0, err
    assert "SIGTERM" in _check_result(out)["live"]["end"]


def test_a_dropped_connection_ends_the_run_cleanly(out: Path) -> None:
    with _serve(free_port(), None) as server:
        run = start_killable(_command(server.url, out))
        _wait_for(run, lambda: len(_lines(out / "masks.jsonl")) >= 10, "10 frames in masks.jsonl")
        server.kill()  # the sender goes away; without --reconnect that is the end of the stream
        code, err = _finish(run)
    assert code == 0, err
    live = _check_result(out)["live"]
    assert live["gaps"] == [] and live["reconnects"] == 0 and "SIG" not in live["end"]


def test_sigkill_leaves_complete_lines_and_a_readable_overlay(out: Path) -> None:
    with _serve(free_port(), None) as server:
        run = start_killable(_command(server.url, out))
        # 3 s of stream seen in masks.jsonl: the overlay, a fragment per second, has completed two
        _wait_for(run, lambda: any(line["frame"] >= 3 * RATE for line in _lines(out / "masks.jsonl")),
                  "frame 75 in masks.jsonl")
        seen = _lines(out / "masks.jsonl")
        os.killpg(run.pid, signal.SIGKILL)
        _finish(run)
    assert not (out / "result.json").exists()
    log = read_masks_jsonl(out / "masks.jsonl")  # complete lines only (a torn last one dropped)
    assert len(log.frames) >= len(seen)
    _check_frame_accounting(log.frames)
    for position in range(len(log.frames)):
        assert log.masks(position).shape == (len(EXPRESSIONS), *SIZE)
    # masks.jsonl gets a frame before the overlay does, and the overlay lags by at most the fragment
    # in progress (1 s): the fragments before the last seen frame's are complete and decode.
    last = seen[-1]["frame"]
    assert len(_overlay_frames(out / "overlay.mp4")) >= RATE * (last // RATE) - RATE


def test_reconnect_resumes_a_dropped_stream_and_records_the_gap(out: Path) -> None:
    port = free_port()
    first = _serve(port, None)
    second = None
    try:
        run = start_killable(_command(first.url, out, "--reconnect"))
        _wait_for(run, lambda: len(_lines(out / "masks.jsonl")) >= 10, "10 frames in masks.jsonl")
        first.kill()  # the sender drops; it comes back on the same port while the run retries
        before = _lines(out / "masks.jsonl")[-1]
        second = TcpServer(port, None)
        _wait_for(run, lambda: len([f for f in _lines(out / "masks.jsonl") if f["time"] > before["time"] + 0.5]) >= 10,
                  "10 frames after the drop")
        run.send_signal(signal.SIGINT)
        code, err = _finish(run)
    finally:
        first.kill()
        if second is not None:
            second.kill()
    assert code == 0, err
    result = _check_result(out)
    live = result["live"]
    assert live["reconnects"] == 1 and len(live["gaps"]) == 1
    gap = live["gaps"][0]
    assert gap["start"] >= before["time"] and gap["end"] > gap["start"] and gap["attempts"] >= 1
    times = [round(line["time"], 6) for line in read_masks_jsonl(out / "masks.jsonl").frames]  # as result.json
    assert times == sorted(times)
    assert not [t for t in times if gap["start"] < t < gap["end"]]  # nothing inside the gap
    assert [t for t in times if t >= gap["end"]]


def test_an_unreachable_source_is_one_line_and_writes_nothing(out: Path) -> None:
    url = f"tcp://127.0.0.1:{free_port()}"  # nobody listens
    run = subprocess.run(_command(url, out), capture_output=True, timeout=DEADLINE_S,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    err = run.stderr.decode()
    assert run.returncode != 0 and url in err and "Traceback" not in err and "bug in tgs" not in err
    assert not (out / "masks.jsonl").exists() and not (out / "result.json").exists()
    assert not (out / "overlay.mp4").exists()


@pytest.mark.parametrize(
    ("source_is_live", "option", "named"),
    [(False, ["--reconnect"], "--reconnect"), (False, ["--rethink-every", "5"], "--rethink-every"),
     (False, ["--png"], "--png"), (True, ["--fps", "2"], "--fps"), (True, ["--no-png"], "--no-png")],
)
def test_options_of_the_other_kind_of_source_are_refused(tmp_path: Path, source_is_live: bool, option: list[str],
                                                          named: str) -> None:
    from typer.testing import CliRunner

    from tgs.cli.main import build_app

    source = "tcp://127.0.0.1:9" if source_is_live else str(tmp_path / "clip.mp4")
    result = CliRunner().invoke(build_app(), ["segment", source, "x", *TINY, "--out", str(tmp_path / "o"), *option])
    text = " ".join((result.output + (result.stderr if result.stderr_bytes is not None else "")).split())
    assert result.exit_code == 2 and named in text and "Traceback" not in text
    assert not (tmp_path / "o").exists()


def test_the_console_status_shows_the_running_counts() -> None:
    from rich.console import Console

    from tgs.cli.segment_live import LiveStatus

    class Mode:
        def status(self) -> dict:
            return {"emitted": 12, "decoded": 40, "skipped": 28, "latency_last": 0.05, "latency_p50": 0.04,
                    "latency_p95": 0.09, "emitted_fps": 7.5, "reconnects": 1,
                    "object_texts": ["a red ball", None], "thinking": True}

    class Session:
        mode = Mode()

    status = LiveStatus(["the red ball", "the [b]clock[/b]"])
    console = Console(record=True, width=200)
    console.print(status)
    assert "loading the models" in console.export_text()
    status.session = Session()
    console.print(status)
    text = console.export_text()
    assert "12 emitted of 40 decoded, 28 skipped, 7.5 fps" in text
    assert "last 50 ms, p50 40 ms, p95 90 ms" in text and "reconnects  1" in text
    assert "the red ball -> a red ball" in text and "the [b]clock[/b] -> (waiting for the thinker)" in text
    assert "thinking" in text
