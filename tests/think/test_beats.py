"""BEATs audio encoder: official layout, strict checkpoint I/O, and numerics checked by hand."""

from __future__ import annotations

import logging
import math
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from float32_error import TINY_BEATS_CHAIN, float32_bound
from torch import nn

from tgs.errors import CheckpointKeyError, MissingWeightsError, WeightsError
from tgs.think.ref_thinker.beats import (
    TINY_BEATS_CONFIG,
    BEATs,
    BEATsConfig,
    build_tiny_beats,
    load_beats_checkpoint,
    save_beats_checkpoint,
    write_tiny_beats_checkpoint,
)
from tgs.think.ref_thinker.beats_layers import (
    BEATsEncoderLayer,
    WeightNormConv1d,
    _ScaleGradient,
    relative_position_bucket,
)

CHUNK = (10, 98, 128)  # 10 one-second chunks of a Ref-AVS clip, 98 fbank frames x 128 mel bins


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_beats_checkpoint(tmp_path_factory.mktemp("beats") / "tiny.pt", seed=0)


@pytest.fixture(scope="module")
def fbank() -> torch.Tensor:
    return torch.randn(CHUNK, generator=torch.Generator().manual_seed(7))


def _checkpoint(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


# ----------------------------------------------------------------------------- layout


def test_full_size_model_has_the_official_keys_and_shapes() -> None:
    with torch.device("meta"):
        model = BEATs(BEATsConfig())
    state = model.state_dict()
    assert len(state) == 252  # 2+1+3 front, 12 x 20 per layer, 2+2 norms, 2 classifier
    expected = {
        "patch_embedding.weight": (512, 1, 16, 16),
        "layer_norm.weight": (512,),
        "post_extract_proj.weight": (768, 512),
        "encoder.pos_conv.0.weight_g": (1, 1, 128),
        "encoder.pos_conv.0.weight_v": (768, 48, 128),
        "encoder.pos_conv.0.bias": (768,),
        "encoder.layers.0.self_attn.relative_attention_bias.weight": (320, 12),
        "encoder.layers.11.self_attn.relative_attention_bias.weight": (320, 12),
        "encoder.layers.5.self_attn.grep_linear.weight": (8, 64),
        "encoder.layers.5.self_attn.grep_a": (1, 12, 1, 1),
        "encoder.layers.5.self_attn.q_proj.weight": (768, 768),
        "encoder.layers.5.fc1.weight": (3072, 768),
        "encoder.layers.5.fc2.weight": (768, 3072),
        "encoder.layers.5.self_attn_layer_norm.bias": (768,),
        "encoder.layers.5.final_layer_norm.weight": (768,),
        "encoder.layer_norm.weight": (768,),
        "predictor.weight": (527, 768),
        "predictor.bias": (527,),
    }
    assert {key: tuple(state[key].shape) for key in expected} == expected
    assert "patch_embedding.bias" not in state  # conv_bias=False
    assert sum(p.numel() for p in model.parameters()) == 90_717_055
    # The official file order of the weight-norm tensors.
    assert [k for k in state if k.startswith("encoder.pos_conv")] == [
        "encoder.pos_conv.0.bias",
        "encoder.pos_conv.0.weight_g",
        "encoder.pos_conv.0.weight_v",
    ]


def test_relative_bias_table_is_one_module_shared_by_all_layers() -> None:
    model = build_tiny_beats()
    tables = {id(layer.self_attn.relative_attention_bias) for layer in model.encoder.layers}
    assert len(tables) == 1


def test_tiny_config_keeps_the_released_structure() -> None:
    released, tiny = BEATsConfig(), TINY_BEATS_CONFIG
    for name in ("input_patch_size", "deep_norm", "layer_norm_first", "relative_position_embedding",
                 "gru_rel_pos", "finetuned_model", "num_buckets", "max_distance", "activation_fn"):  # fmt: skip
        assert getattr(tiny, name) == getattr(released, name), name
    assert tiny.embed_dim != tiny.encoder_embed_dim  # keeps post_extract_proj


# ----------------------------------------------------------------------------- shapes


def test_output_shape_per_audio_chunk(fbank: torch.Tensor) -> None:
    model = build_tiny_beats()
    with torch.no_grad():
        features = model.extract_features(fbank)
    assert features.shape == (10, 48, TINY_BEATS_CONFIG.encoder_embed_dim)
    assert torch.isfinite(features).all()
    assert BEATs.num_tokens(98) == 48
    assert [BEATs.num_tokens(t) for t in (96, 111, 112, 998)] == [48, 48, 56, 496]


@pytest.mark.numeric
def test_tokens_are_time_major_patches(fbank: torch.Tensor) -> None:
    model = build_tiny_beats()
    conv = model.patch_embedding.weight[:, 0]  # [D, 16, 16]
    with torch.no_grad():
        patches = model.patch_embedding(fbank[:1].unsqueeze(1)).flatten(2).transpose(1, 2)[0]
        for token in (0, 7, 8, 21, 47):
            time, freq = divmod(token, 8)
            window = fbank[0, 16 * time : 16 * time + 16, 16 * freq : 16 * freq + 16]
            by_hand = (conv * window).sum(dim=(1, 2))
            # two float32 sums of the same 256 products in other orders: 2 x 256 u sum |w x|
            magnitude = (conv.abs() * window.abs()).sum(dim=(1, 2))
            assert torch.all((patches[token] - by_hand).abs() <= float32_bound(256, magnitude, paths=2))


def test_too_short_or_wrong_rank_input_is_rejected() -> None:
    model = build_tiny_beats()
    with pytest.raises(ValueError, match="at least 16 frames"):
        model.extract_features(torch.zeros(1, 10, 128))
    with pytest.raises(ValueError, match=r"\[batch, frames, mel_bins\]"):
        model.extract_features(torch.zeros(98, 128))


@pytest.mark.numeric
def test_batched_equals_single(fbank: torch.Tensor) -> None:
    model = build_tiny_beats()
    with torch.no_grad():
        batched = model.extract_features(fbank[:3])
        single = torch.cat([model.extract_features(fbank[i : i + 1]) for i in range(3)])
    # other batch shapes, other summation orders: twice the tiny model's first-order float32 bound
    tolerance = float32_bound(TINY_BEATS_CHAIN, float(single.abs().max()), paths=2)
    torch.testing.assert_close(batched, single, rtol=0, atol=tolerance)


# ----------------------------------------------------------------------------- padding


def test_all_false_padding_mask_equals_no_mask(fbank: torch.Tensor) -> None:
    """TGS-Agent passes an all-False mask; it must change nothing."""
    model = build_tiny_beats()
    with torch.no_grad():
        plain = model.extract_features(fbank)
        masked = model.extract_features(fbank, torch.zeros(fbank.shape[:2], dtype=torch.bool))
    assert torch.equal(plain, masked)


def test_padding_mask_follows_the_official_frame_grouping() -> None:
    model = build_tiny_beats()
    frames = torch.zeros(1, 98, dtype=torch.bool)
    frames[0, 88:] = True  # last 10 frames padded
    # 98 % 48 = 2 trailing entries dropped, then 48 groups of 2 frames: frames 88..95 -> tokens 44..47.
    tokens = model.token_padding_mask(frames, 48)
    assert tokens[0].nonzero().flatten().tolist() == [44, 45, 46, 47]


@pytest.mark.numeric
def test_padded_tokens_do_not_affect_the_others(fbank: torch.Tensor) -> None:
    model = build_tiny_beats()
    mask = torch.zeros(2, 98, dtype=torch.bool)
    mask[:, 88:] = True  # tokens 44..47 = time row 5, mel patches 4..7 = frames 80..95, bins 64..127
    changed = fbank[:2].clone()
    changed[:, 80:96, 64:] = torch.randn(2, 16, 64)
    with torch.no_grad():
        before = model.extract_features(fbank[:2], mask)
        after = model.extract_features(changed, mask)
        unmasked = model.extract_features(changed)
    # masked keys weigh exactly 0, but the inputs differ, so other roundings: the float32 bound
    tolerance = float32_bound(TINY_BEATS_CHAIN, float(before.abs().max()), paths=2)
    torch.testing.assert_close(before[:, :44], after[:, :44], rtol=0, atol=tolerance)
    assert not torch.allclose(unmasked[:, :44], after[:, :44], rtol=0, atol=100 * tolerance)  # the mask did act


@pytest.mark.numeric
def test_classify_averages_non_padded_tokens(fbank: torch.Tensor) -> None:
    model = build_tiny_beats()
    mask = torch.zeros(1, 98, dtype=torch.bool)
    mask[0, 88:] = True
    with torch.no_grad():
        features = model.extract_features(fbank[:1], mask)
        by_hand = torch.sigmoid(model.predictor(features[:, :44]).mean(dim=1))
        probs = model.classify(fbank[:1], mask)
    assert probs.shape == (1, 527)
    # the same features; the classifier (32 terms) and the mean (44) in other orders, then the
    # sigmoid (slope <= 1/4): 2 x 76 u x sum |w f| / 4
    head = model.predictor
    magnitude = ((features[:, :44].abs() @ head.weight.abs().T) + head.bias.abs()).mean(dim=1)
    assert torch.all((probs - by_hand).abs() <= float32_bound(32 + 44, magnitude, paths=2) / 4 + 2.0**-24)
    with pytest.raises(ValueError, match="no classifier"):
        BEATs(BEATsConfig(**{**TINY_BEATS_CONFIG.to_dict(), "finetuned_model": False})).classify(fbank[:1])


# ----------------------------------------------------------------------------- determinism


def test_build_is_deterministic_by_seed_and_leaves_global_rng_alone() -> None:
    state = torch.random.get_rng_state()
    first, again, other = build_tiny_beats(0), build_tiny_beats(0), build_tiny_beats(1)
    assert torch.equal(torch.random.get_rng_state(), state)
    for key, value in first.state_dict().items():
        assert torch.equal(value, again.state_dict()[key]), key
    assert not torch.equal(first.encoder.layers[0].fc1.weight, other.encoder.layers[0].fc1.weight)


def test_eval_mode_is_deterministic_and_train_mode_drops(fbank: torch.Tensor) -> None:
    config = BEATsConfig(**{**TINY_BEATS_CONFIG.to_dict(), "dropout": 0.3, "attention_dropout": 0.3})
    torch.manual_seed(0)
    model = BEATs(config).eval()
    assert not build_tiny_beats().training
    with torch.no_grad():
        assert torch.equal(model.extract_features(fbank[:2]), model.extract_features(fbank[:2]))
        model.train()
        assert not torch.equal(model.extract_features(fbank[:2]), model.extract_features(fbank[:2]))


def test_layer_wise_gradient_decay_scales_gradients_only() -> None:
    x = torch.ones(3, requires_grad=True)
    y = _ScaleGradient.apply(x, 0.6)
    assert torch.equal(y, x)
    y.sum().backward()
    torch.testing.assert_close(x.grad, torch.full((3,), 0.6))


# ----------------------------------------------------------------------------- numerics by hand


def test_relative_position_bucket_hand_table() -> None:
    # num_buckets=320, max_distance=800 (the released model): 160 per direction, 80 exact.
    # Large offsets: 80 + floor(log(|r| / 80) / log(10) * 80), capped at 159; + 160 if r > 0.
    table = {0: 0, 1: 161, -1: 1, 79: 239, -79: 79, 80: 240, -80: 80, 100: 247, -150: 101,
             200: 271, -400: 135, 799: 319, -800: 159, 5000: 319, -5000: 159}  # fmt: skip
    offsets = torch.tensor(list(table))
    assert relative_position_bucket(offsets, 320, 800).tolist() == list(table.values())
    # A small case: 12 buckets, max distance 8 -> 6 per direction, 3 exact.
    small = {0: 0, 1: 7, -2: 2, 3: 9, -4: 3, 5: 10, -6: 5, 40: 11, -40: 5}
    assert relative_position_bucket(torch.tensor(list(small)), 12, 8).tolist() == list(small.values())


def _bucket_by_hand(offset: int, num_buckets: int, max_distance: int) -> int:
    half = num_buckets // 2
    exact = half // 2
    base = half if offset > 0 else 0
    distance = abs(offset)
    if distance < exact:
        return base + distance
    wide = exact + int(math.log(distance / exact) / math.log(max_distance / exact) * (half - exact))
    return base + min(half - 1, wide)


def _layer_by_hand(layer: BEATsEncoderLayer, x: torch.Tensor, pad: torch.Tensor, buckets: tuple[int, int]) -> torch.Tensor:
    """One post-norm DeepNorm layer with gated relative bias, written out score by score."""
    attn = layer.self_attn
    batch, length, width = x.shape
    heads, dim = attn.num_heads, width // attn.num_heads
    alpha = (2 * 3) ** 0.25  # DeepNorm with 3 layers
    q, k, v = attn.q_proj(x), attn.k_proj(x), attn.v_proj(x)
    table = attn.relative_attention_bias.weight
    context = torch.zeros_like(x)
    for b in range(batch):
        for h in range(heads):
            part = slice(h * dim, (h + 1) * dim)
            for i in range(length):
                gate_in = attn.grep_linear(q[b, i, part])
                gate_a, gate_b = torch.sigmoid(gate_in[:4].sum()), torch.sigmoid(gate_in[4:].sum())
                gate = gate_a * (gate_b * attn.grep_a[0, h, 0, 0] - 1) + 2
                scores = []
                for j in range(length):
                    if pad[b, j]:
                        scores.append(torch.tensor(float("-inf"), dtype=x.dtype))
                        continue
                    bias = table[_bucket_by_hand(j - i, *buckets), h]
                    scores.append(torch.dot(q[b, i, part], k[b, j, part]) / math.sqrt(dim) + gate * bias)
                weights = torch.softmax(torch.stack(scores), dim=0)
                context[b, i, part] = sum(weights[j] * v[b, j, part] for j in range(length))
    y = F.layer_norm(alpha * x + attn.out_proj(context), (width,),
                     layer.self_attn_layer_norm.weight, layer.self_attn_layer_norm.bias)  # fmt: skip
    # The official "gelu" is the exact erf GELU evaluated in float32 whatever the input dtype.
    hidden = layer.fc2(F.gelu(layer.fc1(y).float()).to(x.dtype))
    return F.layer_norm(alpha * y + hidden, (width,), layer.final_layer_norm.weight, layer.final_layer_norm.bias)


def test_one_attention_layer_against_a_hand_computation() -> None:
    torch.manual_seed(3)
    buckets = (12, 8)
    layer = BEATsEncoderLayer(
        embed_dim=8, ffn_embed_dim=16, num_heads=2, dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
        activation_fn="gelu", layer_norm_first=False, deep_norm=True, num_layers=3,
        has_relative_attention_bias=True, num_buckets=buckets[0], max_distance=buckets[1], gru_rel_pos=True,
    ).double().eval()  # fmt: skip
    with torch.no_grad():
        for parameter in layer.parameters():
            parameter.copy_(torch.randn_like(parameter) * 0.5)
        x = torch.randn(2, 7, 8, dtype=torch.float64)
        pad = torch.zeros(2, 7, dtype=torch.bool)
        pad[1, 5:] = True
        position_bias = layer.self_attn.position_bias(7, 7)
        ours = layer(x, key_padding_mask=pad, position_bias=position_bias)
        by_hand = _layer_by_hand(layer, x, pad, buckets)
    # float64 both (u = 2**-53 ~ 1.1e-16): a layer of this width sums < 100 terms along any chain of
    # values < 10 after the layer norms, so |d| < 2 x 100 x 1.1e-16 x 10 ~ 2e-13; 1e-10 leaves room,
    # and any wrong term (a bucket, a gate, the mask) moves outputs by ~0.1.
    torch.testing.assert_close(ours, by_hand, rtol=1e-10, atol=1e-10)


@pytest.mark.numeric
def test_weight_norm_conv_matches_torch_weight_norm() -> None:
    torch.manual_seed(0)
    reference = nn.utils.parametrizations.weight_norm(nn.Conv1d(8, 8, 6, padding=3, groups=2), dim=2)
    ours = WeightNormConv1d(8, 6, groups=2)
    with torch.no_grad():
        ours.weight_g.copy_(reference.parametrizations.weight.original0)
        ours.weight_v.copy_(reference.parametrizations.weight.original1)
        ours.bias.copy_(reference.bias)
        x = torch.randn(2, 8, 11)
        # The weight g v / ||v|| (a norm of 32 squares, a division, a product: 35 u relative) then the
        # convolution (4 channels x 6 taps = 24 terms), each side in its own order: twice the bound.
        weight = ours.weight()
        magnitude = F.conv1d(x.abs(), weight.abs(), ours.bias.abs(), padding=3, groups=2)
        assert torch.all((ours(x) - reference(x)).abs() <= float32_bound(35 + 24, magnitude, paths=2))
        # weight = g * v / ||v||, the norm over channel dims for each kernel tap.
        v = ours.weight_v
        assert torch.all(
            (weight - ours.weight_g * v / v.norm(dim=(0, 1), keepdim=True)).abs() <= float32_bound(35, weight.abs(), 2)
        )


def test_old_style_weight_norm_state_dict_loads_into_our_conv() -> None:
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.nn.utils.weight_norm is deprecated, still the released format
        reference = nn.utils.weight_norm(nn.Conv1d(8, 8, 6, padding=3, groups=2), name="weight", dim=2)
    assert set(reference.state_dict()) == {"bias", "weight_g", "weight_v"}
    ours = WeightNormConv1d(8, 6, groups=2)
    ours.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 8, 11)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x))


