"""The one manifest builder: what a run directory was made from, in one schema for every kind.

Keys (all kinds; absent parts are None)::

    {"kind": "think" | "ground-segment" | "full-run",
     "thinker": {"name", "options", "batch_size"?} | None,   # batch_size only when answers depend on it
     "preset": {every switch} | None,
     "thoughts": {"mode": "direct"} | {"mode": "file", "sha256"} | {"mode": "path", "path"} | None,
     "data": {"benchmark", "root", "meta", "meta_sha256", "splits"},
     "models": {"set": "real"|"tiny"|"mixed", <registry key>: source, ...},
     "precision": {"dtype"},
     "runtime": {"device", "batch_size", "frame_batch_size", "executor", ...},   # may change between calls
     "throughput": {stage: {"expressions", "seconds", "expressions_per_s"}},     # added after each call
     "fast_paths": {"ran": {path: count}, "fallbacks": [{"path", "reason", "count"}]},  # the last call's
                                                                                 # (tgs.fast_paths, run_stage)
     "created", "versions"}

A rerun resumes only when :data:`FINGERPRINT_KEYS` match (the settings that change results).
"""

from __future__ import annotations

import hashlib
import platform
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tgs.core.load_spec import LoadSpec
from tgs.core.loading import public_options
from tgs.core.settings import Settings
from tgs.presets import PRESETS, Preset, default_dtype

__all__ = [
    "FINGERPRINT_KEYS",
    "build_manifest",
    "data_record",
    "public_options",
    "throughput_record",
    "upgrade_manifest",
]

FINGERPRINT_KEYS: tuple[str, ...] = ("kind", "thinker", "preset", "thoughts", "data", "models", "precision")
"""Manifest keys that must match for a rerun to resume."""

RETIRED_SWITCHES: frozenset[str] = frozenset({"dtype"})
"""Preset switches that became settings: read from old manifests, never compared (see :func:`upgrade_manifest`)."""


def upgrade_manifest(recorded: Mapping[str, Any]) -> dict[str, Any]:
    """A manifest (or ``run.json``) as today's schema, for the resume comparison.

    A preset switch added after the run was made is absent from its recorded preset; the run
    ran as that switch's value in the same preset (``segmenter``, ``sam3_choice``,
    ``sam3_threshold`` and ``batch_captions`` came in without changing ``paper`` or ``best``),
    so an absent switch is read as the recorded preset's own value (a ``custom`` one: the
    switch's default). Only absent switches are filled: a recorded value, however old, is
    compared as it is, and a different one still refuses the resume.

    A preset block recorded while the precision was also a preset switch holds a ``dtype``;
    it is dropped: the precision the run used is in its ``precision`` block (the settings'
    dtype, else that preset dtype), which is compared with today's (``--dtype``, else
    :func:`tgs.presets.default_dtype`).
    """
    upgraded = dict(recorded)
    preset = recorded.get("preset")
    if isinstance(preset, Mapping):
        base = PRESETS.get(str(preset.get("name")), Preset())
        upgraded["preset"] = {**base.to_dict(), **{k: v for k, v in preset.items() if k not in RETIRED_SWITCHES}}
    return upgraded


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def data_record(benchmark: str, root: Path, meta: Path, splits: Sequence[str] | None) -> dict[str, Any]:
    """The benchmark a run reads: its root, its CSV (by content) and the splits."""
    return {
        "benchmark": benchmark,
        "root": str(Path(root).resolve()),
        "meta": str(Path(meta).resolve()),
        "meta_sha256": _file_sha256(Path(meta)),
        "splits": list(splits) if splits is not None else None,
    }


def _version_of(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def build_manifest(
    kind: str,
    *,
    settings: Settings,
    spec: LoadSpec,
    data: Mapping[str, Any],
    thinker: Mapping[str, Any] | None = None,
    preset: Preset | None = None,
    thoughts: Mapping[str, Any] | None = None,
    runtime: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The manifest of a run of ``kind``; see the module docstring for the schema.

    spec: every model the run loads (recorded with its source, :meth:`LoadSpec.describe`).
    """
    from tgs import __version__

    dtype = settings.dtype
    if dtype is None:
        dtype = default_dtype(preset) if preset is not None else "auto"
    return {
        "kind": kind,
        "thinker": None if thinker is None else dict(thinker),
        "preset": None if preset is None else preset.to_dict(),
        "thoughts": None if thoughts is None else dict(thoughts),
        "data": dict(data),
        "models": spec.describe(),
        "precision": {"dtype": dtype},
        "runtime": {"device": settings.device, **dict(runtime or {})},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": {
            "tgs": __version__,
            "torch": _version_of("torch"),
            "transformers": _version_of("transformers"),
            "python": platform.python_version(),
        },
    }


def throughput_record(expressions: int, seconds: float) -> dict[str, Any]:
    """Expressions processed in a call and their rate (wall clock of the stage, in this call)."""
    rate = expressions / seconds if seconds > 0 else None
    return {
        "expressions": int(expressions),
        "seconds": round(float(seconds), 6),
        "expressions_per_s": None if rate is None else round(rate, 6),
    }
