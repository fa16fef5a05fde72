"""Every command, given a user's typical mistakes, answers with a clear message, never a traceback.

Table-driven: missing files, a folder where a file is expected (and the reverse), wrong
types, unknown switches, an empty CSV, a file that is not what it claims. Each case asserts a
non-zero exit, a message naming the offending option, value or file, no Python traceback (the
error handler of every command turns exceptions into one line; ``tgs --debug`` shows them)
and no "unexpected ... This is a bug in tgs" line (what the handler says for an exception no
check expected: a refusal for the wrong reason). A case's other inputs are valid as far as
the command reads before the offending one; ``models list --models huge`` runs with every
weight present (tiny models), since offline with weights absent it fails for those.
The specific cases of issue 13 (CUDA without CUDA, --out an existing file, synth sizes) are
tested with that work, not here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from click.testing import Result
from segment_media import encode_clip
from typer.testing import CliRunner

from tgs.cli.console import _one_line
from tgs.cli.main import build_app
from tgs.models.registry import MODEL_SPECS, resolve_source
from tgs.train.crab import CRAB_AUDIO_NAME, CRAB_VISUAL_NAME


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad_args")
    folder = root / "a_folder"
    folder.mkdir()
    empty_csv = root / "empty.csv"
    empty_csv.write_text("")
    header_csv = root / "header_only.csv"
    header_csv.write_text("vid,uid,split,fid,exp\n")
    # one well-formed training row, so that `tgs train` gets as far as reading --targets
    train_csv = root / "train_rows.csv"
    train_csv.write_text("vid,uid,split,fid,exp\nv1,v1_dog_0,train,0,the dog\n")
    not_video = root / "not_a_video.mp4"
    not_video.write_bytes(b"this is text, not a video\n" * 10)
    not_json = root / "targets.json"
    not_json.write_text("{ not json")
    a_file = root / "a_file.txt"
    a_file.write_text("hello\n")
    clip = encode_clip(root / "clip.mp4", 1.0, 5, (64, 48), audio_rate=None)  # a real, readable video
    # Crab's two file names (contents are read later than --llama), so that a missing --llama
    # is what `tgs models init-ref-thinker` refuses, not a Crab folder without them.
    crab = root / "crab"
    crab.mkdir()
    for name in (CRAB_AUDIO_NAME, CRAB_VISUAL_NAME):
        torch.save({}, crab / name)
    return {
        "root": root,
        "folder": folder,
        "empty_csv": empty_csv,
        "header_csv": header_csv,
        "train_csv": train_csv,
        "not_video": not_video,
        "not_json": not_json,
        "a_file": a_file,
        "crab": crab,
        "clip": clip,
        "missing": root / "does_not_exist",
    }


# (case id, argv with {placeholders}, words that must all be in the output (any case, any
# wrapping): the offending option, value or file, and what is wrong with it). Each case's
# other inputs are valid as far as the command reads before the offending one, so the
# refusal is the one the case is about.
CASES: list[tuple[str, list[str], tuple[str, ...]]] = [
    ("root-unknown-switch", ["--bogus"], ("no such option", "--bogus")),
    ("unknown-command", ["segmnet"], ("no such command", "segmnet")),
    ("quickstart-seed-not-int", ["quickstart", "--seed", "abc"], ("--seed", "integer")),
    ("quickstart-unknown-thinker", ["quickstart", "--thinker", "gpt9", "--models", "tiny"], ("--thinker", "gpt9")),
    ("segment-missing-video", ["segment", "{missing}/clip.mp4", "the dog", "--models", "tiny"], ("{missing}/clip.mp4", "not found")),
    ("segment-folder-as-video", ["segment", "{folder}", "the dog", "--models", "tiny"], ("{folder}", "is a folder")),
    ("segment-not-a-video", ["segment", "{not_video}", "the dog", "--models", "tiny", "--thinker", "direct", "--out", "{root}/seg_out"], ("{not_video}",)),
    ("segment-fps-not-number", ["segment", "{not_video}", "x", "--fps", "fast"], ("--fps", "number")),
    ("segment-unknown-switch", ["segment", "{not_video}", "x", "--colour", "red"], ("no such option", "--colour")),
    ("segment-missing-expression", ["segment", "{not_video}"], ("missing argument", "expressions")),
    ("segment-unknown-thinker-option", ["segment", "{clip}", "the dog", "--models", "tiny", "--thinker", "direct", "--thinker-opt", "foo=1", "--out", "{root}/seg_opt"], ("foo",)),
    ("segment-bad-device", ["segment", "{clip}", "the dog", "--models", "tiny", "--thinker", "direct", "--device", "tpu", "--out", "{root}/seg_dev"], ("tpu", "--device")),
    # the options of --batch, without it: refused, not dropped
    ("segment-workers-without-batch", ["segment", "{clip}", "the dog", "--models", "tiny", "--thinker", "direct", "--workers", "2", "--out", "{root}/seg_w"], ("--workers", "only with --batch")),
    ("segment-ray-address-without-batch", ["segment", "{clip}", "the dog", "--models", "tiny", "--thinker", "direct", "--ray-address", "auto", "--out", "{root}/seg_w"], ("--ray-address", "only with --batch")),
    ("segment-resources-without-batch", ["segment", "{clip}", "the dog", "--models", "tiny", "--thinker", "direct", "--resources-per-worker", "gpu=1", "--out", "{root}/seg_w"], ("--resources-per-worker", "only with --batch")),
    ("segment-out-is-a-file", ["segment", "{clip}", "the dog", "--models", "tiny", "--thinker", "direct", "--out", "{a_file}"], ("{a_file}", "--out")),
    ("run-missing-data", ["run", "--data", "{missing}", "--out", "{root}/run_out", "--models", "tiny", "--thinker", "direct"], ("{missing}/metadata.csv", "not found")),
    ("run-empty-csv", ["run", "--data", "{folder}", "--meta", "{empty_csv}", "--out", "{root}/run_out2", "--models", "tiny", "--thinker", "direct"], ("{empty_csv}", "empty")),
    ("run-batch-size-zero", ["run", "--data", "{folder}", "--out", "{root}/r", "--batch-size", "0"], ("--batch-size",)),
    ("think-empty-csv", ["think", "--data", "{folder}", "--meta", "{empty_csv}", "--out", "{root}/think_out", "--models", "tiny"], ("{empty_csv}", "empty")),
    ("think-folder-as-csv", ["think", "--data", "{folder}", "--meta", "{folder}", "--out", "{root}/think_out2", "--models", "tiny"], ("{folder}", "directory")),
    ("think-missing-model", ["think", "--data", "{folder}", "--meta", "{header_csv}", "--out", "{root}/think_out3", "--model", "{missing}"], ("ref_thinker", "{missing}")),
    ("ground-segment-empty-csv", ["ground-segment", "--data", "{folder}", "--meta", "{empty_csv}", "--direct", "--out", "{root}/gs_out", "--models", "tiny"], ("{empty_csv}", "empty")),
    ("ground-segment-set-dtype", ["ground-segment", "--data", "{folder}", "--meta", "{header_csv}", "--direct", "--out", "{root}/gs_dtype", "--models", "tiny", "--set", "dtype=bf16"], ("--set", "dtype is not a preset switch", "use --dtype")),
    ("segment-set-dtype", ["segment", "{clip}", "the dog", "--models", "tiny", "--thinker", "direct", "--set", "dtype=fp16", "--out", "{root}/seg_dtype"], ("--set", "dtype is not a preset switch", "use --dtype")),
    ("ground-segment-missing-thoughts", ["ground-segment", "--data", "{folder}", "--meta", "{header_csv}", "--thoughts", "{missing}", "--out", "{root}/gs_out2", "--models", "tiny"], ("thoughts", "{missing}")),
    ("eval-missing-pred", ["eval", "--data", "{folder}", "--meta", "{header_csv}", "--pred", "{missing}"], ("predictions", "{missing}")),
    ("eval-empty-csv", ["eval", "--data", "{folder}", "--meta", "{empty_csv}", "--pred", "{folder}"], ("{empty_csv}", "empty")),
    ("train-empty-csv", ["train", "--data", "{folder}", "--meta", "{empty_csv}", "--targets", "{not_json}", "--out", "{root}/train_out", "--models", "tiny"], ("{empty_csv}", "empty")),
    ("train-bad-json", ["train", "--data", "{folder}", "--meta", "{train_csv}", "--targets", "{not_json}", "--out", "{root}/train_out2", "--models", "tiny"], ("{not_json}", "not valid json")),
    ("train-max-steps-word", ["train", "--data", "{folder}", "--meta", "{header_csv}", "--targets", "{not_json}", "--out", "{root}/t", "--max-steps", "many"], ("--max-steps", "integer")),
    ("data-info-missing", ["data", "info", "{missing}"], ("{missing}/metadata.csv", "not found")),
    ("data-info-file-as-root", ["data", "info", "{a_file}"], ("{a_file}", "not a directory")),
    ("data-check-empty-csv", ["data", "check", "{folder}", "--meta", "{empty_csv}"], ("{empty_csv}", "empty")),
    ("report-missing-run", ["report", "{missing}"], ("{missing}", "not a run directory")),
    ("report-file-as-run", ["report", "{a_file}"], ("{a_file}", "is a file")),
    ("models-list-bad-source", ["models", "list", "--source", "nonsense"], ("key=source", "nonsense")),
    ("models-convert-missing", ["models", "convert-ref-thinker", "--release", "{missing}", "--llama", "{folder}", "--clip", "{folder}", "--beats", "{a_file}", "--out", "{root}/conv"], ("{missing}", "non_lora_trainables.bin")),
    ("models-export-missing", ["models", "export", "{missing}", "{root}/exported"], ("{missing}", "checkpoint")),
    ("models-init-missing", ["models", "init-ref-thinker", "--llama", "{missing}", "--clip", "{folder}", "--beats", "{a_file}", "--crab", "{crab}", "--out", "{root}/init"], ("llama", "{missing}")),
    ("models-list-tiny-with-source", ["models", "list", "--models", "tiny", "--source", "grounding_dino={folder}"], ("--source", "tiny")),
    ("models-fetch-unknown", ["models", "fetch", "everything"], ("everything",)),
    ("demo-port-out-of-range", ["demo", "--port", "70000"], ("--port", "65535")),
    ("demo-unknown-models", ["demo", "--models", "huge"], ("--models", "huge")),
]


def _flat(text: str) -> str:
    """Lower case without whitespace or rich's box borders, so wrapped lines read as one."""
    return "".join(text.lower().split()).replace("│", "")