# ----------------------------------------------------------------------------- checkpoint I/O


def test_round_trip_is_strict_and_exact(tiny_file: Path, fbank: torch.Tensor) -> None:
    checkpoint = _checkpoint(tiny_file)
    assert set(checkpoint) == {"cfg", "model", "label_dict"}
    assert checkpoint["cfg"] == TINY_BEATS_CONFIG.to_dict()
    loaded = load_beats_checkpoint(tiny_file)
    assert not loaded.training
    original = build_tiny_beats(0)
    with torch.no_grad():
        assert torch.equal(loaded.extract_features(fbank), original.extract_features(fbank))
    resaved = save_beats_checkpoint(loaded, tiny_file.parent / "again.pt")
    assert list(_checkpoint(resaved)["model"]) == list(checkpoint["model"])


def _write(path: Path, checkpoint: dict) -> Path:
    torch.save(checkpoint, path)
    return path


def test_renamed_key_fails_naming_both_keys(tiny_file: Path, tmp_path: Path) -> None:
    checkpoint = _checkpoint(tiny_file)
    model = checkpoint["model"]
    model["encoder.layers.1.fc_1.weight"] = model.pop("encoder.layers.1.fc1.weight")
    with pytest.raises(CheckpointKeyError) as caught:
        load_beats_checkpoint(_write(tmp_path / "renamed.pt", checkpoint))
    assert caught.value.missing == ["encoder.layers.1.fc1.weight"]
    assert caught.value.unexpected == ["encoder.layers.1.fc_1.weight"]
    assert "encoder.layers.1.fc1.weight" in str(caught.value)
    assert "renamed.pt" in str(caught.value)


