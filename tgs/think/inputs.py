"""Reading thinker outputs back: a thoughts file of either format into Thoughts by uid.

Accepted, line by line (JSON lines, one object per line):

- our ``thoughts.jsonl`` (written by ``tgs think``; see ``tgs.think.base``);
- the original ``inference_results.jsonl`` as it is: ``{"uid", "ref", "predict"}``.

Both go through :func:`tgs.think.base.thought_from_record`, i.e. the one shared tag
parser. When a uid appears on several lines the first successful line wins: the original
ground-segment scripts skip a uid they have already scored, and our append-only
thoughts file only repeats a uid after a failed attempt. A line whose thinking failed is
kept as a failure, so ground-segment records that sample as failed with the thinker's
error instead of grounding anything.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tgs.errors import DataError, ParseError
from tgs.think.base import FAILED, thought_from_record
from tgs.types import Thought

__all__ = ["THOUGHTS_FILE", "ThoughtInputs", "coverage_problems", "load_thoughts", "resolve_thoughts_path"]

logger = logging.getLogger(__name__)

THOUGHTS_FILE = "thoughts.jsonl"


@dataclass(frozen=True)
class ThoughtInputs:
    """Thoughts read from one file.

    thoughts: uid -> Thought, for every uid with a successful line.
    failed: uid -> the thinker's error, for uids whose every line failed.
    path: the file read; sha256: its content hash (for run manifests).
    """

    path: Path
    sha256: str
    thoughts: Mapping[str, Thought] = field(default_factory=dict)
    failed: Mapping[str, str] = field(default_factory=dict)
    repeated: Mapping[str, int] = field(default_factory=dict)
    """uid -> how many more successful lines it has after the first (which is the one used)."""

    def __len__(self) -> int:
        return len(self.thoughts)

    def get(self, uid: str) -> Thought:
        """The Thought of ``uid``; a DataError naming the file when there is none."""
        thought = self.thoughts.get(uid)
        if thought is not None:
            return thought
        if uid in self.failed:
            raise DataError(
                f"the thinker failed on {uid}: {self.failed[uid]}",
                path=self.path,
                fix="think again to retry it (`tgs think` on its run directory retries failed samples), then "
                "ground and segment into a new run directory: a run stays tied to the thoughts file it started with",
            )
        raise DataError(
            f"no thought for {uid} in {self.path}",
            path=self.path,
            fix="run the thinker on this split, or use --direct to ground the expressions",
        )


def resolve_thoughts_path(path: str | Path) -> Path:
    """A thoughts file, or a run directory holding ``thoughts.jsonl``."""
    path = Path(path)
    if path.is_dir():
        inner = path / THOUGHTS_FILE
        if not inner.is_file():
            raise DataError(
                f"{path} is a directory without {THOUGHTS_FILE}",
                path=path,
                fix="pass a thoughts JSONL file or a `tgs think` run directory",
            )
        return inner
    if not path.is_file():
        raise DataError(f"thoughts file not found: {path}", path=path, fix="pass --thoughts FILE, or --direct")
    return path


def load_thoughts(path: str | Path) -> ThoughtInputs:
    """Read a thoughts file (ours or the original ``inference_results.jsonl``).

    A line that is not a JSON object, or lacks ``uid``/``predict``, raises DataError
    naming the file and the line. A last line without its newline that does not parse is
    a write cut short by a crash: it is skipped with a warning, as the run store does.
    """
    path = resolve_thoughts_path(path)
    data = path.read_bytes()
    thoughts: dict[str, Thought] = {}
    failed: dict[str, str] = {}
    repeated: dict[str, int] = {}
    lines = data.split(b"\n")
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        is_torn_tail = number == len(lines)  # no newline after it
        record = _parse_line(path, number, raw, is_torn_tail)
        if record is None:
            continue
        uid = record.get("uid")
        if not isinstance(uid, str) or not uid:
            raise DataError(
                f"{path}: line {number} has no 'uid' string", path=path, fix="every line needs a non-empty uid"
            )
        if uid in thoughts:
            if record.get("status") != FAILED:
                repeated[uid] = repeated.get(uid, 0) + 1
            continue  # first successful line wins
        if record.get("status") == FAILED:
            failed.setdefault(uid, str(record.get("error") or "unknown error"))
            continue
        try:
            thoughts[uid] = thought_from_record(record)
        except ParseError as exc:
            raise DataError(
                f"{path}: line {number}: {exc}",
                path=path,
                fix="each line needs 'uid' and the thinker's text in 'predict' (or our thoughts.jsonl fields)",
            ) from exc
        failed.pop(uid, None)
    logger.info("read %d thoughts (%d failed) from %s", len(thoughts), len(failed), path)
    return ThoughtInputs(
        path=path, sha256=hashlib.sha256(data).hexdigest(), thoughts=thoughts, failed=failed, repeated=repeated
    )


def coverage_problems(inputs: ThoughtInputs, uids: Iterable[str]) -> list[str]:
    """What a user should hear about a thoughts file against the rows to run (``uids``): rows
    without a thought, thoughts for uids that are not rows (another CSV or split?), and uids
    answered more than once (the first answer is used). Empty when all is in order."""
    wanted = set(uids)
    given = set(inputs.thoughts) | set(inputs.failed)
    problems = []
    without = wanted - given
    if without:
        problems.append(
            f"{len(without)} of {len(wanted)} samples have no thought in {inputs.path}, e.g. {min(without)!r}; "
            "they will be recorded as failed"
        )
    unknown = given - wanted
    if unknown:
        problems.append(
            f"{len(unknown)} uid(s) in {inputs.path} are not rows of the chosen benchmark and splits, "
            f"e.g. {min(unknown)!r}; they are not used"
        )
    if inputs.repeated:
        problems.append(
            f"{len(inputs.repeated)} uid(s) have more than one answer in {inputs.path}, e.g. "
            f"{min(inputs.repeated)!r}; the first one is used"
        )
    return problems


def _parse_line(path: Path, number: int, raw: bytes, is_torn_tail: bool) -> dict | None:
    try:
        record = json.loads(raw.decode("utf-8"))  # decoded first: json would guess UTF-16/32 from odd bytes
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        if is_torn_tail:
            logger.warning("%s: ignoring line %d, cut short without a newline (a crash mid-write)", path, number)
            return None
        what = "UTF-8 text" if isinstance(exc, UnicodeDecodeError) else "valid JSON"
        raise DataError(
            f"{path}: line {number} is not {what} ({exc})",
            path=path,
            fix="each line must be one JSON object, e.g. {\"uid\": ..., \"ref\": ..., \"predict\": ...}",
        ) from exc
    if not isinstance(record, dict):
        raise DataError(
            f"{path}: line {number} is a JSON {type(record).__name__}, expected an object",
            path=path,
            fix="each line must be one JSON object with 'uid' and 'predict'",
        )
    return record
