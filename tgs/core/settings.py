"""The one settings object: device, dtype and where every model comes from.

Built once at the edge (the CLI, the demo, a library caller) and handed to the core,
which turns it into loaded stages. "tiny" is a model source like a hub id or a folder:
``Settings.tiny()`` runs every stage on the random tiny models, ``Settings(sources=
{"grounding_dino": "tiny"})`` only Grounding DINO.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ROLES", "TINY", "UNTRAINED_LABEL", "Settings"]

from tgs.models import TINY

ROLES: tuple[str, ...] = ("thinker", "grounding_dino", "sam2")
"""Model roles a source can be given for; ``sam2`` covers the image and the video model."""

UNTRAINED_LABEL = "UNTRAINED TINY MODELS — install check only, results are meaningless"
"""Shown (and written into outputs) whenever a tiny model ran."""


@dataclass(frozen=True)
class Settings:
    """Device, dtype and model sources, given once.

    device: "auto" (CUDA when present), "cpu", "cuda", "cuda:N".
    dtype: "auto", "fp32", "bf16", "fp16" for every model; None: each stage's default
        (Ground + Segment: :func:`tgs.presets.default_dtype`, fp32 under ``paper``, else auto;
        a thinker: auto). The one place the precision is given (a preset has no dtype).
    sources: role (:data:`ROLES`) -> hub id, local directory or "tiny"; a role not given
        uses the model registry's default for it.
    compile: ``torch.compile`` the heavy modules of Ground + Segment and give Ref-Thinker a
        static KV cache with a compiled decode step (for GPUs: the first batches pay the
        compilation; the results equal the eager ones up to float rounding).
    """

    device: str = "auto"
    dtype: str | None = None
    sources: Mapping[str, str] = field(default_factory=dict)
    compile: bool = False

    def __post_init__(self) -> None:
        unknown = sorted(set(self.sources) - set(ROLES))
        if unknown:
            raise ValueError(f"sources: unknown role(s) {', '.join(unknown)}; roles: {', '.join(ROLES)}")
        cleaned = {k: str(v) for k, v in sorted(self.sources.items()) if v is not None and str(v).strip()}
        object.__setattr__(self, "sources", cleaned)
        if self.dtype is not None and str(self.dtype).strip().lower() not in ("auto", "fp32", "bf16", "fp16"):
            raise ValueError(f"dtype: expected auto, fp32, bf16 or fp16, got {self.dtype!r}")
        if not isinstance(self.compile, bool):
            raise ValueError(f"compile: expected true or false, got {self.compile!r}")
        if not isinstance(self.device, str) or not self.device.strip():
            raise ValueError(f"device: expected a name such as auto, cpu, cuda, cuda:1, got {self.device!r}")

    @classmethod
    def tiny(cls, device: str = "cpu", dtype: str | None = None, compile: bool = False) -> Settings:
        """Every role on its random tiny model."""
        return cls(device=device, dtype=dtype, sources={role: TINY for role in ROLES}, compile=compile)

    @classmethod
    def from_options(
        cls,
        *,
        models: str = "real",
        device: str = "auto",
        dtype: str | None = None,
        compile: bool = False,
        **sources: str | None,
    ) -> Settings:
        """The CLI's ``--models real|tiny`` plus per-role sources (``--model``, ``--gdino``, ``--sam2``).

        ``models="tiny"`` makes :data:`TINY` every role's source; sources given with it are an error, since
        they would be silently ignored.
        """
        if models not in ("real", TINY):
            raise ValueError(f"models: expected 'real' or 'tiny', got {models!r}")
        given = {k: v for k, v in sources.items() if v is not None}
        if models == TINY:
            if given:
                raise ValueError(f"the tiny model set takes no model source (got {', '.join(sorted(given))})")
            return cls.tiny(device=device, dtype=dtype, compile=compile)
        return cls(device=device, dtype=dtype, sources=given, compile=compile)

    # ------------------------------------------------------------------ sources
    def source(self, role: str) -> str | None:
        """The source given for ``role`` (None: the registry default)."""
        if role not in ROLES:
            raise ValueError(f"unknown model role {role!r}; roles: {', '.join(ROLES)}")
        return self.sources.get(role)

    def is_tiny(self, role: str) -> bool:
        return self.source(role) == TINY

    @property
    def untrained(self) -> bool:
        """Whether any role runs on a tiny (untrained) model."""
        return TINY in self.sources.values()

    @property
    def on_gpu(self) -> bool:
        """Whether the models run on a CUDA device (``auto`` resolves to one when present)."""
        from tgs.devices import resolve_device

        return resolve_device(self.device).type == "cuda"

    def stage_dtype(self, default: str) -> str:
        """The dtype a stage runs in: the one given here, else the stage's ``default``."""
        return self.dtype if self.dtype is not None else default

    def to_dict(self) -> dict[str, Any]:
        return {"device": self.device, "dtype": self.dtype, "sources": dict(self.sources), "compile": self.compile}
