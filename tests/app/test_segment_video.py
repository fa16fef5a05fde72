"""``tgs segment`` / ``segment_video`` on generated video files, with the tiny model set.

The real Grounding DINO / SAM2 / Ref-Thinker code paths run (random tiny weights), so
what is checked is the plumbing of the sampled output (``fps`` given; the dense default
is tests/app/test_segment_dense.py): one mask and one record per sampled frame, the overlay's
frame count, size and audio track, window-by-window streaming, what the thinker hears,
and errors that name the file.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from float32_error import TINY_GDINO_CHAIN, float32_bound
from PIL import Image
from segment_media import encode_clip, stream_info
from typer.testing import CliRunner

from tgs.cli.main import build_app
from tgs.core.segment import UNTRAINED_LABEL, segment_video, think_plan
from tgs.core.settings import Settings
from tgs.data.audio_stream import stream_audio_mono
from tgs.data.media import load_audio
from tgs.data.synth import write_video
from tgs.errors import MediaError, NoAudioWarning

SMALL = (64, 48)
FAST_THINK = {"max_new_tokens": 8}


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("videos")
    return {
        "audio": write_video(root / "with_audio.mp4", 10, 25, SMALL, seed=1, with_audio=True),
        "silent": write_video(root / "silent.mp4", 6, 10, SMALL, seed=2, with_audio=False),
        "odd": encode_clip(root / "odd.mp4", 4, 10, (333, 197), seed=3),
        "fps30": write_video(root / "fps30.mp4", 4, 30, SMALL, seed=4, with_audio=True),
        "long": write_video(root / "long.mp4", 25, 5, SMALL, seed=5, with_audio=True),
    }


def _run(video: Path, out: Path, **kwargs):
    """The sampled output path (``fps`` given; 1 by default): dense output is tests/app/test_segment_dense.py."""
    options = {"thinker": "direct", "settings": Settings.tiny(), "out": out, "fps": 1.0, **kwargs}
    if options["thinker"] == "ref-thinker":
        options.setdefault("thinker_options", FAST_THINK)
    return segment_video(video, options.pop("expressions", "The red object."), **options)


def _pngs(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.png"))


def _masks(result) -> list[Path]:
    """The first expression's mask PNGs."""
    return _pngs(result.expressions[0].masks_dir)


def _first(data: dict) -> dict:
    """The first expression's entry of result.json."""
    return data["expressions"][0]


def _invoke(*args: str):
    """(result, all output on one line: rich boxes and wrapping removed)."""
    result = CliRunner().invoke(build_app(), list(args), catch_exceptions=False)
    text = result.output + (result.stderr if result.stderr_bytes is not None else "")
    return result, " ".join(re.sub(r"[│╭╮╰╯─┃┏┓┗┛━┡┩┢┪╇╈┳┻]", " ", text).split())


# --------------------------------------------------------------------------- outputs


