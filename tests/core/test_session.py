"""The video session: one FrameResult per emitted frame in every mode, the same frames whether
the session is used directly or through segment_video, sinks that leave nothing on abort."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tgs.core import Pipeline, Settings
from tgs.core.segment import open_video, segment_video
from tgs.data.synth import write_video
from tgs.dense_outputs import CocoRleSink, MaskPngSink, OverlayVideoSink, decode_masks_json, run_sinks
from tgs.errors import SettingsError
from tgs.types import FrameResult

TEXTS = ["the cyan square", "the blue square"]
SECONDS, FPS, SIZE = 3.0, 5.0, (64, 48)  # 15 source frames of 48 x 64


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("session") / "clip.mp4", SECONDS, FPS, SIZE, seed=3, with_audio=True)


@pytest.fixture(scope="module")
def pipe() -> Pipeline:
    return Pipeline.load(thinker="direct", preset="best", settings=Settings.tiny())


def _frames(session) -> list[FrameResult]:
    with session:
        return list(session.frames())


def test_dense_mode_gives_one_frame_result_per_source_frame(clip: Path) -> None:
    frames = _frames(open_video(clip, TEXTS, thinker="direct", settings=Settings.tiny()))
    assert [f.index for f in frames] == list(range(15))
    # f.time = pts * float(time_base) in float64: two roundings (the time base, the product), each
    # within 2**-53 relative, so for times under 3 s within 3 * 2**-52 ~ 7e-16 s of the exact k / 5,
    # which k / FPS rounds correctly; 1e-12 s bounds that with room and is far below the 0.2 s spacing.
    assert [f.time for f in frames] == pytest.approx([k / FPS for k in range(15)], abs=1e-12)
    for f in frames:
        assert isinstance(f, FrameResult) and f.masks.shape == (2, 48, 64) and f.image.shape == (48, 64, 3)
    # grounded at 1 keyframe per second: source frames 0, 5, 10 (both expressions have an object text)
    assert [f.index for f in frames if f.grounded.any()] == [0, 5, 10]
    assert all(f.grounded.all() for f in frames if f.grounded.any())
    assert all(f.details is not None and f.details[0]["frame"] == f.index for f in frames if f.grounded.any())


def test_sampled_mode_gives_one_frame_result_per_sampled_frame(clip: Path) -> None:
    frames = _frames(open_video(clip, TEXTS, thinker="direct", settings=Settings.tiny(), fps=2.0))
    assert [f.index for f in frames] == list(range(6))  # 3 s at 2 frames per second
    # the frame on screen at k / 2 s: the last source frame (one per 0.2 s) starting at or before it
    # the same float64 rounding of the source frames' timestamps as in the dense test above
    assert [f.time for f in frames] == pytest.approx([int(k / 2 * FPS) / FPS for k in range(6)], abs=1e-12)
    for f in frames:
        assert f.grounded.all() and not f.seeded.any() and f.details is not None
        for k in range(2):  # the box and score are the details' (the grounding's choice)
            box = f.details[k]["box"]
            assert f.boxes[k] == (None if box is None else tuple(box))
            assert (np.isnan(f.scores[k]) if box is None else f.scores[k] == np.float32(f.details[k]["score"]))


def test_session_frames_equal_segment_video_outputs(clip: Path, tmp_path: Path) -> None:
    """Dense: the masks a session yields are masks.json's and the PNGs'; sampled: the PNGs'."""
    frames = _frames(open_video(clip, TEXTS, thinker="direct", settings=Settings.tiny()))
    result = segment_video(clip, TEXTS, thinker="direct", settings=Settings.tiny(), out=tmp_path / "dense")
    written = dict(decode_masks_json(result.masks_json))
    assert sorted(written) == [f.index for f in frames]
    for f in frames:
        np.testing.assert_array_equal(written[f.index], f.masks)
        for k in range(2):
            png = np.asarray(Image.open(result.expressions[k].masks_dir / f"{f.index:05d}.png")) > 0
            np.testing.assert_array_equal(png, f.masks[k])
    data = json.loads(result.result_json.read_text())
    keyframes = [f for f in frames if f.grounded.any()]
    assert [r["frame"] for r in data["expressions"][0]["frames"]] == [f.index for f in keyframes]

    sampled = _frames(open_video(clip, TEXTS, thinker="direct", settings=Settings.tiny(), fps=2.0))
    result = segment_video(clip, TEXTS, thinker="direct", settings=Settings.tiny(), out=tmp_path / "s", fps=2.0)
    assert result.frame_times == [round(f.time, 6) for f in sampled]
    for f in sampled:
        for k in range(2):
            png = np.asarray(Image.open(result.expressions[k].masks_dir / f"{f.index:05d}.png")) > 0
            np.testing.assert_array_equal(png, f.masks[k])
            assert result.expressions[k].boxes[f.index] == f.boxes[k]


