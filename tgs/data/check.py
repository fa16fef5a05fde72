"""Integrity check of a benchmark's media: every frame, audio file and mask its rows need.

The check never stops at the first problem: it visits each file once (many rows share a
folder), records what is wrong and which rows it affects, and returns a report.

Two depths:
- quick (default): the file exists, is not empty, and its header and end look right
  (JPEG SOI ... EOI markers, PNG signature ... IEND chunk, WAV header readable by
  libsndfile with at least one sample, WAV as long as its RIFF header says). This reads a
  few bytes per file, so it is fast on the 20k-row Ref-AVSBench, and it catches missing
  and truncated files.
- decode: every image and audio file is fully decoded, and frame and mask sizes are
  compared within each clip.

Both depths also check every row's expression (kind "expression", path = the metadata CSV,
detail = its line): an empty one, or one longer than ``benchmark.MAX_EXPRESSION_CHARS``.

And they *warn* (``CheckReport.warnings``, not a failure) about an expression whose caption
(``expr.lower().strip() + "."``, what Grounding DINO reads when the expression itself is
grounded) is longer than Grounding DINO's text limit, :data:`GDINO_MAX_TEXT_TOKENS` = 256
tokens (its ``max_text_len``, the positions of its bert-base-uncased text encoder): the
grounder cannot read past it. Tokens are counted with the grounding model's own tokenizer
when its weights are on this machine (``tgs data check`` passes that counter); otherwise with
:func:`estimate_caption_tokens`, a lower bound (one token per word and per punctuation
mark, plus ``[CLS]``/``[SEP]``; WordPiece never makes fewer), so that warning is never false.
"""

from __future__ import annotations

import logging
import os
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tgs.data.benchmark import NUM_FRAMES, Benchmark, Sample, check_expression
from tgs.data.media import wav_truncation

__all__ = [
    "GDINO_MAX_TEXT_TOKENS",
    "KINDS",
    "CheckReport",
    "Problem",
    "check_benchmark",
    "check_file",
    "count_files",
    "estimate_caption_tokens",
]

logger = logging.getLogger(__name__)

GDINO_MAX_TEXT_TOKENS = 256
"""Grounding DINO's text limit (``max_text_len`` of every released checkpoint; bert-base-uncased tokens)."""

_PIECES = re.compile(r"\w+|[^\w\s]")

KINDS = ("frame", "audio", "mask", "expression")

_JPEG_SOI = b"\xff\xd8\xff"
_JPEG_EOI = b"\xff\xd9"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TAIL = 32  # bytes read from the end of a file to find its end marker


@dataclass(frozen=True)
class Problem:
    """One missing or broken file (or folder) and the rows that need it.

    issue: "missing", "corrupt", "empty" (no samples / zero bytes / blank expression) or
        "size" (a frame or mask whose size differs from the clip's first frame); an
        over-long expression is "corrupt".
    files: how many expected files it stands for (a missing folder stands for 10).
    """

    kind: str
    issue: str
    path: Path
    detail: str
    uids: tuple[str, ...]
    files: int = 1


@dataclass
class CheckReport:
    rows: int
    decode: bool
    checked: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    """Rows that work but lose something (issue "long": text past Grounding DINO's limit)."""

    @property
    def ok(self) -> bool:
        return not self.problems

    def counts(self) -> dict[str, dict[str, int]]:
        """Per kind, files per issue (missing folders count as their 10 files)."""
        out: dict[str, dict[str, int]] = {k: {} for k in KINDS}
        for p in self.problems:
            out[p.kind][p.issue] = out[p.kind].get(p.issue, 0) + p.files
        return out

    def bad_uids(self) -> set[str]:
        return {u for p in self.problems for u in p.uids}


# ---------------------------------------------------------------------------- single files


def _read_ends(path: Path) -> tuple[bytes, bytes, int]:
    with path.open("rb") as f:
        head = f.read(16)
        size = f.seek(0, os.SEEK_END)
        f.seek(max(0, size - _TAIL))
        tail = f.read(_TAIL)
    return head, tail, size


