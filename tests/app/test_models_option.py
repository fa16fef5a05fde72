"""``--models`` is checked by one validator, as the command line is parsed, in every command that takes it.

A bad set is a usage error naming the option, before anything runs: no model is looked up, built
or loaded (spies on the model registry), and there is no "unexpected error" / "bug" line. The
``models list`` case has every model it lists present (local folders), so the set is what is
refused, not a missing weight.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import tgs.models.registry as registry
from tgs.cli.main import build_app


@pytest.fixture
def paths(tmp_path: Path) -> dict[str, str]:
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "config.json").write_text("{}\n")
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\x00" * 16)
    return {"root": str(tmp_path), "weights": str(weights), "video": str(video)}


COMMANDS: dict[str, list[str]] = {
    "models-list": ["models", "list", "--preset", "paper", "--source", "grounding_dino={weights}",
                    "--source", "sam2={weights}"],
    "segment": ["segment", "{video}", "the dog", "--thinker", "direct"],
    "quickstart": ["quickstart", "--out", "{root}/qs", "--thinker", "direct"],
    "run": ["run", "--data", "{root}", "--out", "{root}/run", "--thinker", "direct"],
    "think": ["think", "--data", "{root}", "--meta", "{root}/m.csv", "--out", "{root}/think"],
    "ground-segment": ["ground-segment", "--data", "{root}", "--direct", "--out", "{root}/gs"],
    "train": ["train", "--data", "{root}", "--meta", "{root}/m.csv", "--targets", "{root}/t.json", "--out", "{root}/train"],
    "demo": ["demo", "--serve"],
}  # fmt: skip


def test_models_list_accepts_the_real_set_with_these_weights(paths: dict[str, str]) -> None:
    """The control of the case below: with ``--models real`` the same call succeeds."""
    args = [a.format(**paths) for a in COMMANDS["models-list"]]
    result = CliRunner().invoke(build_app(), [*args, "--models", "real"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_bad_model_set_is_refused_before_anything_loads(
    command: str, paths: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    touched: list[str] = []
    for name in ("check_models", "require_models", "resolve_source"):
        monkeypatch.setattr(registry, name, lambda *args, _name=name, **kwargs: touched.append(_name))
    args = [a.format(**paths) for a in COMMANDS[command]]
    result = CliRunner().invoke(build_app(), [*args, "--models", "huge"])
    output = " ".join(result.output.split())
    assert result.exit_code == 2, output  # a usage error
    assert "--models" in output and "'huge'" in output and "real, tiny" in output, output
    assert "unexpected" not in output.lower() and "bug" not in output.lower(), output
    assert touched == []
