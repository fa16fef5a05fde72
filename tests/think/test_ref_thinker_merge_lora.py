"""Merging the LoRA adapter for inference: same function, adapter modules gone."""

from __future__ import annotations

import pytest
import torch
from float32_error import TINY_REF_THINKER_CHAIN, float32_bound
from peft.tuners.lora import LoraLayer
from ref_thinker_helpers import items, tiny_model_dir

from tgs.think.ref_thinker.checkpoint import merge_lora
from tgs.think.ref_thinker.generation import GenerationSettings
from tgs.think.ref_thinker.modeling import load_ref_thinker_model
from tgs.think.ref_thinker.thinker import RefThinker


def lora_layers(model: torch.nn.Module) -> list[LoraLayer]:
    return [m for m in model.modules() if isinstance(m, LoraLayer)]


@pytest.mark.numeric
def test_merged_model_computes_the_same_logits() -> None:
    model = load_ref_thinker_model(tiny_model_dir())
    reference = load_ref_thinker_model(tiny_model_dir())
    adapters = len(lora_layers(model))
    assert adapters == 7 * model.config.num_hidden_layers  # q, k, v, o, gate, up, down per layer
    assert merge_lora(model) == adapters
    assert lora_layers(model) == []
    assert not any("lora_" in name for name in model.state_dict())
    ids = torch.randint(3, 400, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        merged = model(input_ids=ids).logits
        unmerged = reference(input_ids=ids).logits
        for layer in lora_layers(reference):
            layer.enable_adapters(False)
        without_adapter = reference(input_ids=ids).logits
    scale = unmerged.abs().max()
    # W x + s B (A x) against (W + s B A) x: both float32 (the adapter adds r = 8 terms and one
    # rounding of the merged weight per layer to the chain): twice the model's first-order bound
    assert (merged - unmerged).abs().max() <= float32_bound(TINY_REF_THINKER_CHAIN + 16, scale, paths=2)
    assert (merged - without_adapter).abs().max() > 1e-2 * scale  # the adapter is in the merged weights


def test_merge_is_one_rounding_of_the_float32_sum() -> None:
    fp32 = load_ref_thinker_model(tiny_model_dir())
    layer = fp32.model.layers[0].self_attn.q_proj
    expected = (
        layer.get_base_layer().weight
        + (layer.lora_B["default"].weight @ layer.lora_A["default"].weight) * layer.scaling["default"]
    ).detach()
    bf16 = load_ref_thinker_model(tiny_model_dir(), dtype=torch.bfloat16)
    merge_lora(bf16)
    merged = bf16.model.layers[0].self_attn.q_proj
    assert isinstance(merged, torch.nn.Linear) and merged.weight.dtype == torch.bfloat16
    # bf16 parameters of the adapter round A and B first; the sum itself is rounded once.
    a = layer.lora_A["default"].weight.bfloat16().float()
    b = layer.lora_B["default"].weight.bfloat16().float()
    once = (layer.get_base_layer().weight.bfloat16().float() + (b @ a) * layer.scaling["default"]).bfloat16()
    assert torch.equal(merged.weight, once)
    # against the float32 merge: bf16 (u = 2**-8) rounds W, A and B (u |W| + 2u s |B||A|) and the
    # result (u (|W| + s |B||A|)); the float32 sum adds ~ 8 x 2**-24 relative, far below
    scale = layer.scaling["default"]
    products = layer.lora_B["default"].weight.abs() @ layer.lora_A["default"].weight.abs()
    bound = 2.0**-8 * (2 * layer.get_base_layer().weight.abs() + 3 * scale * products) + 1e-6
    assert torch.all((merged.weight.float() - expected).abs() <= bound)


def test_thinker_merges_by_default_and_answers_alike() -> None:
    settings = GenerationSettings(max_new_tokens=6)
    merged = RefThinker.from_pretrained(tiny_model_dir(), device="cpu", dtype="fp32", settings=settings)
    kept = RefThinker.from_pretrained(
        tiny_model_dir(), device="cpu", dtype="fp32", settings=settings, merge_lora=False
    )
    assert lora_layers(merged.model) == [] and len(lora_layers(kept.model)) > 0
    batch = items(3)
    assert [t.raw for t in merged.think(batch)] == [t.raw for t in kept.think(batch)]


def test_merge_refuses_an_already_merged_adapter() -> None:
    from tgs.errors import WeightsError

    model = load_ref_thinker_model(tiny_model_dir())
    layer = lora_layers(model)[0]
    layer.merge()
    with pytest.raises(WeightsError, match="cannot merge"):
        merge_lora(model)
