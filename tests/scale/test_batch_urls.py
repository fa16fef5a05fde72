"""URL rows of ``tgs segment --batch`` and ``tgs segment URL``: a finite video served over http is
copied and segmented as that file; a live URL is that row's recorded error.

A clip served by Python's http.server on 127.0.0.1: the batch row of its URL, ``tgs segment URL``
and ``tgs segment FILE`` of the same clip write the same masks (the copy is a remux, no
re-encoding), and the two URL runs the same result.json (timings aside), which names the URL.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from live_streams import UdpSender, free_port, needs_ffmpeg
from segment_outputs import mask_files, result_json
from typer.testing import CliRunner

from tgs.cli.main import build_app
from tgs.data.media import load_audio, load_video_frames
from tgs.data.synth import write_video
from tgs.errors import DataError
from tgs.runners.batch_list import read_batch_list
from tgs.runners.segment_batch import latest_index
from tgs.runners.url_video import SOURCE_STAGING
from tgs.sources import fetch_finite

pytestmark = pytest.mark.slow

SIZE = (64, 48)
EXPRESSION = "the red object"
TINY = ["--thinker", "direct", "--models", "tiny", "--device", "cpu"]


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:  # no request lines in the test output
        pass


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    """(folder, base URL): two synthetic clips served over http on 127.0.0.1."""
    root = tmp_path_factory.mktemp("served")
    for i in range(2):
        write_video(root / f"clip{i}.mp4", 1, 8, SIZE, seed=30 + i)
    shutil.copyfile(root / "clip0.mp4", root / "clip0")  # a URL without a suffix
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _cli(*args: str):
    return CliRunner().invoke(build_app(), [*args, *TINY])


def test_url_rows_are_read_as_urls(tmp_path: Path) -> None:
    (tmp_path / "list.csv").write_text("video,expression\nhttps://h.example/v/My%20Clip.mp4,dog\nlocal.mp4,cat\n"
                                       "file:///data/x.mkv,cow\n")
    url, local, file_url = read_batch_list(tmp_path / "list.csv")
    assert (url.uid, url.video) == ("My_Clip", "https://h.example/v/My%20Clip.mp4")
    assert (local.uid, local.video) == ("local", tmp_path / "local.mp4")
    assert (file_url.uid, file_url.video) == ("x", Path("/data/x.mkv"))


@pytest.mark.parametrize("video", ["/dev/video0", "-", "v4l2:/dev/video1"])
def test_a_camera_or_stdin_row_is_refused_naming_the_row(tmp_path: Path, video: str) -> None:
    (tmp_path / "list.csv").write_text(f"video,expression\na.mp4,dog\n{video},dog\n")
    with pytest.raises(DataError, match=f"list.csv:3: '{re.escape(video)}' is a live source"):
        read_batch_list(tmp_path / "list.csv")


def test_a_copy_decodes_to_the_served_file(served, tmp_path: Path) -> None:
    """A remux, no re-encoding: every frame, timestamp and audio sample is the file's; a URL without a
    suffix is copied into the input's own kind of container (mp4 here), whose time base keeps timestamps."""
    root, base = served
    copy = fetch_finite(f"{base}/clip0", tmp_path / "copies")
    assert copy == tmp_path / "copies" / "clip0.mp4" and not list((tmp_path / "copies").glob(".*"))
    frames, times = load_video_frames(root / "clip0.mp4", None)
    copied, copied_times = load_video_frames(copy, None)
    assert np.array_equal(copied, frames) and np.array_equal(copied_times, times)
    assert np.array_equal(load_audio(copy), load_audio(root / "clip0.mp4"))


