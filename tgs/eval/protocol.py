"""What an evaluation protocol is, and the pieces both protocols share.

A protocol turns (prediction, ground-truth files) of one sample into a
:class:`SampleScore` and pools the scores of a split into split metrics. The two
protocols (``tgs`` and ``refavs``) differ in resolution, ground-truth resizing,
binarisation and pooling, never in the per-frame measures (``measures.py``).

Split roles follow both originals: on the null split (``test_n``) only S is computed
(from the prediction alone, lower is better); on every other split J and F.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from tgs.errors import DataError
from tgs.types import Masks

__all__ = [
    "NULL_SPLITS",
    "EvalProtocol",
    "SampleScore",
    "check_frames",
    "is_null_split",
]

NULL_SPLITS: frozenset[str] = frozenset({"test_n"})


def is_null_split(split: str) -> bool:
    """True for the split of null references, scored with S instead of J and F."""
    return split in NULL_SPLITS


@dataclass(frozen=True)
class SampleScore:
    """The score of one sample under one protocol.

    J, F: set on regular splits; S: set on the null split; the others are None.
    missing: no prediction existed, an empty one was scored instead.
    pool: protocol-private statistics used to pool samples into split metrics (the
        refavs protocol pools frames of 4 samples); not written out.
    """

    uid: str
    split: str
    missing: bool
    J: float | None = None
    F: float | None = None
    S: float | None = None
    pool: Any = field(default=None, repr=False, compare=False)

    def to_record(self, protocol: str) -> dict[str, Any]:
        """One line of the per-sample JSONL."""
        record: dict[str, Any] = {"protocol": protocol, "uid": self.uid, "split": self.split}
        for key in ("J", "F", "S"):
            value = getattr(self, key)
            if value is not None:
                record[key] = value
        record["missing"] = self.missing
        return record


@runtime_checkable
class EvalProtocol(Protocol):
    """One named way of scoring predictions against a benchmark."""

    name: str
    size: int
    description: str
    last_row_per_uid: bool  # score a repeated uid once, on its last row (else every row)

    def load_gt(self, paths: Sequence[Path]) -> np.ndarray:
        """Ground truth of one sample at the protocol's size: bool [T, size, size]."""
        ...

    def score(self, uid: str, split: str, pred: Masks | None, gt: np.ndarray | None, num_frames: int) -> SampleScore:
        """Score one sample; ``pred`` None means missing (scored as empty), ``gt`` None on null splits."""
        ...

    def aggregate(self, scores: Sequence[SampleScore]) -> dict[str, float | int]:
        """Split metrics from the scores of one split, in benchmark (CSV) order."""
        ...


def check_frames(uid: str, pred: Masks | None, num_frames: int) -> None:
    """A prediction must have one mask per ground-truth frame."""
    if pred is not None and pred.num_frames != num_frames:
        raise DataError(
            f"prediction for {uid} has {pred.num_frames} frames, the benchmark has {num_frames}",
            fix="write one mask per frame (00000.png ... for every frame of the sample)",
        )