@pytest.mark.slow
def test_video_with_audio_gives_all_three_outputs(videos, tmp_path: Path) -> None:
    result = _run(videos["audio"], tmp_path / "out", thinker="ref-thinker")
    # masks: one PNG per sampled frame (1 fps over 10 s), frame-sized, binary
    pngs = _masks(result)
    assert [p.name for p in pngs] == [f"{i:05d}.png" for i in range(10)]
    assert result.expressions[0].masks_dir == result.out_dir / "masks" / "0"
    data = json.loads(result.result_json.read_text())
    first = _first(data)
    assert data["schema"] == 3 and len(data["expressions"]) == 1
    assert data["output"]["mode"] == "sampled" and data["propagation"] is None
    for path, record in zip(pngs, first["frames"]):
        image = Image.open(path)
        assert image.mode == "L" and image.size == SMALL
        values = np.asarray(image)
        assert set(np.unique(values)) <= {0, 255}
        assert record["mask_area"] == pytest.approx((values > 0).mean(), abs=1e-6)
    # overlay: one frame per sampled frame, the source size, the source's audio kept
    info = stream_info(result.overlay_video)
    assert (info["frames"], info["width"], info["height"]) == (10, *SMALL)
    assert info["audio"] and info["audio_seconds"] == pytest.approx(10.0, abs=0.1)
    # result.json: the reasoning chain, objects, boxes, scores, timings, and the labels
    assert data["untrained"] is True and data["label"] == UNTRAINED_LABEL
    assert first["expression"] == "The red object." and first["masks_dir"] == "masks/0"
    for key in ("reasoning", "f_object", "s_object", "object_text"):
        assert key in first
    for key in ("timings", "preset", "models"):
        assert key in data
    assert first["thought"]["raw"] == result.thought.raw
    assert [r["time"] for r in first["frames"]] == pytest.approx(list(range(10)))
    assert data["sampling"]["frame_times"] == pytest.approx(list(range(10)))
    assert [r["index"] for r in first["frames"]] == list(range(10))
    assert [None if r["box"] is None else tuple(r["box"]) for r in first["frames"]] == result.boxes
    assert [r["score"] for r in first["frames"]] == result.scores
    assert all((r["box"] is None) == (r["score"] is None) for r in first["frames"])
    assert {"think", "ground", "segment", "encode", "total"} <= set(data["timings"])
    assert data["video"]["has_audio"] and data["outputs"]["overlay_has_audio"]
    # a 10 s video is a Ref-AVS clip for the thinker: frames at 0..9 s and the whole track
    assert data["sampling"]["think"] == {
        "frame_times": pytest.approx([float(i) for i in range(10)]),
        "audio": "whole",
        "audio_seconds": pytest.approx(10.0, abs=0.01),
    }
    assert data["thinker"] == {"name": "ref-thinker", "source": "tiny", "options": FAST_THINK}


@pytest.mark.slow
def test_video_without_audio_runs_with_a_warning(videos, tmp_path: Path) -> None:
    with pytest.warns(NoAudioWarning, match="silent.mp4 has no audio track"):
        result = _run(videos["silent"], tmp_path / "out", thinker="ref-thinker")
    data = json.loads(result.result_json.read_text())
    assert len(_masks(result)) == 6 == result.num_frames
    info = stream_info(result.overlay_video)
    assert info["frames"] == 6 and not info["audio"]
    assert data["video"]["has_audio"] is False and data["outputs"]["overlay_has_audio"] is False
    assert data["sampling"]["think"]["audio"] is None
    assert any("no audio track" in w for w in data["warnings"]) and result.warnings == data["warnings"]


def test_odd_frame_size(videos, tmp_path: Path) -> None:
    result = _run(videos["odd"], tmp_path / "out")
    assert result.num_frames == 4
    assert all(Image.open(p).size == (333, 197) for p in _masks(result))
    info = stream_info(result.overlay_video)
    # yuv420p needs even sizes: the overlay gets one replicated row and column
    assert (info["frames"], info["width"], info["height"], info["audio"]) == (4, 334, 198, True)
    data = json.loads(result.result_json.read_text())
    assert (data["video"]["width"], data["video"]["height"]) == (333, 197)
    assert _first(data)["thought"]["status"] == "direct" and _first(data)["object_text"] == "The red object."


def test_paper_preset_masks_are_written_at_the_frame_size(videos, tmp_path: Path) -> None:
    result = _run(videos["odd"], tmp_path / "out", preset="paper")  # SAM2 image mode, masks kept at 224x224
    data = json.loads(result.result_json.read_text())
    assert data["preset"]["name"] == "paper" and data["preset"]["mask_size"] == "224"
    for path, record in zip(_masks(result), _first(data)["frames"]):
        values = np.asarray(Image.open(path))
        assert values.shape == (197, 333)
        assert record["mask_area"] == pytest.approx((values > 0).mean(), abs=1e-6)


class _NullThinker:
    """Answers "null" and keeps what it was given."""

    name = "fake"

    def __init__(self) -> None:
        self.seen: list = []

    def think(self, items):
        from tgs.think.parser import parse_answer

        self.seen.extend(items)
        answer = "<think>nothing here</think><answer><f_object> null </f_object>"
        answer += "<s_object> null </s_object></answer>"
        return [parse_answer(query.uid, answer) for query, _ in items]