def _quick_image(path: Path, kind: str) -> tuple[str, str] | None:
    head, tail, size = _read_ends(path)
    if size == 0:
        return "empty", "0 bytes"
    if kind == "frame":
        if not head.startswith(_JPEG_SOI):
            return "corrupt", f"not a JPEG (starts with {head[:4].hex()})"
        if _JPEG_EOI not in tail:
            return "corrupt", "no JPEG end marker: truncated"
    else:
        if not head.startswith(_PNG_SIGNATURE):
            return "corrupt", f"not a PNG (starts with {head[:4].hex()})"
        if b"IEND" not in tail:
            return "corrupt", "no PNG IEND chunk: truncated"
    return None


def _decode_image(path: Path, kind: str) -> tuple[tuple[str, str] | None, tuple[int, int] | None]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            if kind == "frame" and img.format != "JPEG":
                return ("corrupt", f"a {img.format} image, expected JPEG"), img.size
            return None, img.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        return ("corrupt", str(exc)), None


def _check_audio(path: Path, decode: bool) -> tuple[str, str] | None:
    import soundfile as sf

    if path.stat().st_size == 0:
        return "empty", "0 bytes"
    truncated = wav_truncation(path)
    if truncated is not None:
        return "corrupt", truncated
    try:
        info = sf.info(str(path))
        if info.frames <= 0:
            return "empty", "no audio samples"
        if decode:
            data, _ = sf.read(str(path), dtype="float32", always_2d=True)
            if data.shape[0] == 0:
                return "empty", "no audio samples"
            if not np.isfinite(data).all():
                return "corrupt", "non-finite samples"
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        return "corrupt", str(exc)
    return None


def check_file(path: Path, kind: str, decode: bool = False) -> tuple[tuple[str, str] | None, tuple[int, int] | None]:
    """((issue, detail) or None, (width, height) of a decoded image or None) for one file."""
    if kind not in KINDS:
        raise ValueError(f"kind: expected one of {KINDS}, got {kind!r}")
    if not path.is_file():
        return ("missing", "not found"), None
    try:
        if kind == "audio":
            return _check_audio(path, decode), None
        quick = _quick_image(path, kind)
        if quick is not None or not decode:
            return quick, None
        return _decode_image(path, kind)
    except OSError as exc:
        return ("corrupt", f"unreadable: {exc}"), None


# ---------------------------------------------------------------------------- benchmark


@dataclass
class _Plan:
    """Unique files to check, each with the rows that need it."""

    files: dict[tuple[str, Path], list[str]] = field(default_factory=lambda: defaultdict(list))
    missing_dirs: dict[tuple[str, Path], list[str]] = field(default_factory=lambda: defaultdict(list))
    clips: dict[Path, set[Path]] = field(default_factory=lambda: defaultdict(set))  # frames dir -> mask dirs
    expressions: list[Problem] = field(default_factory=list)


def grounding_caption(expression: str) -> str:
    """The caption Grounding DINO reads for an expression grounded as it is (lowercased, ".")."""
    return expression.lower().strip() + "."


def estimate_caption_tokens(caption: str) -> int:
    """A lower bound on the bert-base-uncased tokens of ``caption``: words and punctuation marks
    (each at least one WordPiece token) plus [CLS] and [SEP]."""
    return len(_PIECES.findall(caption)) + 2


def _long_caption(sample: Sample, count_tokens: Callable[[str], int]) -> Problem | None:
    tokens = count_tokens(grounding_caption(sample.expression))
    if tokens <= GDINO_MAX_TEXT_TOKENS:
        return None
    meta = sample.meta_path if sample.meta_path is not None else Path("metadata.csv")
    detail = (
        f"line {sample.row.line}: expression of {tokens} tokens, past Grounding DINO's {GDINO_MAX_TEXT_TOKENS}: "
        "grounded as it is, the text after the limit is not read"
    )
    return Problem("expression", "long", meta, detail, (sample.uid,))


