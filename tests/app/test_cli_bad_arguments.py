"""Every command, given a user's typical mistakes, answers with a clear message, never a traceback.

Table-driven: missing files, a folder where a file is expected (and the reverse), wrong
types, unknown switches, an empty CSV, a file that is not what it claims. Each case asserts a
non-zero exit, the words that tell the user what went wrong, and no Python traceback (the
error handler of every command turns exceptions into one line; ``tgs --debug`` shows them).
The specific cases of issue 13 (CUDA without CUDA, --out an existing file, synth sizes) are
tested with that work, not here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tgs.cli.main import build_app


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad_args")
    folder = root / "a_folder"
    folder.mkdir()
    empty_csv = root / "empty.csv"
    empty_csv.write_text("")
    header_csv = root / "header_only.csv"
    header_csv.write_text("vid,uid,split,fid,exp\n")
    not_video = root / "not_a_video.mp4"
    not_video.write_bytes(b"this is text, not a video\n" * 10)
    not_json = root / "targets.json"
    not_json.write_text("{ not json")
    a_file = root / "a_file.txt"
    a_file.write_text("hello\n")
    return {
        "root": root,
        "folder": folder,
        "empty_csv": empty_csv,
        "header_csv": header_csv,
        "not_video": not_video,
        "not_json": not_json,
        "a_file": a_file,
        "missing": root / "does_not_exist",
    }


# (case id, argv with {placeholders}, words expected in the output (lower case, any of))
CASES: list[tuple[str, list[str], tuple[str, ...]]] = [
    ("root-unknown-switch", ["--bogus"], ("no such option",)),
    ("unknown-command", ["segmnet"], ("no such command",)),
    ("quickstart-seed-not-int", ["quickstart", "--seed", "abc"], ("invalid value", "not a valid integer")),
    ("quickstart-unknown-thinker", ["quickstart", "--thinker", "gpt9", "--models", "tiny"], ("gpt9",)),
    ("segment-missing-video", ["segment", "{missing}/clip.mp4", "the dog", "--models", "tiny"], ("does_not_exist",)),
    ("segment-folder-as-video", ["segment", "{folder}", "the dog", "--models", "tiny"], ("a_folder",)),
    ("segment-not-a-video", ["segment", "{not_video}", "the dog", "--models", "tiny", "--thinker", "direct", "--out", "{root}/seg_out"], ("not_a_video.mp4",)),
    ("segment-fps-not-number", ["segment", "{not_video}", "x", "--fps", "fast"], ("invalid value",)),
    ("segment-unknown-switch", ["segment", "{not_video}", "x", "--colour", "red"], ("no such option",)),
    ("segment-missing-expression", ["segment", "{not_video}"], ("missing argument",)),
    ("run-missing-data", ["run", "--data", "{missing}", "--out", "{root}/run_out", "--models", "tiny", "--thinker", "direct"], ("does_not_exist",)),
    ("run-empty-csv", ["run", "--data", "{folder}", "--meta", "{empty_csv}", "--out", "{root}/run_out2", "--models", "tiny", "--thinker", "direct"], ("empty.csv",)),
    ("run-batch-size-zero", ["run", "--data", "{folder}", "--out", "{root}/r", "--batch-size", "0"], ("invalid value",)),
    ("think-empty-csv", ["think", "--data", "{folder}", "--meta", "{empty_csv}", "--out", "{root}/think_out", "--models", "tiny"], ("empty.csv",)),
    ("think-folder-as-csv", ["think", "--data", "{folder}", "--meta", "{folder}", "--out", "{root}/think_out2", "--models", "tiny"], ("a_folder",)),
    ("think-missing-model", ["think", "--data", "{folder}", "--meta", "{header_csv}", "--out", "{root}/think_out3", "--model", "{missing}"], ("does_not_exist",)),
    ("ground-segment-empty-csv", ["ground-segment", "--data", "{folder}", "--meta", "{empty_csv}", "--direct", "--out", "{root}/gs_out", "--models", "tiny"], ("empty.csv",)),
    ("ground-segment-missing-thoughts", ["ground-segment", "--data", "{folder}", "--meta", "{header_csv}", "--thoughts", "{missing}", "--out", "{root}/gs_out2", "--models", "tiny"], ("does_not_exist",)),
    ("eval-missing-pred", ["eval", "--data", "{folder}", "--meta", "{header_csv}", "--pred", "{missing}"], ("does_not_exist",)),
    ("eval-empty-csv", ["eval", "--data", "{folder}", "--meta", "{empty_csv}", "--pred", "{folder}"], ("empty.csv",)),
    ("train-empty-csv", ["train", "--data", "{folder}", "--meta", "{empty_csv}", "--targets", "{not_json}", "--out", "{root}/train_out", "--models", "tiny"], ("empty.csv", "targets.json")),
    ("train-bad-json", ["train", "--data", "{folder}", "--meta", "{header_csv}", "--targets", "{not_json}", "--out", "{root}/train_out2", "--models", "tiny"], ("targets.json", "header_only.csv")),
    ("train-max-steps-word", ["train", "--data", "{folder}", "--meta", "{header_csv}", "--targets", "{not_json}", "--out", "{root}/t", "--max-steps", "many"], ("invalid value",)),
    ("data-info-missing", ["data", "info", "{missing}"], ("does_not_exist",)),
    ("data-info-file-as-root", ["data", "info", "{a_file}"], ("a_file.txt",)),
    ("data-check-empty-csv", ["data", "check", "{folder}", "--meta", "{empty_csv}"], ("empty.csv",)),
    ("report-missing-run", ["report", "{missing}"], ("does_not_exist",)),
    ("report-file-as-run", ["report", "{a_file}"], ("a_file.txt",)),
    ("models-list-bad-source", ["models", "list", "--source", "nonsense"], ("key=source",)),
    ("models-list-bad-set", ["models", "list", "--models", "huge"], ("huge",)),
    ("models-convert-missing", ["models", "convert-ref-thinker", "--release", "{missing}", "--llama", "{folder}", "--clip", "{folder}", "--beats", "{a_file}", "--out", "{root}/conv"], ("does_not_exist",)),
    ("models-export-missing", ["models", "export", "{missing}", "{root}/exported"], ("does_not_exist",)),
    ("models-init-missing", ["models", "init-ref-thinker", "--llama", "{missing}", "--clip", "{folder}", "--beats", "{a_file}", "--crab", "{folder}", "--out", "{root}/init"], ("does_not_exist", "a_folder")),
    ("models-fetch-unknown", ["models", "fetch", "everything"], ("everything",)),
    ("demo-port-out-of-range", ["demo", "--port", "70000"], ("invalid value",)),
    ("demo-unknown-models", ["demo", "--models", "huge"], ("huge",)),
]


@pytest.mark.parametrize(("argv", "expected"), [pytest.param(a, e, id=i) for i, a, e in CASES])
def test_bad_arguments_give_a_clear_message(argv: list[str], expected: tuple[str, ...], files: dict[str, Path]) -> None:
    args = [a.format(**{k: str(v) for k, v in files.items()}) for a in argv]
    result = CliRunner().invoke(build_app(), args)
    output = result.output
    assert result.exit_code not in (0, None), output
    assert "Traceback" not in output, output
    # Any exception that reached the runner other than the command's own exit is a crash.
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    flat = " ".join(output.lower().split()).replace("│", "").replace(" ", "")
    assert any(word.replace(" ", "") in flat for word in expected), output


def test_debug_flag_shows_the_traceback(files: dict[str, Path]) -> None:
    """``--debug`` re-raises, so the runner (and a terminal) sees the exception itself."""
    result = CliRunner().invoke(build_app(), ["--debug", "report", str(files["missing"])])
    assert result.exit_code != 0
    assert result.exception is not None and not isinstance(result.exception, SystemExit)


def test_unexpected_exception_is_one_line_naming_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug (not a user mistake) is still one line, naming --debug, not a traceback."""
    import typer

    from tgs.cli.console import friendly_errors

    def broken() -> None:
        raise ZeroDivisionError("boom")

    app = typer.Typer()
    app.command()(friendly_errors(broken))
    result = CliRunner().invoke(app, [])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "--debug" in result.output and "ZeroDivisionError" in result.output
