"""The tiny / full-size model builders of tgs.testing.tiny_vision."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tgs.testing.tiny_vision import (
    build_tiny_sam2,
    full_size_config,
    tiny_bert_vocab,
)


def test_vocab_keeps_the_ids_grounding_dino_hard_codes() -> None:
    from transformers.models.grounding_dino.modeling_grounding_dino import SPECIAL_TOKENS

    vocab = tiny_bert_vocab()
    by_id = {i: t for t, i in vocab.items()}
    assert [by_id[i] for i in SPECIAL_TOKENS] == ["[CLS]", "[SEP]", ".", "?"]
    assert vocab["[PAD]"] == 0 and vocab["[UNK]"] == 100 and vocab["[MASK]"] == 103
    assert len(vocab) == len(set(vocab.values())) == max(vocab.values()) + 1


def test_captions_tokenize_into_words_not_unknowns() -> None:
    from transformers import BertTokenizer

    tok = BertTokenizer(vocab=tiny_bert_vocab(), do_lower_case=True)
    ids = tok("The man playing the Guitar. xylophone?")["input_ids"]
    assert ids[0] == 101 and ids[-1] == 102 and 1012 in ids and 1029 in ids
    assert tok.unk_token_id not in ids  # unknown words fall back to ##-pieces


def test_builders_are_deterministic_by_seed(tmp_path: Path) -> None:
    a = load_file(build_tiny_sam2(tmp_path / "a", seed=0) / "model.safetensors")
    b = load_file(build_tiny_sam2(tmp_path / "b", seed=0) / "model.safetensors")
    c = load_file(build_tiny_sam2(tmp_path / "c", seed=1) / "model.safetensors")
    assert a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_full_size_configs_match_the_released_checkpoints() -> None:
    from transformers import Sam2Config

    large = full_size_config("sam2.1-hiera-large").vision_config
    assert large.backbone_config.blocks_per_stage == [2, 6, 36, 4]
    assert large.backbone_config.embed_dim_per_stage == [144, 288, 576, 1152]
    assert large.backbone_config.global_attention_blocks == [23, 33, 43]
    assert large.backbone_config.window_size_per_stage == [8, 4, 16, 8]
    assert large.backbone_channel_list == [1152, 576, 288, 144]
    small = full_size_config("sam2.1-hiera-small").vision_config.backbone_config
    assert small.blocks_per_stage == [1, 2, 11, 2] and small.global_attention_blocks == [7, 10, 13]
    # transformers' defaults are hiera-tiny, as its docs claim
    tiny = full_size_config("sam2.1-hiera-tiny").vision_config.backbone_config.to_dict()
    default = Sam2Config().vision_config.backbone_config.to_dict()
    assert tiny == default
    video = full_size_config("sam2.1-hiera-large", video=True)
    assert video.num_maskmem == 7 and video.memory_attention_num_layers == 4
    gd = full_size_config("grounding-dino-tiny")
    assert gd.backbone_config.depths == [2, 2, 6, 2] and gd.backbone_config.num_heads == [3, 6, 12, 24]
    assert gd.num_queries == 900 and gd.text_config.vocab_size == 30522


def test_unknown_full_size_name_lists_the_choices() -> None:
    with pytest.raises(ValueError, match=r"sam2\.1-hiera-large"):
        full_size_config("sam3-huge")
