"""The training recipe: the paper's values, file loading, validation, shipped DeepSpeed configs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tgs.errors import DataError
from tgs.think.ref_thinker.checkpoint import LLM_LORA_TARGETS
from tgs.train.config import DEEPSPEED_CONFIGS, TrainRecipe, deepspeed_config_path


def test_defaults_are_the_papers_recipe() -> None:
    r = TrainRecipe()
    assert (r.lora_r, r.lora_alpha, r.lora_dropout) == (8, 16.0, 0.05)
    assert set(r.lora_target_modules) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert set(r.trainable_modules) == {"vl_projector", "al_projector", "embed_tokens", "lm_head"}
    assert (r.learning_rate, r.num_train_epochs, r.per_device_train_batch_size, r.gradient_accumulation_steps) == (
        1e-4, 6.0, 4, 8,
    )  # fmt: skip
    assert (r.warmup_ratio, r.weight_decay, r.bf16, r.gradient_checkpointing, r.seed) == (0.03, 0.0, True, True, 42)
    assert (r.lr_scheduler, r.prompt_variant, r.save_strategy, r.save_total_limit) == (
        "deepspeed_warmup_decay", "training", "epoch", 10,
    )  # fmt: skip
    assert r.report_to == () and r.deepspeed is None and r.missing_targets == "error"
    assert r.global_batch_size(world_size=4) == 128
    # 14113 train rows on 4 GPUs: ceil(14113 / 16) = 883 micro-batches per GPU, // 8 = 110 steps.
    assert r.steps_per_epoch(14113, world_size=4) == 110


def test_lora_settings_use_the_converters_regex() -> None:
    lora = TrainRecipe().lora
    assert lora == {"r": 8, "lora_alpha": 16.0, "lora_dropout": 0.05, "target_modules": LLM_LORA_TARGETS}


def test_a_subset_of_lora_targets_matches_only_those_llama_projections() -> None:
    pattern = re.compile(TrainRecipe(lora_target_modules=("q_proj", "v_proj", "down_proj")).lora["target_modules"])
    names = {
        "model.layers.0.self_attn.q_proj": True,
        "model.layers.11.self_attn.v_proj": True,
        "model.layers.3.mlp.down_proj": True,
        "model.layers.0.self_attn.k_proj": False,
        "model.layers.0.mlp.up_proj": False,
        "model.visual_encoder.vision_tower.vision_model.encoder.layers.0.self_attn.q_proj": False,
    }
    for name, expected in names.items():
        assert bool(pattern.fullmatch(name)) is expected, name


def test_json_and_yaml_files_override_some_fields(tmp_path: Path) -> None:
    (tmp_path / "r.json").write_text(json.dumps({"learning_rate": 2e-4, "splits": "train", "max_steps": 5}))
    (tmp_path / "r.yaml").write_text("learning_rate: 0.0002\nsplits: [train, val]\nbf16: false\n")
    from_json = TrainRecipe.from_file(tmp_path / "r.json")
    from_yaml = TrainRecipe.from_file(tmp_path / "r.yaml")
    assert (from_json.learning_rate, from_json.splits, from_json.max_steps, from_json.lora_r) == (2e-4, ("train",), 5, 8)
    assert (from_yaml.splits, from_yaml.bf16, from_yaml.num_train_epochs) == (("train", "val"), False, 6.0)
    assert TrainRecipe.from_dict(from_yaml.to_dict()) == from_yaml


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"learning_rat": 1e-4}, "did you mean 'learning_rate'"),
        ({"lora_r": "8"}, "lora_r must be an integer"),
        ({"bf16": 1}, "bf16 must be true or false"),
        ({"lora_r": 0}, "lora_r must be >= 1"),
        ({"lr_scheduler": "step"}, "lr_scheduler: expected one of"),
        ({"trainable_modules": ["vl_projector", "clip"]}, "trainable_modules: unknown ['clip']"),
        ({"lora_target_modules": ["qkv"]}, "lora_target_modules: unknown ['qkv']"),
        ({"report_to": ["mlflow"]}, "report_to: unknown"),
        ({"format": "other/9"}, "format 'other/9'"),
    ],
)
def test_bad_recipes_name_the_problem(tmp_path: Path, content: dict, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(content))
    with pytest.raises(DataError) as err:
        TrainRecipe.from_file(path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_shipped_deepspeed_configs_hold_the_papers_values() -> None:
    configs = {name: json.loads(deepspeed_config_path(name).read_text()) for name in DEEPSPEED_CONFIGS}
    offload = configs["zero2_offload"]
    assert offload["zero_optimization"]["stage"] == 2
    assert offload["zero_optimization"]["offload_optimizer"] == {"device": "cpu"}
    assert offload["optimizer"]["type"] == "AdamW" and offload["optimizer"]["params"]["torch_adam"] is True
    assert configs["zero2"]["zero_optimization"]["stage"] == 2 and "offload_optimizer" not in configs["zero2"]["zero_optimization"]
    assert configs["zero3"]["zero_optimization"]["stage"] == 3
    assert configs["zero3"]["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True
    for config in configs.values():
        # Batch sizes, accumulation, clipping and precision come from the recipe ("auto"); the schedule
        # too: no config has a scheduler block, so the recipe's schedule runs with or without DeepSpeed.
        assert config["train_micro_batch_size_per_gpu"] == config["gradient_accumulation_steps"] == "auto"
        assert config["gradient_clipping"] == "auto" and config["bf16"]["enabled"] == "auto"
        assert "scheduler" not in config and config["fp16"]["enabled"] is False


def test_unknown_deepspeed_config_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="zero2_offload"):
        deepspeed_config_path(str(tmp_path / "nope.json"))
