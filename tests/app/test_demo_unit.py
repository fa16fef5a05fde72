"""The web demo without a browser: upload checks, the work folder, one request, the page and its server."""

from __future__ import annotations

import json
import os
import shutil
import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from demo_fakes import FAKE_REASONING, FakeSegmentVideo, write_clip

from tgs.app import (
    UPLOAD_CHOICE,
    DemoBackend,
    DemoLimits,
    DemoWorkspace,
    build_demo,
    loopback,
    probe_upload,
)
from tgs.app.backend import escape_markdown, format_timings
from tgs.app.workspace import suggested_expression, synthetic_clip_label
from tgs.errors import MediaError, MissingWeightsError

pytest.importorskip("gradio", reason="the demo extra (gradio) is part of the dev install")


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_clip(tmp_path_factory.mktemp("clip") / "clip.mp4")


@pytest.fixture
def workspace(tmp_path: Path) -> DemoWorkspace:
    return DemoWorkspace(tmp_path / "work")


def _uploaded(workspace: DemoWorkspace, source: Path, name: str) -> Path:
    """A file as Gradio stores an upload: somewhere in its cache, under the user's file name."""
    folder = workspace.gradio_cache / "0123abcd"
    folder.mkdir(exist_ok=True)
    target = folder / name
    shutil.copyfile(source, target)
    return target


def _files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


# ---------------------------------------------------------------------------- probe_upload


def test_probe_accepts_a_video_and_reports_it(clip: Path) -> None:
    probe = probe_upload(clip, DemoLimits())
    assert probe.container == "mov,mp4,m4a,3gp,3g2,mj2"
    assert probe.suffix == ".mp4"
    assert (probe.width, probe.height) == (64, 48)
    assert probe.seconds == pytest.approx(2.0, abs=0.25)
    assert probe.size_bytes == clip.stat().st_size


@pytest.mark.parametrize(("suffix", "container", "staged"), [(".webm", "matroska,webm", ".mkv"), (".avi", "avi", ".avi")])
def test_probe_maps_other_containers_to_our_suffix(tmp_path: Path, suffix: str, container: str, staged: str) -> None:
    path = write_clip(tmp_path / f"clip{suffix}", seconds=1.0)
    probe = probe_upload(path, DemoLimits())
    assert (probe.container, probe.suffix) == (container, staged)


def _png_named_mp4(folder: Path) -> Path:
    from PIL import Image

    path = folder / "picture.mp4"
    Image.new("RGB", (32, 32), (200, 10, 10)).save(path, format="PNG")
    return path


def _gif_named_mp4(folder: Path) -> Path:
    from PIL import Image

    path = folder / "anim.mp4"
    frames = [Image.new("RGB", (32, 32), (i * 40, 0, 0)) for i in range(3)]
    frames[0].save(path, format="GIF", save_all=True, append_images=frames[1:])
    return path


def _text_named_mp4(folder: Path) -> Path:
    path = folder / "notes.mp4"
    path.write_text("this is not a video\n" * 20)
    return path


def _audio_only_mp4(folder: Path) -> Path:
    import av
    import numpy as np

    path = folder / "sound.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=48000, layout="stereo")
        for i in range(8):
            frame = av.AudioFrame.from_ndarray(np.zeros((2, 1024), np.float32), format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = 48000, i * 1024
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def _empty_mp4(folder: Path) -> Path:
    path = folder / "empty.mp4"
    path.touch()
    return path


def _video_named_txt(folder: Path) -> Path:
    return write_clip(folder / "clip.mp4", seconds=1.0).rename(folder / "clip.txt")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_png_named_mp4, "'png_pipe' file, not a video container"),
        (_gif_named_mp4, "'gif' file, not a video container"),
        (_text_named_mp4, "not a readable video"),
        (_audio_only_mp4, "no video stream"),
        (_empty_mp4, "is empty"),
        (_video_named_txt, "'.txt' are not accepted"),
    ],
)
def test_probe_rejects_non_videos_without_naming_the_server_path(tmp_path: Path, make, message: str) -> None:
    path = make(tmp_path)
    with pytest.raises(MediaError, match="Fix: ") as info:
        probe_upload(path, DemoLimits())
    assert message in str(info.value)
    assert str(tmp_path) not in str(info.value)


