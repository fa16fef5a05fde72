"""The release converter, end to end on a fake release keyed exactly like TGS-Agent's."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest
import torch
from float32_error import TINY_REF_THINKER_CHAIN, float32_bound
from ref_thinker_helpers import random_inputs
from safetensors import safe_open

from tgs.errors import CheckpointKeyError, DataError, MissingWeightsError, WeightsError
from tgs.testing.tiny_thinker import FakeRelease, write_fake_release
from tgs.think.ref_thinker.convert import ReleaseFiles, convert_ref_thinker
from tgs.think.ref_thinker.modeling import RefThinkerForCausalLM

TINY_ARCH = {"vision_feature_layer": 2, "qformer_attention_heads": 4}


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> FakeRelease:
    return write_fake_release(tmp_path_factory.mktemp("release"), seed=0)


@pytest.fixture(scope="module")
def converted(release: FakeRelease, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("converted") / "ref-thinker"
    convert_ref_thinker(
        ReleaseFiles.discover(release.release_dir), release.llama_dir, release.clip_dir, release.beats_path, out,
        dtype=torch.float32, **TINY_ARCH,
    )  # fmt: skip
    return out


def _logits(model: torch.nn.Module, config) -> torch.Tensor:
    ids = torch.tensor([[1, 300, 301, config.video_token_index, 302, config.audio_token_index, 303]])
    pixels, fbank = random_inputs(config, seed=5)
    with torch.no_grad():
        return model(input_ids=ids, pixel_values=pixels, audio_fbank=fbank).logits


def _edited_release(release: FakeRelease, tmp_path: Path, which: str, edit) -> ReleaseFiles:
    """A copy of the two released files with ``edit`` applied to one of them."""
    files = {}
    for name, path in (("non_lora", release.non_lora_trainables), ("finetune", release.finetune_weights)):
        state = torch.load(path, weights_only=True)
        if name == which:
            edit(state)
        target = tmp_path / name / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, target)
        files[name] = target
    return ReleaseFiles(files["non_lora"], files["finetune"])


def _convert(release: FakeRelease, files: ReleaseFiles, out: Path, **kwargs) -> object:
    return convert_ref_thinker(files, release.llama_dir, release.clip_dir, release.beats_path, out,
                               dtype=torch.float32, **TINY_ARCH, **kwargs)  # fmt: skip


def test_release_files_are_keyed_like_the_original(release: FakeRelease) -> None:
    non_lora = torch.load(release.non_lora_trainables, weights_only=True)
    finetune = torch.load(release.finetune_weights, weights_only=True)
    assert release.finetune_weights.parent.name == "checkpoint-551"
    assert "base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight" in finetune
    assert "base_model.model.model.vl_projector.visual_Qformer.bert.embeddings.word_embeddings.weight" in finetune
    assert {"base_model.model.model.embed_tokens.weight", "base_model.model.lm_head.weight"} <= set(non_lora)
    assert not any("lora_" in k for k in non_lora)
    assert not any("vision_tower" in k or "audio_encoder" in k for k in {*non_lora, *finetune})
    # named_parameters() does not list the tied MLM decoder, so the released files lack it
    assert not any(k.endswith("cls.predictions.decoder.weight") for k in {*non_lora, *finetune})
    assert non_lora["base_model.model.model.embed_tokens.weight"].shape[0] == 480 + 21


def test_converted_model_reproduces_the_released_model(release: FakeRelease, converted: Path) -> None:
    model = RefThinkerForCausalLM.from_pretrained(converted)
    assert model.config.lora["r"] == 8 and model.config.lora["lora_alpha"] == 16
    converted_logits, released = _logits(model, model.config), _logits(release.model, model.config)
    # the same weights (bit for bit) in the same model class: any difference is summation order
    tolerance = float32_bound(TINY_REF_THINKER_CHAIN, float(released.abs().max()), paths=2)
    torch.testing.assert_close(converted_logits, released, rtol=0, atol=tolerance)
    record = json.loads((converted / "conversion.json").read_text())
    assert record["from_source"]["non_lora_trainables.bin"] > 0 and record["superseded_base"] == [
        "model.embed_tokens.weight", "lm_head.weight"]  # fmt: skip
    assert record["recomputed_buffers"] == [
        "model.al_projector.audio_Qformer.bert.embeddings.position_ids",
        "model.vl_projector.visual_Qformer.bert.embeddings.position_ids",
    ]
    assert (converted / "preprocessor_config.json").is_file()


def test_non_lora_trainables_override_the_checkpoint_projectors(release: FakeRelease, converted: Path) -> None:
    key = "model.vl_projector.visual_proj.0.weight"
    final = torch.load(release.non_lora_trainables, weights_only=True)["base_model.model." + key]
    earlier = torch.load(release.finetune_weights, weights_only=True)["base_model.model." + key]
    assert not torch.equal(final, earlier)
    with safe_open(str(converted / "model.safetensors"), framework="pt") as handle:
        torch.testing.assert_close(handle.get_tensor(key), final, rtol=0, atol=0)


def test_merged_lora_gives_the_same_logits(release: FakeRelease, tmp_path: Path) -> None:
    out = tmp_path / "merged"
    report = _convert(release, ReleaseFiles.discover(release.release_dir), out, merge_lora=True)
    model = RefThinkerForCausalLM.from_pretrained(out)
    assert report.merged_lora and model.config.lora is None
    assert not any("lora_" in k for k in model.state_dict())
    # W + s*B@A vs W x + s*B(A x): fp32 rounding only, twice the first-order bound (r = 8 more terms)
    merged, released = _logits(model, model.config), _logits(release.model, model.config)
    tolerance = float32_bound(TINY_REF_THINKER_CHAIN + 16, float(released.abs().max()), paths=2)
    torch.testing.assert_close(merged, released, rtol=0, atol=tolerance)


def test_bf16_storage(release: FakeRelease, tmp_path: Path) -> None:
    out = tmp_path / "bf16"
    convert_ref_thinker(ReleaseFiles.discover(release.release_dir), release.llama_dir, release.clip_dir,
                        release.beats_path, out, **TINY_ARCH)  # fmt: skip
    with safe_open(str(out / "model.safetensors"), framework="pt") as handle:
        assert handle.get_tensor("model.embed_tokens.weight").dtype == torch.bfloat16
        assert handle.get_tensor("model.vl_projector.visual_Qformer.bert.embeddings.position_ids").dtype == torch.int64


def test_a_missing_released_key_is_named(release: FakeRelease, tmp_path: Path) -> None:
    key = "base_model.model.model.embed_tokens.weight"
    files = _edited_release(release, tmp_path, "non_lora", lambda s: s.pop(key))
    with pytest.raises(CheckpointKeyError) as info:
        _convert(release, files, tmp_path / "out")
    assert info.value.missing == ["model.embed_tokens.weight"]
    assert not (tmp_path / "out").exists()


def test_a_missing_lora_tensor_is_named(release: FakeRelease, tmp_path: Path) -> None:
    key = "base_model.model.model.layers.1.mlp.up_proj.lora_B.default.weight"
    files = _edited_release(release, tmp_path, "finetune", lambda s: s.pop(key))
    with pytest.raises(CheckpointKeyError) as info:
        _convert(release, files, tmp_path / "out")
    assert info.value.missing == ["model.layers.1.mlp.up_proj.lora_B.default.weight"]


def test_an_unexpected_released_key_is_named(release: FakeRelease, tmp_path: Path) -> None:
    key = "base_model.model.model.vl_projector.extra_head.weight"
    files = _edited_release(release, tmp_path, "non_lora", lambda s: s.__setitem__(key, torch.zeros(3)))
    with pytest.raises(CheckpointKeyError, match="extra_head") as info:
        _convert(release, files, tmp_path / "out")
    assert info.value.unexpected == [key]


def test_a_key_without_the_peft_prefix_is_refused(release: FakeRelease, tmp_path: Path) -> None:
    def rename(state: dict) -> None:
        state["model.embed_tokens.weight"] = state.pop("base_model.model.model.embed_tokens.weight")

    files = _edited_release(release, tmp_path, "non_lora", rename)
    with pytest.raises(CheckpointKeyError, match="peft prefix") as info:
        _convert(release, files, tmp_path / "out")
    assert info.value.unexpected == ["model.embed_tokens.weight"]


def test_a_wrong_shape_is_an_error(release: FakeRelease, tmp_path: Path) -> None:
    key = "base_model.model.lm_head.weight"
    files = _edited_release(release, tmp_path, "non_lora", lambda s: s.__setitem__(key, torch.zeros(480, 32)))
    with pytest.raises(WeightsError, match=r"lm_head\.weight is \(480, 32\)"):
        _convert(release, files, tmp_path / "out")


def test_pickled_objects_are_refused(release: FakeRelease, tmp_path: Path) -> None:
    files = _edited_release(release, tmp_path, "finetune", lambda s: s.__setitem__("args", argparse.Namespace(a=1)))
    with pytest.raises(WeightsError, match="refusing to load released weight file"):
        _convert(release, files, tmp_path / "out")


def test_release_discovery(release: FakeRelease, tmp_path: Path) -> None:
    files = ReleaseFiles.discover(release.release_dir)
    assert files.finetune_weights == release.finetune_weights
    root = tmp_path / "release"
    shutil.copytree(release.release_dir, root)
    shutil.copytree(root / "checkpoint-551", root / "checkpoint-300")
    with pytest.raises(DataError, match="checkpoint-300, checkpoint-551"):
        ReleaseFiles.discover(root)
    assert ReleaseFiles.discover(root, "checkpoint-300").finetune_weights.parent.name == "checkpoint-300"
    shutil.rmtree(root / "checkpoint-300")
    shutil.rmtree(root / "checkpoint-551")
    with pytest.raises(MissingWeightsError, match="checkpoint-"):
        ReleaseFiles.discover(root)


def test_output_must_be_empty(release: FakeRelease, tmp_path: Path) -> None:
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(DataError, match="not empty"):
        _convert(release, ReleaseFiles.discover(release.release_dir), out)
    assert (out / "keep.txt").is_file()


def test_convert_command(release: FakeRelease, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from tgs.cli.main import build_app

    out = tmp_path / "cli"
    args = ["models", "convert-ref-thinker", "--release", str(release.release_dir), "--llama", str(release.llama_dir),
            "--clip", str(release.clip_dir), "--beats", str(release.beats_path), "--out", str(out),
            "--dtype", "fp32", "--vision-feature-layer", "2", "--qformer-heads", "4"]  # fmt: skip
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == 0, result.output
    assert "tensors from non_lora_trainables.bin" in result.output
    assert RefThinkerForCausalLM.from_pretrained(out).config.lora is not None
    again = CliRunner().invoke(build_app(), args)
    assert again.exit_code == 1 and "not empty" in again.output
