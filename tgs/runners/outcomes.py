"""What a stage worker hands back, as plain data: shared by the local and the Ray executor.

Kept apart from both executors so that neither imports the other (``executor.py`` picks
the Ray one lazily by name; ``ray_executor.py`` needs only these types).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from tgs.errors import RunError, TGSError
from tgs.run_store import encode_masks
from tgs.runners.local import error_kind
from tgs.types import Masks

__all__ = [
    "Outcome",
    "SampleError",
    "SampleOutput",
    "StageWorker",
    "WorkerFactory",
    "check_ray_available",
    "portable_error",
]

T = TypeVar("T")


@dataclass(frozen=True, eq=False)
class SampleOutput:
    """Everything one finished sample leaves in the run directory, as plain data.

    record: the main stream's record (``uid`` and ``status`` are added when absent).
    masks: saved as ``masks/<uid>.npz`` before the record is committed (None: no masks).
    mask_file: the same, already encoded (:func:`tgs.run_store.encode_masks`); what a
        Ray worker sends, so that compressing runs in parallel and not in the driver.
    streams: records for other streams (e.g. ``{"boxes": [...]}``), appended before the
        record; on resume, lines of a sample whose record never committed are dropped.
    """

    record: Mapping[str, Any]
    masks: Masks | None = None
    streams: Mapping[str, Sequence[Mapping[str, Any]]] = field(default_factory=dict)
    mask_file: bytes | None = None

    def __post_init__(self) -> None:
        if self.masks is not None and self.mask_file is not None:
            raise ValueError("give masks or mask_file, not both")

    def encoded(self) -> SampleOutput:
        """This output with its masks encoded as the bytes of their file."""
        if self.masks is None:
            return self
        return SampleOutput(record=self.record, streams=self.streams, mask_file=encode_masks(self.masks))


Outcome = SampleOutput | Mapping[str, Any] | Exception


class StageWorker(Protocol[T]):
    """Holds a stage's models; turns a batch of sample specs into one outcome per sample."""

    def process(self, batch: list[T]) -> Sequence[Outcome]: ...


WorkerFactory = Callable[[], StageWorker[Any]]


# --------------------------------------------------------------------------- errors across processes


class SampleError(TGSError):
    """An error raised in a worker process, carried back as plain data (kind and message).

    Exceptions do not always survive pickling (a library error whose constructor needs
    extra arguments, a traceback); this one does, and a sample's failure record is the
    same whichever process failed it.
    """

    def __init__(self, message: str, kind: str = "error", original_type: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.original_type = original_type

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.kind, self.original_type))


def portable_error(exc: BaseException) -> SampleError:
    """``exc`` as a :class:`SampleError` with the same message and error kind."""
    if isinstance(exc, SampleError):
        return exc
    return SampleError(str(exc) or type(exc).__name__, error_kind(exc), type(exc).__name__)


def check_ray_available() -> None:
    """Fail with the install command when the optional ``ray`` extra is missing."""
    try:
        import ray.data  # noqa: F401  (Ray Data runs the actor pool; it needs pyarrow)
    except ImportError as exc:
        raise RunError(
            f"the ray executor needs Ray with Ray Data, which is not installed ({exc})",
            fix="pip install 'tgs[ray]' (or pip install 'ray[data,default]'), or use --executor local",
        ) from exc
