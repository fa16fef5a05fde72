"""End to end: ``tgs demo --serve --models tiny`` driven by headless Chromium through Playwright.

The server is the real CLI in a subprocess, with the real pipeline on the untrained tiny
models, an empty HOME, an empty TMPDIR and an empty working directory: after the run
those must still be empty (the demo writes only in its work folder). The browser loads
the page with every non-local request blocked and recorded (there must be none),
uploads a non-video (the page must say why it is refused), then a generated MP4, types
an expression, picks the thinker and the preset, submits, and waits for the overlay
video to load in the <video> element; the served file must be an H.264 MP4 with one
frame per analysed second, and result.json must record the choices made in the page.

Chromium is the system one (Debian ``chromium``, or ``TGS_CHROMIUM``); Playwright never
downloads a browser. A missing Chromium fails the test (``make browser`` installs it).
``TGS_UPDATE_SCREENSHOTS=1`` rewrites docs/img/demo.png from this run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from demo_fakes import write_clip

REPO_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO_ROOT / "docs" / "img" / "demo.png"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SERVER_START_S = 60
RUN_TIMEOUT_MS = 120_000


@pytest.fixture
def chromium() -> str:
    """The system Chromium's path; a missing one fails the test (CI must have it), never skips it."""
    path = os.environ.get("TGS_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).is_file():
        pytest.fail(
            f"Chromium not found (looked for $TGS_CHROMIUM, chromium on PATH, {path}); the browser test needs it. "
            "Install it with `make browser` (Debian: apt-get install -y chromium) or point TGS_CHROMIUM at one.",
            pytrace=False,
        )
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_up(url: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"the demo server exited with {server.returncode}:\n{log.read_text()}", pytrace=False)
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.25)
    pytest.fail(f"the demo server did not answer at {url} within {SERVER_START_S} s:\n{log.read_text()}", pytrace=False)


def _stop(server: subprocess.Popen) -> None:
    if server.poll() is None:
        server.send_signal(signal.SIGINT)  # Ctrl+C: Gradio closes, `tgs demo` returns
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


