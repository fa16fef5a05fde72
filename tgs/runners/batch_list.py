"""What ``tgs segment --batch`` reads: a list of videos, each with its referring expressions.

Three forms (``docs/segment.md``, "Many videos"):

- a CSV (``.csv``) or TSV (``.tsv``) with a header: a ``video`` column (or ``path`` /
  ``file``), one or more expression columns (``expression``, ``expression_2``, ...: every
  column whose name starts with "expression"; empty cells are skipped) and optionally an
  ``id`` column (the video's output folder);
- a JSON Lines file (``.jsonl``): one object per line with ``video``, ``expression`` (a
  string) or ``expressions`` (a list), and optionally ``id``;
- a folder of videos, with one expressions file (one expression per line) for all.

Rows that name the same video (and id) are merged into one entry, its expressions in
order of appearance: one session of that video, one ``segment_video`` call. Relative video
paths are read from the list's folder. A video may be a URL FFmpeg reads (``https://.../a.mp4``):
a finite one is copied and segmented as that file (:mod:`tgs.runners.url_video`), a live one
is that row's recorded error. Each entry's output folder is its ``id``, else the
video's file name without suffix, with characters unfit for a folder name replaced by
``_``; two videos that would share a folder are an error naming both, and so is a folder
name the batch keeps for its own files (:data:`RESERVED_NAMES`, any case).
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from tgs.errors import DataError
from tgs.output_folder import LOCK, STAGING
from tgs.run_store import MANIFEST, MASKS_DIR, safe_uid
from tgs.sources import detect_source
from tgs.sources.fetch import url_stem

__all__ = [
    "INDEX_STREAM",
    "RESERVED_NAMES",
    "VIDEOS_STREAM",
    "VIDEO_SUFFIXES",
    "BatchVideo",
    "read_batch_list",
    "read_expressions_file",
]

INDEX_STREAM = "index"
VIDEOS_STREAM = "videos"
"""The batch folder's two streams (``tgs.runners.segment_batch``): ``index.jsonl``, ``videos.jsonl``."""

RESERVED_NAMES = frozenset(
    {f"{INDEX_STREAM}.jsonl", f"{VIDEOS_STREAM}.jsonl", MANIFEST, MASKS_DIR, LOCK, STAGING}
)
"""Names in a batch folder that are the batch's own, so no video's folder: a video named
``index.jsonl.mp4`` would write its outputs over the index. Lower case; compared in any case
(a folder on a case-insensitive filesystem holds one of ``Masks`` and ``masks``)."""

VIDEO_SUFFIXES = frozenset({".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v", ".mpg", ".mpeg", ".ts", ".flv", ".wmv"})
"""Files a folder given to ``--batch`` contributes (other files are ignored)."""

_VIDEO_KEYS = ("video", "path", "file")
_ID_KEYS = ("id", "uid", "name")
_UNSAFE = re.compile(r"[^A-Za-z0-9._\-]+")


@dataclass(frozen=True)
class BatchVideo:
    """One video of a batch: its output folder name (``uid``), its file (or URL), its expressions in order."""

    uid: str
    video: Path | str  # a str is a URL (tgs.sources.is_url)
    expressions: tuple[str, ...]


