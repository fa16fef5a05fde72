"""Test-wide settings: offline hub, few threads, and paths to shared fixtures."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest
import torch

torch.set_num_threads(1)

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_METADATA = REPO_ROOT.parent / "shared" / "data" / "refavs_metadata.csv"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def shared_metadata() -> Path:
    if not SHARED_METADATA.is_file():
        pytest.skip(f"shared metadata not present at {SHARED_METADATA}")
    return SHARED_METADATA


@pytest.fixture(autouse=True)
def _isolated_tgs_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiny models are cached under TGS_HOME; one per test session keeps tests hermetic."""
    if "TGS_HOME" not in os.environ:
        home = tmp_path_factory.getbasetemp() / "tgs_home"
        monkeypatch.setenv("TGS_HOME", str(home))