def test_a_url_row_equals_tgs_segment_of_the_url_and_of_the_file(served, tmp_path: Path) -> None:
    root, base = served
    url = f"{base}/clip0.mp4"
    listing = tmp_path / "list.csv"
    listing.write_text(f"video,expression\n{url},{EXPRESSION}\n{root / 'clip1.mp4'},{EXPRESSION}\n"
                       f"{base}/missing.mp4,{EXPRESSION}\n")
    batch = tmp_path / "batch"
    result = _cli("segment", "--batch", str(listing), "--out", str(batch))
    assert result.exit_code == 0, result.output
    lines = latest_index(batch)
    assert lines[("clip0", 0)]["status"] == "ok" and lines[("clip0", 0)]["video"] == url
    assert lines[("clip1", 0)]["status"] == "ok"
    missing = lines[("missing", 0)]
    assert missing["status"] == "failed" and missing["error_kind"] == "media"
    assert "404" in missing["error"] and f"{base}/missing.mp4" in missing["error"]

    single = tmp_path / "single"
    result = _cli("segment", url, EXPRESSION, "--out", str(single))
    assert result.exit_code == 0, result.output
    from_file = tmp_path / "from_file"
    result = _cli("segment", str(root / "clip0.mp4"), EXPRESSION, "--out", str(from_file))
    assert result.exit_code == 0, result.output

    assert mask_files(batch / "clip0") == mask_files(single) == mask_files(from_file)
    assert result_json(batch / "clip0") == result_json(single)
    assert result_json(single)["video"]["path"] == url  # the URL, not the removed copy
    for folder in (batch / "clip0", single):
        assert not (folder / SOURCE_STAGING).exists() and (folder / "overlay.mp4").is_file()

    again = _cli("segment", "--batch", str(listing), "--out", str(batch))  # resume: only the failed row again
    assert again.exit_code == 0, again.output
    assert latest_index(batch)[("clip0", 0)] == lines[("clip0", 0)]


def test_a_url_is_copied_and_segmented_under_one_lock_and_result_json_names_it_from_the_start(
    served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No other writer between the copy and the segmentation; the result.json published is written
    once, naming the URL (a crash after publishing cannot leave it naming the removed copy)."""
    from tgs.core.segment import segment_video
    from tgs.core.settings import Settings
    from tgs.errors import RunError
    from tgs.output_folder import StagedOutputs, lock_folder
    from tgs.runners.url_video import local_video

    _, base = served
    url, out = f"{base}/clip0.mp4", tmp_path / "out"
    published: list[str] = []
    publish = StagedOutputs.publish

    def spy(self, replaced=()):  # result.json as it is published
        published.append(json.loads((self.staging / "result.json").read_text())["video"]["path"])
        publish(self, replaced)

    monkeypatch.setattr(StagedOutputs, "publish", spy)
    refused: list[BaseException] = []

    def other_writer() -> None:
        try:
            lock_folder(out, "output folder", RunError, reentrant=False)
        except RunError as exc:
            refused.append(exc)

    with local_video(url, out) as local:
        assert local.label == url and local.path.parent == out / SOURCE_STAGING
        thread = threading.Thread(target=other_writer)  # between the copy and the segmentation
        thread.start()
        thread.join()
        segment_video(local.path, EXPRESSION, thinker="direct", settings=Settings.tiny(device="cpu"), out=out,
                      video_label=local.label)
    assert len(refused) == 1
    assert published == [url] and json.loads((out / "result.json").read_text())["video"]["path"] == url
    assert not (out / SOURCE_STAGING).exists()


@needs_ffmpeg
def test_a_live_url_in_a_batch_is_a_recorded_error(served, tmp_path: Path) -> None:
    root, _ = served
    with UdpSender(free_port(), None) as live:
        listing = tmp_path / "list.jsonl"
        listing.write_text(json.dumps({"id": "live", "video": live.url, "expression": EXPRESSION}) + "\n"
                           + json.dumps({"video": str(root / "clip1.mp4"), "expression": EXPRESSION}) + "\n")
        result = _cli("segment", "--batch", str(listing), "--out", str(tmp_path / "batch"))
    assert result.exit_code == 0, result.output
    lines = latest_index(tmp_path / "batch")
    assert lines[("clip1", 0)]["status"] == "ok"
    error = lines[("live", 0)]
    assert error["status"] == "failed" and error["error_kind"] == "media"
    assert f"{live.url} is a live stream" in error["error"] and "Fix:" in error["error"]
