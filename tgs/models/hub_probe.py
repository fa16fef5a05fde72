"""One short look at the Hugging Face hub before any model is loaded.

Without it, a missing model is discovered by ``from_pretrained`` deep inside a run, after
the hub client has retried each file for tens of seconds, and only the first missing model
is named. Here one request with a short timeout and no retries tells apart the states a
user can act on: the offline flag is set, the host name does not resolve, the connection
is refused, nobody answers in time, the repository is gated or refused, or the hub
answered. Only when the hub answered is a model that is not cached "downloadable".
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from enum import Enum

import httpx

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "HubProbe",
    "HubState",
    "RepoAccess",
    "hub_endpoint",
    "hub_offline",
    "probe_hub",
    "probe_repo",
]

DEFAULT_TIMEOUT_S = 3.0
_DEFAULT_ENDPOINT = "https://huggingface.co"
_TRUE = {"1", "on", "yes", "true"}


class HubState(str, Enum):
    """What the one reachability probe found; ``ANSWERED`` is the only usable state."""

    OFFLINE = "offline flag set (HF_HUB_OFFLINE)"
    DNS = "host name does not resolve"
    REFUSED = "connection refused"
    TIMEOUT = "no answer in time"
    UNREACHABLE = "cannot connect"
    ANSWERED = "answered"


class RepoAccess(str, Enum):
    """What the hub said about one repository (only asked once the hub answered)."""

    AVAILABLE = "will be downloaded"
    GATED = "gated or refused: accept the licence and log in"
    NOT_FOUND = "not found on the hub"
    ERROR = "the hub answered with an error"


@dataclass(frozen=True)
class HubProbe:
    """The probe's verdict; ``detail`` is the low-level reason, for -v and error messages."""

    state: HubState
    endpoint: str
    detail: str = ""

    @property
    def answered(self) -> bool:
        return self.state is HubState.ANSWERED

    def describe(self) -> str:
        """Short phrase for tables and errors, e.g. ``hub unreachable: connection refused``."""
        if self.state is HubState.OFFLINE:
            return "hub access is off (HF_HUB_OFFLINE)"
        if self.answered:
            return f"hub {self.endpoint} answered"
        return f"hub unreachable: {self.state.value} ({self.endpoint})"


def hub_offline() -> bool:
    """The offline flag as the hub client reads it (HF_HUB_OFFLINE, or TRANSFORMERS_OFFLINE)."""
    return any(os.environ.get(name, "").strip().lower() in _TRUE for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def hub_endpoint() -> str:
    """The hub address the client uses: $HF_ENDPOINT, else huggingface.co."""
    return os.environ.get("HF_ENDPOINT", "").rstrip("/") or _DEFAULT_ENDPOINT


def probe_hub(endpoint: str | None = None, timeout: float | None = None) -> HubProbe:
    """One HEAD request to the hub's root, no retries; classifies why it failed.

    timeout: seconds for connecting and for the answer (default $TGS_HUB_TIMEOUT, else 3).
    """
    base = endpoint or hub_endpoint()
    timeout = timeout if timeout is not None else _timeout()
    if hub_offline():
        return HubProbe(HubState.OFFLINE, base)
    try:
        with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=True) as client:
            client.head(base + "/")
    except httpx.TimeoutException as exc:
        return HubProbe(HubState.TIMEOUT, base, f"after {timeout:g} s: {exc}")
    except httpx.TransportError as exc:
        return HubProbe(_classify(exc), base, str(exc))
    return HubProbe(HubState.ANSWERED, base)


def probe_repo(repo_id: str, filename: str, endpoint: str | None = None, timeout: float | None = None) -> RepoAccess:
    """HEAD on one file of a repository (with the user's token): can it be downloaded?"""
    base = endpoint or hub_endpoint()
    timeout = timeout if timeout is not None else _timeout()
    url = f"{base}/{repo_id}/resolve/main/{filename}"
    try:
        with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=True) as client:
            response = client.head(url, headers=_auth_headers())
    except httpx.HTTPError:
        return RepoAccess.ERROR
    code = response.status_code
    if code < 400:
        return RepoAccess.AVAILABLE
    if code in (401, 403):
        # The hub answers 401 for both private/gated repos and anonymous users; either way a
        # login (and for gated repos the licence) is what the user needs.
        return RepoAccess.GATED
    if code == 404:
        return RepoAccess.NOT_FOUND
    return RepoAccess.ERROR


def _timeout() -> float:
    try:
        return float(os.environ.get("TGS_HUB_TIMEOUT", "") or DEFAULT_TIMEOUT_S)
    except ValueError:
        return DEFAULT_TIMEOUT_S


def _auth_headers() -> dict[str, str]:
    try:
        from huggingface_hub.utils import build_hf_headers

        return dict(build_hf_headers())
    except Exception:  # no token, or an odd local set-up: ask anonymously
        return {}


def _classify(exc: BaseException) -> HubState:
    """Walk the exception chain down to the socket error."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, socket.gaierror):
            return HubState.DNS
        if isinstance(seen, ConnectionRefusedError):
            return HubState.REFUSED
        if isinstance(seen, (TimeoutError, socket.timeout)):
            return HubState.TIMEOUT
        seen = seen.__cause__ or seen.__context__
    text = str(exc).lower()
    if "name or service not known" in text or "nodename nor servname" in text or "name resolution" in text:
        return HubState.DNS
    if "connection refused" in text or "errno 111" in text:
        return HubState.REFUSED
    return HubState.UNREACHABLE
