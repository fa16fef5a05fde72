"""``tgs segment`` / ``segment_video`` dense output (the default): a mask on every source frame.

Tiny random models (the tiny SAM2 video model propagates): what is checked is the plumbing:
the overlay has the source's frame count, rate, duration and audio; every frame of every
expression has a PNG and a masks.json entry that decodes to it exactly; keyframes map to
source frames; null answers, odd sizes, variable frame rates and several expressions work.
"""

from __future__ import annotations

import json
import re
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from segment_media import encode_clip, stream_info
from typer.testing import CliRunner

from tgs.cli.main import build_app
from tgs.core.segment import segment_video
from tgs.core.settings import Settings
from tgs.data.synth import make_video, render_frame, write_video
from tgs.dense_outputs import decode_masks_json
from tgs.presets import BEST
from tgs.segment.frame_source import VideoFrameSource

SMALL = (64, 48)


def _dense(video: Path, out: Path, expressions="the red object", **kwargs):
    return segment_video(video, expressions, thinker="direct", settings=Settings.tiny(), out=out, **kwargs)


def _pngs(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.png"))


def _png_masks(folder: Path) -> np.ndarray:
    return np.stack([np.asarray(Image.open(p)) > 0 for p in _pngs(folder)])


@pytest.fixture(scope="module")
def six_seconds(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("dense")
    video = write_video(root / "clip.mp4", 6, 25, SMALL, seed=1, with_audio=True)
    return video, _dense(video, root / "out")


def test_six_second_clip_gives_every_frame_at_the_source_rate_with_audio(six_seconds) -> None:
    video, result = six_seconds
    assert result.mode == "dense" and result.num_frames == 150
    info = stream_info(result.overlay_video)
    assert info["frames"] == 150 and (info["width"], info["height"]) == SMALL and info["audio"]
    with av.open(str(result.overlay_video)) as container:
        stream = container.streams.video[0]
        assert float(stream.average_rate) == pytest.approx(25.0)
        duration = float(stream.duration * stream.time_base) if stream.duration else info["frames"] / 25.0
    assert duration == pytest.approx(VideoFrameSource(video).duration, abs=1 / 25)
    assert info["audio_seconds"] == pytest.approx(6.0, abs=0.1)
    assert len(_pngs(result.expressions[0].masks_dir)) == 150


def test_masks_json_decodes_exactly_to_the_pngs(six_seconds) -> None:
    _, result = six_seconds
    decoded = dict(decode_masks_json(result.masks_json))
    assert sorted(decoded) == list(range(150))
    pngs = _png_masks(result.expressions[0].masks_dir)
    assert np.array_equal(np.stack([decoded[i][0] for i in range(150)]), pngs)
    assert pngs.any()  # the tiny model's presence bias: the propagated object is not empty


def test_result_json_keyframes_and_propagation(six_seconds) -> None:
    _, result = six_seconds
    data = json.loads(result.result_json.read_text())
    assert data["schema"] == 3
    assert data["output"] == {"mode": "dense", "num_frames": 150, "fps": 25.0, "duration_s": 6.0,
                              "masks_json": "masks.json", "png": True}
    frames = data["expressions"][0]["frames"]
    # keyframes at 1 per second: source frames 0, 25, ..., 125; boxes and scores from Grounding DINO
    assert [f["frame"] for f in frames] == [0, 25, 50, 75, 100, 125] == result.expressions[0].keyframes
    assert [f["time"] for f in frames] == pytest.approx([0, 1, 2, 3, 4, 5], abs=1e-6)
    for f in frames:
        assert f["mask"] == f"masks/0/{f['frame']:05d}.png" and 0.0 <= f["mask_area"] <= 1.0
    boxed = [f["frame"] for f in frames if f["box"] is not None]
    propagation = data["propagation"]
    assert propagation["model"] == "sam2_video_tiny" and propagation["frames_tracked"] == (150 if boxed else 0)
    assert propagation["seed_frames"] == [boxed]  # video_seeds=all: every boxed keyframe seeds
    assert propagation["policy"] == {"seed_frames": "all", "min_seed_score": 0.0, "reseed_iou": 0.5,
                                     "max_conditioning_frames": 4}
    assert {"think", "ground", "propagate", "total"} <= set(data["timings"])
    assert data["models"]["sam2_video_tiny"] == "tiny"


class _NullThinker:
    name = "fake"

    def think(self, items):
        from tgs.think.parser import parse_answer

        answer = "<think>no</think><answer><f_object> null </f_object><s_object> null </s_object></answer>"
        return [parse_answer(query.uid, answer) for query, _ in items]


def test_null_answer_gives_empty_masks_on_every_frame(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tgs.core.segment as module

    monkeypatch.setattr(module, "load_model", lambda load: _NullThinker())  # the thinker
    video = write_video(tmp_path / "clip.mp4", 1.2, 10, SMALL, seed=2, with_audio=True)
    result = _dense(video, tmp_path / "out", ["the dog", "the cat"], )
    assert result.object_text is None and result.num_frames == 12
    for output in result.expressions:
        masks = _png_masks(output.masks_dir)
        assert masks.shape == (12, 48, 64) and not masks.any()
    assert all(not m.any() for _, m in decode_masks_json(result.masks_json))
    assert stream_info(result.overlay_video)["frames"] == 12


def test_two_expressions_are_two_objects_at_an_odd_size(tmp_path: Path) -> None:
    video = encode_clip(tmp_path / "odd.mp4", 1.0, 10, (67, 45), seed=3)
    result = _dense(video, tmp_path / "out", ["the red object", "the blue square"])
    assert [o.expression for o in result.expressions] == ["the red object", "the blue square"]
    data = json.loads(result.masks_json.read_text())
    assert [o["id"] for o in data["objects"]] == [0, 1] and len(data["frames"]) == 10
    assert (data["height"], data["width"]) == (45, 67)
    for k in (0, 1):
        assert _png_masks(tmp_path / "out" / "masks" / str(k)).shape == (10, 45, 67)
    info = stream_info(result.overlay_video)
    assert info["frames"] == 10 and info["audio"]
    assert len(json.loads(result.result_json.read_text())["propagation"]["seed_frames"]) == 2


def _vfr_clip(path: Path) -> tuple[Path, int]:
    """An mp4 whose frame intervals vary (40, 80 and 120 ms), no audio."""
    scene = make_video(4, 0, duration=2.0)
    steps = [40, 80, 120, 40, 40, 80, 120, 40, 40, 80]
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.time_base = Fraction(1, 1000)
        stream.options = {"preset": "ultrafast"}
        pts = 0
        for step in steps:
            rgb, _ = render_frame(scene, pts / 1000, SMALL)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = pts, Fraction(1, 1000)
            container.mux(stream.encode(frame))
            pts += step
        container.mux(stream.encode(None))
    return path, len(steps)


def test_variable_frame_rate_file_gets_a_mask_per_decoded_frame(tmp_path: Path) -> None:
    video, count = _vfr_clip(tmp_path / "vfr.mp4")
    with pytest.warns(Warning, match="no audio"):
        result = _dense(video, tmp_path / "out")
    assert result.num_frames == count == len(_pngs(result.expressions[0].masks_dir))
    assert stream_info(result.overlay_video)["frames"] == count
    frames = json.loads(result.result_json.read_text())["expressions"][0]["frames"]
    source = VideoFrameSource(video)
    for f in frames:  # each keyframe is the source frame on screen at its time
        assert source.times[f["frame"]] == pytest.approx(f["time"], abs=1e-6)


def test_cli_no_png_and_progress(tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.mp4", 1.0, 10, SMALL, seed=5, with_audio=True)
    out = tmp_path / "cli"
    result = CliRunner().invoke(build_app(), [
        "segment", str(video), "the red object", "--thinker", "direct", "--models", "tiny", "--device", "cpu",
        "--out", str(out), "--no-png",
    ], catch_exceptions=False)
    text = result.output + (result.stderr if result.stderr_bytes is not None else "")
    text = " ".join(re.sub(r"[│╭╮╰╯─┃┏┓┗┛━┡┩┢┪╇╈┳┻]", " ", text).split())
    assert result.exit_code == 0, text
    assert "masks.json" in text and "10 frames" in text, text
    assert not list((out / "masks").rglob("*.png")) and (out / "masks.json").is_file()
    data = json.loads((out / "result.json").read_text())
    assert data["output"]["png"] is False and all(f["mask"] is None for f in data["expressions"][0]["frames"])
    bad = CliRunner().invoke(build_app(), ["segment", str(video), "x", "--models", "tiny", "--fps", "1",
                                           "--no-png", "--out", str(tmp_path / "b")])
    assert bad.exit_code == 2


def test_propagation_switches_parse_and_validate() -> None:
    preset = BEST.with_overrides({"propagation_reseed_iou": "none", "propagation_max_conditioning_frames": "8",
                                  "propagation_min_seed_score": "0.3"})
    assert (preset.propagation_reseed_iou, preset.propagation_max_conditioning_frames) == (None, 8)
    assert preset.propagation_min_seed_score == 0.3
    for key, value in (("propagation_reseed_iou", "2"), ("propagation_max_conditioning_frames", "0"),
                       ("propagation_max_conditioning_frames", "x"), ("propagation_min_seed_score", "-1")):
        with pytest.raises(ValueError, match=key):
            BEST.with_overrides({key: value})


def test_sam2_option_picks_the_propagation_model() -> None:
    from tgs.core.load_spec import load_spec

    def propagator(settings: Settings) -> tuple[str | None, str | None]:
        load = load_spec(BEST, settings, "dense").segmenter
        assert load is not None
        return load.key, load.source

    assert propagator(Settings(device="cpu")) == ("edgetam_video", None)
    assert propagator(Settings(device="cuda")) == ("sam2_video_large", None)
    assert propagator(Settings.tiny()) == ("sam2_video_tiny", "tiny")
    keyed = Settings(device="cpu", sources={"sam2": "sam2_video_small", "grounding_dino": "/g"})
    assert propagator(keyed) == ("sam2_video_small", None)  # a registry key: that model, its default source
    assert load_spec(BEST, keyed, "dense").grounder.source == "/g"  # type: ignore[union-attr]
    folder = Settings(device="cpu", sources={"sam2": "/models/edgetam"})
    assert propagator(folder) == ("edgetam_video", "/models/edgetam")
