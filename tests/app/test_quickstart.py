"""``tgs quickstart``: without weights it stops at once and names the tiny-model command;
with ``--models tiny`` it runs the whole pipeline on a generated clip, labelled UNTRAINED."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest
from segment_media import stream_info
from typer.testing import CliRunner

from tgs.cli.main import build_app
from tgs.core.settings import UNTRAINED_LABEL


@pytest.fixture
def empty_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No model in the local hub cache (whatever this machine holds), and no hub access."""
    from huggingface_hub import constants

    cache = tmp_path / "hub_cache"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


def _invoke(*args: str):
    result = CliRunner().invoke(build_app(), list(args), catch_exceptions=False)
    text = result.output + (result.stderr if result.stderr_bytes is not None else "")
    return result, " ".join(re.sub(r"[│╭╮╰╯─┃┏┓┗┛━┡┩┢┪╇╈┳┻]", " ", text).split())


def test_without_weights_it_stops_at_once(empty_hub_cache, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    attempts: list[object] = []

    def no_connection(sock: socket.socket, address: object) -> None:
        attempts.append(address)
        raise OSError("network used by an offline test")

    monkeypatch.setattr(socket.socket, "connect", no_connection)
    out = tmp_path / "qs"
    result, text = _invoke("quickstart", "--out", str(out))
    assert attempts == []  # at once: no hub retries (the offline flag is set)
    assert result.exit_code == 1
    # every missing model is listed, with how to get it
    for key, source in (
        ("omni", "Qwen/Qwen2.5-Omni-3B"),
        ("grounding_dino", "IDEA-Research/grounding-dino-tiny"),
        ("sam2_video", "facebook/sam2.1-hiera-large"),
    ):
        assert key in text and source in text
    # and the one command that runs the same pipeline on the tiny models, labelled untrained
    assert f"tgs quickstart --out {out} --models tiny" in text
    assert "untrained" in text.lower()
    assert not out.exists()  # nothing generated


def test_without_weights_names_the_other_thinker_in_the_tiny_command(empty_hub_cache, tmp_path: Path) -> None:
    result, text = _invoke("quickstart", "--out", str(tmp_path / "qs"), "--thinker", "direct")
    assert result.exit_code == 1
    assert "omni" not in text.split("tgs quickstart")[0]  # the direct thinker needs no thinker weights
    assert f"tgs quickstart --out {tmp_path / 'qs'} --models tiny --thinker direct" in text


@pytest.mark.slow
def test_tiny_models_complete_and_are_labelled_untrained(tmp_path: Path) -> None:
    out = tmp_path / "qs"
    result, text = _invoke("quickstart", "--out", str(out), "--models", "tiny", "--device", "cpu")
    assert result.exit_code == 0, text
    assert UNTRAINED_LABEL in text
    summary = json.loads((out / "quickstart.json").read_text())
    assert summary["untrained"] is True and summary["label"] == UNTRAINED_LABEL
    assert summary["thinker"] == "omni"
    record = json.loads((out / "segment" / "result.json").read_text())
    assert record["untrained"] is True and record["label"] == UNTRAINED_LABEL
    assert record["expressions"][0]["expression"] == summary["expression"] and record["thinker"]["name"] == "omni"
    # the generated clip is 10 s with audio: 10 masks, a 10-frame overlay that keeps the audio
    assert len(list((out / "segment" / "masks" / "0").glob("*.png"))) == 10
    info = stream_info(out / "segment" / "overlay.mp4")
    assert info["frames"] == 10 and info["audio"]
    metrics = json.loads((out / "metrics.json").read_text())
    split = metrics["protocols"]["tgs"]["splits"]["train"]
    assert split["count"] == 1 and split["missing"] == 0
    assert summary["metrics"]["J"] == split["J"] and 0.0 <= split["J"] <= 1.0
