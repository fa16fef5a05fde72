"""The two protocols: ground-truth reading, prediction mapping, pooling and batching."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tgs.eval.measures import f_curve_loop
from tgs.eval.refavs_protocol import LOGIT_LIMIT, RefAVSProtocol, _sigmoid, load_gt_refavs, to_logits
from tgs.eval.tgs_protocol import TGSProtocol, load_gt_tgs
from tgs.types import Masks


def _write_gt(tmp_path: Path, frames: np.ndarray) -> list[Path]:
    paths = []
    for i, frame in enumerate(frames):
        path = tmp_path / f"{i:05d}.png"
        Image.fromarray(frame).save(path)
        paths.append(path)
    return paths


@pytest.fixture
def thin_gt(tmp_path: Path) -> list[Path]:
    """Masks with thin structures and odd values, where resize filters disagree."""
    rng = np.random.default_rng(3)
    frames = np.zeros((3, 90, 160), np.uint8)
    frames[0, 20:50, 30:90] = 255
    frames[1, ::7, :] = 255  # one-pixel lines
    frames[1, 40, 100] = 1  # a faint pixel
    frames[2] = (rng.random((90, 160)) > 0.97) * 255
    return _write_gt(tmp_path, frames)


def test_tgs_gt_is_the_scripts_pil_call(thin_gt):
    ours = load_gt_tgs(thin_gt)
    # the TGS-Agent scripts: np.array(Image.open(p).convert("L").resize((224, 224))).astype(bool)
    theirs = np.stack([np.array(Image.open(p).convert("L").resize((224, 224))).astype(bool) for p in thin_gt])
    assert ours.shape == (3, 224, 224) and ours.dtype == np.bool_
    assert np.array_equal(ours, theirs)
    nearest = np.stack([np.array(Image.open(p).resize((224, 224), Image.Resampling.NEAREST)) > 0 for p in thin_gt])
    assert not np.array_equal(ours, nearest)  # bicubic, not nearest


def _official_gt(paths: list[Path]) -> np.ndarray:
    cv2 = pytest.importorskip("cv2")
    return np.stack([
        cv2.cvtColor(cv2.resize(cv2.imread(str(p)), (256, 256)), cv2.COLOR_BGR2GRAY) > 0 for p in paths
    ])


def test_refavs_gt_is_the_official_cv2_calls(thin_gt):
    ours = load_gt_refavs(thin_gt)
    assert ours.shape == (3, 256, 256)
    assert np.array_equal(ours, _official_gt(thin_gt))


@pytest.mark.parametrize("mode", ["L", "1", "P", "RGB", "RGBA"])
def test_refavs_gt_matches_cv2_on_720p_and_other_modes(tmp_path, mode):
    rng = np.random.default_rng(7)
    paths = []
    for i, (h, w) in enumerate([(720, 1280), (201, 333)]):
        values = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        values[rng.random((h, w)) > 0.02] = 0  # sparse, faint foreground: boundary cases
        image = Image.fromarray(values).convert(mode) if mode != "RGB" else Image.fromarray(values)
        paths.append(tmp_path / f"{i:05d}.png")
        image.save(paths[-1])
    assert np.array_equal(load_gt_refavs(paths), _official_gt(paths))


def test_missing_gt_file_is_a_clear_error(tmp_path):
    from tgs.errors import DataError

    for loader in (load_gt_tgs, load_gt_refavs):
        with pytest.raises(DataError, match="not found"):
            loader([tmp_path / "00000.png"])


def test_tgs_prepare_resizes_masks_nearest_and_probs_bilinear():
    masks = np.zeros((1, 448, 448), bool)
    masks[0, :224, :] = True
    probs = np.tile(np.linspace(0, 1, 448, dtype=np.float32), (1, 448, 1))
    binary, small = TGSProtocol().prepare(Masks(masks, probs), 1)
    assert binary.shape == (1, 224, 224) and binary[0, :112].all() and not binary[0, 112:].any()
    assert small.shape == (1, 224, 224) and np.all(np.diff(small[0, 0]) > 0)
    native = Masks(np.zeros((2, 224, 224), bool))
    kept, as_probs = TGSProtocol().prepare(native, 2)
    assert kept is native.masks and as_probs.dtype == np.float32  # no resampling at 224


def test_tgs_score_uses_masks_for_j_and_probs_for_f():
    gt = np.zeros((2, 224, 224), bool)
    gt[0, :112] = True
    masks = np.zeros((2, 224, 224), bool)
    masks[0, :56] = True  # half of the gt
    probs = gt.astype(np.float32) * 0.8  # a perfect soft map
    score = TGSProtocol().score("u", "test_s", Masks(masks, probs), gt, 2)
    assert pytest.approx((0.5 + 1.0) / 2, abs=1e-6) == score.J  # frame 1: empty gt, empty pred
    assert pytest.approx(1.0) == score.F
    binary_only = TGSProtocol().score("u", "test_s", Masks(masks), gt, 2)
    assert pytest.approx(1.3 * 0.5 / (0.3 + 0.5)) == binary_only.F  # prec 1, rec 0.5


def test_tgs_null_split_scores_s_only_and_missing_is_empty():
    masks = np.zeros((2, 224, 224), bool)
    masks[0, :112] = True  # half the pixels
    score = TGSProtocol().score("n", "test_n", Masks(masks), None, 2)
    assert pytest.approx((np.sqrt(0.5) + 0) / 2) == score.S
    assert score.J is None and score.F is None
    missing = TGSProtocol().score("n", "test_n", None, None, 2)
    assert missing.S == 0.0 and missing.missing


def test_frame_count_mismatch_is_an_error():
    from tgs.errors import DataError

    with pytest.raises(DataError, match="3 frames"):
        TGSProtocol().score("u", "test_s", Masks.empty(3, (8, 8)), np.zeros((10, 224, 224), bool), 10)


def test_refavs_logits_round_trip_and_binary_mapping():
    probs = np.random.default_rng(4).random((2, 256, 256)).astype(np.float32)
    probs[0, 0, :3] = [0.0, 1.0, 0.5]
    masks = probs > 0.5
    back = _sigmoid(to_logits(Masks(masks, probs), 2))
    # p -> log(p / (1 - p)) -> sigmoid in float32: the logit's error ~ 3u / (p (1 - p)) + u |logit| is
    # scaled back by the sigmoid's slope p (1 - p): ~ 3u + u p (1 - p) |logit| < 4u ~ 2.4e-7 per value
    np.testing.assert_allclose(back[:, 1:], probs[:, 1:], rtol=0, atol=1e-6)
    assert back[0, 0, 0] < 1e-8 and back[0, 0, 1] == 1.0
    binary = _sigmoid(to_logits(Masks(masks, probs), 2, soft_input=False))
    assert np.array_equal(binary == 1.0, masks)  # sigmoid(+20) is exactly 1.0 in float32
    assert binary[~masks].max() < 1e-8
    empty = _sigmoid(to_logits(None, 2))
    assert empty.max() == pytest.approx(1 / (1 + np.exp(LOGIT_LIMIT)), rel=1e-3)


def test_refavs_thresholds_j_at_04_and_s_at_05():
    gt = np.zeros((1, 256, 256), bool)
    gt[0, :128] = True
    probs = np.zeros((1, 256, 256), np.float32)
    probs[0, :128] = 0.45  # above the J threshold 0.4, below the S threshold 0.5
    score = RefAVSProtocol().score("u", "test_s", Masks(probs > 0.5, probs), gt, 1)
    assert pytest.approx(1.0, abs=1e-6) == score.J
    tgs = TGSProtocol().score("u", "test_s", Masks(probs > 0.5, probs), np.ones((1, 224, 224), bool), 1)
    assert tgs.J == 0.0  # the binary mask (p > 0.5) is empty
    null = RefAVSProtocol().score("n", "test_n", Masks(probs > 0.5, probs), None, 1)
    assert null.S == 0.0
    as_mask = RefAVSProtocol(soft_input=False).score("u", "test_s", Masks(probs > 0.5, probs), gt, 1)
    assert as_mask.J == 0.0


def _scores(protocol, split, preds, gts):
    return [protocol.score(f"u{i}", split, p, g, p.num_frames if p is not None else 2)
            for i, (p, g) in enumerate(zip(preds, gts))]


def test_refavs_batches_of_four_with_a_short_last_batch():
    gt = np.zeros((2, 256, 256), bool)
    gt[:, :64] = True
    perfect = Masks(gt.copy())
    preds = [perfect] * 4 + [None, None]  # batch 1: J = 1; batch 2 (short): J = 0
    protocol = RefAVSProtocol()
    scores = _scores(protocol, "test_s", preds, [gt] * 6)
    out = protocol.aggregate(scores)
    assert out["batches"] == 2 and out["count"] == 6 and out["missing"] == 2
    assert out["J"] == pytest.approx(0.5, abs=1e-6)  # mean over batches, not samples (4/6)
    assert np.mean([s.J for s in scores]) == pytest.approx(4 / 6, abs=1e-6)


def test_refavs_f_pools_curves_over_the_batch():
    h = 256
    gt = np.zeros((1, h, h), bool)
    gt[0, :64] = True
    a = np.where(gt, 0.9, 0.3).astype(np.float32)  # best threshold in (0.3, 0.9]
    b = np.where(gt, 0.2, 0.1).astype(np.float32)  # best threshold in (0.1, 0.2]
    protocol = RefAVSProtocol()
    scores = _scores(protocol, "test_s", [Masks(a > 0.5, a), Masks(b > 0.5, b)], [gt, gt])
    assert pytest.approx(1.0, abs=1e-6) == scores[0].F and pytest.approx(1.0, abs=1e-6) == scores[1].F
    pooled = protocol.aggregate(scores)["F"]
    probs = np.concatenate([_sigmoid(to_logits(Masks(a > 0.5, a), 1)), _sigmoid(to_logits(Masks(b > 0.5, b), 1))])
    curves, has = f_curve_loop(probs, np.concatenate([gt, gt]))
    assert pooled == pytest.approx(curves[has].mean(0).max(), abs=1e-6)
    assert pooled < 0.99  # one threshold for both samples: not the mean of per-sample maxima


def test_refavs_s_pools_pixels_over_the_batch():
    one = np.zeros((1, 256, 256), bool)
    one[0, :64] = True  # a quarter of the pixels
    protocol = RefAVSProtocol()
    scores = _scores(protocol, "test_n", [Masks(one), Masks(np.zeros_like(one))], [None, None])
    assert protocol.aggregate(scores)["S"] == pytest.approx(np.sqrt(0.125))  # not (0.5 + 0) / 2


def test_refavs_batch_without_any_gt_has_f_zero():
    gt = np.zeros((1, 256, 256), bool)
    protocol = RefAVSProtocol()
    scores = _scores(protocol, "test_s", [Masks(gt.copy())], [gt])
    out = protocol.aggregate(scores)
    assert out["F"] == 0.0 and out["J"] == pytest.approx(1.0, abs=1e-6)
