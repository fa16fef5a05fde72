"""Weights in one command: ``tgs models fetch ref-thinker --out DIR`` and ``tgs models fetch paper``.

Ref-Thinker needs four downloads from three places plus a conversion. Hub repositories come
through huggingface_hub (its cache, resumable, honouring ``HF_ENDPOINT`` and the user's
token); the BEATs file comes from its public URL (or a mirror), resumed with an HTTP range
request and checked against its sha256 when one is recorded or given. A gated repository
the user has not been granted (LLaMA-2) stops everything before any download, with the
licence page and ``huggingface-cli login`` named. The conversion then writes one directory
that ``--model`` takes.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tgs.errors import MissingWeightsError, WeightsError
from tgs.models.hub_probe import RepoAccess, hub_endpoint, hub_offline, probe_hub, probe_repo

__all__ = [
    "BEATS_FILE",
    "HubRepo",
    "RefThinkerDownloads",
    "download_file",
    "fetch_hub_repo",
    "fetch_ref_thinker",
    "ref_thinker_repos",
]

logger = logging.getLogger(__name__)

Say = Callable[[str], None]


@dataclass(frozen=True)
class HubRepo:
    """One hub repository to fetch: which files, and the file that tells whether access is granted."""

    repo_id: str
    allow_patterns: tuple[str, ...] | None
    probe_file: str
    gated: bool = False


@dataclass(frozen=True)
class UrlFile:
    """A file outside the hub. sha256 None: not recorded here (then the digest is printed, not checked)."""

    name: str
    url: str
    sha256: str | None


RELEASE = HubRepo("Jinxing1/TGS-Agent", ("non_lora_trainables.bin", "checkpoint-*/finetune_weights.bin", "*.json"),
                  "non_lora_trainables.bin")  # fmt: skip
LLAMA = HubRepo(
    "meta-llama/Llama-2-7b-chat-hf",
    ("*.json", "tokenizer.model", "*.safetensors"),
    "config.json",
    gated=True,
)
CLIP = HubRepo("openai/clip-vit-large-patch14", ("*.json", "*.safetensors", "*.txt"), "config.json")
# The public link of microsoft/unilm's beats/README.md. Its sha256 is not published there and
# could not be established for this registry: pass --beats-sha256 to check a known value.
BEATS_FILE = UrlFile(
    "BEATs_iter3_plus_AS2M_finetuned_on_AS2M_cpt2.pt",
    "https://valle.blob.core.windows.net/share/BEATs/BEATs_iter3_plus_AS2M_finetuned_on_AS2M_cpt2.pt"
    "?sv=2020-08-04&st=2023-03-01T07%3A51%3A05Z&se=2033-03-02T07%3A51%3A00Z&sr=c&sp=rl"
    "&sig=QJXmSJG9DbMKf48UDIU1MfzIro8HQOf3sqlNXiflY1I%3D",
    None,
)


def ref_thinker_repos() -> tuple[HubRepo, HubRepo, HubRepo]:
    return RELEASE, LLAMA, CLIP


@dataclass(frozen=True)
class RefThinkerDownloads:
    release: Path
    llama: Path
    clip: Path
    beats: Path


def _refused(repo: HubRepo, endpoint: str) -> MissingWeightsError:
    return MissingWeightsError(
        f"{repo.repo_id} is gated and the hub refused this account (or no token was sent)",
        fix=f"accept the licence at {endpoint}/{repo.repo_id}, then log in with `huggingface-cli login` "
        "(or set HF_TOKEN) and rerun the same command (finished files are kept)",
    )


def check_access(repos: Sequence[HubRepo]) -> str:
    """Before any download: the hub answers and every repository is granted; returns the endpoint."""
    if hub_offline():
        raise MissingWeightsError(
            "the offline flag is set (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE), so nothing can be downloaded",
            fix="unset it for this command",
        )
    probe = probe_hub()
    if not probe.answered:
        raise MissingWeightsError(
            f"cannot download: {probe.describe()} {probe.detail}".strip(),
            fix="check the network (or set HF_ENDPOINT to a mirror), or copy the files from a machine that has them",
        )
    problems = []
    for repo in repos:
        access = probe_repo(repo.repo_id, repo.probe_file, probe.endpoint)
        if access is RepoAccess.GATED:
            raise _refused(repo, probe.endpoint)
        if access is not RepoAccess.AVAILABLE:
            problems.append(f"{repo.repo_id}: {access.value}")
    if problems:
        raise MissingWeightsError("cannot download: " + "; ".join(problems), fix="check the repository names")
    return probe.endpoint


def fetch_hub_repo(repo: HubRepo, endpoint: str | None = None, local_dir: Path | None = None) -> Path:
    """snapshot_download into the hub cache (or local_dir): resumable, honours HF_ENDPOINT and the token."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import GatedRepoError

    base = endpoint or hub_endpoint()
    try:
        path = snapshot_download(
            repo.repo_id,
            allow_patterns=list(repo.allow_patterns) if repo.allow_patterns else None,
            endpoint=base,
            local_dir=str(local_dir) if local_dir is not None else None,
        )
    except GatedRepoError as exc:
        raise _refused(repo, base) from exc
    except Exception as exc:  # network errors of the hub client's own HTTP stack (its types vary by version)
        raise MissingWeightsError(
            f"downloading {repo.repo_id} failed: {type(exc).__name__}: {exc}",
            fix="rerun the same command: finished files are kept and partial ones resume",
        ) from exc
    return Path(path)