def test_pipeline_open_video_reuses_its_models_and_equals_open_video(
    clip: Path, pipe: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tgs.core.segment as module

    theirs = _frames(open_video(clip, TEXTS, thinker="direct", settings=Settings.tiny(), fps=2.0))
    loaded: list[str] = []
    load_stages_from = module.load_stages_from
    monkeypatch.setattr(module, "load_stages_from", lambda spec: loaded.append(spec.mode) or load_stages_from(spec))
    ours = _frames(pipe.open_video(clip, TEXTS, fps=2.0))
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(a.masks, b.masks)
    assert loaded == []  # sampled output segments with the models the pipeline holds
    assert [f.index for f in _frames(pipe.open_video(clip, TEXTS))] == list(range(15))
    _frames(pipe.open_video(clip, TEXTS))
    assert loaded == ["dense"]  # dense output's propagation model, loaded once and kept


def test_benchmark_mode_gives_one_frame_per_extracted_frame(tmp_path: Path, pipe: Pipeline) -> None:
    from tgs.data.benchmark import Benchmark
    from tgs.data.synth import generate

    meta = generate(tmp_path / "bench", videos=1, seed=0, size=(64, 48))
    sample = next(iter(Benchmark(tmp_path / "bench", meta)))
    frames = _frames(pipe.open_video(sample.frames_dir.parent, [sample.expression]))
    assert [f.index for f in frames] == list(range(10)) and [f.time for f in frames] == list(range(10))
    # the same masks as the benchmark path (Pipeline on the sample's clip), at the frame size
    (result,) = pipe(sample.load_clip(), [sample.expression])
    np.testing.assert_array_equal(np.stack([f.masks[0] for f in frames]), result.masks)


def test_a_media_folder_is_checked_before_any_model_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The benchmark mode's folder, options and device are checked as a file's are; fps is refused."""
    import tgs.core.segment as module
    from tgs.errors import MediaError

    loaded: list[object] = []
    monkeypatch.setattr(module, "load_model", lambda load: loaded.append(load))
    monkeypatch.setattr(module, "load_stages_from", lambda spec: loaded.append(spec))
    folder = tmp_path / "sample"
    folder.mkdir()
    with pytest.raises(MediaError, match=r"not a Ref-AVSBench media folder: no frames/\*\.jpg.*Fix: give a video"):
        open_video(folder, TEXTS, thinker="direct", settings=Settings.tiny())
    (folder / "frames").mkdir()
    Image.new("RGB", (16, 12)).save(folder / "frames" / "0.jpg")  # audio.wav is optional
    with pytest.raises(SettingsError, match=r"fps: .* is a Ref-AVSBench media folder.*Fix: leave fps out"):
        open_video(folder, TEXTS, thinker="direct", settings=Settings.tiny(), fps=2.0)
    with pytest.raises(ValueError, match="chunk_seconds: expected a positive number"):
        open_video(folder, TEXTS, thinker="direct", settings=Settings.tiny(), chunk_seconds=-1.0)
    with pytest.raises(ValueError, match="thinker 'direct' has no option 'nonsense'"):
        open_video(folder, TEXTS, thinker="direct", settings=Settings.tiny(), thinker_options={"nonsense": 1})
    with pytest.raises(SettingsError, match="expression 2 of 2 is empty"):
        open_video(folder, ["the dog", " "], thinker="direct", settings=Settings.tiny())
    assert loaded == []


def test_a_live_source_opens_the_live_mode_and_nothing_before_entering(pipe: Pipeline) -> None:
    for source in ("rtsp://camera.local/stream", "-", "/dev/video0"):
        session = pipe.open_video(source, TEXTS)  # not entered: no model loaded, the source not opened
        assert session.mode.name == "live" and session.source == source and session.mode.source is None
    with pytest.raises(SettingsError, match="fps"):
        pipe.open_video("rtsp://camera.local/stream", TEXTS, fps=2.0)


def _frame(index: int, boxed: bool) -> FrameResult:
    masks = np.zeros((1, 12, 16), bool)
    masks[0, 2:6, 3:9] = True
    return FrameResult(index=index, time=index / 5, image=np.zeros((12, 16, 3), np.uint8), masks=masks,
                       boxes=[(3.0, 2.0, 9.0, 6.0) if boxed else None], scores=np.array([0.5], np.float32),
                       grounded=np.array([boxed]), seeded=np.zeros(1, bool))


def test_a_sinks_abort_leaves_no_final_file(tmp_path: Path) -> None:
    def failing():
        yield _frame(0, True)
        yield _frame(1, False)
        raise RuntimeError("stop")

    sinks = [CocoRleSink(tmp_path / "masks.json", 1, (12, 16)),
             OverlayVideoSink(tmp_path / "overlay.mp4", 5.0, 1, draw_boxes=True)]
    with pytest.raises(RuntimeError, match="stop"):
        run_sinks(failing(), sinks)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no final file, no partial one
    # the same frames, completed: both files under their final names, the box drawn
    written = run_sinks([_frame(0, True), _frame(1, False)],
                        [CocoRleSink(tmp_path / "masks.json", 1, (12, 16)), MaskPngSink(tmp_path / "masks", 1),
                         OverlayVideoSink(tmp_path / "overlay.mp4", 5.0, 1, draw_boxes=True)])
    assert written == 2 and (tmp_path / "overlay.mp4").is_file()
    data = json.loads((tmp_path / "masks.json").read_text())
    assert [f["time"] for f in data["frames"]] == [0.0, 0.2]  # the frames' own times
    assert data["frames"][0]["objects"][0]["box"] == [3.0, 2.0, 9.0, 6.0]
    assert data["frames"][1]["objects"][0]["box"] is None


class _Recording:
    """A sink that records what was done to it; ``fail`` names the step that raises."""

    def __init__(self, fail: str | None = None) -> None:
        self.fail, self.done = fail, []

    def _step(self, name: str) -> None:
        self.done.append(name)
        if name == self.fail:
            raise OSError(f"{name} failed")

    def add(self, frame: FrameResult) -> None:
        self._step("add")

    def close(self) -> None:
        self._step("close")

    def abort(self) -> None:
        self.done.append("abort")


def _watched(count: int, finished: list[bool]):
    try:
        for k in range(count):
            yield _frame(k, True)
    finally:
        finished.append(True)


def test_a_failing_close_aborts_every_sink_not_yet_closed(tmp_path: Path) -> None:
    first, failing, last = _Recording(), _Recording(fail="close"), _Recording()
    rle = CocoRleSink(tmp_path / "masks.json", 1, (12, 16))
    with pytest.raises(OSError, match="close failed"):
        run_sinks([_frame(0, True), _frame(1, False)], [first, failing, rle, last])
    assert first.done == ["add", "add", "close"]  # closed before the failure: kept
    assert failing.done == ["add", "add", "close", "abort"]
    assert last.done == ["add", "add", "abort"]
    assert list(tmp_path.iterdir()) == []  # masks.json aborted: no final file, no partial one


def test_run_sinks_closes_the_frame_generator_when_a_sink_fails() -> None:
    finished: list[bool] = []
    frames = _watched(5, finished)
    with pytest.raises(OSError, match="add failed"):
        run_sinks(frames, [_Recording(fail="add")])
    assert finished == [True]  # the generator's finally ran: a decoder behind it stops now


def test_leaving_a_session_early_closes_its_frames(clip: Path) -> None:
    finished: list[bool] = []
    with open_video(clip, TEXTS, thinker="direct", settings=Settings.tiny(), fps=2.0) as session:
        session.mode.frames = lambda session: _watched(6, finished)  # the mode's generator, watched
        for frame in session.frames():
            assert frame.index == 0
            break
        assert finished == []
    assert finished == [True]  # closed on leaving, not when garbage collected
