"""Fixtures of the data-layer tests: one synthetic benchmark per session (read-only)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tgs.data import synth


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 6-video synthetic benchmark at 96x64. Tests must not modify it (copy it first)."""
    root = tmp_path_factory.mktemp("synth") / "bench"
    synth.generate(root, videos=6, seed=11, size=(96, 64))
    return root


@pytest.fixture()
def synth_copy(synth_root: Path, tmp_path: Path) -> Path:
    """A private copy of the synthetic benchmark, free to corrupt."""
    dst = tmp_path / "bench"
    shutil.copytree(synth_root, dst)
    return dst
