"""cv2-exact squash to 224x224 (checked against OpenCV) and mask resizing."""

from __future__ import annotations

import numpy as np
import pytest

from tgs.resize import resize_like_cv2, resize_masks
from tgs.types import Masks


@pytest.fixture(scope="module")
def cv2():
    """OpenCV, installed by the dev extra (opencv-python-headless) to check the reimplementation."""
    return pytest.importorskip("cv2")

SOURCE_SIZES = [(720, 1280), (360, 640), (1080, 1920), (97, 131), (224, 224), (448, 448), (100, 100), (30, 50), (1, 7)]


@pytest.mark.parametrize(("height", "width"), SOURCE_SIZES)
def test_equals_opencv_inter_linear_bit_for_bit(cv2, height: int, width: int) -> None:
    rng = np.random.default_rng(height * 10000 + width)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    expected = cv2.resize(image, (224, 224))  # the call of the original scripts (INTER_LINEAR default)
    np.testing.assert_array_equal(resize_like_cv2(image, (224, 224)), expected)


def test_equals_opencv_on_smooth_images_and_other_valid_sizes(cv2) -> None:
    y, x = np.mgrid[0:720, 0:1280]
    image = np.stack([x * 255 // 1279, y * 255 // 719, (x + y) % 256], axis=-1).astype(np.uint8)
    for size in [(224, 224), (112, 160), (448, 448)]:
        np.testing.assert_array_equal(resize_like_cv2(image, size), cv2.resize(image, size[::-1]))


def test_constant_image_stays_constant_and_bad_input_is_rejected() -> None:
    image = np.full((50, 80, 3), 77, np.uint8)
    assert np.all(resize_like_cv2(image, (224, 224)) == 77)
    with pytest.raises(ValueError, match="uint8"):
        resize_like_cv2(image.astype(np.float32), (224, 224))
    with pytest.raises(ValueError, match="not reproduced exactly"):
        resize_like_cv2(image, (224, 225))


def test_resize_masks_nearest_for_masks_bilinear_for_probs() -> None:
    masks = np.zeros((2, 4, 4), np.bool_)
    masks[:, :2, :2] = True
    probs = np.zeros((2, 4, 4), np.float32)
    probs[:, :, 2:] = 1.0
    out = resize_masks(Masks(masks, probs), (8, 8), (2, 2))
    assert out.masks.shape == (2, 8, 8) and out.probs is not None and out.probs.shape == (2, 2, 2)
    assert out.masks[:, :4, :4].all() and not out.masks[:, 4:, :].any() and not out.masks[:, :, 4:].any()
    # Bilinear 4 -> 2 (align_corners=False) samples between source columns 0-1 and 2-3.
    np.testing.assert_allclose(out.probs[0], [[0.0, 1.0], [0.0, 1.0]])
    same = Masks(masks, probs)
    assert resize_masks(same, (4, 4)) is same
