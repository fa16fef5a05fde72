"""``tgs segment`` with the sam3 preset: dense output streams every source frame through SAM 3's
video model (bounded memory) and equals transformers' documented streaming loop; sampled output
runs the same backend on the sampled windows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from segment_media import encode_clip

from tgs.core.segment import segment_video
from tgs.core.settings import Settings
from tgs.dense_outputs import decode_masks_json
from tgs.models.registry import resolve_source
from tgs.presets import get_preset
from tgs.segment.frame_source import VideoFrameSource
from tgs.segment.sam3 import choose_masklets

PRESET = get_preset("sam3", {"sam3_threshold": "0.2"})


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return encode_clip(tmp_path_factory.mktemp("sam3_video") / "clip.mp4", 1.2, 10, (64, 48), seed=2)


def _documented_stream(video: Path, text: str) -> tuple[dict[int, dict[int, float]], dict[int, dict[int, np.ndarray]]]:
    """transformers' streaming use of Sam3VideoModel, called directly: scores and masks per object and frame."""
    from transformers import Sam3VideoModel, Sam3VideoProcessor

    folder = resolve_source("sam3_video", "tiny")
    model = Sam3VideoModel.from_pretrained(folder).eval()
    processor = Sam3VideoProcessor.from_pretrained(folder)
    session = processor.init_video_session(inference_device="cpu", dtype=torch.float32)
    session = processor.add_text_prompt(inference_session=session, text=text)
    source = VideoFrameSource(video)
    scores: dict[int, dict[int, float]] = {}
    masks: dict[int, dict[int, np.ndarray]] = {}
    with torch.no_grad():
        for frame in source.frames(0, source.num_frames):
            inputs = processor(images=frame, device="cpu", return_tensors="pt")
            out = model(inference_session=session, frame=inputs.pixel_values[0])
            post = processor.postprocess_outputs(session, out, original_sizes=inputs.original_sizes)
            for k, obj_id in enumerate(post["object_ids"].tolist()):
                scores.setdefault(obj_id, {})[out.frame_idx] = float(post["scores"][k])
                masks.setdefault(obj_id, {})[out.frame_idx] = post["masks"][k].numpy()
    return scores, masks


@pytest.mark.slow
def test_dense_sam3_equals_the_documented_streaming_loop(video: Path, tmp_path: Path) -> None:
    text = "the red object"
    result = segment_video(video, [text], thinker="direct", preset=PRESET, settings=Settings.tiny(), out=tmp_path)
    record = json.loads(result.result_json.read_text())
    sam3 = record["expressions"][0]["sam3"]
    assert record["propagation"]["bounded"] and record["propagation"]["peak_pixel_frames"] == 1
    assert record["propagation"]["frames_tracked"] == 12 and record["models"]["sam3_video"] == "tiny"
    scores, masks = _documented_stream(video, text)
    assert [c["id"] for c in sam3["candidates"]] == sorted(scores)
    ids = sorted(scores)
    matrix = np.full((len(ids), 12), np.nan, np.float32)
    for row, obj_id in enumerate(ids):
        for f, s in scores[obj_id].items():
            matrix[row, f] = s
    keyframes = record["propagation"]["keyframes"]
    expected = [ids[i] for i in choose_masklets(matrix, PRESET.sam3_choice, PRESET.sam3_threshold, keyframes)]
    assert sam3["chosen"] == expected and expected
    for candidate in sam3["candidates"]:
        # same float32 ops in the same order on the same frames: the scores agree to a few ulps (1e-5, see
        # tests/segment/test_sam3.py); the masks are thresholded on them and must be identical
        assert candidate["score"] == pytest.approx(max(scores[candidate["id"]].values()), abs=1e-5)
    for index, frame_masks in decode_masks_json(tmp_path / "masks.json"):
        want = np.zeros((48, 64), bool)
        for obj_id in expected:
            if index in masks[obj_id]:
                want |= masks[obj_id][index]
        np.testing.assert_array_equal(frame_masks[0], want)


@pytest.mark.slow
def test_dense_sam3_several_expressions_equal_one_at_a_time(video: Path, tmp_path: Path) -> None:
    texts = ["the red object", "a dog"]
    together = segment_video(video, texts, thinker="direct", preset=PRESET, settings=Settings.tiny(),
                             out=tmp_path / "both", png=False)
    assert together.mode == "dense"
    shared = list(decode_masks_json(tmp_path / "both" / "masks.json"))
    for k, text in enumerate(texts):
        segment_video(video, [text], thinker="direct", preset=PRESET, settings=Settings.tiny(),
                      out=tmp_path / str(k), png=False)
        alone = list(decode_masks_json(tmp_path / str(k) / "masks.json"))
        for (i, a), (j, b) in zip(shared, alone, strict=True):
            assert i == j
            np.testing.assert_array_equal(a[k], b[0])


