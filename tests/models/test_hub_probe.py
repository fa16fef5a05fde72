"""Missing weights in any network state: one short probe, every missing model listed with how to get it.

No clock: each case counts what the fake hub received (one connection for the probe, one
HEAD per repository once the hub answered), which is what rules out per-file retry storms.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fake_hub import Counter, closed_port_url, http_hub, silent_server
from typer.testing import CliRunner

from tgs.cli.main import build_app
from tgs.errors import MissingWeightsError
from tgs.models.hub_probe import HubState, probe_hub
from tgs.models.registry import check_models, require_models

NEEDED = [("grounding_dino", None), ("sam2_video", None), ("omni", None)]


@pytest.fixture(autouse=True)
def _online_empty_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The newcomer's machine: no offline flag, an empty hub cache, a short probe timeout."""
    import huggingface_hub.constants as hub_constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("TGS_HUB_TIMEOUT", "0.5")
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub_cache"))


def _hub_answering(gated: bool) -> object:
    def respond(method: str, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        if path == "/":
            return 200, {}, b""
        if gated:
            return 401, {"X-Error-Code": "GatedRepo"}, b""
        return 200, {"X-Repo-Commit": "0" * 40, "ETag": '"abc"'}, b""

    return http_hub(respond)


@contextmanager
def hub_in_state(state: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter | None]:
    """Point HF_ENDPOINT at a hub in the given state; yields what it counted (None: nothing to count)."""
    if state == "offline":
        with silent_server() as (url, counter):
            monkeypatch.setenv("HF_HUB_OFFLINE", "1")
            monkeypatch.setenv("HF_ENDPOINT", url)
            yield counter
        return
    if state == "dns":
        monkeypatch.setenv("HF_ENDPOINT", "http://nonexistent.invalid")
        yield None
        return
    if state == "refused":
        monkeypatch.setenv("HF_ENDPOINT", closed_port_url())
        yield None
        return
    server = silent_server() if state == "timeout" else _hub_answering(gated=state == "gated")
    with server as (url, counter):  # type: ignore[attr-defined]
        monkeypatch.setenv("HF_ENDPOINT", url)
        yield counter


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("offline", HubState.OFFLINE),
        ("dns", HubState.DNS),
        ("refused", HubState.REFUSED),
        ("timeout", HubState.TIMEOUT),
        ("answered", HubState.ANSWERED),
    ],
)
def test_probe_tells_the_states_apart(state: str, expected: HubState, monkeypatch: pytest.MonkeyPatch) -> None:
    with hub_in_state(state, monkeypatch) as counter:
        probe = probe_hub()
        if state == "offline":
            assert counter is not None and counter.connections == 0  # the flag is honoured: no connection at all
        if state == "timeout":
            assert counter is not None and counter.connections == 1  # one attempt, no retries
    assert probe.state is expected, probe


@pytest.mark.parametrize("state", ["offline", "dns", "refused", "timeout", "gated"])
def test_every_missing_model_listed_after_one_probe(state: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with hub_in_state(state, monkeypatch) as counter, pytest.raises(MissingWeightsError) as info:
        require_models(NEEDED)
    text = str(info.value)
    for key, repo in (("grounding_dino", "IDEA-Research/grounding-dino-tiny"), ("sam2_video", "facebook/sam2.1-hiera-large"),
                      ("omni", "Qwen/Qwen2.5-Omni-3B")):  # fmt: skip
        assert f"{key}: {repo}" in text
    assert text.count("get it:") == 3
    assert f"tgs models fetch {'omni'}" in text
    if state == "timeout":
        assert counter is not None and counter.connections == 1
    if state == "offline":
        assert "HF_HUB_OFFLINE" in text and counter is not None and counter.connections == 0
    if state in ("dns", "refused", "timeout"):
        assert "not cached; hub unreachable" in text
    if state == "gated":
        assert counter is not None
        # one probe of the hub, then one HEAD per repository: no per-file retries
        assert [m for m, _ in counter.requests] == ["HEAD"] * 4, counter.requests
        assert "huggingface-cli login" in text and "/IDEA-Research/grounding-dino-tiny" in text


def test_hub_answered_means_will_be_downloaded(monkeypatch: pytest.MonkeyPatch) -> None:
    with hub_in_state("answered", monkeypatch) as counter:
        statuses = check_models(NEEDED)
    assert all(s.present for s in statuses)
    assert all("will be downloaded" in s.location for s in statuses)
    assert counter is not None and len(counter.requests) == 1 + len(NEEDED)


@pytest.mark.parametrize("state", ["refused", "answered"])
def test_models_list_tells_unreachable_from_downloadable(state: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: 'present: yes (will be downloaded)' for uncached models while the hub was unreachable."""
    with hub_in_state(state, monkeypatch):
        result = CliRunner().invoke(build_app(), ["models", "list", "--preset", "best"])
    flat = "".join(ch for ch in result.output if not ch.isspace() and ch not in "│┃")  # table cells wrap
    if state == "refused":
        assert result.exit_code == 1
        assert "notcached;hubunreachable" in flat and "willbedownloaded" not in flat
    else:
        assert "willbedownloaded" in flat and "unreachable" not in flat


@pytest.mark.parametrize("state", ["refused", "timeout"])
def test_quickstart_lists_all_missing_before_generating(state: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Before: ~50 s of hub retries, then only the first missing model (Qwen/Qwen2.5-Omni-3B) was named."""
    with hub_in_state(state, monkeypatch) as counter:
        result = CliRunner().invoke(build_app(), ["quickstart", "--out", str(tmp_path / "qs")])
    assert result.exit_code == 1, result.output
    for key in ("omni", "grounding_dino", "sam2_video"):
        assert f"- {key}:" in result.output
    assert "--models tiny" in result.output
    assert not (tmp_path / "qs" / "data").exists()  # nothing generated
    assert "Traceback" not in result.output
    if counter is not None:
        assert counter.connections == 1


def test_demo_checks_its_models_before_serving(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with hub_in_state("refused", monkeypatch):
        result = CliRunner().invoke(build_app(), ["demo", "--serve", "--workdir", str(tmp_path / "w")])
    assert result.exit_code == 1, result.output
    from tgs.app.backend import demo_load_spec

    propagator = demo_load_spec("real").segmenter.key  # what its requests load (dense output): EdgeTAM on a CPU
    assert "- grounding_dino:" in result.output and f"- {propagator}:" in result.output
    assert "demo (real models) on http" not in result.output
