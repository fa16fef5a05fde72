"""Metadata reading, path rules and sample loading of tgs.data.benchmark."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from tgs.data.benchmark import (
    NUM_FRAMES,
    SPLITS,
    Benchmark,
    MetaRow,
    media_folder,
    r2_avs_bench,
    read_metadata,
    ref_avs_bench,
)
from tgs.errors import DataError, MediaError, MetadataError
from tgs.types import Clip, Query

HEADER = "vid,uid,split,fid,exp\n"


def write_csv(tmp_path: Path, body: str, header: str = HEADER, name: str = "meta.csv") -> Path:
    path = tmp_path / name
    path.write_text(header + body, encoding="utf-8")
    return path


# ---------------------------------------------------------------------------- the public CSV


def test_shared_metadata_split_counts(shared_metadata: Path) -> None:
    bench = ref_avs_bench("/nonexistent-root", meta=shared_metadata)
    assert bench.count_by_split() == {
        "val": 1349,
        "train": 14113,
        "test_s": 2288,
        "TODO": 25,
        "test_u": 1656,
        "test_n": 1028,
    }
    assert len(bench) == 20459  # 20460 lines with the header
    assert set(SPLITS) | {"TODO"} == set(bench.count_by_split())


def test_shared_metadata_rows_and_null_rules(shared_metadata: Path) -> None:
    rows = read_metadata(shared_metadata, duplicates="allow")
    first = rows[0]
    assert first == MetaRow(
        vid="--KCIeTv6PM_14000_24000",
        uid="--KCIeTv6PM_14000_24000_cat_1",
        split="val",
        fid=0,
        exp="The object having white and gray fur.",
        line=2,
    )
    nulls = [r for r in rows if r.uid.startswith("null_")]
    assert len(nulls) == 1708  # 1028 test_n + 608 train + 72 val
    assert all(r.fid == 0 for r in nulls)
    assert {r.split for r in nulls if r.split == "test_n"} == {"test_n"}
    # The media folder of a null row is null_{c|m}-<vid>; every ordinary row's folder is its vid.
    assert all(media_folder(r.uid) in (f"null_c-{r.vid}", f"null_m-{r.vid}") for r in nulls)
    assert all(media_folder(r.uid) == r.vid for r in rows if not r.uid.startswith("null_"))


def test_shared_metadata_duplicates_are_kept_and_reported(shared_metadata: Path, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="tgs.data.benchmark"):
        bench = ref_avs_bench("/nonexistent-root", meta=shared_metadata, splits="test_s")
    assert "repeat an earlier uid" in caplog.text
    saw = "MDyjY3uiWp0_297000_307000_saw_4"
    assert [(r.line, r.fid) for r in bench.rows_for(saw)] == [(15290, 4), (19090, 0)]
    assert bench[saw].row.line == 15290  # the first row
    with pytest.raises(MetadataError, match="line 16056 repeats uid") as err:
        read_metadata(shared_metadata, duplicates="error")
    assert str(shared_metadata) in str(err.value)


# ---------------------------------------------------------------------------- malformed CSVs


@pytest.mark.parametrize(
    ("header", "body", "pattern"),
    [
        ("vid,uid,split,fid\n", "a_b_c_1,a_b_c_1,train,0\n", r"line 1 is the header"),
        ("vid,uid,fid,split,exp\n", "", r"expected exactly 'vid,uid,split,fid,exp'"),
        (HEADER, "v_0_1,v_0_1_cat_1,train,0,ok\nv_0_1,v_0_1_cat_2,train,0\n", r"line 3 has 4 columns"),
        (HEADER, "v_0_1,v_0_1_cat_1,train,0,ok,extra\n", r"line 2 has 6 columns"),
        (HEADER, "v_0_1,v_0_1_cat_1,train,zero,ok\n", r"line 2 has fid 'zero'"),
        (HEADER, "v_0_1,v_0_1_cat_1,train,1.5,ok\n", r"line 2 has fid '1.5'"),
        (HEADER, "v_0_1,v_0_1_cat_1,train,-1,ok\n", r"line 2 has fid '-1'"),
        (HEADER, "v_0_1,,train,0,ok\n", r"line 2 has an empty uid"),
        (HEADER, "v_0_1,cat,train,0,ok\n", r"line 2: uid 'cat' does not have the form"),
        (HEADER, "../etc_0_1,v_0_1_cat_1,train,0,ok\n", r"vid '../etc_0_1' at line 2 is not a plain folder"),
        (HEADER, "v_0_1,../../x_cat_1,train,0,ok\n", r"line 2: uid '../../x_cat_1'"),
        (HEADER, "v_0_1,.._cat_1,train,0,ok\n", r"line 2: media folder of uid '..'"),
        (HEADER, "v_0_1,/abs/v_cat_1,train,0,ok\n", r"line 2: uid '/abs/v_cat_1'"),
        (HEADER, 'v_0_1,"v_0_1_a\\b_1",train,0,ok\n', r"line 2: uid"),
        ("", "", r"is empty"),
    ],
)
def test_malformed_metadata_names_file_and_line(tmp_path: Path, header: str, body: str, pattern: str) -> None:
    path = write_csv(tmp_path, body, header=header)
    with pytest.raises(MetadataError, match=pattern) as err:
        read_metadata(path)
    assert str(path) in str(err.value)


def test_quoted_commas_multiline_and_blank_lines(tmp_path: Path) -> None:
    body = 'v_0_1,v_0_1_cat_1,train,0,"The cat, then the dog."\n\nv_0_1,v_0_1_dog_1,val,2,"two\nlines"\nv_0_1,v_0_1_dog_2,val,2,x\n'
    rows = read_metadata(write_csv(tmp_path, body))
    assert [(r.uid, r.line, r.fid) for r in rows] == [
        ("v_0_1_cat_1", 2, 0),
        ("v_0_1_dog_1", 4, 2),
        ("v_0_1_dog_2", 6, 2),
    ]
    assert rows[0].exp == "The cat, then the dog."
    assert rows[1].exp == "two\nlines"


def test_crlf_and_bom_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_bytes(b"\xef\xbb\xbfvid,uid,split,fid,exp\r\nv_0_1,v_0_1_cat_1,test_s,3,The cat.\r\n")
    (row,) = read_metadata(path)
    assert (row.uid, row.split, row.fid, row.exp, row.line) == ("v_0_1_cat_1", "test_s", 3, "The cat.", 2)


def test_non_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_bytes(HEADER.encode() + b"v_0_1,v_0_1_cat_1,train,0,ok\nv_0_1,v_0_1_cat_2,train,0,caf\xe9\n")
    with pytest.raises(MetadataError, match=r"line 3 is not valid UTF-8") as err:
        read_metadata(path)
    assert str(path) in str(err.value)


def test_missing_file_is_a_metadata_error(tmp_path: Path) -> None:
    with pytest.raises(MetadataError, match="not found"):
        read_metadata(tmp_path / "absent.csv")


def test_duplicate_policies(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "v_0_1,v_0_1_cat_1,train,0,a\nv_0_1,v_0_1_cat_1,train,1,b\n")
    assert len(read_metadata(path, duplicates="allow")) == 2
    with pytest.raises(MetadataError, match=r"line 3 repeats uid 'v_0_1_cat_1' of line 2"):
        read_metadata(path, duplicates="error")
    with pytest.raises(ValueError, match="duplicates"):
        read_metadata(path, duplicates="drop")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- path rules


@pytest.mark.parametrize(
    ("uid", "folder"),
    [
        ("--KCIeTv6PM_14000_24000_cat_1", "--KCIeTv6PM_14000_24000"),
        ("--iSerV5DbY_68000_78000_hair-dryer_1", "--iSerV5DbY_68000_78000"),
        ("null_c--cLOg0sQ0Zo_420000_430000_null_1", "null_c--cLOg0sQ0Zo_420000_430000"),
        ("null_m--9k2Z_hxYpU_155000_165000_null_4", "null_m--9k2Z_hxYpU_155000_165000"),
    ],
)
def test_media_folder(uid: str, folder: str) -> None:
    assert media_folder(uid) == folder


@pytest.mark.parametrize("uid", ["../x_cat_1", "a/b_cat_1", "a\\b_cat_1", "/abs_cat_1", ".._cat_1", "c:x_cat_1", "cat_1", "_a_1"])
def test_media_folder_rejects_escapes_and_bad_uids(uid: str) -> None:
    with pytest.raises(DataError):
        media_folder(uid)


def test_sample_paths_follow_the_original_rules(tmp_path: Path) -> None:
    body = (
        "-cLOg0sQ0Zo_420000_430000,-cLOg0sQ0Zo_420000_430000_violin_2,test_s,3,The violin.\n"
        "-cLOg0sQ0Zo_420000_430000,null_c--cLOg0sQ0Zo_420000_430000_null_1,test_n,0,The sounding object\n"
    )
    bench = Benchmark(tmp_path / "REFAVS", write_csv(tmp_path, body))
    normal, null = list(bench)
    root = tmp_path / "REFAVS"
    vid = "-cLOg0sQ0Zo_420000_430000"
    assert not normal.is_null and null.is_null
    assert normal.frame_paths == [root / "media" / vid / "frames" / f"{i}.jpg" for i in range(10)]
    assert normal.audio_path == root / "media" / vid / "audio.wav"
    assert [p.name for p in normal.mask_paths] == [f"0000{i}.png" for i in range(10)]
    assert normal.mask_paths[0] == root / "gt_mask" / vid / "fid_3" / "00000.png"
    # Null row: vid column is the source video, folder comes from the uid.
    assert null.vid == vid and null.folder == f"null_c-{vid}"
    assert null.frame_paths[9] == root / "media" / f"null_c-{vid}" / "frames" / "9.jpg"
    assert null.audio_path == root / "media_cross" / f"null_c-{vid}" / "audio.wav"
    assert null.mask_paths[0] == root / "gt_mask" / f"null_c-{vid}" / "fid_0" / "00000.png"
    official = Benchmark(root, bench.meta_path, null_audio_dir="media")
    assert official[null.uid].audio_path == root / "media" / f"null_c-{vid}" / "audio.wav"
    assert normal.query() == Query(uid=normal.uid, expression="The violin.", clip=None, split="test_s")


# ---------------------------------------------------------------------------- Benchmark


def test_benchmark_is_lazy_and_filters_splits(tmp_path: Path) -> None:
    body = "".join(f"v_0_{i},v_0_{i}_cat_1,{s},0,e{i}\n" for i, s in enumerate(["train", "val", "test_s", "TODO"]))
    meta = write_csv(tmp_path, body)
    root = tmp_path / "no-media-here"
    bench = Benchmark(root, meta)  # no media folder: construction must not look at it
    assert len(bench) == 4 and not root.exists()
    assert bench.uids() == ["v_0_0_cat_1", "v_0_1_cat_1", "v_0_2_cat_1", "v_0_3_cat_1"]
    assert bench.count_by_split() == {"train": 1, "val": 1, "test_s": 1, "TODO": 1}
    sub = Benchmark(root, meta, splits=["val", "test_s"])
    assert [s.split for s in sub] == ["val", "test_s"] and sub.splits == ("val", "test_s")
    assert Benchmark(root, meta, splits="train").uids() == ["v_0_0_cat_1"]
    assert "v_0_1_cat_1" in sub and "v_0_0_cat_1" not in sub
    with pytest.raises(KeyError, match="v_0_0_cat_1"):
        sub["v_0_0_cat_1"]
    with pytest.raises(DataError, match=r"split 'tset_s'.*Did you mean 'test_s'"):
        Benchmark(root, meta, splits="tset_s")


def test_factories_default_metadata_names(tmp_path: Path) -> None:
    write_csv(tmp_path, "v_0_1,v_0_1_cat_1,test_s,0,a\n", name="metadata.csv")
    write_csv(tmp_path, "v_0_1,v_0_1_cat_1,test_u,0,b\nv_0_1,v_0_1_cat_2,test_n,0,c\n", name="R2AVSBench_metadata.csv")
    ref = ref_avs_bench(tmp_path)
    r2 = r2_avs_bench(tmp_path, splits=["test_u"])
    assert (ref.name, ref.meta_path.name, len(ref)) == ("refavs", "metadata.csv", 1)
    assert (r2.name, r2.meta_path.name, len(r2)) == ("r2avs", "R2AVSBench_metadata.csv", 1)
    assert r2_avs_bench(tmp_path, meta=tmp_path / "metadata.csv").count_by_split() == {"test_s": 1}


# ---------------------------------------------------------------------------- loading media


def test_load_clip_and_gt_from_synth(synth_root: Path) -> None:
    import json

    bench = ref_avs_bench(synth_root)
    info = json.loads((synth_root / "synth_info.json").read_text())
    sample = next(s for s in bench if not s.is_null)
    clip = sample.load_clip()
    assert isinstance(clip, Clip)
    assert clip.frames.shape == (NUM_FRAMES, 64, 96, 3) and clip.frames.dtype == np.uint8
    assert clip.sample_rate == 16000 and clip.audio is not None and clip.audio.shape == (160000,)
    np.testing.assert_array_equal(clip.frame_times, np.arange(10.0))
    assert sample.load_clip(decode_audio=False).audio is None
    gt = sample.load_gt()
    assert gt.shape == (NUM_FRAMES, 64, 96) and gt.dtype == np.bool_ and gt.any(axis=(1, 2)).all()
    gray = sample.load_gt_gray()
    assert gray.dtype == np.uint8 and set(np.unique(gray)) <= {0, 255}
    # The object's colour is where its mask is.
    colour = info["uids"][sample.uid]["colour"]
    from tgs.data.synth import COLOURS

    mean = clip.frames[gt].reshape(-1, 3).mean(axis=0)
    assert np.abs(mean - np.array(COLOURS[colour])).max() < 20
    null = next(s for s in bench if s.is_null)
    assert not null.load_gt().any()
    assert null.load_clip().audio is not None  # media_cross/<folder>/audio.wav


def test_load_errors_name_the_file(synth_copy: Path) -> None:
    bench = ref_avs_bench(synth_copy)
    sample = next(iter(bench))
    sample.mask_paths[4].unlink()
    with pytest.raises(MediaError, match=r"00004\.png") as err:
        sample.load_gt()
    assert err.value.path == str(sample.mask_paths[4])
    sample.audio_path.unlink()
    with pytest.raises(MediaError, match=r"audio\.wav"):
        sample.load_clip()
    data = sample.frame_paths[7].read_bytes()
    sample.frame_paths[7].write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError, match=r"7\.jpg"):
        sample.load_clip(decode_audio=False)