def test_probe_rejects_oversize_and_overlong_videos(clip: Path) -> None:
    size = clip.stat().st_size
    assert probe_upload(clip, DemoLimits(max_upload_bytes=size)).size_bytes == size
    with pytest.raises(MediaError, match=r"over the .* limit"):
        probe_upload(clip, DemoLimits(max_upload_bytes=size - 1))
    with pytest.raises(MediaError, match=r"lasts 2 s, over the 1 s limit"):
        probe_upload(clip, DemoLimits(max_video_seconds=1.0))


# ---------------------------------------------------------------------------- the work folder


def test_workspace_runs_live_in_sessions_and_only_sessions_are_dropped(tmp_path: Path, workspace: DemoWorkspace) -> None:
    session = workspace.new_session()
    run = workspace.new_run(session)
    assert run.parent == session and session.parent == workspace.sessions
    assert workspace.contains(run) and not workspace.contains(tmp_path / "elsewhere")
    outsider = tmp_path / "outsider"
    outsider.mkdir()
    with pytest.raises(ValueError, match="not a session folder"):
        workspace.new_run(outsider)
    with pytest.raises(ValueError, match="not a session folder"):
        workspace.new_run(workspace.clips)
    workspace.drop_session(outsider)
    workspace.drop_session(workspace.clips)
    assert outsider.is_dir() and workspace.clips.is_dir()
    workspace.drop_session(session)
    assert not session.exists()


def test_workspace_link_escape_is_detected(tmp_path: Path, workspace: DemoWorkspace) -> None:
    secret = tmp_path / "secret.mp4"
    secret.write_bytes(b"x")
    link = workspace.gradio_cache / "link.mp4"
    link.symlink_to(secret)
    assert not workspace.contains(link)
    assert not workspace.contains(workspace.gradio_cache / ".." / ".." / "secret.mp4")


def test_synthetic_clip_is_written_once_and_described(workspace: DemoWorkspace) -> None:
    from tgs.data.synth import make_video

    path = workspace.synthetic_clip(1)
    assert path.parent == workspace.clips
    stamp = path.stat().st_mtime_ns
    assert workspace.synthetic_clip(1).stat().st_mtime_ns == stamp
    probe = probe_upload(path, DemoLimits())
    assert (probe.width, probe.height) == (320, 180) and probe.seconds == pytest.approx(10.0, abs=0.2)
    scene = make_video(1, 0, duration=10.0)
    label = synthetic_clip_label(1)
    assert all(f"{o.colour} {o.shape}" in label for o in scene.objects)
    assert suggested_expression(1) == f"the {scene.objects[0].colour} {scene.objects[0].shape}"


# ---------------------------------------------------------------------------- one request


def _run(backend: DemoBackend, session: Path, **overrides):
    request = dict(choice=UPLOAD_CHOICE, upload=None, expression="the red circle", thinker="direct", preset="best", fps=2.0)
    request.update(overrides)
    return backend.run(session=session, **request)


