"""Ref-Thinker model: original key names, splicing, strict save/load."""

from __future__ import annotations

import json

import pytest
import torch
from float32_error import TINY_REF_THINKER_CHAIN, float32_bound
from ref_thinker_helpers import random_inputs, tiny_model_dir
from safetensors.torch import load_file, save_file

from tgs.errors import CheckpointKeyError, MissingWeightsError, WeightsError
from tgs.think.ref_thinker.checkpoint import WEIGHTS_NAME
from tgs.think.ref_thinker.configuration import RefThinkerConfig
from tgs.think.ref_thinker.modeling import RefThinkerForCausalLM, splice_multimodal


@pytest.fixture(scope="module")
def model() -> RefThinkerForCausalLM:
    return RefThinkerForCausalLM.from_pretrained(tiny_model_dir())


def test_default_config_is_the_paper_model() -> None:
    config = RefThinkerConfig()
    assert (config.vocab_size, config.hidden_size, config.num_hidden_layers) == (32021, 4096, 32)
    assert config.token_id("<image>") == 32000 and config.token_id("</box>") == 32020
    assert (config.video_token_index, config.audio_token_index) == (32003, 32006)
    assert config.vision_feature_layer == 23 and config.vision_config["num_hidden_layers"] == 24
    assert config.patches_per_frame == 256
    assert (config.num_video_query_tokens, config.num_audio_query_tokens, config.num_frames) == (32, 32, 10)
    qformer = config.qformer(config.vision_width)
    assert (qformer.hidden_size, qformer.num_hidden_layers, qformer.encoder_width) == (768, 2, 1024)
    assert config.qformer(config.audio_width).encoder_width == 768


def test_config_rejects_a_feature_layer_outside_clip() -> None:
    with pytest.raises(ValueError, match="outside CLIP"):
        RefThinkerConfig(vision_config={"num_hidden_layers": 3, "hidden_size": 32}, vision_feature_layer=23)


def test_state_dict_keys_are_the_original_ones(model: RefThinkerForCausalLM) -> None:
    keys = set(model.state_dict())
    for key in (
        "model.embed_tokens.weight",
        "lm_head.weight",
        "model.layers.0.self_attn.q_proj.base_layer.weight",
        "model.layers.1.mlp.down_proj.lora_B.default.weight",
        "model.visual_encoder.vision_tower.vision_model.encoder.layers.2.self_attn.q_proj.weight",
        "model.visual_encoder.vision_tower.vision_model.embeddings.class_embedding",
        "model.vl_projector.visual_Qformer.bert.encoder.layer.0.crossattention.self.key.weight",
        "model.vl_projector.visual_query_tokens",
        "model.vl_projector.visual_proj.2.weight",
        "model.al_projector.audio_Qformer.cls.predictions.bias",
        "model.audio_encoder.audio_encoder.encoder.layers.0.self_attn.k_proj.weight",
    ):
        assert key in keys, key
    lora = [k for k in keys if "lora_" in k]
    assert len(lora) == 2 * 7 * 2  # 2 layers x 7 projections x (A, B)
    assert all(k.startswith("model.layers.") for k in lora), "LoRA must not reach CLIP or BEATs"


def test_clip_state_dict_in_flat_naming_loads(model: RefThinkerForCausalLM) -> None:
    tower = model.model.visual_encoder.vision_tower
    flat = {k.removeprefix("vision_model."): v.clone() + 1 for k, v in tower.state_dict().items()}
    assert not any(k.startswith("vision_model.") for k in flat)
    fresh = type(tower)(model.config.vision)
    fresh.load_state_dict(flat, strict=True)
    torch.testing.assert_close(  # the same x + 1 on the same values: equal
        fresh.vision_model.embeddings.class_embedding, tower.vision_model.embeddings.class_embedding + 1, rtol=0, atol=0
    )


