"""Dense outputs end to end: a 6-second 25 fps video with sound, propagated on every frame,
written as PNG masks, masks.json (COCO RLE) and an overlay video at the source's rate."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from tgs.dense_outputs import (
    CocoRleSink,
    MaskPngSink,
    OverlayVideoSink,
    decode_masks_json,
    encode_rle,
    run_sinks,
)
from tgs.segment import Sam2VideoSegmenter
from tgs.segment.frame_source import VideoFrameSource
from tgs.segment.propagation import ObjectPrompts, frame_result
from tgs.testing.synthetic_video import MovingSquareSource
from tgs.testing.tiny_vision import build_tiny_sam2_video
from tgs.video_out import OverlayVideoWriter, copy_audio_from
from tgs.viz import expression_color, overlay_objects

FPS, SECONDS, HEIGHT, WIDTH = 25, 6, 47, 63  # odd size


def _write_source(path: Path) -> Path:
    """FFV1 (lossless, odd sizes allowed) + AAC mono 16 kHz in Matroska: the square video."""
    import av

    source = MovingSquareSource(FPS * SECONDS, (HEIGHT, WIDTH), period=60)
    rate = 16000
    with av.open(str(path), mode="w") as container:
        video = container.add_stream("ffv1", rate=FPS)
        video.width, video.height = WIDTH, HEIGHT
        video.pix_fmt = "bgr0"
        audio = container.add_stream("aac", rate=rate, layout="mono")
        t = np.arange(rate * SECONDS) / rate
        signal = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
        for i, image in enumerate(source.frames(0, source.num_frames)):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            container.mux(video.encode(frame))
        for start in range(0, signal.shape[1], 1024):
            chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(signal[:, start : start + 1024]),
                                               format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts, chunk.time_base = rate, start, Fraction(1, rate)
            container.mux(audio.encode(chunk))
        container.mux(video.encode(None))
        container.mux(audio.encode(None))
    return path


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp("dense")
    video = _write_source(work / "clip.mkv")
    segmenter = Sam2VideoSegmenter.from_pretrained(build_tiny_sam2_video(work / "model", seed=0), dtype="float32")
    source = VideoFrameSource(video)
    truth = MovingSquareSource(FPS * SECONDS, (HEIGHT, WIDTH), period=60)
    keyframes = list(range(0, source.num_frames, FPS))  # grounded at 1 fps, as the thinker samples
    prompts = [
        ObjectPrompts.from_lists(keyframes, [truth.box(i) for i in keyframes], [0.8] * len(keyframes)),
        ObjectPrompts.none(),  # a null answer
    ]
    names = ["the square", "nothing"]
    sinks = [
        MaskPngSink(work / "masks", 2),
        CocoRleSink(work / "masks.json", 2, source.size, names=names, fps=source.fps, times=source.times,
                    num_frames=source.num_frames),
        OverlayVideoSink(work / "overlay.mp4", source.fps, 2, names=names, audio=copy_audio_from(video)),
    ]
    count = run_sinks(segmenter.engine.run(source, prompts), sinks)
    return {"work": work, "count": count, "source": source}


def test_every_source_frame_gets_masks(outputs: dict) -> None:
    work = outputs["work"]
    assert outputs["count"] == FPS * SECONDS == outputs["source"].num_frames
    for k in ("0", "1"):
        assert sorted(p.name for p in (work / "masks" / k).iterdir()) == [f"{i:05d}.png" for i in range(150)]


def test_masks_json_decodes_to_the_pngs_exactly(outputs: dict) -> None:
    from PIL import Image

    work = outputs["work"]
    frames = list(decode_masks_json(work / "masks.json"))
    assert [i for i, _ in frames] == list(range(150))
    for index, masks in frames:
        assert masks.shape == (2, HEIGHT, WIDTH)
        for k in range(2):
            png = np.asarray(Image.open(work / "masks" / str(k) / f"{index:05d}.png")) > 127
            np.testing.assert_array_equal(masks[k], png)
    assert not any(masks[1].any() for _, masks in frames), "a null answer is empty on every frame"
    assert any(masks[0].any() for _, masks in frames)


def test_overlay_has_the_source_rate_duration_size_and_audio(outputs: dict) -> None:
    import av

    with av.open(str(outputs["work"] / "overlay.mp4")) as container:
        stream = container.streams.video[0]
        assert container.streams.audio, "the overlay keeps the source's sound"
        assert float(stream.average_rate) == pytest.approx(FPS)
        decoded = list(container.decode(stream))
        assert len(decoded) == 150
        duration = float(decoded[-1].pts * decoded[-1].time_base) + 1 / FPS
        assert duration == pytest.approx(SECONDS, abs=1 / FPS)
        assert (decoded[0].height, decoded[0].width) == (HEIGHT + 1, WIDTH + 1)  # yuv420p pads odd sizes


def test_rle_round_trip_and_partial_files_are_removed(tmp_path: Path) -> None:
    from pycocotools import mask as coco_mask

    rng = np.random.default_rng(0)
    mask = rng.random((13, 17)) > 0.5
    rle = encode_rle(mask)
    np.testing.assert_array_equal(
        coco_mask.decode({"size": rle["size"], "counts": rle["counts"].encode()}).astype(bool), mask
    )
    sink = CocoRleSink(tmp_path / "masks.json", 1, (13, 17))
    frame = np.zeros((13, 17, 3), np.uint8)
    result = frame_result(0, frame, mask[None], None, np.array([1.0], np.float32), np.array([True]))

    def failing():
        yield result
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError):
        run_sinks(failing(), [sink])
    assert list(tmp_path.iterdir()) == []


def test_overlay_objects_colours_each_object_and_draws_a_legend() -> None:
    frame = np.zeros((60, 80, 3), np.uint8)
    masks = np.zeros((2, 60, 80), bool)
    masks[0, 40:50, 10:20] = True
    masks[1, 40:50, 50:60] = True
    colors = [expression_color(0), expression_color(1)]
    plain = overlay_objects(frame, list(masks), [None, None], ["", ""], colors, alpha=1.0, legend=False)
    assert tuple(plain[45, 15]) == colors[0] and tuple(plain[45, 55]) == colors[1]
    assert not plain[:, :5].any()
    legend = overlay_objects(frame, list(masks), [None, None], ["a", "b"], colors, alpha=1.0)
    assert legend[:20, :30].any()  # the legend at the top-left
    with pytest.raises(ValueError, match="colours"):
        overlay_objects(frame, list(masks), [None, None], ["a", "b"], colors[:1])


def test_overlay_writer_refuses_an_empty_video(tmp_path: Path) -> None:
    writer = OverlayVideoWriter(tmp_path / "x.mp4", 25)
    with pytest.raises(ValueError, match="at least one frame"):
        writer.close()
    assert not (tmp_path / "x.mp4").exists()
