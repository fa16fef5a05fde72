"""Compare two output folders of ``tgs segment`` / ``tgs run`` file by file: are they the same?

    python scripts/compare_segment_outputs.py BEFORE AFTER

Both folders are walked; every file present in one and not the other is a difference. Files
are compared by kind:

- ``*.png``, ``masks.json``, ``*.csv``, ``*.txt``: bytes;
- ``result.json``: parsed, without what differs between two identical runs by design
  (``created``, ``version``, ``timings``, the propagation's ``process_seconds``, ``video.path``);
- ``*.jsonl`` (a run directory's records) and other ``*.json``: parsed line by line, without
  the keys of :data:`VOLATILE` (dates, durations, throughput, paths) and anything with
  ``time`` in its name except ``time`` and ``frame_times``;
- ``*.mp4``: bytes, reported but not counted (``--strict`` counts them): the encoded overlay
  is not reproducible byte for byte even by one version (the same frames encoded with and
  without a progress callback give two files), so only its presence is required.

Lock and partial files (``.lock``, ``.partial``) are skipped. Exit status 0 when every
compared file is equal, 1 otherwise; one line per difference.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

VOLATILE = {"created", "version", "timings", "seconds", "process_seconds", "throughput", "timestamp", "started",
            "finished", "pid", "host", "elapsed", "path", "out", "run_dir", "argv", "python", "platform", "cwd"}
SKIP_PARTS = {".lock", ".partial", "__pycache__"}


def _clean(value: Any) -> Any:
    """``value`` without the keys that differ between two identical runs."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if (k not in VOLATILE and "time" not in k.lower())
                or k in ("frame_times", "time")}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")
            if p.is_file() and not SKIP_PARTS.intersection(p.relative_to(root).parts)}


def _json_lines(path: Path) -> list[Any]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        return [_clean(json.loads(line)) for line in text.splitlines() if line.strip()]
    return [_clean(json.loads(text))]


def compare_file(a: Path, b: Path) -> str | None:
    """None when equal, else a short description of the difference."""
    name = a.name
    if name == "result.json" or a.suffix in (".jsonl",) or (a.suffix == ".json" and name != "masks.json"):
        left, right = _json_lines(a), _json_lines(b)
        if left == right:
            return None
        for i, (x, y) in enumerate(zip(left, right)):
            if x != y:
                keys = sorted(k for k in set(x) | set(y) if x.get(k) != y.get(k)) if isinstance(x, dict) else []
                return f"record {i} differs (keys: {', '.join(keys) or '?'})"
        return f"{len(left)} vs {len(right)} records"
    if a.read_bytes() == b.read_bytes():
        return None
    return "bytes differ"


def compare(before: Path, after: Path, *, strict: bool = False) -> tuple[int, int, list[str]]:
    """(files compared, differences counted, report lines)."""
    left, right = _files(before), _files(after)
    lines = [f"only in {before}: {p}" for p in sorted(left - right)]
    lines += [f"only in {after}: {p}" for p in sorted(right - left)]
    counted = len(lines)
    common = sorted(left & right)
    for rel in common:
        diff = compare_file(before / rel, after / rel)
        if diff is None:
            continue
        soft = rel.endswith((".mp4", ".mkv", ".log")) and not strict
        lines.append(f"{rel}: {diff}" + (" (not counted: a container / log)" if soft else ""))
        counted += 0 if soft else 1
    return len(common), counted, lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--strict", action="store_true", help="count container (mp4) and log differences too")
    args = parser.parse_args(argv)
    for folder in (args.before, args.after):
        if not folder.is_dir():
            parser.error(f"{folder}: not a folder")
    compared, counted, lines = compare(args.before, args.after, strict=args.strict)
    sys.stdout.write("".join(line + "\n" for line in lines))
    sys.stdout.write(f"{compared} files compared, {counted} differences\n")
    return 1 if counted else 0


if __name__ == "__main__":
    sys.exit(main())