@pytest.mark.slow
def test_sampled_sam3_runs_the_backend_on_windows(video: Path, tmp_path: Path) -> None:
    result = segment_video(video, ["the red object"], thinker="direct", preset=PRESET, settings=Settings.tiny(),
                           out=tmp_path, fps=5)
    record = json.loads(result.result_json.read_text())
    assert record["output"]["mode"] == "sampled" and len(record["expressions"][0]["frames"]) == 6
    assert len(list((tmp_path / "masks" / "0").glob("*.png"))) == 6


@pytest.mark.slow
def test_sampled_sam3_records_every_candidate_of_every_window(
    video: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sampled --fps under sam3: each expression's ``sam3`` block holds every candidate the backend
    returned in every window (identities after the earlier windows', frames as sampled indices),
    the rule's choice per window, and the masks written are the chosen masklets'."""
    from PIL import Image

    from tgs.segment.sam3 import Sam3GroundSegmenter
    from tgs.segment.sam3_stream import _decode

    calls: list[list] = []  # per window, the backend's Sam3Candidates per text
    backend = Sam3GroundSegmenter.candidates_many

    def spy(self, clip, texts, min_score=None):  # type: ignore[no-untyped-def]
        found = backend(self, clip, texts, min_score)
        calls.append(found)
        return found

    monkeypatch.setattr(Sam3GroundSegmenter, "candidates_many", spy)
    texts = ["the red object", "a dog"]
    # 1.2 s at 5 fps: 6 sampled frames; 0.4 s windows: 3 windows of 2 frames, one SAM 3 call each
    result = segment_video(video, texts, thinker="direct", preset=PRESET, settings=Settings.tiny(), out=tmp_path,
                           fps=5, chunk_seconds=0.4)
    record = json.loads(result.result_json.read_text())
    assert len(calls) == 3 and [c[0].num_frames for c in calls] == [2, 2, 2]
    for k, entry in enumerate(record["expressions"]):
        block = entry["sam3"]
        assert block["segmenter"] == "sam3" and block["mode"] == "video"
        assert block["rule"] == PRESET.sam3_choice and block["threshold"] == PRESET.sam3_threshold
        want_ids: list[int] = []
        want_chosen: list[int] = []
        offset, first = 0, 0
        masks = np.zeros((6, 48, 64), bool)  # the union of the chosen masklets, per sampled frame
        for window in calls:
            found = window[k]
            ids = [offset + m.identity for m in found.masklets]
            chosen = choose_masklets(found.scores(), PRESET.sam3_choice, PRESET.sam3_threshold)
            want_ids += ids
            want_chosen += [ids[i] for i in chosen]
            for i in chosen:
                masks[first : first + found.num_frames] |= found.masklets[i].masks
            for m, identity in zip(found.masklets, ids):
                (candidate,) = [c for c in block["candidates"] if c["id"] == identity]
                present = np.flatnonzero(m.present).tolist()
                assert [f["frame"] for f in candidate["frames"]] == [first + t for t in present]
                # JSON keeps a Python float exactly: the recorded numbers are the backend's own
                assert [f["score"] for f in candidate["frames"]] == [float(m.scores[t]) for t in present]
                assert [f["box"] for f in candidate["frames"]] == [[float(v) for v in m.boxes[t]] for t in present]
                assert candidate["score"] == max(float(m.scores[t]) for t in present)
                for f, t in zip(candidate["frames"], present):
                    np.testing.assert_array_equal(_decode(f["mask"]), m.masks[t])
            offset = max([offset, *(i + 1 for i in ids)])
            first += found.num_frames
        assert [c["id"] for c in block["candidates"]] == want_ids and len(set(want_ids)) == len(want_ids)
        assert block["chosen"] == want_chosen and block["null"] == (not want_chosen)
        all_scores = [float(s) for w in calls for m in w[k].masklets for s in m.scores[m.present]]
        assert block["best_score"] == (max(all_scores) if all_scores else None)
        for t, frame in enumerate(entry["frames"]):
            png = np.asarray(Image.open(tmp_path / frame["mask"])) > 0
            np.testing.assert_array_equal(png, masks[t])
            top = [c for c in block["candidates"] if c["id"] in block["chosen"]
                   and any(f["frame"] == t for f in c["frames"])]
            assert frame["query_index"] == (
                max(top, key=lambda c: next(f["score"] for f in c["frames"] if f["frame"] == t))["id"] if top else None
            )
    # the test means something only when candidates came from more than one window
    assert sum(bool(w[0].masklets) for w in calls) >= 2