def test_request_stages_the_upload_under_our_name_and_writes_only_in_its_run(
    tmp_path: Path, workspace: DemoWorkspace, clip: Path
) -> None:
    fake = FakeSegmentVideo()
    backend = DemoBackend(workspace, models="tiny", segment_fn=fake)
    upload = _uploaded(workspace, clip, "..;rm -rf ~ $(x).mp4")
    session = workspace.new_session()
    before = _files_under(tmp_path)
    outcome = _run(backend, session, upload=str(upload), expression="  the   red\tcircle ")
    assert outcome.ok, outcome.status
    (call,) = fake.calls
    run_dir = call["out"].parent
    assert run_dir.parent == session
    assert call["video"] == run_dir / "input.mp4"
    assert call["video"].read_bytes() == clip.read_bytes()
    assert call | {"video": None, "out": None} == dict(
        video=None, out=None, expressions=["the red circle"], thinker="direct", preset="best",
        settings=backend.settings, fps=None, keyframe_fps=2.0, cache=backend.model_cache,
    )
    assert backend.settings.untrained
    new_files = _files_under(tmp_path) - before
    assert new_files and all(p.is_relative_to(run_dir) for p in new_files)
    assert outcome.overlay_video == run_dir / "result" / "overlay.mp4"
    assert probe_upload(outcome.overlay_video, DemoLimits()).seconds == pytest.approx(2.0, abs=0.6)
    # dense: every frame of the 2 s, 5 fps clip
    assert json.loads(outcome.result_json.read_text()) == {"expressions": ["the red circle"], "frames": 10}
    assert outcome.reasoning == FAKE_REASONING
    assert outcome.answer == r"**object:** the centre \[object\] · **simplified:** object · **grounded:** object"
    assert outcome.status == (
        r"**Done** in 3.2 s. Untrained tiny models: the masks are meaningless. a note with \<html\> in it"
    )
    assert "| think | 1.50 |" in outcome.timings and outcome.timings.endswith("| **total** | **3.25** |")


def test_one_expression_per_line(workspace: DemoWorkspace, clip: Path) -> None:
    fake = FakeSegmentVideo()
    backend = DemoBackend(workspace, models="tiny", segment_fn=fake)
    upload = _uploaded(workspace, clip, "clip.mp4")
    outcome = _run(backend, workspace.new_session(), upload=str(upload),
                   expression=" the red  circle\n\n  the blue square\n")
    assert outcome.ok, outcome.status
    assert fake.calls[0]["expressions"] == ["the red circle", "the blue square"]
    assert outcome.answer.startswith(r"**1. the red circle** · ") and r"**2. the blue square** · " in outcome.answer
    refused = _run(backend, workspace.new_session(), upload=str(upload), expression="\n".join("x" * 9))
    assert "at most 8 per request" in refused.status.replace("\\", "")


def test_each_request_gets_its_own_run_folder(workspace: DemoWorkspace, clip: Path) -> None:
    fake = FakeSegmentVideo()
    backend = DemoBackend(workspace, models="tiny", segment_fn=fake)
    upload = _uploaded(workspace, clip, "clip.mp4")
    session = workspace.new_session()
    first, second = (_run(backend, session, upload=str(upload)) for _ in range(2))
    assert first.ok and second.ok
    assert first.overlay_video.parent.parent != second.overlay_video.parent.parent


def test_synthetic_clip_request_uses_the_generated_clip(workspace: DemoWorkspace) -> None:
    fake = FakeSegmentVideo()
    backend = DemoBackend(workspace, models="tiny", segment_fn=fake)
    (label,) = [name for name, seed in backend.clip_choices.items() if seed == 0]
    assert backend.suggestion(label, "") == suggested_expression(0)
    assert backend.suggestion(label, "my words") == "my words"
    assert backend.suggestion(UPLOAD_CHOICE, "") == ""
    outcome = _run(backend, workspace.new_session(), choice=label, fps=1.0)
    assert outcome.ok, outcome.status
    assert fake.calls[0]["video"].read_bytes() == workspace.synthetic_clip(0).read_bytes()
    assert json.loads(outcome.result_json.read_text())["frames"] == 100  # dense: every frame of 10 s at 10 fps


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(upload=None), "no video uploaded"),
        (dict(choice="../../etc/passwd"), "unknown clip choice"),
        (dict(expression="   "), "the expression is empty"),
        (dict(expression="x" * 301), "the expression has 301 characters; at most 300"),
        (dict(thinker="api"), "unknown thinker 'api'"),
        (dict(preset="fast"), "unknown preset 'fast'"),
        (dict(fps=0.0), r"frames per second"),
    ],
)
def test_bad_requests_are_refused_before_the_pipeline_runs(
    workspace: DemoWorkspace, clip: Path, overrides: dict, message: str
) -> None:
    fake = FakeSegmentVideo()
    backend = DemoBackend(workspace, models="tiny", segment_fn=fake)
    request = {"upload": str(_uploaded(workspace, clip, "clip.mp4")), **overrides}
    outcome = _run(backend, workspace.new_session(), **request)
    assert not outcome.ok and fake.calls == []
    assert outcome.status.startswith("**Error:** ")
    assert message in outcome.status.replace("\\", "")


