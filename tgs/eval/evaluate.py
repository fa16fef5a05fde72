"""Score predictions against a benchmark under one or more named protocols.

``evaluate`` walks the benchmark rows once, in CSV order, loads each prediction once and
lets every requested protocol score it; ``save_metrics`` writes ``metrics.json`` and the
per-sample JSONL next to it.

Repeated uids (the public CSV repeats 11, within one split): predictions are keyed by
uid, so both rows see the same prediction. The ``tgs`` protocol scores each uid once
with the ground truth of its *last* row (the TGS-Agent script maps uid -> fid with a
dict, the last row winning, and skips a uid already scored); the ``refavs`` protocol
scores every row with its own ground truth (the official loader iterates rows).

A sample whose ground truth cannot be read is not scored: it is listed under
``"unscored"`` with the error (file and reason) and counted per split, and the
evaluation goes on. Missing predictions are never skipped: they are counted per split and protocol and
scored with a substitute that never rewards a failure (``missing="worst"``, default):
a full-foreground mask on the null split (S = 1, the worst value) and an empty mask
elsewhere. ``missing="empty"`` scores an empty mask everywhere, which is how the original
scripts treat frames they skipped (and so gives a perfect S on the null split).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from tgs.errors import DataError
from tgs.eval.predictions import PredictionSource, open_predictions
from tgs.eval.protocol import EvalProtocol, SampleScore, is_null_split
from tgs.eval.refavs_protocol import RefAVSProtocol
from tgs.eval.tgs_protocol import TGSProtocol
from tgs.types import Masks

__all__ = [
    "DEFAULT_SPLITS",
    "PROTOCOLS",
    "choose_splits",
    "evaluate",
    "get_protocol",
    "samples_path_for",
    "save_metrics",
]

logger = logging.getLogger(__name__)

PROTOCOLS: dict[str, Callable[[], EvalProtocol]] = {"tgs": TGSProtocol, "refavs": RefAVSProtocol}
MISSING_POLICIES: tuple[str, ...] = ("worst", "empty")
DEFAULT_SPLITS: tuple[str, ...] = ("test_s", "test_u", "test_n")
"""Splits the papers report: J and F on seen and unseen, S on null."""

SCHEMA_VERSION = 1


def get_protocol(protocol: str | EvalProtocol) -> EvalProtocol:
    """A protocol object from its name ("tgs", "refavs") or the object itself."""
    if not isinstance(protocol, str):
        return protocol
    try:
        return PROTOCOLS[protocol]()
    except KeyError:
        close = difflib.get_close_matches(protocol, list(PROTOCOLS), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown protocol {protocol!r}.{hint} Available: {', '.join(PROTOCOLS)}") from None


def evaluate(
    bench: Any,
    predictions: str | Path | PredictionSource | Mapping[str, Masks],
    protocols: Sequence[str | EvalProtocol] = ("tgs",),
    splits: Sequence[str] | None = None,
    *,
    progress: Callable[[int], None] | None = None,
    missing: str = "worst",
) -> dict[str, Any]:
    """Metrics of ``predictions`` on ``bench``, per protocol and split.

    bench: a ``tgs.data.benchmark.Benchmark`` (any iterable of Samples with uid, split and
        mask_paths works; name/root/meta_path are recorded when present).
    predictions: a predictions folder, a run directory, a mapping uid -> Masks or a
        PredictionSource.
    splits: splits to score; default the papers' test splits present in ``bench``
        (``test_s``, ``test_u``, ``test_n``), or every split if it has none of them; for a run
        directory, the splits the run was made on (asking for another one is an error).
    progress: called with 1 after each benchmark row.
    missing: how a sample without a prediction is scored, "worst" (default: full
        foreground on the null split, empty elsewhere) or "empty" (empty everywhere).

    Returns the content of ``metrics.json`` plus ``"samples"``: the per-sample records
    (written to the JSONL by :func:`save_metrics`).
    """
    if missing not in MISSING_POLICIES:
        raise ValueError(f"missing: expected one of {MISSING_POLICIES}, got {missing!r}")
    source = open_predictions(predictions)
    chosen = [get_protocol(p) for p in protocols]
    if not chosen:
        raise ValueError("protocols: give at least one of " + ", ".join(PROTOCOLS))
    names = [p.name for p in chosen]
    if len(set(names)) != len(names):
        raise ValueError(f"protocols: each protocol once, got {names}")
    all_samples = list(bench)
    split_names = choose_splits(all_samples, splits, getattr(source, "splits", None), source.description)
    samples = [s for s in all_samples if s.split in split_names]
    last_row = {s.uid: i for i, s in enumerate(samples)}
    available = source.uids()
    _require_overlap(available, last_row, source, bench, split_names)

    scores: dict[str, dict[str, list[SampleScore]]] = {p.name: {s: [] for s in split_names} for p in chosen}
    unscored: dict[str, dict[str, list[dict[str, str]]]] = {p.name: {s: [] for s in split_names} for p in chosen}
    gt_cache = _GroundTruthCache()
    for index, sample in enumerate(samples):
        pred = source.load(sample.uid) if sample.uid in available else None
        null = is_null_split(sample.split)
        mask_paths = sample.mask_paths
        num_frames = len(mask_paths)
        for protocol in chosen:
            if protocol.last_row_per_uid and last_row[sample.uid] != index:
                continue  # a repeated uid is scored once, on its last row
            try:
                gt = None if null else gt_cache.get(protocol, mask_paths)
            except DataError as exc:  # a missing or corrupt GT file: this sample cannot be scored
                unscored[protocol.name][sample.split].append(
                    {"protocol": protocol.name, "uid": sample.uid, "split": sample.split, "error": str(exc)}
                )
                continue
            if pred is None and null and missing == "worst":
                full = Masks(np.ones((num_frames, protocol.size, protocol.size), np.bool_),
                             np.ones((num_frames, protocol.size, protocol.size), np.float32))
                score = dataclasses.replace(protocol.score(sample.uid, sample.split, full, gt, num_frames),
                                            missing=True)
            else:
                score = protocol.score(sample.uid, sample.split, pred, gt, num_frames)
            scores[protocol.name][sample.split].append(score)
        if progress is not None:
            progress(1)

    bench_uids = {s.uid for s in all_samples}
    result: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "tool": "tgs",
        "version": _version(),
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "benchmark": _bench_info(bench, len(samples)),
        "predictions": {
            "source": source.description,
            "uids": len(available),
            "not_in_benchmark": len(available - bench_uids),
        },
        "splits": list(split_names),
        "missing_policy": missing,
        "protocols": {},
        "unscored": [e for p in chosen for split in split_names for e in unscored[p.name][split]],
        "samples": [],
    }
    for protocol in chosen:
        per_split = {split: protocol.aggregate(scores[protocol.name][split]) for split in split_names}
        for split in split_names:
            per_split[split]["unscored"] = len(unscored[protocol.name][split])
            if per_split[split]["unscored"]:
                logger.error("%s protocol, %s: %d sample(s) could not be scored (ground truth unreadable), e.g. %s",
                             protocol.name, split, per_split[split]["unscored"],
                             unscored[protocol.name][split][0]["error"])
        result["protocols"][protocol.name] = {
            "description": protocol.description,
            "size": protocol.size,
            "splits": per_split,
            "mean": _mean_over_splits(per_split),
        }
        for split in split_names:
            result["samples"].extend(s.to_record(protocol.name) for s in scores[protocol.name][split])
        n_missing = sum(int(v["missing"]) for v in per_split.values())
        if n_missing:
            logger.warning("%s protocol: %d sample(s) without a prediction, scored with the %r substitute",
                           protocol.name, n_missing, missing)
    return result


def _require_overlap(
    available: frozenset[str], wanted: Mapping[str, int], source: Any, bench: Any, splits: Sequence[str]
) -> None:
    """DataError when there are predictions but none for a scored row: the wrong benchmark, CSV
    or split was given, and scoring every sample as missing would only hide that (and overwrite
    a good metrics.json with zeros). No predictions at all (every sample failed) is scored."""
    if not available or not wanted or not available.isdisjoint(wanted):
        return
    where = getattr(bench, "meta_path", None) or "the benchmark"
    raise DataError(
        f"none of the {len(available)} predictions in {getattr(source, 'description', source)} is for a row of "
        f"{where} in split(s) {', '.join(splits)} (predictions e.g. {sorted(available)[0]!r}, "
        f"rows e.g. {next(iter(wanted))!r}); nothing was scored or written",
        fix="pass the benchmark (--data/--meta/--benchmark) and --split the predictions were made for",
    )


def save_metrics(result: Mapping[str, Any], out: str | Path) -> tuple[Path, Path]:
    """Write ``metrics.json`` (everything but the samples) and the per-sample JSONL beside it.

    Returns (metrics path, samples path); the JSONL is ``<stem>_samples.jsonl``.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    summary = {k: v for k, v in result.items() if k != "samples"}
    out.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    samples_path = samples_path_for(out)
    with open(samples_path, "w", encoding="utf-8") as fh:
        for record in result.get("samples", []):
            fh.write(json.dumps(record) + "\n")
    return out, samples_path