# The second line of the message ``tgs`` prints for an exception it did not expect (a bug):
# taken from the error handler itself, so a reworded message cannot slip past the check.
_BUG_LINE = _flat(_one_line(ZeroDivisionError("x")).splitlines()[1])


def assert_no_bug_report(output: str) -> None:
    """No "unexpected <Exception>: ... This is a bug in tgs" message: a user's mistake is
    refused by a check that names it, not by an exception the handler does not know."""
    assert _BUG_LINE not in _flat(output), output
    assert not re.search(r"unexpected [A-Za-z_.]*(Error|Exception|Warning)\b", output), output


def assert_refused(result: Result, words: tuple[str, ...]) -> None:
    output = result.output
    assert result.exit_code not in (0, None), output
    assert "Traceback" not in output, output
    # Any exception that reached the runner other than the command's own exit is a crash.
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert_no_bug_report(output)
    flat = _flat(output)
    missing = [word for word in words if _flat(word) not in flat]
    assert not missing, f"the message does not name {missing}:\n{output}"


def _fill(text: str, files: dict[str, Path]) -> str:
    return text.format(**{k: str(v) for k, v in files.items()})


def _case(case_id: str, argv: list[str], expected: tuple[str, ...]) -> object:
    return pytest.param(argv, expected, id=case_id)