def read_batch_list(source: str | Path, expressions: str | Path | Sequence[str] | None = None) -> list[BatchVideo]:
    """The videos of a batch list (CSV / TSV / JSONL) or of a folder of videos; see the module docstring.

    expressions: for a folder, the expressions of every video (a file, one per line, or a
    list); not allowed with a list file (its rows carry their expressions).
    Raises DataError naming the file, line and fix for anything unusable.
    """
    source = Path(source)
    if source.is_dir():
        if expressions is None:
            raise DataError(
                f"{source} is a folder of videos: it needs the expressions to segment in each",
                path=source, fix="add --expressions FILE (one referring expression per line)",
            )
        texts = read_expressions_file(expressions) if isinstance(expressions, (str, Path)) else list(expressions)
        texts = _clean_expressions(texts, source)
        videos = sorted(p for p in source.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
        if not videos:
            raise DataError(f"no video files in {source}", path=source,
                            fix=f"put videos ({', '.join(sorted(VIDEO_SUFFIXES))}) there, or give a CSV/JSONL list")
        rows = [(None, str(p), texts, f"{p.name}") for p in videos]
        return _merge(rows, source)
    if expressions is not None:
        raise DataError(f"{source}: a list file carries its expressions in its rows",
                        path=source, fix="leave out --expressions, or give a folder of videos")
    if not source.is_file():
        raise DataError(f"no such batch list: {source}", path=source,
                        fix="give a .csv, .tsv or .jsonl list of videos and expressions, or a folder of videos")
    suffix = source.suffix.lower()
    if suffix in (".csv", ".tsv"):
        rows = _read_table(source, "\t" if suffix == ".tsv" else ",")
    elif suffix in (".jsonl", ".ndjson"):
        rows = _read_jsonl(source)
    else:
        raise DataError(f"{source}: unknown list format {suffix or '(no suffix)'!r}", path=source,
                        fix="use .csv, .tsv or .jsonl (see docs/segment.md), or give a folder of videos")
    if not rows:
        raise DataError(f"{source} lists no videos", path=source, fix="add one row per video and expression")
    return _merge(rows, source)


def read_expressions_file(path: str | Path) -> list[str]:
    """One expression per line; blank lines and lines starting with ``#`` are skipped."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataError(f"cannot read expressions file {path}: {exc.strerror or exc}", path=path,
                        fix="give a text file with one referring expression per line") from exc
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


# --------------------------------------------------------------------------- readers

_Row = tuple["str | None", str, list[str], str]  # (id, video, expressions, where: "file:line")


def _read_table(path: Path, delimiter: str) -> list[_Row]:
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh, delimiter=delimiter)
        header = [(name or "").strip().lower() for name in reader.fieldnames or []]
        columns = dict(zip(header, reader.fieldnames or []))
        video_key = next((columns[k] for k in _VIDEO_KEYS if k in columns), None)
        id_key = next((columns[k] for k in _ID_KEYS if k in columns), None)
        expression_keys = [columns[k] for k in header if k.startswith("expression")]
        if video_key is None or not expression_keys:
            raise DataError(
                f"{path}: the header needs a 'video' column and an 'expression' column (it has {header})",
                path=path, fix="first line e.g. video,expression (optionally id; expression_2, ... for more)",
            )
        rows: list[_Row] = []
        for row in reader:
            where = f"{path.name}:{reader.line_num}"
            values = [(row.get(key) or "").strip() for key in expression_keys]
            rows.append(((row.get(id_key) or "").strip() or None if id_key else None,
                         (row.get(video_key) or "").strip(), [v for v in values if v], where))
    return rows


def _read_jsonl(path: Path) -> list[_Row]:
    rows: list[_Row] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path.name}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: not JSON ({exc.msg})", path=path,
                            fix='one object per line, e.g. {"video": "a.mp4", "expression": "the dog"}') from exc
        if not isinstance(record, dict):
            raise DataError(f"{where}: expected a JSON object", path=path,
                            fix='one object per line, e.g. {"video": "a.mp4", "expression": "the dog"}')
        video = next((record[k] for k in _VIDEO_KEYS if k in record), "")
        texts = record.get("expressions", record.get("expression", []))
        texts = [texts] if isinstance(texts, str) else texts
        uid = next((record[k] for k in _ID_KEYS if k in record), None)
        if not isinstance(video, str) or not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise DataError(f"{where}: 'video' must be a string and 'expression(s)' a string or list of strings",
                            path=path, fix='e.g. {"video": "a.mp4", "expressions": ["the dog", "the car"]}')
        rows.append((None if uid is None else str(uid).strip() or None, video.strip(),
                     [t.strip() for t in texts if t.strip()], where))
    return rows


# --------------------------------------------------------------------------- merging rows into videos


def _merge(rows: Iterable[_Row], source: Path) -> list[BatchVideo]:
    base = source if source.is_dir() else source.parent
    merged: dict[str, tuple[Path | str, list[str]]] = {}
    for uid, video, texts, where in rows:
        if not video:
            raise DataError(f"{where}: no video given", path=source, fix="fill in the video column")
        if not texts:
            raise DataError(f"{where}: no expression for {video}", path=source,
                            fix="give at least one referring expression per row")
        kind = detect_source(video)
        if kind in ("camera", "stdin"):
            raise DataError(f"{where}: {video!r} is a live source ({kind}); a batch reads files and finite URLs",
                            path=source, fix=f"segment it on its own: tgs segment {video} \"...\" (docs/live.md)")
        path: Path | str
        if kind == "stream":
            path, named = video, Path(url_stem(video) + Path(urlparse(video).path).suffix)
        else:
            path = Path(video[len("file://"):] if video.startswith("file://") else video).expanduser()
            path = named = path if path.is_absolute() else (base / path).absolute()
        folder = _folder_name(uid, named, where, source)
        known = merged.get(folder)
        if known is None:
            merged[folder] = (path, list(dict.fromkeys(texts)))
        elif known[0] != path:
            raise DataError(
                f"{where}: {path} and {known[0]} would both be written to the folder {folder!r}",
                path=source, fix="give the rows an id column with a distinct id per video",
            )
        else:
            known[1].extend(t for t in texts if t not in known[1])
    return [BatchVideo(uid, path, tuple(texts)) for uid, (path, texts) in merged.items()]


def _folder_name(uid: str | None, video: Path, where: str, source: Path) -> str:
    name = uid if uid is not None else _UNSAFE.sub("_", video.stem).strip("_") or "video"
    if uid is None and name.startswith("."):
        name = "_" + name.lstrip(".")
    if name.lower() in RESERVED_NAMES:
        named = f"id {name!r}" if uid is not None else f"{video.name} (folder {name!r})"
        raise DataError(f"{where}: {named} would be written over the batch's own {name}", path=source,
                        fix="give the row an id column with another name (a folder of videos: rename the file)"
                        if uid is None else "give the row another id")
    try:
        return safe_uid(name)
    except Exception as exc:
        raise DataError(f"{where}: id {name!r} cannot be a folder name", path=source,
                        fix="ids may hold letters, digits, '.', '_' and '-' only") from exc


def _clean_expressions(texts: Sequence[str], where: Path) -> list[str]:
    out = [t.strip() for t in texts if isinstance(t, str) and t.strip()]
    if not out:
        raise DataError(f"no expressions given for the videos in {where}", path=where,
                        fix="the expressions file needs one referring expression per line")
    return list(dict.fromkeys(out))
