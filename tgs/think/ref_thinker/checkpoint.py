"""Saving and strictly loading a self-contained Ref-Thinker directory.

Layout (what ``tgs models convert-ref-thinker`` and the tiny builder write)::

    DIR/config.json               RefThinkerConfig (LLaMA fields + multimodal parts + lora)
    DIR/model.safetensors         every parameter and persistent buffer, once
    DIR/tokenizer*.json           LLaMA tokenizer with the 21 added tokens
    DIR/preprocessor_config.json  CLIP image settings

Loading builds the model without allocating random weights (parameters on the meta
device, buffers real), re-creates the peft LoRA layers when ``config.lora`` says the
adapter is kept unmerged, and then requires the file's keys to be exactly the model's:
a missing or unexpected key raises CheckpointKeyError naming them, a shape mismatch
raises WeightsError (the loader, ``build_empty_model`` and ``load_ref_thinker_model``, lives
in ``modeling.py`` beside the model class, so this module never imports it). Tensors that the model shares (the Q-Former MLM decoder and its word
embeddings, BEATs' shared position-bias table) are stored once and re-tied after loading.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tgs.errors import CheckpointKeyError, WeightsError

__all__ = [
    "LLM_LORA_TARGETS",
    "WEIGHTS_NAME",
    "check_keys",
    "inject_lora",
    "merge_lora",
    "save_ref_thinker_model",
    "shared_tensor_aliases",
    "tie_shared",
]

logger = logging.getLogger(__name__)

WEIGHTS_NAME = "model.safetensors"

# LoRA goes into the LLaMA layers only. The original calls get_peft_model before adding
# CLIP and BEATs, whose attention layers also have q_proj/k_proj/v_proj names; a plain
# suffix list would wrongly adapt them too, so the targets are a full-name regex.
LLM_LORA_TARGETS = r"model\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)"


def shared_tensor_aliases(module: nn.Module) -> dict[str, str]:
    """{alias key: owner key} for state-dict entries that are the same tensor as an earlier one."""
    owner_of: dict[int, str] = {}
    aliases: dict[str, str] = {}
    for name, tensor in module.state_dict(keep_vars=True).items():
        owner = owner_of.setdefault(id(tensor), name)
        if owner != name:
            aliases[name] = owner
    return aliases


def _resolve(root: nn.Module, key: str) -> tuple[nn.Module, str]:
    path, _, leaf = key.rpartition(".")
    return (root.get_submodule(path) if path else root), leaf


def tie_shared(root: nn.Module, aliases: Mapping[str, str]) -> None:
    """Make every alias entry the very tensor of its owner again (after an assign-load)."""
    for alias, owner in aliases.items():
        owner_module, owner_leaf = _resolve(root, owner)
        alias_module, alias_leaf = _resolve(root, alias)
        if owner_leaf in owner_module._parameters:
            alias_module._parameters[alias_leaf] = owner_module._parameters[owner_leaf]
        else:
            alias_module._buffers[alias_leaf] = owner_module._buffers[owner_leaf]


def inject_lora(model: nn.Module, lora: Mapping[str, Any]) -> nn.Module:
    """Add peft LoRA layers (adapter "default") to the LLaMA projections of ``model``, in place."""
    from peft import LoraConfig, inject_adapter_in_model

    config = LoraConfig(
        r=int(lora["r"]),
        lora_alpha=float(lora["lora_alpha"]),
        lora_dropout=float(lora.get("lora_dropout", 0.0)),
        target_modules=str(lora.get("target_modules", LLM_LORA_TARGETS)),
        bias="none",
    )
    return inject_adapter_in_model(config, model)


@torch.no_grad()
def merge_lora(model: nn.Module) -> int:
    """Fold every LoRA adapter into its base projection and drop the adapter; returns how many.

    For inference: the unmerged adapter costs two extra small matmuls, a scale and an add
    per projection (224 modules in LLaMA-7B) on every decoding step, which on a GPU is
    launch-bound work (measured 36-74 ms per step on an H200 for ~3 ms of weight reads)
    and on a CPU 4-42 % of a small model's step. ``W + scale * B @ A`` is computed in float32
    and rounded to the weight's dtype once. Used by the thinker at load, by
    ``convert-ref-thinker --merge-lora`` and by ``tgs models export --merge-lora``; training
    keeps the adapter.
    """
    from peft.tuners.lora import Linear as LoraLinear
    from peft.tuners.lora import LoraLayer

    swaps = [
        (parent, name, child)
        for parent in model.modules()
        for name, child in parent.named_children()
        if isinstance(child, LoraLayer)
    ]
    for parent, name, child in swaps:
        if not isinstance(child, LoraLinear) or child.merged or child.fan_in_fan_out:
            raise WeightsError(f"cannot merge the LoRA adapter of {name}: {type(child).__name__} is not a plain Linear")
        base = child.get_base_layer()
        weight = base.weight.float()
        for adapter in child.active_adapters:
            if adapter in child.lora_A:
                lora_a = child.lora_A[adapter].weight.float()
                lora_b = child.lora_B[adapter].weight.float()
                weight += (lora_b @ lora_a) * child.scaling[adapter]
        base.weight.copy_(weight.to(base.weight.dtype))
        setattr(parent, name, base)
    return len(swaps)


def check_keys(expected: Mapping[str, torch.Tensor], found: Mapping[str, Any], path: Path) -> None:
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    if missing or unexpected:
        raise CheckpointKeyError(
            f"{path.name} does not match the Ref-Thinker model of {path.parent / 'config.json'}",
            missing=missing,
            unexpected=unexpected,
            path=path,
            fix="the weights and config.json come from different models; rewrite the directory with "
            "`tgs models convert-ref-thinker`",
        )


def save_ref_thinker_model(model: nn.Module, path: str | Path, *, dtype: torch.dtype | None = None) -> Path:
    """Write config.json and model.safetensors (shared tensors once); returns the weights path."""
    from safetensors.torch import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    aliases = shared_tensor_aliases(model)
    tensors = {}
    for key, tensor in model.state_dict().items():
        if key in aliases:
            continue
        tensor = tensor.detach()
        if dtype is not None and tensor.is_floating_point():
            tensor = tensor.to(dtype)
        tensors[key] = tensor.contiguous().cpu()
    model.config.save_pretrained(str(path))
    weights = path / WEIGHTS_NAME
    save_file(tensors, str(weights), metadata={"format": "pt", "tied": json.dumps(aliases)})
    return weights
