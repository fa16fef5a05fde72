"""Errors and warnings that users see.

Every error names what was expected, what arrived, and what to do, so a failed batch
sample can be recorded with a reason a person can act on.
"""

from __future__ import annotations

from pathlib import Path


class TGSError(Exception):
    """Base class of every error raised on purpose by tgs."""

    kind: str = "error"

    def __init__(self, message: str, *, path: str | Path | None = None, fix: str | None = None) -> None:
        self.message = message  # without the file and fix parts, for errors that wrap this one
        self.path = str(path) if path is not None else None
        self.fix = fix
        parts = [message]
        if self.path is not None and self.path not in message:
            parts.append(f"(file: {self.path})")
        if fix and f"Fix: {fix}" not in message:  # a wrapped error's text may carry the same fix already
            parts.append(f"Fix: {fix}")
        super().__init__(" ".join(parts))


class DataError(TGSError):
    """Input data (metadata, frames, audio, masks) is missing or malformed."""

    kind = "data"


class MetadataError(DataError):
    """A metadata CSV is malformed: wrong header, wrong column count, bad field."""

    kind = "metadata"


class MediaError(DataError):
    """A frame, video or audio file cannot be decoded."""

    kind = "media"


class WeightsError(TGSError):
    """Model weights are missing, incomplete, or do not match the architecture."""

    kind = "weights"


class MissingWeightsError(WeightsError):
    """One or more models are not available locally and cannot be downloaded."""

    kind = "missing_weights"


class CheckpointKeyError(WeightsError):
    """A checkpoint's keys do not match the model: listed, never ignored."""

    kind = "checkpoint_keys"

    def __init__(
        self,
        message: str,
        *,
        missing: list[str] | tuple[str, ...] = (),
        unexpected: list[str] | tuple[str, ...] = (),
        path: str | Path | None = None,
        fix: str | None = None,
    ) -> None:
        self.missing = list(missing)
        self.unexpected = list(unexpected)
        details = []
        if self.missing:
            details.append(f"{len(self.missing)} missing key(s), e.g. {_preview(self.missing)}")
        if self.unexpected:
            details.append(f"{len(self.unexpected)} unexpected key(s), e.g. {_preview(self.unexpected)}")
        super().__init__(message + (": " + "; ".join(details) if details else ""), path=path, fix=fix)


class ParseError(TGSError):
    """A thinker answer cannot be parsed into the expected tags."""

    kind = "parse"


class ThinkerError(TGSError):
    """A thinker could not answer for a sample (endpoint down, malformed reply, generation failure)."""

    kind = "thinker"


class RunError(TGSError):
    """A run directory is inconsistent with the requested run (other config, corrupt store)."""

    kind = "run"


class SettingsError(TGSError, ValueError):
    """A setting cannot be used as given: a device, an option, a size, an output path.

    Also a ValueError, so callers that validate arguments by catching ValueError keep working.
    """

    kind = "settings"


class TGSWarning(UserWarning):
    """Base class of tgs warnings, so users can filter them in one place."""


class SamplingWarning(TGSWarning):
    """A requested sampling was changed to one the input supports (e.g. --fps above the video's rate)."""


class ShortAudioWarning(TGSWarning):
    """A clip's audio is shorter than an audio encoder needs and was padded with silence."""


class NoAudioWarning(TGSWarning):
    """A clip has no audio track: the audio-dependent parts see silence or nothing."""


def _preview(keys: list[str], n: int = 5) -> str:
    shown = ", ".join(repr(k) for k in keys[:n])
    return shown + (", ..." if len(keys) > n else "")
