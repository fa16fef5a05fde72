"""``Settings.compile`` and the GPU defaults reach the stages and the thinker through the one loading place."""

from __future__ import annotations

from typing import Any

import pytest

from tgs.core import loading
from tgs.core.load_spec import ModelLoad
from tgs.core.settings import Settings
from tgs.presets import PAPER


def test_compile_must_be_a_bool() -> None:
    with pytest.raises(ValueError, match="compile"):
        Settings(compile="yes")  # type: ignore[arg-type]
    assert Settings(compile=True).to_dict()["compile"] is True
    assert Settings.from_options(models="tiny", device="cpu", compile=True).compile is True


@pytest.mark.parametrize("compile", [False, True])
def test_ref_thinker_gets_a_compiled_static_decode_only_when_asked(monkeypatch: pytest.MonkeyPatch, compile: bool) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(loading, "build_thinker", lambda name, **options: seen.update(options) or object())
    monkeypatch.setattr(ModelLoad, "resolve", lambda self: "/models/ref-thinker")
    loading.load_thinker("ref-thinker", Settings(device="cpu", compile=compile))
    if compile:
        assert seen["decode"] == "static" and seen["compile"] is True
    else:
        assert "decode" not in seen and "compile" not in seen
    seen.clear()
    loading.load_thinker("ref-thinker", Settings(device="cpu", compile=True), {"decode": "dynamic"})
    assert seen["decode"] == "dynamic"  # an explicit thinker option wins


def test_direct_thinker_takes_no_decode_options(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(loading, "build_thinker", lambda name, **options: seen.update(options) or object())
    loading.load_thinker("direct", Settings(device="cpu", compile=True))
    assert seen == {}


@pytest.mark.parametrize("compile", [False, True])
def test_stages_get_device_preprocessing_on_gpus_only_and_compile_from_settings(
    monkeypatch: pytest.MonkeyPatch, compile: bool
) -> None:
    from tgs.ground.grounding_dino import GroundingDinoGrounder
    from tgs.segment.sam2_image import Sam2ImageSegmenter

    calls: list[dict[str, Any]] = []

    def capture(source: str, **kwargs: Any) -> object:
        calls.append(kwargs)
        return object()

    monkeypatch.setattr(GroundingDinoGrounder, "from_pretrained", staticmethod(capture))
    monkeypatch.setattr(Sam2ImageSegmenter, "from_pretrained", staticmethod(capture))
    monkeypatch.setattr(ModelLoad, "resolve", lambda self: f"/models/{self.key}")
    settings = Settings(device="cpu", compile=compile)
    assert settings.on_gpu is False
    loading.load_stages(PAPER, settings)
    assert [c["device_preprocess"] for c in calls] == [False, False]
    assert [c["compile"] for c in calls] == [compile, compile]
    calls.clear()
    loading.load_stages(PAPER, settings, device_preprocess=True, compile="aot_eager")  # explicit arguments win
    assert [(c["device_preprocess"], c["compile"]) for c in calls] == [(True, "aot_eager")] * 2
