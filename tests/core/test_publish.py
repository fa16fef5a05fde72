"""staged_directory: a model directory appears whole or not at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from tgs.errors import DataError
from tgs.publish import check_output_dir, staged_directory


def test_new_directory_appears_only_when_complete(tmp_path: Path) -> None:
    out = tmp_path / "deep" / "model"
    with staged_directory(out) as staging:
        assert staging.parent == out.parent and staging.is_dir() and not out.exists()
        (staging / "weights.bin").write_text("w")
    assert (out / "weights.bin").read_text() == "w"
    assert [p.name for p in out.parent.iterdir()] == ["model"]  # no staging folder left


def test_failed_writer_leaves_the_old_directory_untouched(tmp_path: Path) -> None:
    out = tmp_path / "model"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(RuntimeError, match="disk full"), staged_directory(out) as staging:
        (staging / "half.bin").write_text("partial")
        raise RuntimeError("disk full")
    assert sorted(p.name for p in out.iterdir()) == ["old.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_success_replaces_the_old_directory(tmp_path: Path) -> None:
    out = tmp_path / "model"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with staged_directory(out) as staging:
        (staging / "new.txt").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"]


def test_non_empty_output_needs_overwrite(tmp_path: Path) -> None:
    check_output_dir(tmp_path / "missing", overwrite=False)
    (tmp_path / "empty").mkdir()
    check_output_dir(tmp_path / "empty", overwrite=False)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(DataError, match="not empty") as info:
        check_output_dir(tmp_path / "full", overwrite=False, option="folder")
    assert "choose a new folder or pass --overwrite" in str(info.value)
    check_output_dir(tmp_path / "full", overwrite=True)
