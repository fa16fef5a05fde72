"""The gather form of multi-scale deformable sampling against transformers' grid_sample form."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from float32_error import TINY_GDINO_CHAIN, float32_bound
from transformers.models.grounding_dino.modeling_grounding_dino import MultiScaleDeformableAttention

from tgs.ground import GroundingDinoGrounder
from tgs.ground.deformable_sampling import (
    GatherDeformableAttention,
    gather_deformable_sampling,
    use_gather_deformable_sampling,
)
from tgs.testing.tiny_vision import build_tiny_grounding_dino
from tgs.types import Clip


def reference(value, shapes, locations, weights) -> torch.Tensor:
    """transformers' pure-PyTorch sampling (one grid_sample per level)."""
    shapes_t = torch.tensor(shapes)
    starts = torch.cat([shapes_t.new_zeros(1), (shapes_t[:, 0] * shapes_t[:, 1]).cumsum(0)[:-1]])
    return MultiScaleDeformableAttention()(value, shapes_t, shapes, starts, locations, weights, 64)


def float64_reference(value, shapes, locations, weights) -> tuple[torch.Tensor, torch.Tensor]:
    """(the sampling in float64, and sum |w| b |v| over points and corners: the magnitude it sums)."""
    args = (shapes, locations.double())
    return (reference(value.double(), *args, weights.double()),
            reference(value.double().abs(), *args, weights.double().abs()))  # fmt: skip


def sampling_bound(shapes, locations, magnitude: torch.Tensor, paths: int = 1) -> torch.Tensor:
    """float32 error of one output, first order: the pixel coordinate loc * size - 0.5 is rounded
    (u (|loc| size + 1); floor is exact, so the bilinear fractions err by as much, and each of the
    four corner weights (products of two fractions) by twice it plus u), then levels x points x 4
    corners terms are summed (that many u). All relative to sum |w| b |v|."""
    reach = float(locations.abs().max()) * max(max(h, w) for h, w in shapes) + 1.0
    terms = locations.shape[-3] * locations.shape[-2] * 4
    return float32_bound(terms + 2 * (2 * reach + 1), magnitude, paths)


def random_inputs(seed: int, batch=2, shapes=((7, 11), (4, 6), (2, 3)), heads=3, dim=5, queries=13, points=4):
    g = torch.Generator().manual_seed(seed)
    total = sum(h * w for h, w in shapes)
    value = torch.randn(batch, total, heads, dim, generator=g)
    # Well beyond [0, 1] on both sides: corners in, partly in and wholly out of every map.
    locations = torch.rand(batch, queries, heads, len(shapes), points, 2, generator=g) * 1.6 - 0.3
    weights = torch.rand(batch, queries, heads, len(shapes), points, generator=g)
    return value, [tuple(s) for s in shapes], locations, weights


@pytest.mark.numeric
@pytest.mark.parametrize("seed", range(5))
def test_matches_grid_sample_on_random_inputs(seed: int) -> None:
    value, shapes, locations, weights = random_inputs(seed)
    expected, magnitude = float64_reference(value, shapes, locations, weights)
    got = gather_deformable_sampling(value, shapes, locations, weights)
    assert got.shape == expected.shape == (2, 13, 15) and got.dtype == torch.float32
    assert torch.all((got.double() - expected).abs() <= sampling_bound(shapes, locations, magnitude))
    # transformers' float32 grid_sample form obeys the same bound: the two within twice it
    float32_grid = reference(value, shapes, locations, weights).double()
    assert torch.all((got.double() - float32_grid).abs() <= sampling_bound(shapes, locations, magnitude, paths=2))


@pytest.mark.numeric
def test_matches_grid_sample_on_the_borders_and_pixel_centres() -> None:
    """Locations exactly on map edges (0, 1), on pixel centres and half a pixel outside."""
    shapes = [(4, 5), (2, 2)]
    value = torch.randn(1, 24, 2, 3, generator=torch.Generator().manual_seed(0))
    ticks = torch.tensor([0.0, 1.0, 0.1, 0.5, 0.9, -0.1, 1.1, 1 / 5 / 2, 1 - 1 / 5 / 2, 0.25])
    xs, ys = torch.meshgrid(ticks, ticks, indexing="ij")
    grid = torch.stack([xs.flatten(), ys.flatten()], -1)  # [100, 2]
    locations = grid.view(1, 100, 1, 1, 1, 2).expand(1, 100, 2, 2, 1, 2).contiguous()
    weights = torch.ones(1, 100, 2, 2, 1)
    got = gather_deformable_sampling(value, shapes, locations, weights).double()
    expected, magnitude = float64_reference(value, shapes, locations, weights)
    assert torch.all((got - expected).abs() <= sampling_bound(shapes, locations, magnitude))


def test_hand_computed_bilinear_weights() -> None:
    """One 2 x 2 map, one head, one channel: values 1, 2 / 3, 4 (row-major)."""
    value = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 4, 1, 1)
    points = torch.tensor(
        [
            [0.25, 0.25],  # centre of pixel (0, 0)
            [0.75, 0.75],  # centre of pixel (1, 1)
            [0.5, 0.5],  # between all four centres: their mean
            [0.5, 0.25],  # between (0, 0) and (0, 1)
            [0.0, 0.25],  # half a pixel left of (0, 0): half of it, half of the zero padding
            [1.5, 0.5],  # wholly outside
        ]
    )
    locations = points.view(1, 6, 1, 1, 1, 2)
    weights = torch.tensor([1.0, 1.0, 1.0, 2.0, 1.0, 1.0]).view(1, 6, 1, 1, 1)
    out = gather_deformable_sampling(value, [(2, 2)], locations, weights).flatten()
    # every coordinate and fraction here is a dyadic rational: float32 computes them exactly
    torch.testing.assert_close(out, torch.tensor([1.0, 4.0, 2.5, 3.0, 0.5, 0.0]), rtol=0, atol=0)


