"""Test-wide settings: offline hub, few threads, and paths to shared fixtures."""

from __future__ import annotations

import gzip
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest
import torch

torch.set_num_threads(1)

FIXTURES = Path(__file__).resolve().parent / "fixtures"
REFAVS_METADATA_GZ = FIXTURES / "refavs" / "refavs_metadata.csv.gz"  # MIT, LICENSE beside it


@pytest.fixture(scope="session")
def shared_metadata(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The public Ref-AVS metadata CSV, shipped compressed in tests/fixtures, as a plain file."""
    path = tmp_path_factory.mktemp("refavs") / "refavs_metadata.csv"
    with gzip.open(REFAVS_METADATA_GZ, "rb") as src, path.open("wb") as dst:
        shutil.copyfileobj(src, dst)
    return path


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
