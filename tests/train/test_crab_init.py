"""Initialisation from the Crab projector pre-training files: strict, reported mapping."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from train_helpers import write_crab

from tgs.errors import CheckpointKeyError, WeightsError
from tgs.think.ref_thinker.modeling import RefThinkerForCausalLM
from tgs.train.crab import CRAB_AUDIO_NAME, CRAB_VISUAL_NAME, apply_crab_projectors, build_crab_init


@pytest.mark.slow
def test_build_crab_init_from_base_parts(tmp_path: Path) -> None:
    from tgs.testing.tiny_thinker import write_fake_release

    release = write_fake_release(tmp_path / "dl", seed=1)
    donor = release.model.base_model.model  # the fine-tuned model those files describe: its projectors stand in for Crab's
    named = write_crab(tmp_path / "crab", donor)
    report = build_crab_init(release.llama_dir, release.clip_dir, release.beats_path, tmp_path / "crab",
                             tmp_path / "init", dtype=torch.float32, seed=5, vision_feature_layer=2,
                             qformer_attention_heads=4)  # fmt: skip
    assert report.lm_head_from == CRAB_VISUAL_NAME and report.overridden == 1
    assert report.dropped == [f"{CRAB_AUDIO_NAME}: model.embed_tokens.weight", f"{CRAB_VISUAL_NAME}: model.embed_tokens.weight"]
    model = RefThinkerForCausalLM.from_pretrained(tmp_path / "init")
    assert model.config.lora is None
    state = model.state_dict()
    for key in (k for k in named if k.startswith(("model.vl_projector.", "model.al_projector."))):
        assert torch.equal(state[key], named[key]), key
    assert torch.equal(state["lm_head.weight"], named["lm_head.weight"])
    from transformers import LlamaForCausalLM

    base = LlamaForCausalLM.from_pretrained(str(release.llama_dir))
    rows = base.model.embed_tokens.weight.shape[0]
    assert torch.equal(state["model.embed_tokens.weight"][:rows], base.model.embed_tokens.weight)  # Crab's dropped
    new_rows = state["model.embed_tokens.weight"][rows:]
    assert new_rows.shape[0] == 21 and 0.005 < new_rows.std().item() < 0.05  # N(0, 0.02), transformers 4.37
    assert torch.equal(state["model.layers.0.self_attn.q_proj.weight"], base.model.layers[0].self_attn.q_proj.weight)


def test_crab_files_with_foreign_keys_or_gaps_are_refused(tmp_path: Path, fresh_init: Path) -> None:
    model = RefThinkerForCausalLM.from_pretrained(fresh_init)
    donor = RefThinkerForCausalLM.from_pretrained(fresh_init)
    with torch.no_grad():
        donor.model.al_projector.audio_query_tokens.add_(1.0)
    write_crab(tmp_path / "ok", donor)
    report = apply_crab_projectors(model, tmp_path / "ok")
    assert torch.equal(model.model.al_projector.audio_query_tokens, donor.model.al_projector.audio_query_tokens)
    assert report.loaded[CRAB_AUDIO_NAME] > 0 and report.lm_head_from == CRAB_VISUAL_NAME

    write_crab(tmp_path / "foreign", donor, extra={"model.layers.0.mlp.up_proj.weight": torch.zeros(64, 32)})
    with pytest.raises(CheckpointKeyError, match=re.escape("model.layers.0.mlp.up_proj.weight")):
        apply_crab_projectors(model, tmp_path / "foreign")

    write_crab(tmp_path / "gap", donor)
    visual = torch.load(tmp_path / "gap" / CRAB_VISUAL_NAME, weights_only=True)
    del visual["model.vl_projector.visual_query_tokens"]
    torch.save(visual, tmp_path / "gap" / CRAB_VISUAL_NAME)
    with pytest.raises(CheckpointKeyError, match="missing") as err:
        apply_crab_projectors(model, tmp_path / "gap")
    assert "model.vl_projector.visual_query_tokens" in str(err.value)

    write_crab(tmp_path / "shape", donor, extra={"model.al_projector.audio_query_tokens": torch.zeros(1, 3, 32)})
    with pytest.raises(WeightsError, match="wrong shape"):
        apply_crab_projectors(model, tmp_path / "shape")
