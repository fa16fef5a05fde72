"""Every weight of a tiny test model acts: no all-zero and no all-equal tensor.

transformers' (and timm's, peft's) initialisers start many tensors at exactly zero (biases,
box-head and sampling-offset output layers, positional and "no memory" embeddings, layer
scales, batch-norm running means, LoRA ``B``) or at one constant (LayerNorm weights,
batch-norm running variances). A random test model built that way hides whole code paths:
an all-zero box head makes every predicted box its reference point, so two Grounding DINO
paths that agree on boxes only agree on which query won; a zero bias never tests that a
conversion or a batched path kept it. :func:`fill_every_tensor` gives each such tensor
seeded random values, so a test comparing two paths compares every layer.
"""

from __future__ import annotations

import torch

__all__ = ["FILL_SPREAD", "FILL_STD", "fill_every_tensor", "idle_tensors"]

# Standard deviation of the values given to an all-zero tensor: the usual transformer
# initialiser range (BERT / DETR ``init_std``), small enough to keep a random model's
# activations in the range its real weights produce.
FILL_STD = 0.02
# An all-equal tensor (a LayerNorm weight of ones, a batch-norm variance, a layer scale)
# is multiplied by 1 + FILL_SPREAD * N(0, 1): it keeps its sign and scale (a variance stays
# positive: a -10 sigma draw is needed to flip it) and each channel differs.
FILL_SPREAD = 0.1


def _persistent_tensors(model: torch.nn.Module) -> list[tuple[str, torch.Tensor]]:
    """(name, tensor) of every parameter and saved buffer, each shared tensor once, in model order."""
    saved = set(model.state_dict().keys())
    seen: set[int] = set()
    out = []
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if name not in saved or id(tensor) in seen:
            continue
        seen.add(id(tensor))
        out.append((name, tensor))
    return out


def idle_tensors(model: torch.nn.Module) -> list[str]:
    """Names of the floating-point parameters and saved buffers that are all zero, or hold
    one repeated value (more than one element), i.e. what :func:`fill_every_tensor` changes."""
    idle = []
    for name, tensor in _persistent_tensors(model):
        if not tensor.is_floating_point() or tensor.numel() == 0:
            continue
        flat = tensor.detach().reshape(-1)
        if not flat.any() or (flat.numel() > 1 and bool((flat == flat[0]).all())):
            idle.append(name)
    return idle


@torch.no_grad()
def fill_every_tensor(model: torch.nn.Module, seed: int) -> list[str]:
    """Give every idle tensor of ``model`` (see :func:`idle_tensors`) seeded random values.

    All-zero tensors get N(0, FILL_STD); all-equal ones are scaled by 1 + FILL_SPREAD * N(0, 1).
    Integer buffers (counters, index tables) are left alone. Uses its own generator, so the
    global random state (and with it everything a builder draws after) is unchanged.
    Returns the names changed.
    """
    generator = torch.Generator().manual_seed(seed)
    idle = set(idle_tensors(model))
    changed = []
    for name, tensor in _persistent_tensors(model):
        if name not in idle:
            continue
        noise = torch.randn(tensor.shape, generator=generator, dtype=torch.float32).to(tensor.dtype)
        if tensor.any():
            tensor.mul_(1 + FILL_SPREAD * noise)
        else:
            tensor.copy_(FILL_STD * noise)
        changed.append(name)
    return changed