def _plan(samples: Iterable[Sample]) -> tuple[_Plan, int]:
    plan = _Plan()
    dir_exists: dict[Path, bool] = {}

    def exists(d: Path) -> bool:
        if d not in dir_exists:
            dir_exists[d] = d.is_dir()
        return dir_exists[d]

    rows = 0
    for s in samples:
        rows += 1
        for kind, folder, paths in (("frame", s.frames_dir, s.frame_paths), ("mask", s.mask_dir, s.mask_paths)):
            if exists(folder):
                for p in paths:
                    plan.files[(kind, p)].append(s.uid)
            else:
                plan.missing_dirs[(kind, folder)].append(s.uid)
        plan.files[("audio", s.audio_path)].append(s.uid)
        issue = check_expression(s.expression)
        if issue is not None:
            meta = s.meta_path if s.meta_path is not None else Path("metadata.csv")
            plan.expressions.append(Problem("expression", issue[0], meta, f"line {s.row.line}: {issue[1]}", (s.uid,)))
        if exists(s.frames_dir) and exists(s.mask_dir):
            plan.clips[s.frames_dir].add(s.mask_dir)
    return plan, rows


def _size_problems(
    plan: _Plan, sizes: dict[Path, tuple[int, int]], done: set[Path]
) -> list[Problem]:
    """Frames of a clip must share frame 0's size, and its masks must have it too."""
    problems = []
    for frames_dir, mask_dirs in plan.clips.items():
        ref = sizes.get(frames_dir / "0.jpg")
        if ref is None:
            continue
        dirs = [("frame", frames_dir, [frames_dir / f"{i}.jpg" for i in range(NUM_FRAMES)])]
        dirs += [("mask", d, [d / f"{i:05d}.png" for i in range(NUM_FRAMES)]) for d in sorted(mask_dirs)]
        for kind, _, paths in dirs:
            for p in paths:
                got = sizes.get(p)
                if got is not None and got != ref and p not in done:
                    done.add(p)
                    uids = tuple(plan.files.get((kind, p), ()))
                    problems.append(
                        Problem(kind, "size", p, f"{got[0]}x{got[1]}, the clip's 0.jpg is {ref[0]}x{ref[1]}", uids)
                    )
    return problems


def check_benchmark(
    bench: Benchmark | Iterable[Sample],
    *,
    decode: bool = False,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
    count_tokens: Callable[[str], int] | None = None,
) -> CheckReport:
    """Check every frame, audio file and mask the rows of ``bench`` need; never stops early.

    workers: threads for file checks (I/O and image decoding release the GIL); default
        min(8, CPUs). progress: called with the number of files (and expressions) just checked.
    count_tokens: tokens of a Grounding DINO caption (see the module docstring); default
        :func:`estimate_caption_tokens`.
    """
    samples = list(bench)
    plan, rows = _plan(samples)
    report = CheckReport(rows=rows, decode=decode)
    report.checked["expression"] = rows
    report.problems.extend(plan.expressions)
    bad = {p.uids[0] for p in plan.expressions}
    counter = count_tokens or estimate_caption_tokens
    report.warnings.extend(
        w for s in samples if s.uid not in bad and (w := _long_caption(s, counter)) is not None
    )
    if progress is not None:
        progress(rows)
    for (kind, folder), uids in sorted(plan.missing_dirs.items(), key=lambda kv: (kv[0][0], str(kv[0][1]))):
        report.checked[kind] += NUM_FRAMES
        report.problems.append(Problem(kind, "missing", folder, "folder not found", tuple(uids), files=NUM_FRAMES))
    items = sorted(plan.files.items(), key=lambda kv: (kv[0][0], str(kv[0][1])))
    workers = workers or min(8, os.cpu_count() or 1)

    def run(item: tuple[tuple[str, Path], list[str]]):
        (kind, path), _ = item
        return check_file(path, kind, decode)

    sizes: dict[Path, tuple[int, int]] = {}
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for ((kind, path), uids), (issue, size) in zip(items, pool.map(run, items)):
            report.checked[kind] += 1
            if size is not None:
                sizes[path] = size
            if issue is not None:
                report.problems.append(Problem(kind, issue[0], path, issue[1], tuple(uids)))
            if progress is not None:
                progress(1)
    if decode:
        flagged = {p.path for p in report.problems}
        report.problems.extend(_size_problems(plan, sizes, flagged))
    report.problems.sort(key=lambda p: (KINDS.index(p.kind), str(p.path)))
    return report


def count_files(bench: Benchmark | Iterable[Sample]) -> int:
    """How many checks ``check_benchmark`` will report through ``progress`` (for a bar)."""
    plan, rows = _plan(bench)
    return len(plan.files) + rows
