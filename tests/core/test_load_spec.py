"""One answer to "which models does this call load": what pre-flight checks is what the loaders load.

Spies stand in for the weights: the model registry's ``require_models`` (pre-flight) records the
keys it is asked about, ``resolve_source`` (the first step of every load) the keys whose weights
are fetched, and the stage classes' ``from_pretrained`` what each loader was told; the segmenter,
always the last model loaded, stops the call there. So each case runs the real command or API
path up to the last load, on any machine, without weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

import tgs.models.registry as registry
from tgs.cli.main import build_app
from tgs.core.flow import Pipeline
from tgs.core.segment import segment_video
from tgs.core.settings import Settings
from tgs.data.synth import write_video
from tgs.errors import SettingsError
from tgs.presets import BEST, PAPER, SAM3, get_preset


class _Stop(Exception):
    """Raised by the segmenter's spy: the call has loaded everything it loads."""


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    """checked: the keys of each pre-flight call; resolved: the keys loaded, in order; built: (loader, kwargs)."""
    from tgs.ground.grounding_dino import GroundingDinoGrounder
    from tgs.segment.sam2_image import Sam2ImageSegmenter
    from tgs.segment.sam2_video import Sam2VideoSegmenter
    from tgs.segment.sam3 import Sam3GroundSegmenter

    seen: dict[str, list[Any]] = {"checked": [], "resolved": [], "built": []}

    def require(requests) -> None:
        seen["checked"].append(sorted(key for key, _ in requests))

    def resolve(key, source=None) -> str:
        seen["resolved"].append(key)
        return f"/weights/{key}"

    def spy(kind: str, last: bool):
        def from_pretrained(source, **kwargs):
            seen["built"].append((kind, kwargs))
            if last:
                raise _Stop(kind)
            return object()

        return staticmethod(from_pretrained)

    monkeypatch.setattr(registry, "require_models", require)
    monkeypatch.setattr(registry, "resolve_source", resolve)
    monkeypatch.setattr(GroundingDinoGrounder, "from_pretrained", spy("grounding_dino", last=False))
    monkeypatch.setattr(Sam2ImageSegmenter, "from_pretrained", spy("sam2_image", last=True))
    monkeypatch.setattr(Sam2VideoSegmenter, "from_pretrained", spy("sam2_video", last=True))
    monkeypatch.setattr(Sam3GroundSegmenter, "from_pretrained", spy("sam3", last=True))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # "auto" is a CPU, on any machine
    return seen


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("spec") / "clip.mp4", 1.0, 5.0, (64, 48), seed=1, with_audio=True)


def _segment(clip: Path, out: Path, settings: Settings, **kwargs: Any) -> None:
    with pytest.raises(_Stop):
        segment_video(clip, ["the red square"], thinker="direct", settings=settings, out=out, **kwargs)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("dense-cpu", ["edgetam_video", "grounding_dino"]),
        ("sampled-cpu", ["grounding_dino", "sam2_video"]),
        ("benchmark-paper", ["grounding_dino", "sam2"]),
        ("benchmark-best", ["grounding_dino", "sam2_video"]),
    ],
)
def test_preflight_checks_exactly_what_the_loaders_load(
    case: str, expected: list[str], loads: dict[str, list[Any]], clip: Path, tmp_path: Path
) -> None:
    cpu = Settings(device="cpu")
    if case == "dense-cpu":
        _segment(clip, tmp_path / "out", cpu)
    elif case == "sampled-cpu":
        _segment(clip, tmp_path / "out", cpu, fps=1.0)
    else:
        with pytest.raises(_Stop):
            Pipeline.load(thinker=None, preset=PAPER if case.endswith("paper") else BEST, settings=cpu)
    assert loads["checked"] == [expected]
    assert sorted(loads["resolved"]) == expected