def test_nan_location_gives_nan_like_grid_sample() -> None:
    value, shapes, locations, weights = random_inputs(7, batch=1, queries=3)
    locations[0, 1, :, :, 0, 0] = float("nan")
    got = gather_deformable_sampling(value, shapes, locations, weights).double()
    expected, magnitude = float64_reference(value, shapes, locations, weights)
    assert torch.isnan(got[0, 1]).all() and torch.isfinite(got[0, [0, 2]]).all()
    assert torch.isnan(expected[0, 1]).all()
    finite = [0, 2]
    bound = sampling_bound(shapes, locations.nan_to_num(), magnitude)[0, finite]
    assert torch.all((got[0, finite] - expected[0, finite]).abs() <= bound)


def test_bf16_value_returns_bf16_close_to_fp32() -> None:
    value, shapes, locations, weights = random_inputs(1)
    inputs = value.bfloat16(), locations.bfloat16(), weights.bfloat16()
    got = gather_deformable_sampling(inputs[0], shapes, inputs[1], inputs[2])
    assert got.dtype == torch.bfloat16
    # Against the float64 sampling of the same (bf16-rounded) inputs: the float32 bound with
    # bfloat16's unit roundoff 2**-8 in place of 2**-24 (whichever precision the sums use, at most
    # bf16's), plus the final rounding to bf16 (2**-8 |out| <= 2**-8 magnitude).
    expected, magnitude = float64_reference(inputs[0].double(), shapes, inputs[1].double(), inputs[2].double())
    bf16_bound = (sampling_bound(shapes, locations, magnitude) + 2.0**-24 * magnitude) * 2.0**16
    assert torch.all((got.double() - expected).abs() <= bf16_bound)


def test_shape_mismatch_is_rejected() -> None:
    value, shapes, locations, weights = random_inputs(0)
    with pytest.raises(ValueError, match="spatial shapes"):
        gather_deformable_sampling(value, shapes[:2], locations, weights)


@pytest.fixture(scope="module")
def tiny_gdino(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_grounding_dino(tmp_path_factory.mktemp("tiny_gdino_sampling"), seed=1)


@pytest.mark.numeric
def test_swap_keeps_weights_and_outputs(tiny_gdino: Path) -> None:
    from transformers import GroundingDinoForObjectDetection, GroundingDinoProcessor

    model = GroundingDinoForObjectDetection.from_pretrained(tiny_gdino).eval()
    keys = set(model.state_dict())
    torch.manual_seed(0)
    tokens = GroundingDinoProcessor.from_pretrained(tiny_gdino).tokenizer(["a dog."] * 2, return_tensors="pt")
    inputs = {"pixel_values": torch.randn(2, 3, 64, 96), **tokens}
    with torch.inference_mode():
        before = model(**inputs)
        swapped = use_gather_deformable_sampling(model)
        after = model(**inputs)
    assert swapped == 3  # 1 encoder + 2 decoder layers in the tiny model
    assert not any(isinstance(m, MultiScaleDeformableAttention) for m in model.modules())
    assert sum(isinstance(m, GatherDeformableAttention) for m in model.modules()) == 3
    assert set(model.state_dict()) == keys
    # Two float32 paths (the sampling's rounding differs): within twice the first-order bound of the
    # tiny model's accumulation chain, relative to the outputs' magnitudes (boxes are in [0, 1]).
    logits_tol = float32_bound(TINY_GDINO_CHAIN, float(before.logits.abs().max()), paths=2)
    torch.testing.assert_close(after.logits, before.logits, rtol=0, atol=logits_tol)
    torch.testing.assert_close(after.pred_boxes, before.pred_boxes, rtol=0, atol=float32_bound(TINY_GDINO_CHAIN, 1.0, 2))


def test_grounder_kernels_give_the_same_boxes(tiny_gdino: Path) -> None:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(3, 60, 80, 3), dtype=np.uint8)
    clip = Clip(frames, None, None, np.arange(3, dtype=np.float64))
    auto = GroundingDinoGrounder.from_pretrained(tiny_gdino, box_threshold=0.0)
    grid = GroundingDinoGrounder.from_pretrained(tiny_gdino, box_threshold=0.0, deformable_sampling="grid_sample")
    assert auto.deformable_sampling == "gather" and grid.deformable_sampling == "grid_sample"
    for a, b in zip(auto.ground(clip, "a dog").frames, grid.ground(clip, "a dog").frames):
        np.testing.assert_array_equal(a.query_index, b.query_index)
        # two float32 paths: twice the tiny model's bound; scores are in [0, 1], boxes in 80 px
        np.testing.assert_allclose(a.scores, b.scores, rtol=0, atol=float32_bound(TINY_GDINO_CHAIN, 1.0, 2))
        np.testing.assert_allclose(a.xyxy, b.xyxy, rtol=0, atol=float32_bound(TINY_GDINO_CHAIN, 80.0, 2))
    with pytest.raises(ValueError, match="deformable_sampling"):
        GroundingDinoGrounder.from_pretrained(tiny_gdino, deformable_sampling="cuda_kernel")