def test_thinker_input_and_a_null_answer(videos, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tgs.core.segment as module

    thinker = _NullThinker()
    monkeypatch.setattr(module, "load_model", lambda load: thinker)  # the thinker
    result = _run(videos["fps30"], tmp_path / "out", thinker="omni")
    # the thinker saw 10 frames spread over the 4 s video and its whole track at 16 kHz
    ((query, clip),) = thinker.seen
    assert query.expression == "The red object." and clip.frames.shape == (10, 48, 64, 3)
    assert clip.frame_times == pytest.approx([0.4 * k for k in range(10)], abs=1e-6)
    assert clip.sample_rate == 16000 and clip.audio.shape[0] == pytest.approx(64000, abs=1100)
    # a null answer grounds nothing under "best": empty masks, no boxes, and the overlay still written
    assert result.thought.is_null and result.object_text is None and result.boxes == [None] * 4
    assert all(not np.asarray(Image.open(p)).any() for p in _masks(result))
    data = _first(json.loads(result.result_json.read_text()))
    assert data["object_text"] is None and data["object_source"] == "null"
    assert data["f_object"] == "null" and data["reasoning"] == "nothing here"
    assert stream_info(result.overlay_video)["frames"] == 4


def test_30fps_source_sampled_at_another_rate(videos, tmp_path: Path) -> None:
    result = _run(videos["fps30"], tmp_path / "out", fps=2.5)
    # 4 s at 2.5 frames per second: the frames on screen at 0, 0.4, ..., 3.6 s
    assert result.frame_times == pytest.approx([0.4 * k for k in range(10)], abs=1e-6)
    assert len(_masks(result)) == 10
    info = stream_info(result.overlay_video)
    assert info["frames"] == 10 and info["audio"]


@pytest.mark.slow
def test_long_video_streams_window_by_window(videos, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tgs.ground_segment import GroundSegmentStage

    window_sizes: list[int] = []
    original = GroundSegmentStage.run

    def recording_run(self, clip, thought, query):
        window_sizes.append(clip.num_frames)
        return original(self, clip, thought, query)

    monkeypatch.setattr(GroundSegmentStage, "run", recording_run)
    result = _run(videos["long"], tmp_path / "out", thinker="ref-thinker", chunk_seconds=10)
    assert window_sizes == [10, 10, 5]  # never more than one 10 s window of frames at once
    assert [p.name for p in _masks(result)] == [f"{i:05d}.png" for i in range(25)]
    assert stream_info(result.overlay_video)["frames"] == 25
    data = json.loads(result.result_json.read_text())
    assert data["sampling"]["window_frames"] == 10 and data["sampling"]["frames"] == 25
    think = data["sampling"]["think"]
    # a long video: 10 frames spread over all 25 s, and the second of audio after each
    assert (
        len(think["frame_times"]) == 10 and think["frame_times"][0] == 0.0 and think["frame_times"][-1] > 22
    )
    assert think["audio"] == "snippets" and think["audio_seconds"] == pytest.approx(10.0)


def test_rerun_replaces_previous_outputs(videos, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _run(videos["fps30"], out, fps=2.5)
    result = _run(videos["fps30"], out)  # 1 fps now: 4 frames, no stale PNGs left over
    assert [p.name for p in _masks(result)] == [f"{i:05d}.png" for i in range(4)]


# --------------------------------------------------------------------------- several expressions


@pytest.mark.parametrize("preset", ["best", "paper"])
def test_several_expressions_each_equal_to_alone(videos, tmp_path: Path, preset: str) -> None:
    """Two expressions in one call: a masks folder, a colour and a result.json entry each, and
    each expression's boxes and masks exactly those of a call with that expression alone."""
    texts = ["The red object.", "the blue square"]
    both = _run(videos["fps30"], tmp_path / "both", expressions=texts, preset=preset)
    data = json.loads(both.result_json.read_text())
    assert [e["expression"] for e in data["expressions"]] == texts
    assert [e["masks_dir"] for e in data["expressions"]] == ["masks/0", "masks/1"]
    assert data["expressions"][0]["color"] != data["expressions"][1]["color"]
    assert sorted(p.name for p in (both.out_dir / "masks").iterdir()) == ["0", "1"]
    assert stream_info(both.overlay_video)["frames"] == 4
    for k, text in enumerate(texts):
        alone = _run(videos["fps30"], tmp_path / f"alone{k}", expressions=[text], preset=preset)
        got, want = both.expressions[k], alone.expressions[0]
        assert got.object_text == want.object_text
        assert dataclasses.replace(got.thought, uid=want.thought.uid) == want.thought
        assert len(got.boxes) == len(want.boxes) == 4
        # captions grounded together or alone: other summation orders in the tiny Grounding DINO,
        # twice its first-order float32 bound (tests/float32_error.py); boxes in pixels of the frame
        box_tol = float32_bound(TINY_GDINO_CHAIN, float(max(SMALL)), paths=2)
        for a, b in zip(got.boxes, want.boxes):
            assert (a is None) == (b is None)
            if a is not None:
                np.testing.assert_allclose(a, b, rtol=0, atol=box_tol)
        np.testing.assert_allclose(
            [s if s is not None else -1.0 for s in got.scores], [s if s is not None else -1.0 for s in want.scores],
            rtol=0, atol=float32_bound(TINY_GDINO_CHAIN, 1.0, paths=2),
        )
        for mine, theirs in zip(_pngs(got.masks_dir), _pngs(want.masks_dir), strict=True):
            assert np.array_equal(np.asarray(Image.open(mine)), np.asarray(Image.open(theirs)))


def test_cli_segment_several_expressions(videos, tmp_path: Path) -> None:
    out = tmp_path / "cli"
    result, text = _invoke(
        "segment", str(videos["fps30"]), "the red object", "the blue square", "--thinker", "direct",
        "--models", "tiny", "--device", "cpu", "--out", str(out), "--fps", "1",
    )
    assert result.exit_code == 0, text
    assert "1: the red object" in text and "2: the blue square" in text
    data = json.loads((out / "result.json").read_text())
    assert [e["expression"] for e in data["expressions"]] == ["the red object", "the blue square"]
    assert [len(_pngs(out / "masks" / k)) for k in ("0", "1")] == [4, 4]


# --------------------------------------------------------------------------- what Think hears


def test_think_plan() -> None:
    times, segments = think_plan(10.0)
    assert times == pytest.approx([float(k) for k in range(10)]) and segments is None
    times, segments = think_plan(25.0)
    assert times == pytest.approx([2.5 * k for k in range(10)])
    assert [v for pair in segments for v in pair] == pytest.approx(
        [v for k in range(10) for v in (2.5 * k, 2.5 * k + 1)]
    )


@pytest.mark.parametrize("suffix", [".mp4", ".avi"])
def test_streamed_audio_equals_load_audio(suffix: str, tmp_path: Path) -> None:
    path = write_video(tmp_path / f"clip{suffix}", 3, 10, SMALL, seed=6, with_audio=True)
    whole = load_audio(path)
    streamed = stream_audio_mono(path)
    assert streamed.dtype == np.float32 and np.array_equal(streamed, whole)
    # segments: the same samples, concatenated; past the end of the track, zeros
    parts = stream_audio_mono(path, segments=[(0.5, 1.0), (0.75, 1.25), (2.9, 3.4)])
    expected = np.concatenate(
        [whole[8000:16000], whole[12000:20000], np.pad(whole[46400:], (0, 54400 - len(whole)))]
    )
    assert np.array_equal(parts, expected)


def test_streamed_audio_without_a_track(videos) -> None:
    with pytest.warns(NoAudioWarning):
        assert stream_audio_mono(videos["silent"]) is None


# --------------------------------------------------------------------------- errors


def test_unreadable_file_names_it_and_the_decoders_reason(tmp_path: Path) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"this is not a video" * 100)
    with pytest.raises(MediaError, match=r"broken\.mp4.*Invalid data found"):
        _run(broken, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    result, text = _invoke(
        "segment",
        str(broken),
        "the dog",
        "--models",
        "tiny",
        "--thinker",
        "direct",
        "--out",
        str(tmp_path / "out"),
    )
    assert result.exit_code == 1
    assert "broken.mp4" in text and "Invalid data found" in text


def test_missing_weights_fail_before_anything_is_written(videos, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result, text = _invoke("segment", str(videos["audio"]), "the dog", "--out", str(out))
    assert result.exit_code == 1
    for key in ("ref_thinker", "grounding_dino", "edgetam_video"):  # dense output on a CPU: EdgeTAM
        assert key in text
    assert "--models tiny" in text
    assert not out.exists()


def test_bad_arguments(videos, tmp_path: Path) -> None:
    tiny = Settings.tiny()
    with pytest.raises(ValueError, match="expression"):
        segment_video(videos["audio"], "  ", settings=tiny, out=tmp_path)
    with pytest.raises(ValueError, match="expression 2"):
        segment_video(videos["audio"], ["x", " "], settings=tiny, out=tmp_path)
    with pytest.raises(ValueError, match="at least one"):
        segment_video(videos["audio"], [], settings=tiny, out=tmp_path)
    with pytest.raises(ValueError, match="unknown thinker"):
        segment_video(videos["audio"], "x", thinker="gpt", settings=tiny, out=tmp_path)
    with pytest.raises(ValueError, match="sources"):
        Settings(sources={"sam": "x"})
    with pytest.raises(ValueError, match="fps"):
        segment_video(videos["audio"], "x", settings=tiny, fps=0, out=tmp_path)


# --------------------------------------------------------------------------- CLI


def test_cli_segment_without_audio(videos, tmp_path: Path) -> None:
    out = tmp_path / "cli"
    result, text = _invoke(
        "segment",
        str(videos["silent"]),
        "the red object",
        "--thinker",
        "direct",
        "--models",
        "tiny",
        "--device",
        "cpu",
        "--out",
        str(out),
        "--fps",
        "1",
    )
    assert result.exit_code == 0, text
    assert "UNTRAINED TINY MODELS" in text
    assert "no audio track" in text
    assert str(out / "overlay.mp4") in text
    assert len(_pngs(out / "masks" / "0")) == 6 and (out / "result.json").is_file()


# --------------------------------------------------------------------------- memory

MEMORY_BOUND_MB = 32
"""Peak RSS growth allowed from a 20 s to a 5-minute video (docs/segment.md; measured: ~9 MB).

Decoding the 5-minute 48 kHz track whole, as ``load_audio`` does, would alone add ~58 MB
of float32 samples (twice that while mixing and resampling), and keeping every frame's
224x224 probability map ~12 MB more: both would break the bound."""

_MEMORY_SCRIPT = textwrap.dedent(
    """
    import json, resource, sys
    import torch
    torch.set_num_threads(1)
    from tgs.core import Settings
    from tgs.core.segment import segment_video

    def run(video, out):
        return segment_video(video, "the red object", thinker="ref-thinker", settings=Settings.tiny(),
                             out=out, fps=0.2, chunk_seconds=10, thinker_options={"max_new_tokens": 8})

    short, long, out = sys.argv[1:4]
    run(short, out + "/short")
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = run(long, out + "/long")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"base_kb": base, "peak_kb": peak, "frames": result.num_frames}))
    """
)


@pytest.mark.slow
def test_memory_stays_bounded_on_a_5_minute_video(tmp_path: Path) -> None:
    short = encode_clip(tmp_path / "short.mp4", 20, 1, SMALL, audio_rate=48000)
    long = encode_clip(tmp_path / "long.mp4", 300, 1, SMALL, audio_rate=48000)
    done = subprocess.run(
        [sys.executable, "-c", _MEMORY_SCRIPT, str(short), str(long), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    numbers = json.loads(done.stdout.strip().splitlines()[-1])
    assert numbers["frames"] == 60  # 300 s at 0.2 fps, in 30 windows of 2 frames
    growth_mb = (numbers["peak_kb"] - numbers["base_kb"]) / 1024
    assert growth_mb < MEMORY_BOUND_MB, f"peak RSS grew {growth_mb:.1f} MB from a 20 s to a 300 s video"