@pytest.mark.parametrize(
    ("case", "expected", "built"),
    [
        ("dense", ["sam3_video"], [("sam3", "video")]),
        ("dense-image", ["sam3_video"], [("sam3", "video")]),  # dense output streams through the video model
        ("sampled", ["sam3_video"], [("sam3", "video")]),
        ("sampled-image", ["sam3"], [("sam3", "image")]),
        ("benchmark", ["sam3_video"], [("sam3", "video")]),
        ("benchmark-image", ["sam3"], [("sam3", "image")]),
        # the other use of SAM 3: its tracker propagates from Grounding DINO's boxes (preset best)
        ("tracker", ["grounding_dino", "sam3_tracker_video"], [("grounding_dino", None), ("sam2_video", None)]),
    ],
)
def test_sam3_preflight_checks_exactly_what_the_loaders_load(
    case: str, expected: list[str], built: list[tuple[str, str | None]], loads: dict[str, list[Any]], clip: Path,
    tmp_path: Path,
) -> None:
    """segmenter=sam3: SAM 3 alone grounds and segments, so neither pre-flight nor the loaders
    touch Grounding DINO; ``--sam2 sam3_tracker_video`` (preset best) needs it to seed the tracker."""
    cpu = Settings(device="cpu")
    preset = get_preset("sam3", {"segment_mode": "image"}) if case.endswith("-image") else SAM3
    if case.startswith("dense"):
        _segment(clip, tmp_path / "out", cpu, preset=preset)
    elif case.startswith("sampled"):
        _segment(clip, tmp_path / "out", cpu, preset=preset, fps=1.0)
    elif case == "tracker":
        _segment(clip, tmp_path / "out", Settings(device="cpu", sources={"sam2": "sam3_tracker_video"}), preset=BEST)
    else:
        with pytest.raises(_Stop):
            Pipeline.load(thinker=None, preset=preset, settings=cpu)
    assert loads["checked"] == [expected]
    assert sorted(loads["resolved"]) == expected
    assert [(kind, kwargs.get("mode")) for kind, kwargs in loads["built"]] == built


def test_sam3_spec_records_one_stage(monkeypatch: pytest.MonkeyPatch) -> None:
    """SAM 3's spec: one load (role sam2: its source is --sam2's), recorded without Grounding DINO;
    the stage pair it loads is one object; a propagation key is refused with the command that works."""
    import tgs.core.loading as loading
    from tgs.core.load_spec import load_spec

    spec = load_spec(SAM3, Settings(device="cpu", sources={"sam2": "/w/sam3"}), "dense")
    assert spec.grounder is None and spec.grounds_itself
    assert [(m.role, m.loader, m.key, m.source) for m in spec.models] == [("sam2", "sam3", "sam3_video", "/w/sam3")]
    assert spec.describe() == {"sam3_video": "/w/sam3", "set": "real"}
    assert load_spec(SAM3, Settings.tiny(), "benchmark").describe() == {"sam3_video": "tiny", "set": "tiny"}
    with pytest.raises(SettingsError, match="--preset best --sam2 sam3_tracker_video"):
        load_spec(SAM3, Settings(device="cpu", sources={"sam2": "sam3_tracker_video"}), "dense")
    tracker = load_spec(BEST, Settings(device="cpu", sources={"sam2": "sam3_tracker_video"}), "dense")
    assert not tracker.grounds_itself and tracker.keys == ("grounding_dino", "sam3_tracker_video")

    built: list[Any] = []
    monkeypatch.setitem(loading.LOADERS, "sam3", lambda load: built.append(load) or object())
    grounder, segmenter = loading.load_stages_from(spec)
    assert grounder is segmenter and built == [spec.segmenter]  # loaded once, both stages


def test_gdino_source_under_sam3_is_refused_but_the_tiny_set_passes() -> None:
    """SAM 3 grounds by itself: a --gdino it would ignore is an error, not a silent drop; the tiny
    set names every role (Grounding DINO too) and still loads SAM 3 alone."""
    from tgs.core.load_spec import load_spec

    given = Settings(device="cpu", sources={"grounding_dino": "/w/gdino", "sam2": "/w/sam3"})
    with pytest.raises(SettingsError, match="--gdino has no effect under --preset sam3") as caught:
        load_spec(SAM3, given, "dense")
    assert "--preset best" in caught.value.fix
    assert load_spec(BEST, given, "dense").grounder.source == "/w/gdino"  # the same source is used by best
    tiny = load_spec(SAM3, Settings.tiny(), "dense")
    assert tiny.grounder is None and [m.key for m in tiny.models] == ["sam3_video"]


