"""Everything a report shows about one run, read from its directory.

Read (all optional except the manifest; a missing part becomes a note in the report):

- ``manifest.json``: preset, models, data, versions (``tgs.run_store``);
- ``metrics.json`` and its per-sample ``metrics_samples.jsonl`` (``tgs eval``);
- ``samples.jsonl``: the latest record per uid of a Ground-Segment run (object text,
  chosen boxes, status / error);
- thoughts: the run's own ``thoughts.jsonl`` (a Think run), else the thoughts file the
  manifest names; failed thinking lines are failures too.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tgs.errors import RunError, TGSError
from tgs.run_store import RunStore
from tgs.types import Thought

__all__ = ["Failure", "RunData", "SampleScore", "load_run", "object_class"]

logger = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
SAMPLES_STREAM = "samples"
THOUGHTS_STREAM = "thoughts"
FAILED = "failed"


def object_class(uid: str) -> str:
    """The object class named in a Ref-AVS uid ``<vid>_<class>_<k>`` ("null" for null rows).

    ``uid.rsplit('_', 2)[1]``, the same split ``tgs.data.benchmark.media_folder`` uses;
    "unknown" for a uid without that form.
    """
    parts = uid.rsplit("_", 2)
    return parts[1] if len(parts) == 3 and all(parts) else "unknown"


@dataclass(frozen=True)
class SampleScore:
    """One line of the per-sample metrics JSONL, under one protocol."""

    uid: str
    split: str
    J: float | None
    F: float | None
    S: float | None
    missing: bool


@dataclass(frozen=True)
class Failure:
    """A sample that failed: stage ("ground-segment" or "think"), error kind and message."""

    uid: str
    stage: str
    kind: str
    error: str


@dataclass
class RunData:
    """The parts of a run directory a report uses."""

    run_dir: Path
    manifest: dict[str, Any]
    metrics: dict[str, Any] | None = None
    scores: dict[str, list[SampleScore]] = field(default_factory=dict)
    samples: dict[str, dict[str, Any]] = field(default_factory=dict)
    thoughts: dict[str, Thought] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def store(self) -> RunStore:
        return RunStore(self.run_dir)

    @property
    def is_tiny(self) -> bool:
        """The run used the untrained tiny model set (its numbers mean nothing)."""
        models = self.manifest.get("models")
        return models == "tiny" or (isinstance(models, Mapping) and models.get("set") == "tiny")

    @property
    def object_tag(self) -> str | None:
        """Which thinker tag the run grounded ("f_object" / "s_object"), or "direct"."""
        if (self.manifest.get("thoughts") or {}).get("mode") == "direct":
            return "direct"
        preset = self.manifest.get("preset")
        return preset.get("object_tag") if isinstance(preset, Mapping) else None

    @property
    def label(self) -> str:
        tag = self.object_tag
        return f"{self.run_dir.name} ({tag})" if tag else self.run_dir.name

    def protocols(self) -> list[str]:
        return list((self.metrics or {}).get("protocols", {}))

    def sample_scores(self, protocol: str) -> list[SampleScore]:
        """Per-sample scores of ``protocol``, one per uid (a repeated uid's first row)."""
        seen: set[str] = set()
        out = []
        for score in self.scores.get(protocol, []):
            if score.uid not in seen:
                seen.add(score.uid)
                out.append(score)
        return out


# ---------------------------------------------------------------------------- reading


def load_run(run_dir: str | Path) -> RunData:
    """Read a run directory; RunError if it has no manifest or a file is corrupt."""
    run_dir = Path(run_dir)
    store = RunStore(run_dir)
    data = RunData(run_dir=run_dir, manifest=store.manifest())
    _read_metrics(data)
    data.samples = store.latest(SAMPLES_STREAM)
    for uid, record in data.samples.items():
        if record.get("status") == FAILED:
            data.failures.append(_failure(uid, "ground-segment", record))
    _read_thoughts(data, store)
    return data


def _failure(uid: str, stage: str, record: Mapping[str, Any]) -> Failure:
    kind = record.get("error_kind") or ("think" if stage == "think" else "error")
    return Failure(uid=uid, stage=stage, kind=str(kind), error=str(record.get("error") or "unknown error"))


def _read_metrics(data: RunData) -> None:
    from tgs.eval.evaluate import samples_path_for

    path = data.run_dir / METRICS_FILE
    if not path.is_file():
        data.notes.append(f"no {METRICS_FILE} in the run: evaluate it with `tgs eval --data ROOT --pred {data.run_dir}`")
        return
    try:
        data.metrics = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunError(f"corrupt metrics file: {exc}", path=path, fix="rerun `tgs eval` to rewrite it") from exc
    if not isinstance(data.metrics, dict) or not isinstance(data.metrics.get("protocols"), dict):
        raise RunError("metrics file without a 'protocols' table", path=path, fix="rerun `tgs eval` to rewrite it")
    samples_path = samples_path_for(path)
    if not samples_path.is_file():
        data.notes.append(f"no per-sample scores ({samples_path.name}): plots and best/worst samples are left out")
        return
    for number, line in enumerate(samples_path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            score = SampleScore(
                uid=str(record["uid"]),
                split=str(record["split"]),
                J=_number(record.get("J")),
                F=_number(record.get("F")),
                S=_number(record.get("S")),
                missing=bool(record.get("missing", False)),
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise RunError(f"corrupt line {number} in {samples_path.name}: {exc}", path=samples_path,
                           fix="rerun `tgs eval` to rewrite it") from exc
        data.scores.setdefault(str(record.get("protocol", "tgs")), []).append(score)


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def _thoughts_source(data: RunData) -> Path | None:
    own = data.run_dir / f"{THOUGHTS_STREAM}.jsonl"
    if own.is_file():
        return own
    # The manifest's one key for the thoughts file a run read (written by tgs.runners.ground_segment).
    thoughts = data.manifest.get("thoughts")
    given = data.manifest.get("thoughts_path")
    if not isinstance(thoughts, Mapping) or thoughts.get("mode") != "file" or not given:
        return None
    path = Path(str(given))
    if not path.is_file():
        data.notes.append(f"the thoughts file the run used is gone ({path}): reasoning is not shown")
        return None
    return path


def _read_thoughts(data: RunData, store: RunStore) -> None:
    from tgs.think.inputs import load_thoughts

    for uid, record in store.latest(THOUGHTS_STREAM).items():
        if record.get("status") == FAILED:
            data.failures.append(_failure(uid, "think", record))
    path = _thoughts_source(data)
    if path is None:
        return
    try:
        data.thoughts = dict(load_thoughts(path).thoughts)
    except TGSError as exc:
        data.notes.append(f"cannot read the thoughts in {path}: {exc}")
