"""Tolerances from float32 rounding-error analysis, shared by the numeric tests.

A float32 result is compared with a reference (float64, or another float32 path that computes the
same function in another order). To first order, a float32 sum of n products differs from its exact
value by at most n u sum|a_i b_i| (Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed.,
eq. 3.5, gamma_n ~ n u), in any summation order and with or without FMA, so on every CPU (AVX2,
AVX-512, AMX). Chained stages add their lengths (each stage's error, relative to the magnitudes it
sums, is carried forward by the next; layer and RMS norms keep it relative). Two float32 paths are
each within the bound of the exact value, so they are within twice it of each other.

Call sites state the accumulation length along the longest chain and the magnitude: the sum of
absolute terms (computed exactly where the test can, e.g. the float64 reference run on |inputs|),
or an upper bound for it.
"""

from __future__ import annotations

import numpy as np
import torch

U32 = 2.0**-24
"""float32 unit roundoff."""


def float32_bound(length: float, magnitude: float | np.ndarray | torch.Tensor, paths: int = 1):
    """u * length * magnitude * paths: `paths` = 2 when both sides are float32."""
    return U32 * length * magnitude * paths


# Accumulation lengths along the longest chain of the tiny test models (tgs.testing), from their
# configs. Generous round numbers: a bound may be loose, never short.
TINY_GDINO_CHAIN = 4000
"""Tiny Grounding DINO: Swin backbone (4 stages of 4x4-window attention, 16 terms, and projections
<= 4 x 64 wide: ~ 600), input projections with GroupNorm over <= 32 x 600 values (~ 600 in the
mean and variance), the text-image fusion attending over ~ 600 image tokens and the text (~ 700),
one encoder layer (deformable: 2 heads x 4 levels x 2 points x 4 corners = 64; FFN 32) and two
decoder layers (self-attention over 20 queries, deformable 64, text cross-attention, FFN 32:
~ 300), heads of width 32, 3 layers (~ 100); ~ 2,400, rounded up."""

TINY_SAM2_CHAIN = 4000
"""Tiny SAM2 image path (128 px): Hiera backbone (4 x 4 windows of 16 terms, a global block over
8 x 8 = 64 tokens, projections <= 4 x 64 wide: ~ 600), the FPN (1 x 1 convolutions over <= 64
channels into 128), the two-way mask decoder (2 layers of attention over 64 image tokens and the
prompt tokens, projections 128 wide, MLP 64: ~ 1,400), the upscaling convolutions and the
hypernetwork MLPs (~ 400); ~ 2,500, rounded up."""

TINY_BEATS_CHAIN = 2000
"""Tiny BEATs: the 16 x 16 patch convolution (256 terms), layer norm over 32, the grouped
positional convolution (16 taps x 8 channels = 128), two encoder layers (attention over <= 48
tokens with the gated relative-position bias, projections 32 wide, FFN 64: ~ 600); ~ 1,100,
rounded up."""

TINY_QFORMER_CHAIN = 600
"""Tiny Q-former as the tests drive it: two layers of self-attention over <= 10 queries and
cross-attention over <= 20 encoder tokens, projections 32 wide (4 x 32), FFN 64, layer norms over
32: ~ 2 x 270, rounded up. (Inside the model the cross-attention spans 257 tokens: the model
chain below counts that.)"""

TINY_REF_THINKER_CHAIN = 4500
"""Tiny Ref-Thinker, prompt to logits: vision 3 x (257 patches + 4 x 32 + 64) ~ 1,350; audio
(TINY_BEATS_CHAIN's ~ 1,100, less than its rounded value); the two Q-formers' cross-attention over
<= 257 tokens and projections ~ 1,000; the decoder 2 x (n <= 350 positions + 4 x 32 + 64) ~ 1,100
and the head (32); ~ 4,300, rounded up. The logits test of prefix sharing spells the sum out with
the actual n."""


SAM2_PROB_TOL = float32_bound(TINY_SAM2_CHAIN, 32.0, paths=2) / 4
"""Two float32 runs of the tiny SAM2 mask decoder (other batch shapes or kernels): mask logits are
clamped to [-32, 32] and the sigmoid's slope is <= 1/4, so probabilities agree to this."""


def assert_masks_agree(expected_masks, expected_probs, masks, probs, prob_tol: float = SAM2_PROB_TOL) -> None:
    """Probabilities within prob_tol; thresholded masks equal except where a probability is within
    prob_tol of 0.5 (there rounding may flip the pixel on another CPU)."""
    np.testing.assert_allclose(probs, expected_probs, rtol=0, atol=prob_tol)
    differ = np.asarray(masks) != np.asarray(expected_masks)
    assert np.all(np.abs(np.asarray(expected_probs)[differ] - 0.5) <= prob_tol), f"{differ.sum()} pixels flipped"
