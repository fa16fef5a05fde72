"""Test-wide settings: offline hub, few threads, and paths to shared fixtures."""

from __future__ import annotations

import os
from collections.abc import Iterator
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


@pytest.fixture(autouse=True, scope="session")
def _isolated_tgs_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Tiny models are cached under TGS_HOME; one per test session keeps tests hermetic.

    Session-scoped, so it is set before any module- or session-scoped fixture builds a tiny
    model: otherwise those land in (and are read back from) the user's ~/.cache/tgs, which
    may hold tiny models of another version of the builders.
    """
    if "TGS_HOME" in os.environ:
        yield
        return
    os.environ["TGS_HOME"] = str(tmp_path_factory.getbasetemp() / "tgs_home")
    try:
        yield
    finally:
        os.environ.pop("TGS_HOME", None)