@pytest.mark.parametrize(("argv", "expected"), [_case(*case) for case in CASES])
def test_bad_arguments_give_a_clear_message(argv: list[str], expected: tuple[str, ...], files: dict[str, Path]) -> None:
    result = CliRunner().invoke(build_app(), [_fill(a, files) for a in argv])
    assert_refused(result, tuple(_fill(word, files) for word in expected))


@pytest.fixture(scope="module")
def every_tiny_source() -> list[str]:
    """``--source KEY=DIR`` for every model role, DIR a built tiny model: all weights present."""
    args = []
    for key in MODEL_SPECS:
        args += ["--source", f"{key}={resolve_source(key, 'tiny')}"]
    return args


def test_models_list_with_every_weight_present_passes(every_tiny_source: list[str]) -> None:
    """The control for the next test: with these sources ``models list`` has nothing to refuse."""
    result = CliRunner().invoke(build_app(), ["models", "list", *every_tiny_source])
    assert result.exit_code == 0, result.output
    assert_no_bug_report(result.output)


def test_models_list_refuses_an_unknown_set_with_every_weight_present(every_tiny_source: list[str]) -> None:
    """Every weight is present, so only the unknown set can be refused (offline, with weights
    absent, the listing fails for the missing weights and the test would pass for that)."""
    result = CliRunner().invoke(build_app(), ["models", "list", "--models", "huge", *every_tiny_source])
    assert_refused(result, ("--models", "huge"))


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
    with pytest.raises(AssertionError):  # the check every bad-argument case makes sees a bug
        assert_no_bug_report(result.output)
