"""``tgs models fetch`` offline, against a local server that serves a tiny fake release like the hub.

huggingface_hub honours the endpoint we give it (HF_ENDPOINT), so the real download code runs:
API listing, resolve URLs, resumed ranges. One download is cut in half on its first try.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fake_hub import FakeRepos, http_hub, sha256
from typer.testing import CliRunner

from tgs.cli.main import build_app
from tgs.errors import WeightsError
from tgs.model_fetch import BEATS_FILE, download_file

LLAMA_WEIGHTS = "model.safetensors"


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def fake_release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tgs.testing.tiny_thinker import write_fake_release

    root = tmp_path_factory.mktemp("fake_release")
    write_fake_release(root, seed=0)
    return root


@pytest.fixture
def hub_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Online (for this test), an empty hub cache, TGS_HOME in tmp."""
    import huggingface_hub.constants as hub_constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub_cache"))
    monkeypatch.setenv("TGS_HUB_TIMEOUT", "5")
    return tmp_path


def _repos(release: Path) -> dict[str, dict[str, bytes]]:
    return {
        "Jinxing1/TGS-Agent": _tree(release / "TGS-Agent"),
        "meta-llama/Llama-2-7b-chat-hf": _tree(release / "Llama-2-7b-chat-hf"),
        "openai/clip-vit-large-patch14": _tree(release / "clip-vit-large-patch14"),
    }


def test_fetch_ref_thinker_downloads_resumes_and_converts(
    fake_release: Path, hub_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    beats = (fake_release / BEATS_FILE.name).read_bytes()
    repos = _repos(fake_release)
    assert LLAMA_WEIGHTS in repos["meta-llama/Llama-2-7b-chat-hf"]
    weights_path = f"/meta-llama/Llama-2-7b-chat-hf/resolve/{FakeRepos.COMMIT}/{LLAMA_WEIGHTS}"
    fake = FakeRepos(repos, files={"/beats.pt": beats}, interrupt={weights_path})
    import huggingface_hub.constants as hub_constants

    # Small read chunks, so the bytes received before the drop reach the file and the client resumes
    # after them (with the default 10 MB chunk, a small file is retried from its start).
    monkeypatch.setattr(hub_constants, "DOWNLOAD_CHUNK_SIZE", 4096)
    out = hub_env / "ref-thinker"
    with http_hub(fake) as (url, counter):
        monkeypatch.setenv("HF_ENDPOINT", url)
        args = ["models", "fetch", "ref-thinker", "--out", str(out), "--beats-url", f"{url}/beats.pt",
                "--beats-sha256", sha256(beats), "--downloads", str(hub_env / "dl"),
                "--vision-feature-layer", "2", "--qformer-heads", "4"]  # fmt: skip (the tiny architecture)
        result = CliRunner().invoke(build_app(), args)  # the connection drops mid-file once
    assert result.exit_code == 0, result.output
    assert any(path == weights_path and rng != "bytes=0-" for path, rng in fake.ranges), fake.ranges  # resumed
    assert "Ref-Thinker ready" in result.output
    config = json.loads((out / "config.json").read_text())
    assert config  # the converted directory
    assert json.loads((out / "tokenizer_config.json").read_text())["legacy"] is False  # pinned from the base
    from tgs.think.ref_thinker.processing import load_tokenizer

    load_tokenizer(out)
    assert not any(m == "GET" and "/beats.pt" not in p and "resolve" in p and "Llama" in p and p.endswith(".bin")
                   for m, p in counter.requests)  # fmt: skip  # only the patterns asked for


def test_gated_llama_refused_before_any_download(fake_release: Path, hub_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeRepos(_repos(fake_release), gated={"meta-llama/Llama-2-7b-chat-hf"}, files={"/beats.pt": b"x"})
    with http_hub(fake) as (url, counter):
        monkeypatch.setenv("HF_ENDPOINT", url)
        result = CliRunner().invoke(build_app(), ["models", "fetch", "ref-thinker", "--out", str(hub_env / "o"),
                                                  "--beats-url", f"{url}/beats.pt"])  # fmt: skip
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert "huggingface-cli login" in text and f"{url}/meta-llama/Llama-2-7b-chat-hf" in text
    assert "Traceback" not in result.output
    assert [m for m, _ in counter.requests] == ["HEAD"] * len(counter.requests)  # nothing downloaded
    assert not (hub_env / "o").exists()


def test_beats_download_resumes_a_partial_file_and_checks_sha256(hub_env: Path) -> None:
    data = bytes(range(256)) * 100
    fake = FakeRepos({}, files={"/beats.pt": data})
    target = hub_env / "dl" / BEATS_FILE.name
    target.parent.mkdir(parents=True)
    target.with_name(target.name + ".part").write_bytes(data[:1000])  # an earlier, interrupted try
    with http_hub(fake) as (url, _):
        download_file(f"{url}/beats.pt", target, sha256(data))
        assert target.read_bytes() == data
        assert fake.ranges == [("/beats.pt", "bytes=1000-")]

        other = hub_env / "dl2" / BEATS_FILE.name
        with pytest.raises(WeightsError, match="sha256"):
            download_file(f"{url}/beats.pt", other, "0" * 64)
        assert not other.exists() and not other.with_name(other.name + ".part").exists()


def test_fetch_a_hub_model_into_the_cache(hub_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`tgs models fetch grounding_dino` puts it where `require_models` then finds it."""
    from tgs.models.registry import check_models

    files = {"config.json": b'{"model_type": "grounding-dino"}', "model.safetensors": b"w" * 10, "big.bin": b"no"}
    fake = FakeRepos({"IDEA-Research/grounding-dino-tiny": files})
    with http_hub(fake) as (url, counter):
        monkeypatch.setenv("HF_ENDPOINT", url)
        result = CliRunner().invoke(build_app(), ["models", "fetch", "grounding_dino"])
    assert result.exit_code == 0, result.output
    assert not any(p.endswith("big.bin") and m == "GET" for m, p in counter.requests)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (status,) = check_models([("grounding_dino", None)])
    assert status.present and "hub:" not in status.location
