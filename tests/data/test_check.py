"""``tgs data check`` and tgs.data.check on a synthetic benchmark with broken files."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tgs.cli.main import build_app
from tgs.data.benchmark import ref_avs_bench
from tgs.data.check import check_benchmark, check_file


def break_files(root: Path) -> dict[str, Path]:
    """Remove or damage one file of each kind; returns what was broken."""
    from PIL import Image

    bench = ref_avs_bench(root)
    samples = [s for s in bench if not s.is_null]
    first, other = samples[0], next(s for s in samples if s.folder != samples[0].folder)
    null = next(s for s in bench if s.is_null)
    broken = {
        "missing_frame": first.frame_paths[3],
        "truncated_frame": first.frame_paths[5],
        "empty_audio": first.audio_path,
        "missing_mask_dir": other.mask_dir,
        "garbage_mask": first.mask_paths[8],
        "null_audio": null.audio_path,
        "small_mask": first.mask_paths[1],
    }
    broken["missing_frame"].unlink()
    data = broken["truncated_frame"].read_bytes()
    broken["truncated_frame"].write_bytes(data[: len(data) // 2])
    broken["empty_audio"].write_bytes(b"")
    for p in broken["missing_mask_dir"].iterdir():
        p.unlink()
    broken["missing_mask_dir"].rmdir()
    broken["garbage_mask"].write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64 + b"IEND\xaeB`\x82")
    broken["null_audio"].unlink()
    Image.new("L", (10, 10)).save(broken["small_mask"])  # valid PNG, wrong size
    return broken


def test_clean_benchmark_passes(synth_root: Path) -> None:
    for decode in (False, True):
        report = check_benchmark(ref_avs_bench(synth_root), decode=decode)
        assert report.ok, report.problems
        assert report.checked["frame"] > 0 and report.checked["audio"] > 0 and report.checked["mask"] > 0


def test_quick_check_finds_every_problem(synth_copy: Path) -> None:
    broken = break_files(synth_copy)
    calls = []
    report = check_benchmark(ref_avs_bench(synth_copy), progress=calls.append, workers=2)
    found = {(p.kind, p.issue, p.path) for p in report.problems}
    assert found == {
        ("frame", "missing", broken["missing_frame"]),
        ("frame", "corrupt", broken["truncated_frame"]),
        ("audio", "empty", broken["empty_audio"]),
        ("audio", "missing", broken["null_audio"]),
        ("mask", "missing", broken["missing_mask_dir"]),
    }  # the garbage and wrong-size PNGs have valid headers: only --decode sees them
    assert report.counts()["mask"] == {"missing": 10}
    assert report.counts()["frame"] == {"missing": 1, "corrupt": 1}
    truncated = next(p for p in report.problems if p.path == broken["truncated_frame"])
    assert "truncated" in truncated.detail and truncated.uids
    assert sum(calls) == sum(report.checked.values()) - 10  # the missing folder is not visited


def test_decode_check_also_finds_corrupt_and_mis_sized_masks(synth_copy: Path) -> None:
    broken = break_files(synth_copy)
    report = check_benchmark(ref_avs_bench(synth_copy), decode=True)
    found = {(p.kind, p.issue, p.path) for p in report.problems}
    assert ("mask", "corrupt", broken["garbage_mask"]) in found
    assert ("mask", "size", broken["small_mask"]) in found
    assert ("frame", "corrupt", broken["truncated_frame"]) in found
    assert len(found) == 7


def test_split_filter_limits_the_check(synth_copy: Path) -> None:
    break_files(synth_copy)
    bench = ref_avs_bench(synth_copy, splits="test_u")
    report = check_benchmark(bench)
    assert {u for p in report.problems for u in p.uids} <= set(bench.uids())


@pytest.mark.parametrize(
    ("kind", "content", "issue"),
    [
        ("frame", b"", "empty"),
        ("frame", b"GIF89a......", "corrupt"),
        ("mask", b"\xff\xd8\xff\xe0 jpeg not png", "corrupt"),
        ("audio", b"RIFF\x00\x00\x00\x00WAVEjunk", "corrupt"),
    ],
)
def test_check_file_cases(tmp_path: Path, kind: str, content: bytes, issue: str) -> None:
    path = tmp_path / "f"
    path.write_bytes(content)
    result, _ = check_file(path, kind)
    assert result is not None and result[0] == issue
    assert check_file(tmp_path / "absent", kind)[0] == ("missing", "not found")


def test_cli_check_exit_codes_and_table(synth_copy: Path) -> None:
    runner = CliRunner()
    app = build_app()
    clean = runner.invoke(app, ["data", "check", str(synth_copy)])
    assert clean.exit_code == 0, clean.output
    assert "all files present and valid" in clean.output
    broken = break_files(synth_copy)
    result = runner.invoke(app, ["data", "check", str(synth_copy), "--meta", str(synth_copy / "metadata.csv")],
                           env={"COLUMNS": "300"})
    assert result.exit_code == 1
    assert "5 problem(s)" in result.output
    assert broken["missing_frame"].name in result.output and "missing" in result.output
    decoded = runner.invoke(app, ["data", "check", str(synth_copy), "--decode", "--show", "2"], env={"COLUMNS": "300"})
    assert decoded.exit_code == 1
    assert "7 problem(s)" in decoded.output and "5 more" in decoded.output
    bad_split = runner.invoke(app, ["data", "check", str(synth_copy), "--split", "tset_s"])
    assert bad_split.exit_code == 1 and "test_s" in bad_split.output


def test_cli_info(synth_root: Path) -> None:
    result = CliRunner().invoke(build_app(), ["data", "info", str(synth_root)])
    assert result.exit_code == 0, result.output
    bench = ref_avs_bench(synth_root)
    assert f"{len(bench)}" in result.output and "test_n" in result.output
