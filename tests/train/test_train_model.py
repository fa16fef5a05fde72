"""The trainable model: which parameters train, the fresh adapter, the answer-token loss."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from train_helpers import fast_recipe

from tgs.errors import WeightsError
from tgs.think.ref_thinker.modeling import RefThinkerForCausalLM
from tgs.train.config import TrainRecipe
from tgs.train.model import build_training_model, is_lora_parameter


def _group(name: str) -> str:
    for prefix, group in (("model.vl_projector.", "vl"), ("model.al_projector.", "al"), ("model.embed_tokens.", "embed"),
                          ("lm_head.", "head"), ("model.visual_encoder.", "clip"), ("model.audio_encoder.", "beats")):  # fmt: skip
        if name.startswith(prefix):
            return group
    return "lora" if is_lora_parameter(name) else "llama"


def test_exactly_lora_projectors_embeddings_and_head_train(fresh_init: Path) -> None:
    model, summary = build_training_model(fresh_init, fast_recipe(gradient_checkpointing=False))
    by_group: dict[str, set[bool]] = {}
    for name, param in model.thinker.named_parameters():
        by_group.setdefault(_group(name), set()).add(param.requires_grad)
    assert by_group == {"lora": {True}, "vl": {True}, "al": {True}, "embed": {True}, "head": {True},
                        "clip": {False}, "beats": {False}, "llama": {False}}  # fmt: skip
    lora_names = [n for n, _ in model.thinker.named_parameters() if is_lora_parameter(n)]
    layers = model.thinker.config.num_hidden_layers
    assert len(lora_names) == layers * 7 * 2  # q/k/v/o/gate/up/down, A and B, LLaMA layers only
    assert all(n.startswith("model.layers.") for n in lora_names)
    assert summary.trainable == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert summary.trainable == sum(summary.groups.values()) and summary.total > summary.trainable
    assert all(p.dtype == torch.float32 for p in model.parameters() if p.requires_grad)
    assert model.thinker.config.lora == TrainRecipe().lora


def test_frozen_weights_stay_bf16_and_trained_ones_float32_with_bf16(fresh_init: Path) -> None:
    model, _ = build_training_model(fresh_init, fast_recipe(bf16=True, gradient_checkpointing=False))
    dtypes = {(p.requires_grad, p.dtype) for p in model.parameters()}
    assert dtypes == {(True, torch.float32), (False, torch.bfloat16)}


def test_a_fresh_adapter_starts_as_a_no_op(fresh_init: Path) -> None:
    torch.manual_seed(0)
    model, _ = build_training_model(fresh_init, fast_recipe(gradient_checkpointing=False))
    base = RefThinkerForCausalLM.from_pretrained(fresh_init)
    ids = torch.tensor([[1, 20, 30, 40, 50]])
    model.eval()
    with torch.no_grad():
        # lora_B starts at 0, so the adapter adds exact zeros to the same weights' products
        assert torch.allclose(model.thinker(input_ids=ids).logits, base(input_ids=ids).logits, rtol=0, atol=1e-6)
    assert any(p.abs().sum() > 0 for n, p in model.thinker.named_parameters() if ".lora_A." in n)


def test_an_existing_adapter_must_match_the_recipe(tmp_path: Path) -> None:
    from tgs.models.registry import resolve_source

    init = Path(resolve_source("ref_thinker", "tiny"))  # has an r=8 adapter
    with pytest.raises(WeightsError, match="r: 8 vs 4"):
        build_training_model(init, fast_recipe(lora_r=4))
    model, _ = build_training_model(init, fast_recipe(lora_dropout=0.0))
    assert model.thinker.config.lora["lora_dropout"] == 0.0


def test_frozen_encoders_mode(fresh_init: Path) -> None:
    paper, _ = build_training_model(fresh_init, fast_recipe(gradient_checkpointing=False))
    assert paper.thinker.model.audio_encoder.training  # the original's trainer puts them in train mode
    fixed, _ = build_training_model(fresh_init, fast_recipe(frozen_encoders_mode="eval", gradient_checkpointing=False))
    assert not fixed.thinker.model.audio_encoder.training and not fixed.thinker.model.visual_encoder.training
    assert fixed.thinker.model.layers[0].training


def test_loss_is_the_mean_cross_entropy_of_the_answer_tokens(fresh_init: Path) -> None:
    model, _ = build_training_model(fresh_init, fast_recipe(gradient_checkpointing=False, lora_dropout=0.0))
    model.eval()
    config = model.thinker.config
    v, a = config.video_token_index, config.audio_token_index
    ids = torch.tensor([[2, 2, 1, 9, v, 11, a, 12, 13, 14, 15], [1, 9, v, 11, a, 12, 16, 17, 18, 19, 20]])
    mask = (torch.arange(11) >= torch.tensor([[2], [0]])).long()
    labels = torch.full_like(ids, -100)
    labels[0, 8:] = ids[0, 8:]  # answers: 3 and 4 tokens
    labels[1, 7:] = ids[1, 7:]
    g = torch.Generator().manual_seed(0)
    pixels, fbank = torch.randn(2, 10, 3, 224, 224, generator=g), torch.randn(2, 10, 98, 128, generator=g)
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, labels=labels, pixel_values=pixels, audio_fbank=fbank)
        # By hand: the answer ends each row (left padding), so its tokens are the last positions.
        logits = out.logits.float()
        terms = []
        for b, n in ((0, 3), (1, 4)):
            predicted = logits[b, -n - 1 : -1]  # position t predicts token t + 1
            terms.append(F.cross_entropy(predicted, ids[b, -n:], reduction="sum"))
        expected = sum(terms) / 7
    # the same logits; each token's log-sum-exp over the vocabulary (~ 500 terms after subtracting
    # the largest, so <= 500 u ~ 3e-5 absolute on the log) and the mean over 7 tokens in other
    # orders: 3e-5 / 6 = 5e-6 relative per side, 1e-5 for the two
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    # Gradients reach the trained head, never the frozen LLaMA weights.
    loss_grad = model(input_ids=ids, attention_mask=mask, labels=labels, pixel_values=pixels, audio_fbank=fbank).loss
    loss_grad.backward()
    assert model.thinker.lm_head.weight.grad is not None
    assert model.thinker.model.layers[0].self_attn.q_proj.base_layer.weight.grad is None


def test_qformer_dropout_follows_the_recipe_and_is_off_at_inference(fresh_init: Path) -> None:
    """The original trains its Q-Formers with bert-base's dropout 0.1; eval mode turns it off."""
    import torch

    from tgs.think.ref_thinker.qformer import QFormer

    model, _ = build_training_model(fresh_init, fast_recipe(qformer_dropout=0.3))
    qformers = [m for m in model.thinker.modules() if isinstance(m, QFormer)]
    assert len(qformers) == 2
    rates = {sub.p for q in qformers for sub in q.modules() if isinstance(sub, torch.nn.Dropout)}
    assert rates == {0.3}
    q = qformers[0].float()
    queries = torch.randn(2, 4, q.config.hidden_size)
    context = torch.randn(2, 5, q.config.encoder_width)
    q.eval()
    assert torch.equal(q(queries, context), q(queries, context))
    q.train()
    assert not torch.equal(q(queries, context), q(queries, context))
