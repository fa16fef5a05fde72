"""scripts/check_against_original.py: argument handling only (the original code is not needed)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "check_against_original.py"


@pytest.fixture(scope="module")
def script() -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location("check_against_original", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


def _fake_checkout(root: Path, files: tuple[str, ...]) -> Path:
    for name in files:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("# placeholder for the argument test\n")
    return root


def test_original_is_required(script: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        script.parse_args([])
    assert exit_info.value.code == 2
    assert "--original" in capsys.readouterr().err


def test_missing_path_names_it_and_the_fix(
    script: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no-such-checkout"
    with pytest.raises(SystemExit) as exit_info:
        script.parse_args(["--original", str(missing)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "does not exist" in err and "jasongief/TGS-Agent" in err


def test_a_file_is_not_a_checkout(
    script: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "README.md"
    file.write_text("x")
    with pytest.raises(SystemExit):
        script.parse_args(["--original", str(file)])
    assert "is not a directory" in capsys.readouterr().err


def test_incomplete_checkout_lists_the_missing_files(script: ModuleType, tmp_path: Path) -> None:
    present = script.REQUIRED_FILES[:3]
    root = _fake_checkout(tmp_path, present)
    with pytest.raises(script.OriginalCheckoutError) as err:
        script.validate_original(root)
    message = str(err.value)
    for name in script.REQUIRED_FILES[3:]:
        assert name in message
    for name in present:
        assert name not in message


def test_complete_layout_parses_with_defaults(script: ModuleType, tmp_path: Path) -> None:
    root = _fake_checkout(tmp_path, script.REQUIRED_FILES)
    args = script.parse_args(["--original", str(root)])
    assert args.original == root.resolve()
    assert args.beats is False and args.tolerance == 1e-5 and args.seed == 0
    args = script.parse_args(["--original", str(root), "--beats", "--tolerance", "1e-4", "--seed", "3"])
    assert args.beats is True and args.tolerance == 1e-4 and args.seed == 3


def test_tolerance_must_be_positive(
    script: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _fake_checkout(tmp_path, script.REQUIRED_FILES)
    with pytest.raises(SystemExit):
        script.parse_args(["--original", str(root), "--tolerance", "0"])
    assert "--tolerance must be positive" in capsys.readouterr().err


def test_command_line_exits_2_with_a_clear_message(tmp_path: Path) -> None:
    """The real entry point, as a user runs it: a bad path fails before anything heavy is imported."""
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--original", str(tmp_path / "nowhere")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "does not exist" in result.stderr and "nowhere" in result.stderr
