"""Prediction sources: the folder layout, run directories and in-memory masks."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tgs.errors import DataError
from tgs.eval.predictions import (
    FolderPredictions,
    MemoryPredictions,
    RunPredictions,
    open_predictions,
    write_prediction,
)
from tgs.types import Masks


def _masks(t: int = 3, h: int = 12, w: int = 20, seed: int = 0) -> Masks:
    rng = np.random.default_rng(seed)
    probs = rng.random((t, h, w)).astype(np.float32)
    return Masks(probs > 0.5, probs)


def test_folder_round_trip_png_probs_are_8bit(tmp_path):
    masks = _masks()
    write_prediction(tmp_path, "vid_cat_1", masks, probs_format="png")
    assert sorted(p.name for p in (tmp_path / "vid_cat_1").iterdir())[:4] == [
        "00000.png", "00000_prob.png", "00001.png", "00001_prob.png"]
    loaded = FolderPredictions(tmp_path).load("vid_cat_1")
    assert np.array_equal(loaded.masks, masks.masks)
    # both are k / 255 rounded once to float32 (k the same 8-bit level): equal or one ulp (<= 6e-8) apart
    np.testing.assert_allclose(loaded.probs, np.round(masks.probs * 255) / 255, rtol=0, atol=1e-7)


def test_folder_round_trip_npy_probs_are_exact(tmp_path):
    masks = _masks()
    write_prediction(tmp_path, "u", masks, probs_format="npy")
    loaded = FolderPredictions(tmp_path).load("u")
    assert np.array_equal(loaded.probs, masks.probs)


def test_folder_without_probs_and_with_rgb_masks(tmp_path):
    folder = tmp_path / "u"
    folder.mkdir()
    rgb = np.zeros((6, 8, 3), np.uint8)
    rgb[1, 2] = (0, 0, 9)  # any non-zero channel is foreground
    Image.fromarray(rgb).save(folder / "00000.png")
    source = FolderPredictions(tmp_path)
    (tmp_path / "metrics.json").write_text("{}")  # files beside the uid folders are ignored
    assert source.uids() == frozenset({"u"})
    loaded = source.load("u")
    assert loaded.probs is None and loaded.masks.sum() == 1 and loaded.masks[0, 1, 2]
    assert source.load("absent") is None


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["00000.png", "00002.png"], "not numbered"),
        (["00000.png", "00001.png", "00000_prob.png"], "probability maps"),
        (["prob.png"], "no frame masks"),
    ],
)
def test_folder_layout_errors(tmp_path, names, message):
    folder = tmp_path / "u"
    folder.mkdir()
    for name in names:
        Image.fromarray(np.zeros((4, 4), np.uint8)).save(folder / name)
    with pytest.raises(DataError, match=message):
        FolderPredictions(tmp_path).load("u")


def test_folder_rejects_two_probability_formats_and_bad_npy(tmp_path):
    masks = _masks(t=1)
    folder = write_prediction(tmp_path, "u", masks, probs_format="png")
    np.save(folder / "probs.npy", masks.probs)
    with pytest.raises(DataError, match="both"):
        FolderPredictions(tmp_path).load("u")
    (folder / "00000_prob.png").unlink()
    np.save(folder / "probs.npy", np.full((1, 12, 20), np.nan, np.float32))
    with pytest.raises(DataError, match="NaN"):
        FolderPredictions(tmp_path).load("u")


def test_missing_folder_is_an_error(tmp_path):
    with pytest.raises(DataError, match="not found"):
        open_predictions(tmp_path / "nope")


def test_run_directory_through_run_store(tmp_path):
    from tgs.run_store import RunStore

    run = tmp_path / "run"
    store = RunStore.open(run, {"preset": "paper"})
    done, failed = _masks(seed=1), _masks(seed=2)
    store.save_masks("a_x_1", done)
    store.append("samples", {"uid": "a_x_1", "status": "ok"})
    store.save_masks("b_x_1", failed)
    store.append("samples", {"uid": "b_x_1", "status": "failed", "error": "boom"})
    store.close()
    source = open_predictions(run)
    assert isinstance(source, RunPredictions)
    assert source.uids() == frozenset({"a_x_1"})  # a failed sample counts as missing
    loaded = source.load("a_x_1")
    assert np.array_equal(loaded.masks, done.masks) and np.array_equal(loaded.probs, done.probs)
    assert source.load("b_x_1") is None


def test_memory_predictions_and_mapping():
    masks = _masks()
    source = open_predictions({"u": masks})
    assert isinstance(source, MemoryPredictions)
    assert source.uids() == frozenset({"u"}) and source.load("u") is masks and source.load("v") is None
    assert open_predictions(source) is source
