"""The synthetic benchmark generator (tgs.data.synth) and ``tgs data synth``."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from tgs.cli.main import build_app
from tgs.data import synth
from tgs.data.benchmark import SPLITS, media_folder, read_metadata, ref_avs_bench


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_gives_identical_files(tmp_path: Path) -> None:
    synth.generate(tmp_path / "a", videos=6, seed=5, size=(96, 64))
    synth.generate(tmp_path / "b", videos=6, seed=5, size=(96, 64))
    synth.generate(tmp_path / "c", videos=6, seed=6, size=(96, 64))
    a, b, c = (tree_digest(tmp_path / x) for x in "abc")
    assert a == b
    assert len(a) > 100
    assert a != c


def test_video_does_not_depend_on_the_number_of_videos(tmp_path: Path) -> None:
    synth.generate(tmp_path / "two", videos=2, seed=9, size=(64, 48))
    synth.generate(tmp_path / "three", videos=3, seed=9, size=(64, 48))
    two, three = tree_digest(tmp_path / "two"), tree_digest(tmp_path / "three")
    shared = [k for k in two if k.startswith(("media/", "gt_mask/"))]
    assert shared and all(two[k] == three[k] for k in shared)


def test_layout_and_naming_rules(synth_root: Path) -> None:
    meta = synth_root / "metadata.csv"
    assert meta.read_bytes().startswith(b"vid,uid,split,fid,exp\r\n")
    rows = read_metadata(meta, duplicates="error")
    assert {r.split for r in rows} == set(SPLITS)
    for r in rows:
        folder = media_folder(r.uid)
        if r.uid.startswith("null_"):
            kind = r.uid[5]
            assert kind in "cm" and r.uid == f"null_{kind}-{r.vid}_null_{r.uid.rsplit('_', 1)[1]}" and r.fid == 0
            assert folder == f"null_{kind}-{r.vid}"
            assert (synth_root / "media_cross" / folder / "audio.wav").is_file()
        else:
            assert folder == r.vid
            cls = r.uid.rsplit("_", 2)[1]
            assert "_" not in cls and "-" in cls  # e.g. red-circle
        assert all((synth_root / "media" / folder / "frames" / f"{i}.jpg").is_file() for i in range(10))
        assert all((synth_root / "gt_mask" / folder / f"fid_{r.fid}" / f"0000{i}.png").is_file() for i in range(10))
    wav = next((synth_root / "media").glob("*/audio.wav"))
    info = sf.info(str(wav))
    assert (info.samplerate, info.channels, info.subtype, info.frames) == (48000, 2, "PCM_16", 480000)
    from PIL import Image

    with Image.open(next((synth_root / "gt_mask").glob("*/fid_0/00000.png"))) as mask:
        assert mask.mode == "L" and mask.size == (96, 64)


def test_test_u_uses_unseen_shapes(synth_root: Path) -> None:
    info = json.loads((synth_root / "synth_info.json").read_text())["uids"]
    shapes = {s: {u["shape"] for u in info.values() if u["split"] == s and not u["is_null"]} for s in SPLITS}
    assert shapes["test_u"] and shapes["test_u"] <= set(synth.UNSEEN_SHAPES)
    for split in ("train", "val", "test_s"):
        assert shapes[split] <= set(synth.SEEN_SHAPES)


def expression_holds(exp: str, obj: dict, objs: list[dict]) -> bool | None:
    """Whether ``exp`` describes ``obj`` and no other object of ``objs``; None for an unknown rule."""
    others = [o for o in objs if o["fid"] != obj["fid"]]
    sounding = [o for o in objs if o["sounds"]]
    if exp == "The object making the loudest sound.":
        return obj["amplitude"] == max(o["amplitude"] for o in objs) > 0
    if exp == "The object that makes no sound.":
        return not obj["sounds"] and all(o["sounds"] for o in others)
    if exp == "The sounding object.":
        return sounding == [obj]
    if exp == "The first object to make a sound.":
        return obj["sounds"] and all(obj["onset_s"] < o["onset_s"] for o in sounding if o is not obj)
    if exp == "The object on the left.":
        return all(obj["start"][0] < o["start"][0] for o in others)
    if exp == "The object on the right.":
        return all(obj["start"][0] > o["start"][0] for o in others)
    if exp == f"The {obj['colour']} {obj['shape']}.":
        return True
    if exp == f"The {obj['colour']} object.":
        return all(o["colour"] != obj["colour"] for o in others)
    if exp == f"The {obj['shape']}.":
        return all(o["shape"] != obj["shape"] for o in others)
    return None


def test_ground_truth_matches_expressions(synth_root: Path) -> None:
    """Each expression's recorded object is the one the rule describes, and its mask shows it."""
    summary = json.loads((synth_root / "synth_info.json").read_text())
    objects = summary["video_objects"]
    bench = ref_avs_bench(synth_root)
    assert set(summary["uids"]) == set(bench.uids())
    checked = 0
    for sample in bench:
        entry = summary["uids"][sample.uid]
        gt = sample.load_gt()
        if sample.is_null:
            assert not gt.any() and entry["object"] is None
            continue
        objs = objects[sample.vid]["objects"]
        obj = next(o for o in objs if o["fid"] == sample.fid)
        assert obj["name"] == entry["object"] == sample.uid.rsplit("_", 2)[1]
        assert gt.any(axis=(1, 2)).all()
        verdict = expression_holds(sample.expression, obj, objs)
        if verdict is not None:
            assert verdict, (sample.uid, sample.expression)
            checked += 1
    assert checked >= len(bench) // 2


