"""User text through every CLI command that echoes it: never a crash, always shown as typed.

Typed text may hold rich markup look-alikes (``[/]``, ``[bold]``), backslashes, control
characters and right-to-left text. "As typed" means: every character as it is, except control
characters, which are shown as ``\\xNN`` escapes (so they cannot act on the terminal); rich's
line wrapping is undone by comparing without whitespace. Each example runs the real command
in-process (CliRunner) with a wide console.
"""

from __future__ import annotations

import csv
import shutil
import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tgs.cli import console as cli_console
from tgs.cli.main import build_app
from tgs.data.synth import write_video

SPECIAL = ["[", "]", "[/]", "[bold]", "\\", "\\[", "\x1b", "\x07", "\r", "\t", "\x7f", "\x9b", ":dog:",
           "\u202e", "\u05e9\u05dc\u05d5\u05dd", "\u0645\u0631\u062d\u0628\u0627", "\u200f"]

user_text = st.lists(
    st.one_of(st.sampled_from(SPECIAL), st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")),
    min_size=1,
    max_size=8,
).map("".join)

# A file name cannot hold "/" (nor NUL); long names are cut to fit any file system.
name_text = user_text.map(lambda s: s.replace("/", "_")[:40])


def shown(text: str) -> str:
    """How the CLI must show ``text``: control characters as \\xNN, everything else as is."""
    return "".join(f"\\x{ord(c):02x}" if unicodedata.category(c) == "Cc" else c for c in text)


def squash(text: str) -> str:
    return "".join(text.split())


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    for c in (cli_console.console, cli_console.err_console):
        monkeypatch.setattr(c, "_width", 2000)


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(build_app(), list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a crash, not a message
    return result.exit_code, result.output + (result.stderr if result.stderr_bytes is not None else "")


def assert_shown(text: str, output: str) -> None:
    assert squash(shown(text)) in squash(output), (text, output)


def write_meta(path: Path, exp: str) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["vid", "uid", "split", "fid", "exp"])
        writer.writerow(["v1", "v1_dog_1", "test_s", "1", exp])


FUZZ = settings(
    max_examples=15, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(name=name_text, exp=user_text)
def test_data_info_and_check_show_a_folder_name_as_typed(tmp_path_factory, name, exp):
    folder = tmp_path_factory.mktemp("bench") / ("x" + name)
    folder.mkdir()
    write_meta(folder / "metadata.csv", exp)
    code, out = invoke("data", "info", str(folder))
    assert code == 0 and "Traceback" not in out
    assert_shown(str(folder), out)
    code, out = invoke("data", "check", str(folder))  # no media: the missing paths are listed
    assert code == 1
    assert_shown(str(folder), out)
    shutil.rmtree(folder)


@FUZZ
@given(name=name_text)
def test_error_messages_show_a_path_as_typed(tmp_path, name):
    missing = tmp_path / ("x" + name)
    for args in (
        ("data", "info", str(missing)),
        ("eval", "--data", str(missing), "--pred", str(missing)),
        ("report", str(missing)),
    ):
        code, out = invoke(*args)
        assert code != 0 and "error" in out, (args, out)
        assert_shown(str(missing), out)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("clip") / "clip.mp4", 1.0, 2, (64, 48), 0, with_audio=False)


@settings(max_examples=4, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(exp=user_text.filter(lambda s: s.strip() and not unicodedata.category(s.strip()[0]).startswith("Z")))
def test_segment_shows_the_expression_as_typed(tmp_path, clip, exp):
    expression = "the " + exp  # typer would read a leading "-" as an option
    code, out = invoke("segment", str(clip), expression, "--thinker", "direct", "--models", "tiny",
                       "--device", "cpu", "--out", str(tmp_path / "out"))
    assert code == 0, out
    assert_shown(expression.strip(), out)  # f_object / s_object of the direct thinker


def test_error_printer_shows_markup_as_text(tmp_path):
    code, out = invoke("data", "info", str(tmp_path / "the [/] dog [bold]x"))
    assert code == 1 and "the [/] dog [bold]x" in out