def test_sam3_asked_to_compile_is_a_counted_fallback(loads: dict[str, list[Any]]) -> None:
    """``--compile`` / GPU preprocessing reach SAM 3's load, and its loader says it has neither
    (logged once, counted) instead of dropping them; the model gets no such argument."""
    from tgs import fast_paths
    from tgs.core.load_spec import load_spec
    from tgs.core.loading import load_stages_from

    spec = load_spec(SAM3, Settings(device="cpu", compile=True), "benchmark", device_preprocess=True)
    assert spec.segmenter is not None and spec.segmenter.compile is True
    with fast_paths.counting() as ledger, pytest.raises(_Stop):
        load_stages_from(spec)
    assert ledger.fallback_count("compile") == 1 and ledger.fallback_count("device_preprocess") == 1
    ((kind, kwargs),) = loads["built"]
    assert kind == "sam3" and set(kwargs) == {"device", "dtype", "mode"} and kwargs["mode"] == "video"


def test_demo_preflight_checks_what_its_requests_load(
    loads: dict[str, list[Any]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The demo's requests give dense output: on a CPU that propagates with EdgeTAM, so EdgeTAM is
    what the start-up check must look for (not SAM2.1-L, which no request loads there)."""
    import tgs.cli.demo as demo_cli
    from tgs.app.backend import DemoBackend
    from tgs.app.workspace import DemoWorkspace

    monkeypatch.setattr(demo_cli, "_serve", lambda *args, **kwargs: None)
    result = CliRunner().invoke(build_app(), ["demo", "--serve", "--models", "real"])
    assert result.exit_code == 0, result.output
    (checked,) = loads["checked"]

    workspace = DemoWorkspace(tmp_path / "work")
    backend = DemoBackend(workspace, models="real")
    label = next(name for name, seed in backend.clip_choices.items() if seed is not None)
    outcome = backend.run(session=workspace.new_session(), choice=label, upload=None, expression="the red square",
                          thinker="direct", preset="best", fps=1.0)  # fmt: skip
    assert not outcome.ok  # stopped by the segmenter's spy, after every load
    assert checked == sorted(loads["resolved"]) == ["edgetam_video", "grounding_dino"]


@pytest.mark.slow
def test_quickstart_preflight_checks_what_it_loads(loads: dict[str, list[Any]], tmp_path: Path) -> None:
    CliRunner().invoke(build_app(), ["quickstart", "--out", str(tmp_path / "qs"), "--thinker", "direct"])
    assert loads["resolved"], "quickstart never reached the loaders"
    assert loads["checked"][0] == sorted(loads["resolved"]) == ["grounding_dino", "sam2_video"]


@pytest.mark.parametrize(("mode", "expected"), [("dense", "sam2_video_large"), ("sampled", "sam2_video"),
                                                ("benchmark", "sam2_video")])  # fmt: skip
def test_a_cuda_device_given_as_data(mode: str, expected: str, loads: dict[str, list[Any]]) -> None:
    """No GPU needed: the spec is built for "cuda" and its loads are run against the spies."""
    from tgs.core.load_spec import load_spec
    from tgs.core.loading import load_stages_from

    spec = load_spec(BEST, Settings(device="cuda"), mode)
    spec.require()
    with pytest.raises(_Stop):
        load_stages_from(spec)
    assert loads["checked"] == [sorted(["grounding_dino", expected])]
    assert loads["resolved"] == ["grounding_dino", expected]
    (_, grounder), (_, segmenter) = loads["built"]
    assert grounder["device"] == segmenter["device"] == "cuda"
    assert grounder["device_preprocess"] is True  # frames preprocessed on the GPU the stages run on
    assert spec.describe()[expected] == "facebook/sam2.1-hiera-large"


def test_compile_is_kept_when_sam2_names_a_registry_key(loads: dict[str, list[Any]], clip: Path, tmp_path: Path) -> None:
    settings = Settings(device="cpu", sources={"sam2": "sam2_video_small"}, compile=True)
    _segment(clip, tmp_path / "out", settings)
    assert loads["resolved"] == ["grounding_dino", "sam2_video_small"]
    (grounder,) = [kwargs for kind, kwargs in loads["built"] if kind == "grounding_dino"]
    assert grounder["compile"] is True


def test_a_video_model_key_is_refused_by_the_image_mode() -> None:
    from tgs.core.load_spec import load_spec

    keyed = Settings(device="cpu", sources={"sam2": "edgetam_video"})
    with pytest.raises(SettingsError, match="segment_mode=image"):
        load_spec(PAPER, keyed, "benchmark")
    assert load_spec(BEST, keyed, "benchmark").keys == ("grounding_dino", "edgetam_video")


def test_spec_lists_each_model_once_with_its_placement() -> None:
    from tgs.core.load_spec import load_spec

    settings = Settings(device="cpu", dtype="bf16", sources={"thinker": "/m/rt", "grounding_dino": "tiny"})
    spec = load_spec(PAPER, settings, "benchmark", thinker="ref-thinker", thinker_options={"max_new_tokens": 4})
    assert [(m.role, m.key, m.source, m.device, m.dtype) for m in spec.models] == [
        ("thinker", "ref_thinker", "/m/rt", "cpu", "bf16"),
        ("grounding_dino", "grounding_dino", "tiny", "cpu", "bf16"),
        ("sam2", "sam2", None, "cpu", "bf16"),
    ]
    assert spec.describe() == {"ref_thinker": "/m/rt", "grounding_dino": "tiny",
                               "sam2": "facebook/sam2.1-hiera-large", "set": "mixed"}  # fmt: skip
    assert load_spec(None, settings, thinker="direct").keys == ()  # the direct thinker has no weights
    assert load_spec(PAPER, Settings(device="cpu")) == load_spec(PAPER, Settings(device="cpu"))
    assert hash(spec.thinker) == hash(load_spec(PAPER, settings, thinker="ref-thinker",
                                                thinker_options={"max_new_tokens": 4}).thinker)  # fmt: skip
    assert "max_new_tokens" not in repr(spec.thinker)  # options (an API key among them) are never shown


def test_the_precision_comes_from_the_settings_else_the_presets_default() -> None:
    """``Settings.dtype`` is the one channel; without it Ground + Segment runs ``paper`` in fp32 (as
    the original) and ``best`` in auto, and a thinker in its own default (None)."""
    from tgs.core.load_spec import load_spec

    def dtypes(preset, settings):
        return [m.dtype for m in load_spec(preset, settings, "benchmark", thinker="ref-thinker").models]

    assert dtypes(PAPER, Settings(device="cpu")) == [None, "fp32", "fp32"]
    assert dtypes(BEST, Settings(device="cpu")) == [None, "auto", "auto"]
    assert dtypes(PAPER, Settings(device="cpu", dtype="bf16")) == ["bf16", "bf16", "bf16"]


@pytest.mark.parametrize(("mode", "device", "expected"), [("dense", "cpu", "edgetam_video"),
                                                          ("dense", "cuda", "sam2_video_large"),
                                                          ("benchmark", "cpu", "sam2_video")])  # fmt: skip
def test_models_list_shows_what_a_call_loads(mode: str, device: str, expected: str, tmp_path: Path) -> None:
    """`tgs models list` reads the same spec: the model a dense call on a CPU loads is listed, and only it."""
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "config.json").write_text("{}\n")
    args = ["models", "list", "--preset", "best", "--mode", mode, "--device", device,
            "--source", f"grounding_dino={weights}", "--source", f"{expected}={weights}"]  # fmt: skip
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == 0, result.output
    roles = [line.split("│")[1].strip() for line in result.output.splitlines() if line.count("│") > 3]
    assert [r for r in roles if r] == ["grounding_dino", expected]