def test_non_video_and_outside_uploads_are_refused(tmp_path: Path, workspace: DemoWorkspace, clip: Path) -> None:
    fake = FakeSegmentVideo()
    backend = DemoBackend(workspace, models="tiny", segment_fn=fake)
    session = workspace.new_session()
    fake_video = _uploaded(workspace, _text_named_mp4(tmp_path), "notes.mp4")
    refused = _run(backend, session, upload=str(fake_video))
    assert "not a readable video" in refused.status.replace("\\", "")
    outside = _run(backend, session, upload=str(clip))  # a server path the page never handed out
    assert "not in the demo's upload folder" in outside.status.replace("\\", "")
    other_run = workspace.new_run(workspace.new_session())  # another user's staged input
    shutil.copyfile(clip, other_run / "input.mp4")
    other = _run(backend, session, upload=str(other_run / "input.mp4"))
    assert "not in the demo's upload folder" in other.status.replace("\\", "")
    assert fake.calls == []


def test_a_result_outside_the_run_folder_is_not_served(tmp_path: Path, workspace: DemoWorkspace, clip: Path) -> None:
    elsewhere = write_clip(tmp_path / "elsewhere.mp4", seconds=1.0)
    backend = DemoBackend(workspace, models="tiny", segment_fn=FakeSegmentVideo(escape_to=elsewhere))
    outcome = _run(backend, workspace.new_session(), upload=str(_uploaded(workspace, clip, "clip.mp4")))
    assert not outcome.ok
    assert "outside its run folder" in outcome.status.replace("\\", "")


def test_pipeline_errors_show_their_fix(workspace: DemoWorkspace) -> None:
    def missing(*args, **kwargs):
        raise MissingWeightsError("Ref-Thinker weights are not available offline", fix="run tgs models download")

    def crash(*args, **kwargs):
        raise RuntimeError("CUDA out of memory")

    label = next(name for name, seed in DemoBackend(workspace).clip_choices.items() if seed is not None)
    for fn, expected in ((missing, "**Error:** Ref"), (crash, "**Internal error** (RuntimeError): CUDA out")):
        outcome = _run(DemoBackend(workspace, segment_fn=fn), workspace.new_session(), choice=label)
        assert outcome.status.startswith(expected)
    assert "run tgs models download" in _run(
        DemoBackend(workspace, segment_fn=missing), workspace.new_session(), choice=label
    ).status


def test_format_timings_and_escaping() -> None:
    assert format_timings({"think": 1.0, "ground": 0.5}) == (
        "| step | seconds |\n|---|---:|\n| think | 1.00 |\n| ground | 0.50 |\n| **total** | **1.50** |"
    )
    assert format_timings({"total": 4.0, "think": 1.0}) == (
        "| step | seconds |\n|---|---:|\n| think | 1.00 |\n| **total** | **4.00** |"
    )
    assert escape_markdown("a*b_[c](d)<img>") == r"a\*b\_\[c\]\(d\)\<img\>"


def test_backend_rejects_unknown_model_set(workspace: DemoWorkspace) -> None:
    with pytest.raises(ValueError, match="models: expected 'real' or 'tiny'"):
        DemoBackend(workspace, models="huge")


# ---------------------------------------------------------------------------- the page and its server


@pytest.fixture
def gradio_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """build_demo sets process-wide Gradio variables; restore them after each test."""
    for name in ("GRADIO_TEMP_DIR", "GRADIO_ANALYTICS_ENABLED"):
        monkeypatch.setenv(name, os.environ.get(name, ""))


