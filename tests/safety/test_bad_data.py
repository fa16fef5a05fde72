"""Fault isolation on bad data: every broken input is found by ``tgs data check`` before a run,
and fails only its own samples, with the file and the reason, when a run meets it.

One synthetic benchmark (``tgs.data.synth.generate(out, videos=3, seed=0)``) is broken in
every way the issue lists, each on its own video so that the effects stay separate:

- val video ``syn0-0001``: frame 4 is not a JPEG;
- train video ``syn0-0000``: its audio.wav is cut in half (libsndfile would read half the audio);
- test_s object ``red-circle`` (fid 2): mask 00003.png is deleted;
- null rows: ``null_m-...`` audio has a WAV header and no samples, ``null_c-...`` audio is 0 bytes;
- metadata.csv: ``yellow-triangle_2`` has an empty expression, ``blue-hexagon_1`` a 10 kB one;
- metadata_latin1.csv: like metadata.csv, plus a Latin-1 byte (not UTF-8) in one expression.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from tgs.cli.main import build_app
from tgs.data import synth
from tgs.data.benchmark import Benchmark, ref_avs_bench
from tgs.data.check import check_benchmark
from tgs.errors import DataError, MediaError, MetadataError

VAL_VIDEO, TRAIN_VIDEO, TEST_VIDEO = "syn0-0001_0_10000", "syn0-0000_0_10000", "syn0-0002_0_10000"
NULL_M, NULL_C = f"null_m-{TEST_VIDEO}", f"null_c-{TRAIN_VIDEO}"
EMPTY_EXP_UID, LONG_EXP_UID = f"{TEST_VIDEO}_yellow-triangle_2", f"{TEST_VIDEO}_blue-hexagon_1"
LATIN1_UID, CLEAN_UID, NO_MASK_UID = f"{TEST_VIDEO}_yellow-triangle_3", f"{TEST_VIDEO}_yellow-triangle_1", f"{TEST_VIDEO}_red-circle_1"
LONG_EXP = "x" * 10240


@dataclass(frozen=True)
class Broken:
    root: Path
    meta: Path
    latin1_meta: Path
    bad_frame: Path
    truncated_wav: Path
    missing_mask: Path
    no_samples_wav: Path
    zero_byte_wav: Path
    lines: dict[str, int]  # uid -> line of its row in metadata.csv


def _rewrite_metadata(root: Path) -> tuple[list[list[str]], dict[str, int]]:
    with (root / "metadata.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    lines = {}
    for number, row in enumerate(rows[1:], start=2):
        lines[row[1]] = number
        if row[1] == EMPTY_EXP_UID:
            row[4] = ""
        elif row[1] == LONG_EXP_UID:
            row[4] = LONG_EXP
    with (root / "metadata.csv").open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows)
    return rows, lines


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> Broken:
    """The broken benchmark (read-only: tests must not change it)."""
    root = tmp_path_factory.mktemp("bad_data") / "bench"
    synth.generate(root, videos=3, seed=0, size=(64, 48))
    bad_frame = root / "media" / VAL_VIDEO / "frames" / "4.jpg"
    bad_frame.write_bytes(b"this is not a jpeg")
    truncated_wav = root / "media" / TRAIN_VIDEO / "audio.wav"
    data = truncated_wav.read_bytes()
    truncated_wav.write_bytes(data[: len(data) // 2])
    missing_mask = root / "gt_mask" / TEST_VIDEO / "fid_2" / "00003.png"
    missing_mask.unlink()
    no_samples_wav = root / "media_cross" / NULL_M / "audio.wav"
    sf.write(no_samples_wav, np.zeros((0, 2), np.int16), 48000, subtype="PCM_16")
    zero_byte_wav = root / "media_cross" / NULL_C / "audio.wav"
    zero_byte_wav.write_bytes(b"")
    rows, lines = _rewrite_metadata(root)
    latin1_meta = root / "metadata_latin1.csv"
    text = (root / "metadata.csv").read_bytes()
    row = next(r for r in rows if r[1] == LATIN1_UID)
    original = ",".join(row).encode()
    assert original in text
    latin1_meta.write_bytes(text.replace(original, original.replace(b"object", "caf\u00e9".encode("latin-1"))))
    return Broken(root, root / "metadata.csv", latin1_meta, bad_frame, truncated_wav, missing_mask,
                  no_samples_wav, zero_byte_wav, lines)


def _uids(bench: Benchmark, folder: str) -> set[str]:
    return {s.uid for s in bench if s.folder == folder}


# ----------------------------------------------------------------------------- tgs data check


@pytest.mark.parametrize("decode", [False, True], ids=["quick", "decode"])
def test_check_reports_every_problem_with_file_and_reason(broken: Broken, decode: bool) -> None:
    bench = ref_avs_bench(broken.root)
    report = check_benchmark(bench, decode=decode)
    found = {(p.kind, p.issue, p.path): p for p in report.problems}
    assert set(found) == {
        ("frame", "corrupt", broken.bad_frame),
        ("audio", "corrupt", broken.truncated_wav),
        ("audio", "empty", broken.no_samples_wav),
        ("audio", "empty", broken.zero_byte_wav),
        ("mask", "missing", broken.missing_mask),
        ("expression", "empty", broken.meta),
        ("expression", "corrupt", broken.meta),
    }
    reasons = {
        ("frame", "corrupt", broken.bad_frame): "not a JPEG",
        ("audio", "corrupt", broken.truncated_wav): "truncated: its RIFF header declares",
        ("audio", "empty", broken.no_samples_wav): "no audio samples",
        ("audio", "empty", broken.zero_byte_wav): "0 bytes",
        ("mask", "missing", broken.missing_mask): "not found",
        ("expression", "empty", broken.meta): f"line {broken.lines[EMPTY_EXP_UID]}: empty expression",
        ("expression", "corrupt", broken.meta): f"line {broken.lines[LONG_EXP_UID]}: expression of 10240 characters",
    }
    for key, reason in reasons.items():
        assert reason in found[key].detail, (key, found[key].detail)
    # the rows each problem affects
    assert set(found[("frame", "corrupt", broken.bad_frame)].uids) == _uids(bench, VAL_VIDEO)
    assert set(found[("audio", "corrupt", broken.truncated_wav)].uids) == _uids(bench, TRAIN_VIDEO)
    assert set(found[("audio", "empty", broken.no_samples_wav)].uids) == _uids(bench, NULL_M)
    assert set(found[("mask", "missing", broken.missing_mask)].uids) == {NO_MASK_UID, f"{TEST_VIDEO}_red-circle_2"}
    assert found[("expression", "empty", broken.meta)].uids == (EMPTY_EXP_UID,)
    assert found[("expression", "corrupt", broken.meta)].uids == (LONG_EXP_UID,)
    assert report.checked["expression"] == len(bench)


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(build_app(), list(args), env={"COLUMNS": "400"})
    text = result.output + (result.stderr if result.stderr_bytes is not None else "")
    return result.exit_code, " ".join(re.sub(r"[│╭╮╰╯─┃┏┓┗┛━┡┩┢┪╇╈┳┻]", " ", text).split())


def test_check_cli_exits_1_and_lists_files_and_reasons(broken: Broken) -> None:
    code, text = _cli("data", "check", str(broken.root), "--show", "0")
    assert code == 1
    assert "7 problem(s)" in text
    for needle in ("4.jpg", "not a JPEG", "truncated", "00003.png", "not found", "no audio samples", "0 bytes",
                   "empty expression", "expression of 10240 characters", "metadata.csv"):
        assert needle in text, needle


def test_non_utf8_metadata_is_refused_naming_file_and_line(broken: Broken) -> None:
    line = broken.lines[LATIN1_UID]
    with pytest.raises(MetadataError, match=rf"line {line} is not valid UTF-8 \(byte 0xe9") as info:
        Benchmark(broken.root, broken.latin1_meta)
    assert info.value.path == str(broken.latin1_meta)
    code, text = _cli("data", "check", str(broken.root), "--meta", str(broken.latin1_meta))
    assert code == 1
    assert "metadata_latin1.csv" in text and f"line {line} is not valid UTF-8" in text and "Fix:" in text


# ----------------------------------------------------------------------------- loading samples


@pytest.mark.parametrize(
    ("uid", "what", "error", "message"),
    [
        (f"{VAL_VIDEO}_cyan-square_1", "bad_frame", MediaError, "cannot decode image"),
        (f"{TRAIN_VIDEO}_cyan-square_1", "truncated_wav", MediaError, "truncated"),
        (f"{NULL_M}_null_1", "no_samples_wav", MediaError, "has no samples"),
        (f"{NULL_C}_null_1", "zero_byte_wav", MediaError, r"is empty \(0 bytes\)"),
    ],
)
def test_load_clip_names_the_broken_file(broken: Broken, uid: str, what: str, error: type, message: str) -> None:
    sample = ref_avs_bench(broken.root)[uid]
    with pytest.raises(error, match=message) as info:
        sample.load_clip()
    path = getattr(broken, what)
    assert info.value.path == str(path)
    assert str(path) in str(info.value)


def test_broken_audio_does_not_stop_the_frames(broken: Broken) -> None:
    """Ground-Segment decodes no audio: a clip with a truncated WAV still gives its frames."""
    clip = ref_avs_bench(broken.root)[f"{TRAIN_VIDEO}_cyan-square_1"].load_clip(decode_audio=False)
    assert clip.frames.shape == (10, 48, 64, 3) and clip.audio is None


def test_load_gt_names_the_missing_mask(broken: Broken) -> None:
    bench = ref_avs_bench(broken.root)
    with pytest.raises(MediaError, match="not found") as info:
        bench[NO_MASK_UID].load_gt()
    assert info.value.path == str(broken.missing_mask)
    assert bench[CLEAN_UID].load_gt().shape == (10, 48, 64)  # another object of the same video is intact


@pytest.mark.parametrize(("uid", "message"), [(EMPTY_EXP_UID, "empty expression"), (LONG_EXP_UID, "10240 characters")])
def test_unusable_expressions_fail_their_query(broken: Broken, uid: str, message: str) -> None:
    sample = ref_avs_bench(broken.root)[uid]
    with pytest.raises(DataError, match=message) as info:
        sample.query()
    assert info.value.path == str(broken.meta)
    assert f"line {broken.lines[uid]} of {broken.meta}" in str(info.value)


def test_think_stage_records_each_failure_and_goes_on(broken: Broken) -> None:
    """The Think worker's batch step: broken samples become failed records, the others thoughts."""
    from tgs.core.flow import Pipeline
    from tgs.runners.workers import ThinkWorker
    from tgs.think.base import DirectThinker

    bench = ref_avs_bench(broken.root)
    uids = [f"{VAL_VIDEO}_cyan-square_1", f"{TRAIN_VIDEO}_cyan-square_1", f"{NULL_M}_null_1", EMPTY_EXP_UID,
            LONG_EXP_UID, CLEAN_UID, NO_MASK_UID]
    records = {r["uid"]: r for r in ThinkWorker(Pipeline(DirectThinker())).process([bench[u] for u in uids])}
    expected_failures = {
        f"{VAL_VIDEO}_cyan-square_1": ("media", broken.bad_frame),
        f"{TRAIN_VIDEO}_cyan-square_1": ("media", broken.truncated_wav),
        f"{NULL_M}_null_1": ("media", broken.no_samples_wav),
        EMPTY_EXP_UID: ("data", broken.meta),
        LONG_EXP_UID: ("data", broken.meta),
    }
    for uid, (kind, path) in expected_failures.items():
        assert records[uid]["status"] == "failed", records[uid]
        assert records[uid]["error_kind"] == kind
        assert str(path) in records[uid]["error"]
    for uid in (CLEAN_UID, NO_MASK_UID):  # a missing mask does not concern thinking
        assert records[uid]["status"] == "direct" and records[uid]["f_object"] == bench[uid].expression