@pytest.mark.parametrize(
    ("layer", "select"), [(2, "patch"), (2, "cls_patch"), (0, "patch"), (-1, "patch"), (-3, "patch")]
)
def test_visual_features_equal_a_standalone_clips_hidden_state(model: RefThinkerForCausalLM, layer, select) -> None:
    """Bit-identical to ``hidden_states[layer]`` of a CLIPVisionModel that is no submodule of anything."""
    from transformers import CLIPVisionModel

    from tgs.think.ref_thinker.modeling import VisualEncoder

    encoder = VisualEncoder(model.config)
    encoder.load_state_dict(model.model.visual_encoder.state_dict())
    encoder.feature_layer, encoder.select_feature = layer, select
    reference = CLIPVisionModel(model.config.vision)
    reference.load_state_dict(model.model.visual_encoder.vision_tower.vision_model.state_dict())
    frames = random_inputs(model.config)[0][0, :2]
    with torch.no_grad():
        hidden = reference(frames, output_hidden_states=True).hidden_states
        features = encoder(frames)
    assert len(hidden) == 3 + 1  # the reference itself is sound: embeddings + one per layer
    expected = hidden[layer] if select == "cls_patch" else hidden[layer][:, 1:]
    assert features.shape == (2, 257 if select == "cls_patch" else 256, 32)
    assert torch.equal(features, expected)  # same modules, same inputs, same order: no rounding difference


def test_features_and_logits_do_not_depend_on_an_earlier_output_hidden_states_call() -> None:
    """transformers 5 re-installs the nested CLIP's capturing hooks on the LLM's first
    ``output_hidden_states`` call, after which CLIP returns each layer twice; the features
    must not read those hidden states. A fresh model: the fixture's hook state is shared."""
    fresh = RefThinkerForCausalLM.from_pretrained(tiny_model_dir())
    config = fresh.config
    ids = torch.tensor([[1, 40, config.video_token_index, 41, config.audio_token_index, 42]])
    pixels, fbank = random_inputs(config)
    frames = pixels[0, :2]
    with torch.no_grad():
        fresh.model.visual_encoder.vision_tower(frames, output_hidden_states=True)  # CLIP's hooks go in first
        features = fresh.model.visual_encoder(frames)
        logits = fresh(input_ids=ids, pixel_values=pixels, audio_fbank=fbank).logits[:, -1]
        fresh(input_ids=ids, pixel_values=pixels, audio_fbank=fbank, output_hidden_states=True)
        after = fresh.model.visual_encoder(frames)
        logits_after = fresh(input_ids=ids, pixel_values=pixels, audio_fbank=fbank).logits[:, -1]
    assert torch.equal(after, features)
    assert torch.equal(logits_after, logits)


@pytest.mark.numeric
def test_encoders_give_one_token_group_per_frame(model: RefThinkerForCausalLM) -> None:
    pixels, fbank = random_inputs(model.config, batch=2)
    with torch.no_grad():
        video, audio = model.encode_video(pixels), model.encode_audio(fbank)
        first_alone = model.encode_video(pixels[:1])
    assert video.shape == (2, 10 * 8, 32) and audio.shape == (2, 10 * 8, 32)
    # a batch of one rounds differently: twice the tiny model's first-order float32 bound
    tolerance = float32_bound(TINY_REF_THINKER_CHAIN, float(video.abs().max()), paths=2)
    torch.testing.assert_close(first_alone[0], video[0], rtol=0, atol=tolerance)


def test_splice_replaces_placeholders_and_left_pads() -> None:
    embed = torch.nn.Embedding(20, 3)
    ids = torch.tensor([[2, 2, 1, 5, 9, 6, 8, 7], [1, 5, 6, 9, 6, 6, 8, 6]])
    mask = torch.tensor([[0, 0, 1, 1, 1, 1, 1, 1], [1] * 8])
    video = torch.randn(2, 4, 3)
    audio = torch.randn(2, 2, 3)
    out = splice_multimodal(ids, mask, embed, {9: video, 8: audio}, pad_token_id=2)
    # row 1: 8 tokens - 2 placeholders + 6 features = 12; row 0: 6 - 2 + 6 = 10, so 2 pads
    assert out.inputs_embeds.shape == (2, 12, 3)
    assert out.attention_mask.tolist() == [[0, 0] + [1] * 10, [1] * 12]
    assert out.position_ids.tolist() == [[0, 0, *range(10)], list(range(12))]
    with torch.no_grad():
        row0 = out.inputs_embeds[0]
        torch.testing.assert_close(row0[:2], embed(torch.tensor([2, 2])))
        torch.testing.assert_close(row0[2:4], embed(torch.tensor([1, 5])))
        torch.testing.assert_close(row0[4:8], video[0])
        torch.testing.assert_close(row0[8], embed(torch.tensor(6)))
        torch.testing.assert_close(row0[9:11], audio[0])
        torch.testing.assert_close(row0[11], embed(torch.tensor(7)))