def test_missing_classifier_fails(tiny_file: Path, tmp_path: Path) -> None:
    checkpoint = _checkpoint(tiny_file)
    del checkpoint["model"]["predictor.bias"]
    with pytest.raises(CheckpointKeyError) as caught:
        load_beats_checkpoint(_write(tmp_path / "missing.pt", checkpoint))
    assert caught.value.missing == ["predictor.bias"] and caught.value.unexpected == []


def test_parametrization_weight_norm_names_are_mapped(tiny_file: Path, tmp_path: Path, fbank: torch.Tensor) -> None:
    checkpoint = _checkpoint(tiny_file)
    model = checkpoint["model"]
    model["encoder.pos_conv.0.parametrizations.weight.original0"] = model.pop("encoder.pos_conv.0.weight_g")
    model["encoder.pos_conv.0.parametrizations.weight.original1"] = model.pop("encoder.pos_conv.0.weight_v")
    loaded = load_beats_checkpoint(_write(tmp_path / "parametrized.pt", checkpoint))
    with torch.no_grad():
        assert torch.equal(loaded.extract_features(fbank[:2]), build_tiny_beats(0).extract_features(fbank[:2]))


def test_both_weight_norm_namings_at_once_fail(tiny_file: Path, tmp_path: Path) -> None:
    checkpoint = _checkpoint(tiny_file)
    model = checkpoint["model"]
    model["encoder.pos_conv.0.parametrizations.weight.original0"] = model["encoder.pos_conv.0.weight_g"].clone()
    with pytest.raises(CheckpointKeyError, match="twice"):
        load_beats_checkpoint(_write(tmp_path / "both.pt", checkpoint))