# ----------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_ground_segment_run_records_failures_and_finishes_the_rest(broken: Broken, tmp_path: Path) -> None:
    """``tgs ground-segment --direct --models tiny`` over broken rows: one record each, the run goes on."""
    root = tmp_path / "bench"
    shutil.copytree(broken.root, root)
    wanted = {
        f"{VAL_VIDEO}_cyan-square_1": ("failed", "media", str(root / "media" / VAL_VIDEO / "frames" / "4.jpg")),
        EMPTY_EXP_UID: ("failed", "data", "empty expression"),
        LONG_EXP_UID: ("failed", "data", "10240 characters"),
        f"{TRAIN_VIDEO}_cyan-square_1": ("ok", None, None),  # its WAV is truncated, but Ground-Segment needs no audio
        CLEAN_UID: ("ok", None, None),
        NO_MASK_UID: ("ok", None, None),  # the mask matters to evaluation only
    }
    with (root / "metadata.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    subset = root / "subset.csv"
    with subset.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([rows[0], *[r for r in rows[1:] if r[1] in wanted]])
    out = tmp_path / "run"
    code, text = _cli("ground-segment", "--data", str(root), "--meta", str(subset), "--direct", "--models", "tiny",
                      "--device", "cpu", "--no-eval", "--out", str(out))
    assert code == 0, text
    assert "3 sample(s) failed" in text
    records = {}
    for line in (out / "samples.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        records[record["uid"]] = record
    assert set(records) == set(wanted)
    for uid, (status, kind, needle) in wanted.items():
        assert records[uid]["status"] == status, records[uid]
        if status == "failed":
            assert records[uid]["error_kind"] == kind and needle in records[uid]["error"]
        else:
            assert (out / "masks" / f"{uid}.npz").is_file()
