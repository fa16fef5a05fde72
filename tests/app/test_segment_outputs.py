"""``tgs segment``'s output folder: what a killed call, a second concurrent call and a rerun leave,
and what the command refuses before any work.

- A call killed with SIGKILL while it writes (dense output) leaves no file under a final name
  that was not there complete before, the previous call's outputs byte for byte, and the next
  call removes its partial files.
- One writer per output folder: a second call is refused with one line naming the folder and
  the first call's pid.
- A rerun removes only what a call writes (overlay, masks.json, result.json, the ``00000.png``
  files of ``masks/<k>/``); anything else in the folder stays.
- User text (paths, expressions) is shown literally in the progress bar; warnings are one
  plain line on the console and listed in result.json.
- Bad options are refused before anything starts: no progress bar, nothing written.

The killed process is stopped at a known point without timing: a wrapper script makes the
overlay sink block forever after a given frame, once it has written a "ready" file; the
test polls for that file (bounded), then kills.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tgs.cli.main import build_app
from tgs.core.segment import segment_video
from tgs.core.settings import Settings
from tgs.data.synth import write_video

SMALL = (64, 48)
TINY_CLI = ("--thinker", "direct", "--models", "tiny", "--device", "cpu")

_BLOCKING_TGS = textwrap.dedent(
    """
    import os, sys, threading
    from pathlib import Path

    import tgs.dense_outputs as dense_outputs
    import tgs.viz as viz

    ready, after = Path(sys.argv[1]), int(sys.argv[2])
    draw = viz.overlay_objects
    drawn = [0]

    def blocking_draw(*args, **kwargs):  # every overlay frame, dense or sampled, is drawn here
        drawn[0] += 1
        if drawn[0] == after:  # mid-video: every output is half written
            ready.write_text(str(os.getpid()))
            threading.Event().wait()  # until the test kills this process
        return draw(*args, **kwargs)

    viz.overlay_objects = dense_outputs.overlay_objects = blocking_draw
    from tgs.cli.main import main

    sys.argv = ["tgs", *sys.argv[3:]]
    main()
    """
)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("clip") / "clip.mp4", 2.0, 10, SMALL, seed=1, with_audio=True)


def _invoke(*args: object) -> tuple[int, str]:
    """(exit code, all output on one line: rich boxes and wrapping removed)."""
    result = CliRunner().invoke(build_app(), [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    text = result.output + (result.stderr if result.stderr_bytes is not None else "")
    return result.exit_code, " ".join(re.sub(r"[│╭╮╰╯─┃┏┓┗┛━┡┩┢┪╇╈┳┻]", " ", text).split())


def _start_blocked(
    tmp_path: Path, video: Path, out: Path, *expressions: str, after: int = 5, extra: tuple[str, ...] = ()
) -> subprocess.Popen:
    """A ``tgs segment`` subprocess stopped for good at its ``after``-th overlay frame (returns once it is)."""
    script = tmp_path / "blocking_tgs.py"
    script.write_text(_BLOCKING_TGS)
    ready, log = tmp_path / "ready", tmp_path / "blocked.log"
    ready.unlink(missing_ok=True)
    with log.open("w") as sink:
        proc = subprocess.Popen(
            [sys.executable, str(script), str(ready), str(after), "segment", str(video), *expressions, *TINY_CLI,
             "--out", str(out), *extra],
            stdout=sink, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
    deadline = time.monotonic() + 300  # bounded: loading the tiny models takes seconds
    while not ready.exists():
        if proc.poll() is not None:
            raise AssertionError(f"tgs segment ended (rc {proc.returncode}) before blocking: {log.read_text()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("tgs segment did not reach the blocking frame")
        time.sleep(0.05)
    return proc


def _kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def _visible_files(out: Path) -> dict[str, bytes]:
    """Every file under a final (not hidden) name, with its bytes."""
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(out).parts)
    }


def _partials(out: Path) -> list[Path]:
    return [p for p in out.rglob("*") if "partial" in p.name]


# --------------------------------------------------------------------------- 2, 5: partial names


@pytest.mark.parametrize("fps", [None, 5.0], ids=["dense", "sampled"])
def test_sigkill_of_a_rerun_keeps_the_previous_outputs_and_the_next_run_cleans_up(clip, tmp_path, fps) -> None:
    out = tmp_path / "out"
    frames = 20 if fps is None else 10  # a 2 s clip at 10 fps
    first = segment_video(clip, "the red object", thinker="direct", settings=Settings.tiny(), out=out, fps=fps)
    assert first.num_frames == frames
    before = _visible_files(out)
    assert {"overlay.mp4", "result.json", "masks/0/00000.png"} <= set(before)
    assert ("masks.json" in before) == (fps is None)

    extra = () if fps is None else ("--fps", str(fps))
    proc = _start_blocked(tmp_path, clip, out, "the red object", "the blue object", after=frames // 2, extra=extra)
    _kill(proc)
    # Nothing under a final name changed: no broken overlay / masks.json, result.json kept, no new PNG.
    assert _visible_files(out) == before
    assert _partials(out), "the kill came while the outputs were being written"

    again = segment_video(clip, ["the red object", "the blue object"], thinker="direct", settings=Settings.tiny(),
                          out=out, fps=fps)
    assert not _partials(out), "the killed call's partial files are removed by the next call"
    after = _visible_files(out)
    assert len([k for k in after if k.startswith("masks/1/")]) == again.num_frames == frames
    assert len(json.loads((out / "result.json").read_text())["expressions"]) == 2


# --------------------------------------------------------------------------- 6: one writer


def test_a_second_call_into_the_same_folder_is_refused_naming_the_first_pid(clip, tmp_path) -> None:
    out = tmp_path / "out"
    proc = _start_blocked(tmp_path, clip, out, "the red object", after=1)
    try:
        code, text = _invoke("segment", clip, "the red object", *TINY_CLI, "--out", out)
    finally:
        _kill(proc)
    assert code == 1, text
    assert f"pid {proc.pid}" in text and str(out) in text and "another process" in text, text
    assert "unexpected" not in text and "bug" not in text
    assert not (out / "result.json").exists() and not (out / "overlay.mp4").exists()


# --------------------------------------------------------------------------- 9: only what it wrote


def test_a_rerun_removes_only_what_a_call_writes(clip, tmp_path) -> None:
    out = tmp_path / "out"
    segment_video(clip, ["the red object", "the blue object"], thinker="direct", settings=Settings.tiny(), out=out)
    assert len(list((out / "masks" / "1").glob("*.png"))) == 20
    mine = {
        out / "masks" / "7" / "keep.txt": "a user's file in a numbered folder",
        out / "masks" / "0" / "notes.txt": "beside our PNGs",
        out / "masks" / "readme.md": "in masks/",
        out / "masks" / "00001.jpg": "not one of our names",
        out / "other.txt": "in OUT",
    }
    for path, text in mine.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (out / ".overlay.partial.mp4").write_bytes(b"left by a call killed under an earlier version")

    segment_video(clip, "the red object", thinker="direct", settings=Settings.tiny(), out=out, fps=2.0)
    for path, text in mine.items():
        assert path.read_text() == text, path
    # The previous call's files that this one does not write are gone: expression 1's PNGs
    # (and its folder, now empty), the dense masks.json; expression 0 has the new 4 PNGs.
    assert not (out / "masks" / "1").exists() and not (out / "masks.json").exists()
    assert not _partials(out)
    assert sorted(p.name for p in (out / "masks" / "0").glob("*.png")) == [f"{i:05d}.png" for i in range(4)]


# --------------------------------------------------------------------------- 7, 13: refused at once


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("thinker-opt", "no option 'foo'"),
        ("device", "not a device name"),
        ("out-file", "existing file"),
        ("missing-video", "video not found"),
        ("empty-expression", "expression 2 of 3 is empty"),
    ],
)
def test_bad_options_are_refused_before_any_work(clip, tmp_path, case, message) -> None:
    out = tmp_path / "out"
    video, expressions, extra = clip, ["the dog", "the cat"], []
    if case == "thinker-opt":
        extra = ["--thinker-opt", "foo=1"]
    elif case == "device":
        extra = ["--device", "foo"]
    elif case == "out-file":
        out.write_text("keep")
    elif case == "missing-video":
        video = tmp_path / "missing.mp4"
    elif case == "empty-expression":
        expressions = ["the dog", "  ", "the cat"]
    code, text = _invoke("segment", video, *expressions, *TINY_CLI, *extra, "--out", out)
    assert code in (1, 2) and message in text, text  # a usage error (2) or a refused input (1), one line
    assert "unexpected" not in text and "bug in tgs" not in text
    assert "/1000" not in text, f"the progress bar had started: {text}"  # refused before any work
    if case == "out-file":
        assert out.read_text() == "keep"
    else:
        assert not out.exists()
    if case == "empty-expression":
        assert "Fix:" in text


# --------------------------------------------------------------------------- 10, 11: what is shown


def test_progress_bar_shows_paths_literally(clip, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # a short relative path: the label fits the 80 columns of the test console
    out = Path("o/mk[/]out/[red]x[/red]")
    code, text = _invoke("segment", clip, "[red]x[/red]", *TINY_CLI, "--out", out, "--no-png")
    assert code == 0, text
    assert f"done: {out}" in text, text  # the progress bar's last label, not read as markup
    assert (out / "overlay.mp4").is_file()


def test_warnings_are_one_plain_line_and_listed_in_result_json(clip, tmp_path) -> None:
    out = tmp_path / "out"
    code, text = _invoke("segment", clip, "the dog", *TINY_CLI, "--out", out, "--fps", "1000")
    assert code == 0, text
    assert "SamplingWarning: --fps 1000 is above the frame rate" in text, text
    assert "segment.py" not in text and "cap_sampling_rate(" not in text, text  # no source path, no code
    listed = json.loads((out / "result.json").read_text())["warnings"]
    assert any(w.startswith("--fps 1000 is above the frame rate") for w in listed), listed
