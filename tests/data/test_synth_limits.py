"""``tgs data synth``: an impossible size is refused up front with the fix, and a benchmark is
written through a partial folder, so a failed or interrupted call leaves nothing partial behind
and a previous benchmark intact."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import tgs.data.synth as synth
from tgs.cli.main import build_app


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_huge_size_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    result = CliRunner().invoke(build_app(), ["data", "synth", str(out), "--size", "100000x100000"])
    output = " ".join(result.output.split())
    assert result.exit_code != 0, output
    assert "100000x100000" in output and "--size 1920x1080" in output, output
    assert "--batch-size" not in output and "unexpected" not in output.lower(), output
    assert list(tmp_path.iterdir()) == []  # no benchmark folder, no partial folder


@pytest.mark.parametrize("size", [(8193, 32), (3841, 2160)])
def test_the_limits_are_a_side_and_a_pixel_count(size: tuple[int, int]) -> None:
    with pytest.raises(synth.SettingsError, match="--size"):
        synth.check_size(size)
    assert synth.check_size((8192, 32)) == (8192, 32) and synth.check_size((3840, 2160)) == (3840, 2160)


def test_a_failed_call_leaves_the_previous_benchmark_and_nothing_partial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "bench"
    synth.generate(out, videos=1, seed=0, size=(64, 48))
    (out / "notes.txt").write_text("mine\n")  # not a benchmark file: always kept
    before = _tree(out)
    write_media = synth._write_media
    calls = []

    def fail_on_the_second_video(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # as Ctrl+C half-way
        return write_media(*args, **kwargs)

    monkeypatch.setattr(synth, "_write_media", fail_on_the_second_video)
    with pytest.raises(KeyboardInterrupt):
        synth.generate(out, videos=3, seed=1, size=(64, 48), force=True)
    assert _tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench"]
    calls.clear()
    with pytest.raises(KeyboardInterrupt):
        synth.generate(tmp_path / "fresh", videos=3, seed=1, size=(64, 48))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench"]


def test_force_replaces_a_benchmark_and_keeps_other_files(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    synth.generate(out, videos=2, seed=0, size=(64, 48))
    (out / "notes.txt").write_text("mine\n")
    synth.generate(out, videos=1, seed=3, size=(64, 48), force=True)
    fresh = tmp_path / "fresh"
    synth.generate(fresh, videos=1, seed=3, size=(64, 48))
    assert _tree(out) == {**_tree(fresh), "notes.txt": b"mine\n"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench", "fresh"]