def test_disagreeing_copies_of_the_shared_bias_table_fail(tiny_file: Path, tmp_path: Path) -> None:
    checkpoint = _checkpoint(tiny_file)
    key = "encoder.layers.1.self_attn.relative_attention_bias.weight"
    checkpoint["model"][key] = checkpoint["model"][key] + 1.0
    with pytest.raises(WeightsError, match="shared"):
        load_beats_checkpoint(_write(tmp_path / "unshared.pt", checkpoint))


def test_shape_mismatch_with_cfg_fails(tiny_file: Path, tmp_path: Path) -> None:
    checkpoint = _checkpoint(tiny_file)
    checkpoint["cfg"]["predictor_class"] = 10
    with pytest.raises(WeightsError, match=r"predictor\.weight: checkpoint \(527, 32\), model \(10, 32\)"):
        load_beats_checkpoint(_write(tmp_path / "shape.pt", checkpoint))


def test_unknown_cfg_key_fails_naming_it(tiny_file: Path, tmp_path: Path) -> None:
    checkpoint = _checkpoint(tiny_file)
    checkpoint["cfg"]["encoder_wings"] = 2
    with pytest.raises(WeightsError, match="encoder_wings"):
        load_beats_checkpoint(_write(tmp_path / "unknown.pt", checkpoint))


