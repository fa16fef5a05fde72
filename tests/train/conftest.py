"""Fixtures of the training tests: one synthetic benchmark with targets and tiny init directories."""

from __future__ import annotations

from pathlib import Path

import pytest

from tgs.data import synth
from tgs.data.synth_instructions import INSTRUCTION_SET_NAME


@pytest.fixture(scope="session")
def train_bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An 8-video synthetic benchmark (64x48) with its instruction-tuning JSON. Read-only."""
    root = tmp_path_factory.mktemp("train") / "bench"
    synth.generate(root, videos=8, seed=3, size=(64, 48))
    assert (root / INSTRUCTION_SET_NAME).is_file()
    return root


@pytest.fixture(scope="session")
def fresh_init(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Ref-Thinker directory without a LoRA adapter (training adds a fresh one, as the paper's start)."""
    from transformers import CLIPImageProcessorPil

    from tgs.testing.tiny_thinker import build_tiny_ref_thinker_model

    out = tmp_path_factory.mktemp("init") / "fresh"
    model, tokenizer = build_tiny_ref_thinker_model(seed=0, lora=False)
    model.save_pretrained(out)
    tokenizer.save_pretrained(str(out))
    CLIPImageProcessorPil().save_pretrained(str(out))
    return out
