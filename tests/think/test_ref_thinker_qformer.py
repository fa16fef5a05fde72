"""The Q-Former and projectors: original key names, tied MLM head, and the BLIP-2 query path."""

from __future__ import annotations

import re

import pytest
import torch
from float32_error import TINY_QFORMER_CHAIN, float32_bound

from tgs.think.ref_thinker.configuration import QFormerConfig
from tgs.think.ref_thinker.projector import AudioProjector, VisualProjector, build_mlp
from tgs.think.ref_thinker.qformer import QFormer, tied_parameter_aliases

TINY = QFormerConfig(vocab_size=64, hidden_size=32, num_attention_heads=4, intermediate_size=64,
                     max_position_embeddings=32, encoder_width=24)  # fmt: skip


def _randomised(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return module.eval()


def test_state_dict_has_the_lavis_bert_names() -> None:
    keys = set(QFormer(TINY).state_dict())
    layer = "bert.encoder.layer.1."
    expected = {
        "bert.embeddings.position_ids",
        "bert.embeddings.word_embeddings.weight",
        "bert.embeddings.position_embeddings.weight",
        "bert.embeddings.LayerNorm.weight",
        layer + "attention.self.query.weight",
        layer + "attention.output.LayerNorm.bias",
        layer + "crossattention.self.key.weight",
        layer + "crossattention.self.value.bias",
        layer + "crossattention.output.dense.weight",
        layer + "intermediate.dense.weight",
        layer + "output.LayerNorm.weight",
        layer + "intermediate_query.dense.bias",
        layer + "output_query.dense.weight",
        "cls.predictions.bias",
        "cls.predictions.transform.dense.weight",
        "cls.predictions.transform.LayerNorm.bias",
        "cls.predictions.decoder.weight",
        "cls.predictions.decoder.bias",
    }
    assert expected <= keys
    assert len(keys) == 5 + 2 * 32 + 7  # embeddings, 2 layers x 32 tensors, MLM head
    assert not any(re.search(r"layer\.2\.", k) for k in keys)


def test_cross_attention_keys_take_the_encoder_width() -> None:
    state = QFormer(TINY).state_dict()
    assert state["bert.encoder.layer.0.crossattention.self.key.weight"].shape == (32, 24)
    assert state["bert.encoder.layer.0.attention.self.key.weight"].shape == (32, 32)


def test_mlm_decoder_is_tied_to_the_word_embeddings() -> None:
    qformer = QFormer(TINY)
    assert tied_parameter_aliases(qformer) == {
        "cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight",
        "cls.predictions.decoder.bias": "cls.predictions.bias",
    }
    assert [n for n, _ in qformer.named_parameters()].count("cls.predictions.decoder.weight") == 0


def _blip2_key(key: str) -> str | None:
    """Our (LAVIS) key -> transformers Blip2QFormerModel key; None for the text-only parts."""
    if key == "bert.embeddings.LayerNorm.weight":
        return "layernorm.weight"
    if key == "bert.embeddings.LayerNorm.bias":
        return "layernorm.bias"
    if not key.startswith("bert.encoder.layer."):
        return None
    if re.match(r"bert\.encoder\.layer\.\d+\.(intermediate|output)\.", key):  # text feed-forward
        return None
    return key.removeprefix("bert.").replace(".self.", ".attention.")


@pytest.mark.numeric
def test_query_path_equals_transformers_blip2_qformer() -> None:
    """Same weights through an explicit key map: our forward == Blip2QFormerModel's."""
    from transformers import Blip2QFormerConfig, Blip2QFormerModel

    ours = _randomised(QFormer(TINY))
    config = Blip2QFormerConfig(
        vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=32, encoder_hidden_size=24, cross_attention_frequency=1,
        layer_norm_eps=TINY.layer_norm_eps, use_qformer_text_input=False,
    )  # fmt: skip
    reference = Blip2QFormerModel(config).eval()
    mapped = {_blip2_key(k): v for k, v in ours.state_dict().items() if _blip2_key(k) is not None}
    reference.load_state_dict(mapped, strict=True)  # the map covers every Blip2 tensor
    g = torch.Generator().manual_seed(1)
    queries, encoder = torch.randn(3, 8, 32, generator=g), torch.randn(3, 20, 24, generator=g)
    with torch.no_grad():
        expected = reference(query_embeds=queries, encoder_hidden_states=encoder).last_hidden_state
        got = ours(queries, encoder)
    assert got.shape == (3, 8, 32)
    # the same weights, two implementations (other summation orders): twice the first-order bound
    tolerance = float32_bound(TINY_QFORMER_CHAIN, float(expected.abs().max()), paths=2)
    torch.testing.assert_close(got, expected, rtol=0, atol=tolerance)


def test_build_mlp_indices_match_the_original() -> None:
    mlp = build_mlp(2, 32, 48)
    assert [type(m).__name__ for m in mlp] == ["Linear", "GELU", "Linear"]
    assert set(mlp.state_dict()) == {"0.weight", "0.bias", "2.weight", "2.bias"}


@pytest.mark.parametrize(
    ("cls", "prefix"), [(VisualProjector, "visual"), (AudioProjector, "audio")]
)
@pytest.mark.numeric
def test_projector_names_and_shapes(cls: type, prefix: str) -> None:
    projector = _randomised(cls(TINY, num_queries=6, llm_width=40))
    keys = set(projector.state_dict())
    assert {f"{prefix}_query_tokens", f"{prefix}_ln.weight", f"{prefix}_proj.2.weight",
            f"{prefix}_Qformer.bert.encoder.layer.0.crossattention.self.key.weight"} <= keys  # fmt: skip
    features = torch.randn(5, 20, 24)
    with torch.no_grad():
        out = projector(features)
    assert out.shape == (5, 6, 40)
    # Frames are projected independently: one frame alone gives the same tokens.
    with torch.no_grad():
        single = projector(features[2:3])
    # a batch of one rounds differently: the Q-former and the 2-layer projection MLP (<= 48 wide)
    tolerance = float32_bound(TINY_QFORMER_CHAIN + 2 * 48, float(out.abs().max()), paths=2)
    torch.testing.assert_close(single[0], out[2], rtol=0, atol=tolerance)


def test_projector_rejects_a_flat_input() -> None:
    with pytest.raises(ValueError, match=r"\[N, tokens, width\]"):
        VisualProjector(TINY, num_queries=2, llm_width=8)(torch.randn(20, 24))