def samples_path_for(metrics_path: str | Path) -> Path:
    """Where the per-sample JSONL of a metrics file goes: ``<stem>_samples.jsonl``."""
    path = Path(metrics_path)
    return path.with_name(f"{path.stem}_samples.jsonl")


class _GroundTruthCache:
    """The ground truth of the last few objects per protocol.

    Several expressions refer to one object (same mask files), and their rows are
    usually close in the CSV; reading and resizing 10 full-size masks is the slowest
    part of an evaluation, so recent ones are kept (bool [10, 256, 256] is 0.6 MB).
    """

    def __init__(self, size: int = 16) -> None:
        self._size = size
        self._entries: OrderedDict[tuple[str, tuple[Path, ...]], np.ndarray] = OrderedDict()

    def get(self, protocol: EvalProtocol, paths: Sequence[Path]) -> np.ndarray:
        key = (protocol.name, tuple(paths))
        if key in self._entries:
            self._entries.move_to_end(key)
            return self._entries[key]
        gt = protocol.load_gt(paths)
        gt.setflags(write=False)  # shared between rows: never modified in place
        self._entries[key] = gt
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)
        return gt


def choose_splits(
    samples: Iterable[Any], splits: Sequence[str] | None, held: Sequence[str] | None = None, source: str = ""
) -> tuple[str, ...]:
    """The splits to score: ``splits`` (each must have rows), or the default test splits present.

    held: the splits a run's predictions were made on (``RunPredictions.splits``; None: any).
    Then the default is the run's own splits, and a requested split the run does not hold is
    an error: scoring it would count every one of its samples as a failure (and overwrite the
    run's metrics with that).
    """
    present = list(dict.fromkeys(s.split for s in samples))
    if held is not None:
        if splits is None:
            own = tuple(s for s in held if s in present)
            if not own:
                raise DataError(f"{source or 'the run'} was made on split(s) {', '.join(held) or '(none)'}, "
                                f"none of which has rows in this benchmark (it has {', '.join(present)})",
                                fix="evaluate the run against the benchmark it was made on (--data/--meta)")
            return own
        missing = [s for s in dict.fromkeys(splits) if s not in held]
        if missing:
            raise DataError(
                f"{source or 'the run'} was made on split(s) {', '.join(held) or '(none)'}, not "
                f"{', '.join(missing)}: their samples were never run",
                fix="omit --split to score the run's own splits, or run the other split(s) into another --out",
            )
    if splits is None:
        wanted = tuple(s for s in DEFAULT_SPLITS if s in present)
        return wanted or tuple(present)
    for split in splits:
        if split not in present:
            close = difflib.get_close_matches(split, present, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise DataError(f"split {split!r} has no rows in the benchmark.{hint} Available: {', '.join(present)}",
                            fix="pick --split values from the list above")
    return tuple(dict.fromkeys(splits))


def _mean_over_splits(per_split: Mapping[str, Mapping[str, float | int]]) -> dict[str, Any]:
    """J and F averaged over the scored non-null splits (the papers' "Mix (S+U)" column)."""
    used = [s for s, v in per_split.items() if not is_null_split(s) and v.get("count")]
    out: dict[str, Any] = {"splits": used}
    if used:
        for key in ("J", "F"):
            out[key] = float(np.mean([per_split[s][key] for s in used]))
    return out


def _bench_info(bench: Any, rows: int) -> dict[str, Any]:
    info: dict[str, Any] = {"rows": rows}
    for key, attr in (("name", "name"), ("root", "root"), ("meta", "meta_path")):
        value = getattr(bench, attr, None)
        if value is not None:
            info[key] = str(value)
    return info


def _version() -> str:
    from tgs import __version__

    return __version__