def download_file(url: str, target: Path, sha256: str | None, *, chunk: int = 1 << 20, timeout: float = 30.0) -> Path:
    """Download to ``target`` through ``target.part``, resuming a partial file with a range request.

    sha256: checked when given; a mismatch removes the file (a resumed download of another
    file, or a damaged one) and says so.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_file():
        _verify(target, sha256)
        return target
    part = target.with_name(target.name + ".part")
    done = part.stat().st_size if part.is_file() else 0
    headers = {"Range": f"bytes={done}-"} if done else {}
    try:
        with httpx.stream("GET", url, headers=headers, timeout=timeout, follow_redirects=True) as response:
            if response.status_code == 416:  # already complete
                pass
            elif response.status_code >= 400:
                raise MissingWeightsError(f"downloading {target.name} failed: HTTP {response.status_code} from {url}")
            else:
                mode = "ab" if done and response.status_code == 206 else "wb"
                with part.open(mode) as fh:
                    for block in response.iter_bytes(chunk):
                        fh.write(block)
    except httpx.HTTPError as exc:
        raise MissingWeightsError(
            f"downloading {target.name} was interrupted: {exc}",
            fix="rerun the same command: the download resumes where it stopped",
        ) from exc
    _verify(part, sha256, name=target.name)
    os.replace(part, target)
    return target


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verify(path: Path, sha256: str | None, name: str | None = None) -> None:
    if sha256 is None:
        return
    got = sha256_of(path)
    if got != sha256.lower():
        path.unlink()
        raise WeightsError(
            f"{name or path.name} has sha256 {got}, expected {sha256}; the file was removed",
            fix="rerun to download it again; if it persists, the source changed: check the URL",
        )


def fetch_ref_thinker(
    out: Path,
    *,
    downloads: Path,
    beats_url: str = BEATS_FILE.url,
    beats_sha256: str | None = BEATS_FILE.sha256,
    say: Say = logger.info,
    overwrite: bool = False,
    convert_options: Mapping[str, Any] | None = None,
) -> Path:
    """Download the four parts, then convert them into ``out`` (a directory for ``--model``).

    convert_options: keyword arguments of ``convert_ref_thinker`` (dtype, merge_lora, ...).
    """
    from tgs.publish import check_output_dir
    from tgs.think.ref_thinker.convert import ReleaseFiles, convert_ref_thinker

    check_output_dir(out, overwrite=overwrite)
    endpoint = check_access(ref_thinker_repos())  # a refused LLaMA stops here, before any download
    paths = {}
    for name, repo in (("release", RELEASE), ("llama", LLAMA), ("clip", CLIP)):
        say(f"downloading {repo.repo_id}")
        paths[name] = fetch_hub_repo(repo, endpoint)
    say(f"downloading {BEATS_FILE.name}")
    beats = download_file(beats_url, downloads / BEATS_FILE.name, beats_sha256)
    if beats_sha256 is None:
        say(f"{BEATS_FILE.name}: sha256 {sha256_of(beats)} (no recorded value to check it against)")
    parts = RefThinkerDownloads(paths["release"], paths["llama"], paths["clip"], beats)
    say(f"converting into {out}")
    convert_ref_thinker(ReleaseFiles.discover(parts.release), parts.llama, parts.clip, parts.beats, out,
                        overwrite=overwrite, **dict(convert_options or {}))  # fmt: skip
    return out