def _config_texts(demo) -> str:
    return json.dumps(demo.get_config_file()["components"], default=str)


@pytest.mark.usefixtures("gradio_env")
def test_build_demo_points_gradio_into_the_workspace_and_labels_tiny_models(tmp_path: Path) -> None:
    demo = build_demo(models="tiny", segment_fn=FakeSegmentVideo(), workdir=tmp_path / "work", max_upload_mb=3)
    workspace = demo.tgs_backend.workspace
    assert workspace.root == (tmp_path / "work").resolve()
    assert os.environ["GRADIO_TEMP_DIR"] == str(workspace.gradio_cache)
    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"
    assert demo.analytics_enabled is False
    assert demo.title == "TGS demo (untrained tiny models)"
    texts = _config_texts(demo)
    assert "untrained tiny models" in texts
    assert "up to 3.0 MB" in texts
    ids = {c["props"].get("elem_id") for c in demo.get_config_file()["components"]}
    assert {"tgs-upload", "tgs-expression", "tgs-thinker", "tgs-preset", "tgs-submit", "tgs-overlay"} <= ids
    assert "untrained" not in _config_texts(build_demo(models="real", workdir=tmp_path / "real"))


@pytest.mark.usefixtures("gradio_env")
def test_launch_refuses_share_links_and_outside_paths(tmp_path: Path) -> None:
    demo = build_demo(models="tiny", segment_fn=FakeSegmentVideo(), workdir=tmp_path / "work")
    with pytest.raises(ValueError, match="share links"):
        demo.launch(share=True)
    with pytest.raises(ValueError, match="allowed_paths must stay inside"):
        demo.launch(allowed_paths=[str(tmp_path)])


def test_loopback() -> None:
    assert loopback("127.0.0.1") and loopback("localhost") and loopback("::1") and loopback("127.0.1.1")
    assert not loopback("0.0.0.0") and not loopback("192.168.1.4")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _post_upload(url: str, name: str, payload: bytes) -> tuple[int, str]:
    boundary = "tgsboundary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
        "Content-Type: video/mp4\r\n\r\n"
    ).encode() + payload + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(
        url + "gradio_api/upload", data=body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.mark.usefixtures("gradio_env")
def test_server_caps_upload_size_and_keeps_uploads_in_the_workspace(tmp_path: Path, clip: Path) -> None:
    from tgs.app import serve

    limit_mb = 0.05
    demo = serve(
        port=_free_port(), models="tiny", workdir=tmp_path / "work", max_upload_mb=limit_mb,
        segment_fn=FakeSegmentVideo(), block=False,
    )
    try:
        url = demo.local_url
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url, timeout=30) as response:
            page = response.read().decode()
        assert "untrained tiny models" in page
        status, text = _post_upload(url, "big.mp4", b"\0" * int(limit_mb * 1024 * 1024 + 1))
        assert status == 413, text
        status, text = _post_upload(url, "../../escape.mp4", clip.read_bytes())
        assert status == 200, text
        (stored,) = json.loads(text)
        assert Path(stored).is_relative_to(demo.tgs_backend.workspace.gradio_cache)
        assert not (tmp_path / "escape.mp4").exists()
    finally:
        demo.close()


# ---------------------------------------------------------------------------- the CLI


def test_cli_without_serve_says_how_to_start_and_opens_no_port() -> None:
    from typer.testing import CliRunner

    from tgs.cli.main import build_app

    result = CliRunner().invoke(build_app(), ["demo", "--max-upload-mb", "50", "--models", "tiny"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "tgs demo --serve" in text and "http://127.0.0.1:7860" in text
    assert "uploads up to 50.0 MB" in text and "models: tiny" in text


def test_cli_rejects_unknown_model_set() -> None:
    from typer.testing import CliRunner

    from tgs.cli.main import build_app

    result = CliRunner().invoke(build_app(), ["demo", "--serve", "--models", "huge"])
    assert result.exit_code == 2
    assert "expected one of real, tiny, got 'huge'" in " ".join(result.output.split())