@pytest.fixture
def demo_server(tmp_path: Path) -> Iterator[dict]:
    """`tgs demo --serve --models tiny` on a free port, with empty HOME, TMPDIR and working directory."""
    sandbox = {name: tmp_path / name for name in ("home", "tmp", "cwd")}
    for folder in sandbox.values():
        folder.mkdir()
    workdir = tmp_path / "work"
    port = _free_port()
    env = dict(os.environ)
    env.update(
        HOME=str(sandbox["home"]),
        TMPDIR=str(sandbox["tmp"]),
        PYTHONDONTWRITEBYTECODE="1",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TGS_HOME=os.environ.get("TGS_HOME", str(tmp_path / "tgs_home")),  # tiny-model cache, shared with the session
    )
    log = tmp_path / "server.log"
    command = [sys.executable, "-m", "tgs.cli.main", "demo", "--serve", "--models", "tiny", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workdir", str(workdir), "--max-upload-mb", "5"]
    with log.open("w") as sink:
        server = subprocess.Popen(command, cwd=sandbox["cwd"], env=env, stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_until_up(url, server, log)
        yield {"url": url, "workdir": workdir, "sandbox": sandbox, "log": log, "process": server}
    finally:
        _stop(server)


def _leftovers(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def _inputs(tmp_path: Path) -> tuple[Path, Path]:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    video = write_clip(inputs / "street clip.mp4", seconds=3.0, fps=5.0, size=(320, 180))
    not_video = inputs / "notes.mp4"
    not_video.write_text("a text file with a video suffix\n" * 10)
    return video, not_video


def _fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_demo_page_segments_an_upload_in_headless_chromium(tmp_path: Path, chromium: str, demo_server: dict) -> None:
    from playwright.sync_api import expect, sync_playwright

    video, not_video = _inputs(tmp_path)
    base = demo_server["url"]
    outside_requests: list[str] = []

    def local_only(route) -> None:
        if route.request.url.startswith(base):
            route.continue_()
        else:
            outside_requests.append(route.request.url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 1000})
            context.route("**/*", local_only)
            page = context.new_page()
            page.goto(base)
            expect(page.locator("#tgs-models-banner")).to_contain_text("untrained tiny models", timeout=30_000)

            # A file with a video suffix that is not a video: refused, with the reason in the page.
            page.locator("#tgs-upload input[type=file]").set_input_files(str(not_video))
            expect(page.locator("#tgs-upload")).to_contain_text("notes.mp4", timeout=30_000)
            page.locator("#tgs-expression textarea").fill("the red circle")
            page.locator("#tgs-submit").click()
            expect(page.locator("#tgs-status")).to_contain_text("not a readable video", timeout=30_000)
            expect(page.locator("#tgs-overlay video")).to_have_count(0)

            # A real upload, thinker and preset picked in the page.
            page.reload()
            page.locator("#tgs-upload input[type=file]").set_input_files(str(video))
            expect(page.locator("#tgs-upload")).to_contain_text("street clip.mp4", timeout=30_000)
            page.locator("#tgs-expression textarea").fill("the red circle")
            page.get_by_role("combobox", name="Thinker").click()
            page.get_by_role("option", name="direct", exact=True).click()
            expect(page.get_by_role("combobox", name="Thinker")).to_have_value("direct")
            page.get_by_role("combobox", name="Thinker").click()
            page.get_by_role("option", name="ref-thinker", exact=True).click()
            expect(page.get_by_role("combobox", name="Thinker")).to_have_value("ref-thinker")
            page.locator("#tgs-preset").get_by_text("paper", exact=True).click()
            page.locator("#tgs-submit").click()

            status = page.locator("#tgs-status")
            expect(status).to_contain_text(re.compile("Done|Error"), timeout=RUN_TIMEOUT_MS)
            assert "Done" in status.inner_text(), f"the run failed: {status.inner_text()}"
            overlay = page.locator("#tgs-overlay video")
            overlay.wait_for(state="attached", timeout=30_000)
            page.wait_for_function(
                "() => { const v = document.querySelector('#tgs-overlay video');"
                " return v && v.readyState >= 2 && v.videoWidth > 0; }",
                timeout=30_000,
            )
            size = page.evaluate("() => [document.querySelector('#tgs-overlay video').videoWidth,"
                                 " document.querySelector('#tgs-overlay video').videoHeight]")
            expect(status).to_contain_text("Untrained tiny models")
            expect(page.locator("#tgs-timings")).to_contain_text("think")
            expect(page.locator("#tgs-timings")).to_contain_text("total")
            expect(page.locator("#tgs-answer")).to_contain_text("grounded")
            overlay_src = overlay.get_attribute("src")
            result_href = page.locator("#tgs-result a").first.get_attribute("href")
            if os.environ.get("TGS_UPDATE_SCREENSHOTS") == "1":
                SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(SCREENSHOT), full_page=True)
        finally:
            browser.close()

    assert outside_requests == []
    assert size == [320, 180]
    served = tmp_path / "served.mp4"
    served.write_bytes(_fetch(urllib.parse.urljoin(base, overlay_src)))
    _check_overlay(served, frames=15)  # dense: every frame of the 3 s, 5 fps upload
    record = json.loads(_fetch(urllib.parse.urljoin(base, result_href)))
    assert record["expressions"][0]["expression"] == "the red circle"
    assert record["thinker"]["name"] == "ref-thinker"
    assert record["preset"]["name"] == "paper"
    assert record["models"]["set"] == "tiny" and record["untrained"] is True
    assert record["output"]["mode"] == "dense" and record["output"]["num_frames"] == 15
    assert record["sampling"]["frames"] == 3  # keyframes grounded at 1 per second

    _stop(demo_server["process"])
    for name, folder in demo_server["sandbox"].items():
        assert _leftovers(folder) == [], f"the demo wrote into {name} ({folder}) instead of its work folder"
    assert list((demo_server["workdir"] / "sessions").glob("session-*/run-*/input.mp4"))


def _check_overlay(path: Path, frames: int) -> None:
    import av

    with av.open(str(path)) as container:
        assert container.format.name.startswith("mov,mp4")
        stream = container.streams.video[0]
        assert stream.codec_context.name in ("h264", "mpeg4")
        decoded = list(container.decode(stream))
    assert len(decoded) == frames
    assert (decoded[0].width, decoded[0].height) == (320, 180)
