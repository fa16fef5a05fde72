"""Property tests of path resolution: no uid or vid string can point outside the benchmark root.

``media_folder`` and every path of a ``Sample`` (frames, audio, masks) either stay strictly
inside the root, one plain folder name below ``media``/``media_cross``/``gt_mask``, or raise
DataError -- for any string, including ``..``, absolute paths, backslashes, NUL, drive
letters and arbitrary unicode.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tgs.data.benchmark import NUM_FRAMES, MetaRow, Sample, media_folder
from tgs.errors import DataError

SETTINGS = settings(max_examples=200, deadline=None, derandomize=True)
ROOT = Path("/bench/root")

PIECES = ["..", ".", "/", "\\", "\x00", ":", "C:", "_", "_null_", "null_c-", "~", "%2e%2e", "\u2215", "\uff0f",
          "é", " ", "\n", "a", "cat", "1"]
nasty = st.lists(st.sampled_from(PIECES) | st.text(max_size=3), max_size=10).map("".join)
any_uid = st.one_of(st.text(max_size=30), nasty)


def inside(path: Path, base: Path) -> bool:
    """``path`` is strictly below ``base`` lexically: no '..', '.', empty or absolute component."""
    rel = os.path.relpath(path, base)
    return not rel.startswith("..") and not os.path.isabs(rel) and rel != "."


def assert_plain_name(name: str) -> None:
    assert name and name not in (".", "..")
    assert not set(name) & {"/", "\\", "\x00", ":"}
    assert Path(name).name == name and not Path(name).is_absolute()


@SETTINGS
@given(uid=any_uid)
@example(uid="../../etc_cat_1")
@example(uid=".._cat_1")
@example(uid="null_c-.._null_1")
@example(uid="/abs_cat_1")
@example(uid="C:\\x_cat_1")
@example(uid="a\x00b_cat_1")
@example(uid="a_b_..")
def test_media_folder_is_a_plain_name_or_an_error(uid: str) -> None:
    try:
        folder = media_folder(uid)
    except DataError:
        return
    assert folder == uid.rsplit("_", 2)[0]
    assert_plain_name(folder)
    assert_plain_name(uid)  # the uid itself names files (predictions, run masks) and must be plain too


@SETTINGS
@given(uid=any_uid, fid=st.integers(0, 10**9), null_dir=st.sampled_from(["media_cross", "media"]))
@example(uid="x_y_1", fid=0, null_dir="media_cross")
@example(uid="null_c-x_null_1", fid=0, null_dir="media_cross")
def test_sample_paths_never_leave_the_root(uid: str, fid: int, null_dir: str) -> None:
    sample = Sample(MetaRow(vid="v", uid=uid, split="test_s", fid=fid, exp="e", line=2), ROOT, null_dir)
    try:
        paths = [sample.frames_dir, sample.audio_path, sample.mask_dir, *sample.frame_paths, *sample.mask_paths]
    except DataError:
        with pytest.raises(DataError):
            media_folder(uid)  # the same verdict as the folder rule
        return
    folder = media_folder(uid)
    for path in paths:
        assert inside(path, ROOT), path
        assert folder in path.relative_to(ROOT).parts
    assert sample.frames_dir == ROOT / "media" / folder / "frames"
    assert sample.mask_dir == ROOT / "gt_mask" / folder / f"fid_{fid}"
    audio_base = null_dir if uid.startswith("null_") else "media"
    assert sample.audio_path == ROOT / audio_base / folder / "audio.wav"
    assert len(sample.frame_paths) == len(sample.mask_paths) == NUM_FRAMES


def test_real_uid_rules() -> None:
    """The two uid shapes of the public CSV resolve as the original code resolves them."""
    assert media_folder("--KCIeTv6PM_14000_24000_hair-dryer_3") == "--KCIeTv6PM_14000_24000"
    assert media_folder("null_c-abc_1_2_null_0") == "null_c-abc_1_2"


@pytest.mark.parametrize("uid", ["../x_cat_1", "..\\..\\x_cat_1", "/etc/passwd_cat_1", "x/../../y_cat_1",
                                 ".._cat_1", "C:x_cat_1", "x\x00_cat_1", "x_cat_1/..", "cat_1"])
def test_escapes_raise_data_error_naming_the_bad_part(uid: str) -> None:
    with pytest.raises(DataError) as info:
        media_folder(uid)
    # the uid, or the folder part of it that is bad (in a CSV the line number names the row)
    assert repr(uid) in str(info.value) or repr(uid.rsplit("_", 2)[0]) in str(info.value)