def test_missing_cfg_key_takes_the_default_and_logs(
    tiny_file: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    checkpoint = _checkpoint(tiny_file)
    del checkpoint["cfg"]["max_distance"]
    checkpoint["cfg"]["encoder_layerdrop"] = 0.0  # TGS-Agent's override, a valid cfg value
    with caplog.at_level(logging.WARNING, logger="tgs.think.ref_thinker.beats"):
        model = load_beats_checkpoint(_write(tmp_path / "partial.pt", checkpoint))
    assert model.config.max_distance == 800
    assert "max_distance=800" in caplog.text


def test_bad_cfg_values_are_rejected() -> None:
    with pytest.raises(ValueError, match="encoder_layers: expected int"):
        BEATsConfig.from_dict({"encoder_layers": 2.5})
    with pytest.raises(ValueError, match="deep_norm and layer_norm_first"):
        BEATsConfig(layer_norm_first=True)
    with pytest.raises(ValueError, match="not divisible"):
        BEATsConfig(encoder_attention_heads=5)


_UNPICKLED: list[bool] = []


def _record_unpickling() -> dict:
    _UNPICKLED.append(True)
    return {}


class _RunsCodeWhenUnpickled:
    def __reduce__(self):
        return (_record_unpickling, ())


def test_file_pickling_other_objects_is_refused_without_unpickling(tiny_file: Path, tmp_path: Path) -> None:
    checkpoint = _checkpoint(tiny_file)
    checkpoint["cfg"] = _RunsCodeWhenUnpickled()
    path = _write(tmp_path / "unsafe.pt", checkpoint)
    _UNPICKLED.clear()
    with pytest.raises(WeightsError, match="refusing to load") as caught:
        load_beats_checkpoint(path)
    assert _UNPICKLED == []
    assert "_record_unpickling" in str(caught.value)  # torch names the offending global
    torch.load(path, weights_only=False)  # control: a full unpickle would have run the code
    assert _UNPICKLED == [True]


def test_unusable_files_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(MissingWeightsError, match="not found"):
        load_beats_checkpoint(tmp_path / "absent.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(WeightsError, match="cannot read"):
        load_beats_checkpoint(garbage)
    with pytest.raises(WeightsError, match="expected a dict with 'cfg' and 'model'"):
        load_beats_checkpoint(_write(tmp_path / "bare.pt", {"weights": {}}))