def test_audio_reflects_sounding_objects() -> None:
    video = synth.make_video(4, 0)
    audio = synth.synth_audio(video)
    assert audio.shape == (480000, 2) and audio.dtype == np.float32
    mono_rms = float(np.sqrt(np.mean(audio.mean(axis=1) ** 2)))
    assert (mono_rms > 0) == any(o.sounds for o in video.objects)
    assert not synth.synth_audio(video, muted=True).any()
    first = min((o for o in video.objects if o.sounds), key=lambda o: o.onset_s, default=None)
    if first is not None and first.onset_s > 0:
        before = audio[: int(first.onset_s * 48000) - 10]
        assert not before.any()


def test_render_frame_masks_match_colours() -> None:
    video = synth.make_video(2, 1)
    rgb, masks = synth.render_frame(video, 3.0, (160, 90))
    assert rgb.shape == (90, 160, 3) and masks.shape == (len(video.objects), 90, 160)
    for obj, mask in zip(video.objects, masks):
        assert mask.sum() > 50
        assert (rgb[mask] == synth.COLOURS[obj.colour]).all()
    assert not (masks.sum(axis=0) > 1).any()


def test_write_video_roundtrip(tmp_path: Path) -> None:
    import av

    path = synth.write_video(tmp_path / "v.mp4", seconds=1.5, fps=8, size=(64, 48), seed=2)
    with av.open(str(path)) as container:
        assert len(container.streams.video) == 1 and len(container.streams.audio) == 1
        frames = sum(1 for _ in container.decode(video=0))
    assert frames == 12
    with pytest.raises(ValueError, match="even"):
        synth.write_video(tmp_path / "odd.mp4", 1.0, 5, (63, 48))
    with pytest.raises(ValueError, match="suffix"):
        synth.write_video(tmp_path / "v.gif", 1.0, 5, (64, 48))


def test_parse_size() -> None:
    assert synth.parse_size("320x180") == (320, 180)
    assert synth.parse_size("64X48") == (64, 48)
    with pytest.raises(ValueError, match="WIDTHxHEIGHT"):
        synth.parse_size("big")


def test_cli_synth(tmp_path: Path) -> None:
    out = tmp_path / "cli"
    result = CliRunner().invoke(build_app(), ["data", "synth", str(out), "--videos", "4", "--seed", "1", "--size", "64x48"])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output
    with (out / "metadata.csv").open(newline="") as f:
        splits = {row["split"] for row in csv.DictReader(f)}
    assert splits == set(SPLITS)
    from PIL import Image

    with Image.open(out / "media" / "syn1-0000_0_10000" / "frames" / "0.jpg") as img:
        assert img.size == (64, 48)
    bad = CliRunner().invoke(build_app(), ["data", "synth", str(out), "--size", "huge"])
    assert bad.exit_code != 0
