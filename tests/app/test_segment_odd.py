"""``tgs segment``, ``tgs data synth``, ``tgs run`` + ``tgs report`` and the demo on odd inputs:
one-line errors instead of tracebacks, nothing overwritten, outputs that follow the video."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import av
import numpy as np
import pytest
from demo_fakes import write_clip
from typer.testing import CliRunner

from tgs.cli.main import build_app
from tgs.data.synth import generate
from tgs.errors import MediaError

UPLOAD = "Uploaded video"


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(build_app(), [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    text = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert "Traceback" not in text
    return result.exit_code, " ".join(re.sub(r"[│╭╮╰╯─┃┏┓┗┛━┡┩┢┪╇╈┳┻]", " ", text).split())


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", seconds=2.0, fps=5.0)


def segment(video: Path, out: Path, *extra: str) -> tuple[int, str]:
    return invoke("segment", video, "the dog", "--thinker", "direct", "--models", "tiny", "--device", "cpu",
                  "--out", out, *extra)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--device", "foo"), "not a device name"),
        (("--thinker-opt", "foo=1"), "no option 'foo'"),
        (("--gdino", "/nonexistent"), "tiny model set"),
        (("--sam2", "/nonexistent"), "tiny model set"),
    ],
)
def test_bad_settings_are_one_line_errors(clip, tmp_path, extra, message):
    code, out = segment(clip, tmp_path / "out", *extra)
    assert code in (1, 2) and message in out  # a usage error (2) or a refused setting (1), one line


def test_out_that_is_a_file_is_refused(clip, tmp_path):
    target = tmp_path / "afile"
    target.write_text("keep")
    code, out = segment(clip, target)
    assert code == 1 and "existing file" in out and target.read_text() == "keep"


def test_the_input_is_never_overwritten(clip, tmp_path):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    video = out_dir / "overlay.mp4"
    shutil.copyfile(clip, video)
    code, out = segment(video, out_dir)
    assert code == 1 and "overwritten" in out
    assert video.read_bytes() == clip.read_bytes()


def test_a_folder_as_the_video_says_so(tmp_path):
    code, out = segment(tmp_path, tmp_path / "out")
    assert code == 1 and "is a folder" in out


def test_fps_above_the_source_rate_is_capped(clip, tmp_path):
    code, out = segment(clip, tmp_path / "out", "--fps", "1000")
    assert code == 0, out
    result = json.loads((tmp_path / "out" / "result.json").read_text())
    assert result["sampling"]["fps"] == pytest.approx(5.0)
    assert len(result["expressions"][0]["frames"]) == 10 == len(list((tmp_path / "out" / "masks" / "0").glob("*.png")))


def test_rotated_video_outputs_follow_the_playback_orientation(tmp_path):
    video = tmp_path / "phone.mp4"
    with av.open(str(video), "w") as container:
        stream = container.add_stream("mpeg4", rate=2)
        stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
        stream.set_display_rotation(90)
        for i in range(4):
            frame = av.VideoFrame.from_ndarray(np.zeros((32, 64, 3), np.uint8), format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    code, out = segment(video, tmp_path / "out")
    assert code == 0, out
    result = json.loads((tmp_path / "out" / "result.json").read_text())
    assert (result["video"]["width"], result["video"]["height"]) == (32, 64)
    from PIL import Image

    assert Image.open(tmp_path / "out" / "masks" / "0" / "00000.png").size == (32, 64)
    with av.open(str(tmp_path / "out" / "overlay.mp4")) as container:
        frame = next(container.decode(video=0))
        assert (frame.width, frame.height) == (32, 64) and not frame.rotation


@pytest.mark.parametrize("size", ["0x0", "33x17"])
def test_synth_bad_sizes_are_refused_without_traceback(tmp_path, size):
    code, out = invoke("data", "synth", tmp_path / "b", "--videos", "1", "--size", size)
    assert code == 2 and "at least 32x32" in out and not (tmp_path / "b").exists()


def test_synth_into_a_file_or_a_benchmark_is_refused_unless_forced(tmp_path):
    target = tmp_path / "afile"
    target.write_text("x")
    code, out = invoke("data", "synth", target, "--videos", "1")
    assert code == 1 and "is a file" in out
    generate(tmp_path / "b", 1, 0, (64, 48))
    meta = (tmp_path / "b" / "metadata.csv").read_bytes()
    code, out = invoke("data", "synth", tmp_path / "b", "--videos", "1", "--seed", "3")
    assert code == 1 and "--force" in out and (tmp_path / "b" / "metadata.csv").read_bytes() == meta
    code, out = invoke("data", "synth", tmp_path / "b", "--videos", "1", "--seed", "3", "--force", "--size", "64x48")
    assert code == 0 and (tmp_path / "b" / "metadata.csv").read_bytes() != meta


def test_report_reads_the_thoughts_of_a_tgs_run(tmp_path):
    root = tmp_path / "bench"
    meta = generate(root, 3, 0, (64, 48))
    run = tmp_path / "run"
    code, out = invoke("run", "--data", root, "--meta", meta, "--split", "test_s", "--models", "tiny",
                       "--device", "cpu", "--out", run, "--thinker-opt", "max_new_tokens=4")
    assert code == 0, out
    from tgs.report.run_data import load_run

    data = load_run(run)
    thought_uids = {json.loads(line)["uid"] for line in (run / "think" / "thoughts.jsonl").read_text().splitlines()}
    assert thought_uids and set(data.thoughts) == thought_uids
    code, out = invoke("report", run)
    assert code == 0 and "0 thoughts read" not in out


def test_demo_says_short_audio_in_plain_words_and_hides_server_paths(tmp_path):
    pytest.importorskip("gradio")
    from tgs.app import DemoBackend, DemoWorkspace

    workspace = DemoWorkspace(tmp_path / "work")
    short = write_clip(tmp_path / "short.mp4", seconds=1.0, fps=4.0)
    upload = workspace.gradio_cache / "abc" / "short.mp4"
    upload.parent.mkdir()
    shutil.copyfile(short, upload)
    backend = DemoBackend(workspace, models="tiny")
    outcome = backend.run(session=workspace.new_session(), choice=UPLOAD, upload=str(upload),
                          expression="the dog", thinker="ref-thinker", preset="best", fps=2.0)
    assert outcome.ok, outcome.status
    assert "padded with silence" in outcome.status
    assert str(workspace.root) not in outcome.result_json.read_text()

    def failing(video, *args, **kwargs):
        raise MediaError(f"cannot decode {video}", path=video)

    outcome = DemoBackend(workspace, models="tiny", segment_fn=failing).run(
        session=workspace.new_session(), choice=UPLOAD, upload=str(upload), expression="the dog",
        thinker="direct", preset="best", fps=2.0)
    shown = outcome.status.replace("\\", "")  # markdown escapes
    assert not outcome.ok and "sessions/" in shown and "input.mp4" in shown and str(workspace.root) not in shown