def test_splice_needs_each_placeholder_once() -> None:
    embed = torch.nn.Embedding(20, 3)
    ids = torch.tensor([[1, 9, 9, 4]])
    with pytest.raises(ValueError, match="expected one placeholder token 9, found 2"):
        splice_multimodal(ids, torch.ones_like(ids), embed, {9: torch.zeros(1, 2, 3)}, pad_token_id=2)


def test_forward_with_modalities_equals_forward_on_spliced_embeddings(model: RefThinkerForCausalLM) -> None:
    config = model.config
    ids = torch.tensor([[2, 1, 40, config.video_token_index, 41, config.audio_token_index, 42]])
    mask = torch.tensor([[0, 1, 1, 1, 1, 1, 1]])
    pixels, fbank = random_inputs(config)
    with torch.no_grad():
        direct = model(input_ids=ids, attention_mask=mask, pixel_values=pixels, audio_fbank=fbank).logits
        spliced = model.prepare_multimodal_inputs(ids, mask, pixels, fbank)
        manual = model(inputs_embeds=spliced.inputs_embeds, attention_mask=spliced.attention_mask,
                       position_ids=spliced.position_ids).logits  # fmt: skip
    assert direct.shape == (1, 6 - 2 + 2 * 80, config.vocab_size)  # the pad is dropped, placeholders expand
    torch.testing.assert_close(direct, manual, rtol=0, atol=0)  # the same operations on the same values


def test_save_and_load_round_trip(model: RefThinkerForCausalLM, tmp_path) -> None:
    model.save_pretrained(tmp_path)
    again = RefThinkerForCausalLM.from_pretrained(tmp_path)
    qformer = again.model.vl_projector.visual_Qformer
    assert qformer.cls.predictions.decoder.weight is qformer.bert.embeddings.word_embeddings.weight
    config = model.config
    ids = torch.tensor([[1, 40, config.video_token_index, config.audio_token_index, 41]])
    pixels, fbank = random_inputs(config)
    with torch.no_grad():
        a = model(input_ids=ids, pixel_values=pixels, audio_fbank=fbank).logits
        b = again(input_ids=ids, pixel_values=pixels, audio_fbank=fbank).logits
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def _rewrite_weights(directory, edit) -> None:
    path = directory / WEIGHTS_NAME
    tensors = load_file(str(path))
    edit(tensors)
    save_file(tensors, str(path))


@pytest.fixture
def model_copy(tmp_path):
    import shutil

    target = tmp_path / "model"
    shutil.copytree(tiny_model_dir(), target)
    return target


def test_a_missing_key_is_named(model_copy) -> None:
    key = "model.vl_projector.visual_proj.2.bias"
    _rewrite_weights(model_copy, lambda t: t.pop(key))
    with pytest.raises(CheckpointKeyError, match=key.replace(".", r"\.")) as info:
        RefThinkerForCausalLM.from_pretrained(model_copy)
    assert info.value.missing == [key] and info.value.unexpected == []


def test_an_unexpected_key_is_named(model_copy) -> None:
    key = "model.vl_projector.extra_head.weight"
    _rewrite_weights(model_copy, lambda t: t.__setitem__(key, torch.zeros(2)))
    with pytest.raises(CheckpointKeyError) as info:
        RefThinkerForCausalLM.from_pretrained(model_copy)
    assert info.value.unexpected == [key] and info.value.missing == []


def test_a_wrong_shape_is_named(model_copy) -> None:
    key = "model.al_projector.audio_query_tokens"
    _rewrite_weights(model_copy, lambda t: t.__setitem__(key, torch.zeros(1, 3, 32)))
    with pytest.raises(WeightsError, match="audio_query_tokens"):
        RefThinkerForCausalLM.from_pretrained(model_copy)


def test_a_config_without_lora_does_not_load_lora_weights(model_copy) -> None:
    config = json.loads((model_copy / "config.json").read_text())
    config["lora"] = None
    (model_copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointKeyError, match="lora_A"):
        RefThinkerForCausalLM.from_pretrained(model_copy)


def test_not_a_model_directory(tmp_path) -> None:
    with pytest.raises(MissingWeightsError, match="convert-ref-thinker"):
        RefThinkerForCausalLM.from_pretrained(tmp_path)
