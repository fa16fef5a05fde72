"""Drawing: mask blending, boxes, outlines, strips, and mask PNGs that `tgs eval` reads back."""

from __future__ import annotations

import numpy as np
import pytest

from tgs.eval.predictions import FolderPredictions
from tgs.types import Masks
from tgs.viz import fit_mask, mask_edges, overlay_frame, overlay_strip, save_mask_pngs


def _frame(h: int = 40, w: int = 60, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_mask_pixels_are_blended_and_the_rest_is_untouched():
    frame = _frame()
    mask = np.zeros((40, 60), bool)
    mask[5:20, 10:30] = True
    out = overlay_frame(frame, mask, color=(200, 0, 100), alpha=0.25)
    expected = np.round(0.75 * frame[mask].astype(np.float64) + 0.25 * np.array([200, 0, 100])).astype(np.uint8)
    np.testing.assert_array_equal(out[mask], expected)
    np.testing.assert_array_equal(out[~mask], frame[~mask])
    assert out.dtype == np.uint8 and out.shape == frame.shape
    assert not np.shares_memory(out, frame)


@pytest.mark.parametrize(("alpha", "expect"), [(0.0, "frame"), (1.0, "color")])
def test_alpha_extremes(alpha, expect):
    frame = _frame()
    mask = np.ones((40, 60), bool)
    out = overlay_frame(frame, mask, color=(1, 2, 3), alpha=alpha)
    if expect == "frame":
        np.testing.assert_array_equal(out, frame)
    else:
        assert (out == np.array([1, 2, 3], np.uint8)).all()


def test_box_is_drawn_in_the_colour_on_its_border_only():
    frame = np.zeros((40, 60, 3), np.uint8)
    out = overlay_frame(frame, box=(10, 5, 40, 30), color=(0, 255, 0), line_width=2)
    assert (out[5, 10:41] == (0, 255, 0)).all()  # top edge
    assert (out[5:31, 40] == (0, 255, 0)).all()  # right edge
    assert (out[6, 11] == (0, 255, 0)).all()  # inside the 2-pixel border
    assert (out[15:25, 15:35] == 0).all()  # interior untouched
    assert (out[35:, :] == 0).all() and (out[:, 45:] == 0).all()  # outside untouched


def test_outline_marks_the_mask_boundary():
    mask = np.zeros((10, 12), bool)
    mask[2:8, 3:9] = True
    edges = mask_edges(mask, width=1)
    interior = np.zeros_like(mask)
    interior[3:7, 4:8] = True
    np.testing.assert_array_equal(edges, mask & ~interior)
    out = overlay_frame(np.zeros((10, 12, 3), np.uint8), outline=mask, outline_color=(9, 8, 7), line_width=1)
    assert (out[edges] == (9, 8, 7)).all() and (out[~edges] == 0).all()


def test_label_changes_pixels_and_wrong_mask_size_is_an_error():
    frame = np.zeros((60, 80, 3), np.uint8)
    assert overlay_frame(frame, label="cat").any()
    with pytest.raises(ValueError, match="fit_mask"):
        overlay_frame(frame, np.zeros((30, 40), bool))
    with pytest.raises(ValueError, match="bool"):
        overlay_frame(frame, np.zeros((60, 80), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        overlay_frame(frame.astype(np.float32))


def test_fit_mask_nearest_keeps_the_region():
    small = np.zeros((4, 4), bool)
    small[:2, :2] = True
    big = fit_mask(small, (8, 12))
    assert big.shape == (8, 12) and big.dtype == np.bool_
    assert big[:4, :6].all() and not big[4:, :].any() and not big[:, 6:].any()


def test_strip_size_and_even_frame_choice():
    frames = [np.full((40, 60, 3), i, np.uint8) for i in range(25)]
    strip = overlay_strip(frames, max_frames=5, thumb_height=20, gap=3)
    # 5 thumbnails of 30x20 (aspect 3:2 kept) and 4 gaps of 3 pixels.
    assert strip.shape == (20, 5 * 30 + 4 * 3, 3)
    firsts = [int(strip[10, x + 15, 0]) for x in range(0, 5 * 33, 33)]
    assert firsts == [0, 6, 12, 18, 24]  # first and last included, evenly spread
    assert (strip[:, 30:33] == 255).all()  # white gap


def test_strip_overlays_match_full_size_drawing():
    frames = [_frame(seed=i) for i in range(3)]
    masks = [np.eye(40, 60, dtype=bool) for _ in range(3)]
    strip = overlay_strip(frames, masks, thumb_height=40, gap=0)
    assert strip.shape == (40, 180, 3)
    np.testing.assert_array_equal(strip[:, 60:120], overlay_frame(frames[1], masks[1]))
    with pytest.raises(ValueError, match="one per frame"):
        overlay_strip(frames, masks[:2])


def test_mask_pngs_round_trip_through_the_eval_reader(tmp_path):
    rng = np.random.default_rng(3)
    masks = rng.random((10, 24, 32)) > 0.5
    paths = save_mask_pngs(Masks(masks), tmp_path / "preds" / "vid_cat_1")
    assert [p.name for p in paths] == [f"0000{i}.png" for i in range(10)]
    loaded = FolderPredictions(tmp_path / "preds").load("vid_cat_1")
    assert loaded is not None
    np.testing.assert_array_equal(loaded.masks, masks)
    from PIL import Image

    with Image.open(paths[0]) as image:
        assert image.mode == "L"
        assert set(np.unique(np.asarray(image)).tolist()) <= {0, 255}
