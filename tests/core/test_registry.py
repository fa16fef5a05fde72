"""Model registry: missing weights fail fast with the full list; tiny set is built once."""

from __future__ import annotations

from pathlib import Path

import pytest

from tgs.errors import MissingWeightsError
from tgs.models import registry
from tgs.models.registry import ModelSpec, check_models, require_models, resolve_source


def test_missing_local_dir_and_offline_hub_listed_together(tmp_path: Path) -> None:
    with pytest.raises(MissingWeightsError) as info:
        require_models([("grounding_dino", str(tmp_path / "nope")), ("sam2", "facebook/sam2.1-hiera-large")])
    text = str(info.value)
    assert "grounding_dino" in text and "sam2" in text
    assert "--models tiny" in text


def test_ref_thinker_has_no_default() -> None:
    (status,) = check_models([("ref_thinker", None)])
    assert not status.present
    assert "convert-ref-thinker" in status.how_to_get


def test_local_dir_needs_config(tmp_path: Path) -> None:
    d = tmp_path / "gd"
    d.mkdir()
    assert not check_models([("grounding_dino", str(d))])[0].present
    (d / "config.json").write_text("{}")
    assert check_models([("grounding_dino", str(d))])[0].present
    assert resolve_source("grounding_dino", str(d)) == str(d)


def test_unknown_key_lists_choices() -> None:
    with pytest.raises(KeyError, match="available"):
        check_models([("nope", None)])


def _fake_builder(out_dir: Path, seed: int = 0) -> Path:
    (out_dir / "config.json").write_text(f'{{"seed": {seed}}}')
    _fake_builder.calls += 1  # type: ignore[attr-defined]
    return out_dir


_fake_builder.calls = 0  # type: ignore[attr-defined]


def test_tiny_built_once(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = ModelSpec("fake", "a fake model", None, f"{__name__}:_fake_builder", "n/a")
    monkeypatch.setitem(registry.MODEL_SPECS, "fake", spec)
    first = resolve_source("fake", "tiny")
    second = resolve_source("fake", "tiny")
    assert first == second
    assert (Path(first) / "config.json").read_text() == '{"seed": 0}'
    assert _fake_builder.calls == 1  # type: ignore[attr-defined]
