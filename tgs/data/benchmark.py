"""Readers of the Ref-AVSBench and R^2-AVSBench metadata and of their on-disk layout.

A benchmark is a metadata CSV (columns exactly ``vid,uid,split,fid,exp``) plus a root
folder laid out as in the public Ref-AVS release::

    <root>/media/<folder>/frames/{0..9}.jpg      10 frames, one per second
    <root>/media/<folder>/audio.wav              the clip's audio
    <root>/media_cross/<folder>/audio.wav        audio of null references (TGS-Agent rule)
    <root>/gt_mask/<folder>/fid_<fid>/0000{0..9}.png   grayscale, > 0 is foreground

where ``folder = uid.rsplit('_', 2)[0]``. Ordinary uids are ``<vid>_<class>_<k>`` (class
names use hyphens), so the folder is the vid; null uids are ``null_{c|m}-<vid>_null_<k>``,
so the folder is ``null_c-<vid>`` (or ``null_m-<vid>``) while the ``vid`` column holds the
source video. Every rule here was checked against the original code: TGS-Agent
``dataset/unified_dataset.py`` and ``ground_segment_scripts/*.py``, and Ref-AVS
``datasets/dataset_refavs.py``.

Reading a benchmark only parses the CSV; media is decoded when a sample asks for it.
"""

from __future__ import annotations

import csv
import difflib
import io
import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from tgs.errors import DataError, MediaError, MetadataError
from tgs.types import Clip, Query

__all__ = [
    "HEADER",
    "MAX_EXPRESSION_CHARS",
    "NUM_FRAMES",
    "SPLITS",
    "Benchmark",
    "MetaRow",
    "Sample",
    "check_expression",
    "media_folder",
    "r2_avs_bench",
    "read_metadata",
    "ref_avs_bench",
]

logger = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "val", "test_s", "test_u", "test_n")
"""The five evaluation splits; the public CSV also has 25 rows whose split is "TODO"."""

NUM_FRAMES = 10
"""Frames per clip: one per second of a 10 s clip."""

HEADER: tuple[str, ...] = ("vid", "uid", "split", "fid", "exp")

MAX_EXPRESSION_CHARS = 1000
"""Longest expression accepted. The public Ref-AVS CSV's longest is 109 characters and Grounding
DINO reads at most 256 tokens; a field of thousands of characters is nearly always an unbalanced
quote that swallowed the rows after it."""

NULL_PREFIX = "null_"
"""Null references: ``null_{c|m}-<vid>_null_<k>`` (the original tests ``uid.startswith('null_')``)."""

_UNSAFE_CHARS = ("/", "\\", "\x00", ":")

DuplicatePolicy = Literal["warn", "error", "allow"]


@dataclass(frozen=True)
class MetaRow:
    """One metadata row. ``line`` is the 1-based line of the CSV where the row starts."""

    vid: str
    uid: str
    split: str
    fid: int
    exp: str
    line: int


# ---------------------------------------------------------------------------- paths


def _check_component(value: str, what: str, *, path: Path | None = None, line: int | None = None) -> None:
    """Reject anything that would leave its folder when joined under the root."""
    where = f" at line {line}" if line is not None else ""
    # Absolute paths (POSIX "/x", Windows "C:x" or "\\x") all contain a rejected character.
    bad = value in ("", ".", "..") or any(ch in value for ch in _UNSAFE_CHARS)
    if bad:
        cls = MetadataError if path is not None else DataError
        raise cls(
            f"{what} {value!r}{where} is not a plain folder name: it is empty or contains a path "
            "separator, '..', ':' or an absolute path, so it could point outside the benchmark root",
            path=path,
            fix="ids must be single folder names such as '--KCIeTv6PM_14000_24000'; correct the CSV row",
        )


def media_folder(uid: str) -> str:
    """The media folder of a uid: ``uid.rsplit('_', 2)[0]`` (the rule of the original code).

    ``"abc_cat_1" -> "abc"``; ``"null_c-abc_null_2" -> "null_c-abc"``. Raises DataError for
    a uid without the two trailing ``_<class>_<k>`` parts or one that would escape the root.
    """
    parts = uid.rsplit("_", 2)
    if len(parts) != 3 or not all(parts):
        raise DataError(
            f"uid {uid!r} does not have the form <vid>_<class>_<k>",
            fix="Ref-AVS uids end with '_<class>_<k>' (class names use hyphens, e.g. 'hair-dryer')",
        )
    folder = parts[0]
    _check_component(uid, "uid")
    _check_component(folder, "media folder of uid")
    return folder


def check_expression(text: str) -> tuple[str, str] | None:
    """(issue, detail) for an expression no thinker or grounder can use, else None.

    issue is "empty" (blank) or "corrupt" (longer than ``MAX_EXPRESSION_CHARS``), as
    ``tgs data check`` reports it.
    """
    if not text.strip():
        return "empty", "empty expression"
    if len(text) > MAX_EXPRESSION_CHARS:
        return "corrupt", (
            f"expression of {len(text)} characters (at most {MAX_EXPRESSION_CHARS}): an unbalanced quote in the CSV?"
        )
    return None


# ---------------------------------------------------------------------------- metadata


def _decode(path: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise MetadataError(
            f"{path}: line {line} is not valid UTF-8 (byte {data[exc.start]:#04x} at offset {exc.start})",
            path=path,
            fix="save the metadata CSV as UTF-8",
        ) from exc


def _parse_row(path: Path, line: int, fields: list[str]) -> MetaRow:
    if len(fields) != len(HEADER):
        raise MetadataError(
            f"{path}: line {line} has {len(fields)} columns, expected {len(HEADER)} ({','.join(HEADER)}): "
            f"{fields!r}",
            path=path,
            fix="quote expressions that contain commas and give every row exactly 5 columns",
        )
    vid, uid, split, fid_text, exp = fields
    for name, value in (("vid", vid), ("uid", uid), ("split", split)):
        if not value.strip():
            raise MetadataError(f"{path}: line {line} has an empty {name}", path=path, fix=f"fill in the {name}")
    try:
        fid = int(fid_text)
    except ValueError:
        fid = -1
    if fid < 0 or not fid_text.strip().isdigit():
        raise MetadataError(
            f"{path}: line {line} has fid {fid_text!r}, expected a non-negative integer",
            path=path,
            fix="fid is the index of the object's mask folder gt_mask/<folder>/fid_<fid>",
        )
    _check_component(vid, "vid", path=path, line=line)
    try:
        media_folder(uid)
    except DataError as exc:
        raise MetadataError(f"{path}: line {line}: {exc.message}", path=path, fix=exc.fix) from exc
    return MetaRow(vid=vid, uid=uid, split=split, fid=fid, exp=exp, line=line)


def read_metadata(path: str | Path, *, duplicates: DuplicatePolicy = "warn") -> list[MetaRow]:
    """Read a metadata CSV strictly, in file order.

    The header must be exactly ``vid,uid,split,fid,exp``. A wrong column count, an empty
    vid/uid/split, a non-integer fid, an id with a path escape or a non-UTF-8 byte raises
    MetadataError naming the file and the line. Blank lines are skipped.

    duplicates: what to do with a uid that appears on several rows. The public Ref-AVS CSV
        itself repeats 11 uids (e.g. ``MDyjY3uiWp0_297000_307000_saw_4`` on lines 15290
        and 19090 with different fid and expression), and its published split counts
        include the repeats, so the default keeps every row and logs a warning; "error"
        raises MetadataError naming both lines; "allow" keeps them silently.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise MetadataError(f"metadata CSV not found: {path}", path=path, fix="pass --meta PATH") from exc
    except OSError as exc:
        raise MetadataError(f"cannot read metadata CSV {path}: {exc}", path=path) from exc
    text = _decode(path, data)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            raise MetadataError(f"{path} is empty, expected the header {','.join(HEADER)}", path=path)
        if tuple(h.strip() for h in header) != HEADER:
            raise MetadataError(
                f"{path}: line 1 is the header {','.join(header)!r}, expected exactly {','.join(HEADER)!r}",
                path=path,
                fix="the columns must be vid,uid,split,fid,exp in this order",
            )
        rows: list[MetaRow] = []
        end = reader.line_num
        for fields in reader:
            start, end = end + 1, reader.line_num
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue
            rows.append(_parse_row(path, start, fields))
    except csv.Error as exc:
        raise MetadataError(f"{path}: line {reader.line_num}: malformed CSV ({exc})", path=path) from exc
    _handle_duplicates(path, rows, duplicates)
    return rows


def _handle_duplicates(path: Path, rows: list[MetaRow], policy: DuplicatePolicy) -> None:
    if policy not in ("warn", "error", "allow"):
        raise ValueError(f"duplicates: expected 'warn', 'error' or 'allow', got {policy!r}")
    first: dict[str, int] = {}
    repeats: list[tuple[MetaRow, int]] = []
    for row in rows:
        if row.uid in first:
            repeats.append((row, first[row.uid]))
        else:
            first[row.uid] = row.line
    if not repeats or policy == "allow":
        return
    row, line = repeats[0]
    if policy == "error":
        raise MetadataError(
            f"{path}: line {row.line} repeats uid {row.uid!r} of line {line}"
            + (f" ({len(repeats)} repeated rows in all)" if len(repeats) > 1 else ""),
            path=path,
            fix="remove the repeated rows, or read with duplicates='warn'",
        )
    shown = ", ".join(f"{r.uid} (lines {ln} and {r.line})" for r, ln in repeats[:3])
    logger.warning(
        "%s: %d row(s) repeat an earlier uid, kept in order: %s%s",
        path,
        len(repeats),
        shown,
        ", ..." if len(repeats) > 3 else "",
    )


# ---------------------------------------------------------------------------- samples


def _frame_name(index: int) -> str:
    return f"{index}.jpg"


def _mask_name(index: int) -> str:
    # The original writes '0000' + str(i) + '.png' for i in 0..9, i.e. 5 digits.
    return f"{index:05d}.png"


@dataclass(frozen=True)
class Sample:
    """One benchmark row bound to a root folder. Paths are computed, never checked here.

    null_audio_dir: where null rows take their audio from. TGS-Agent reads
        ``media_cross/<folder>/audio.wav`` (the default); the official Ref-AVS loader reads
        ``media/<folder>/audio.wav`` for every row (pass "media").
    meta_path: the metadata CSV the row comes from (for error messages), if known.
    """

    row: MetaRow
    root: Path
    null_audio_dir: str = "media_cross"
    meta_path: Path | None = None

    @property
    def uid(self) -> str:
        return self.row.uid

    @property
    def vid(self) -> str:
        """The ``vid`` column: for null rows the *source* video, not the media folder."""
        return self.row.vid

    @property
    def split(self) -> str:
        return self.row.split

    @property
    def fid(self) -> int:
        return self.row.fid

    @property
    def expression(self) -> str:
        return self.row.exp

    @property
    def is_null(self) -> bool:
        """A null reference (no object referred to): the uid starts with ``null_``."""
        return self.row.uid.startswith(NULL_PREFIX)

    @property
    def folder(self) -> str:
        return media_folder(self.row.uid)

    @property
    def frames_dir(self) -> Path:
        return self.root / "media" / self.folder / "frames"

    @property
    def frame_paths(self) -> list[Path]:
        """``root/media/<folder>/frames/{0..9}.jpg`` (null rows too: their folder is ``null_c-<vid>``)."""
        return [self.frames_dir / _frame_name(i) for i in range(NUM_FRAMES)]

    @property
    def audio_path(self) -> Path:
        """``root/media_cross/<folder>/audio.wav`` for null rows, else ``root/media/<folder>/audio.wav``."""
        base = self.null_audio_dir if self.is_null else "media"
        return self.root / base / self.folder / "audio.wav"

    @property
    def mask_dir(self) -> Path:
        return self.root / "gt_mask" / self.folder / f"fid_{self.row.fid}"

    @property
    def mask_paths(self) -> list[Path]:
        """``root/gt_mask/<folder>/fid_<fid>/0000{0..9}.png``."""
        return [self.mask_dir / _mask_name(i) for i in range(NUM_FRAMES)]

    def load_clip(self, *, decode_audio: bool = True) -> Clip:
        """Frames uint8 [10, H, W, 3] RGB at original size; audio float32 mono @ 16 kHz.

        Frame k is ``frames/k.jpg`` and is stamped at k seconds. Raises MediaError naming
        the first missing or corrupt file (an audio file without samples included).
        """
        from tgs.data.media import REF_AVS_SAMPLE_RATE, load_audio, load_frames_dir

        frames = load_frames_dir(self.frames_dir, NUM_FRAMES)
        audio = None
        if decode_audio:
            if not self.audio_path.is_file():
                raise MediaError(
                    f"audio of {self.uid} not found: {self.audio_path}",
                    path=self.audio_path,
                    fix="check the benchmark root with `tgs data check`",
                )
            audio = load_audio(self.audio_path, REF_AVS_SAMPLE_RATE)
            if audio is None or audio.size == 0:  # a benchmark clip always has 10 s of audio
                raise MediaError(
                    f"audio of {self.uid} has no samples: {self.audio_path}",
                    path=self.audio_path,
                    fix="re-extract the clip's audio (check the benchmark with `tgs data check`)",
                )
        return Clip(
            frames=frames,
            audio=audio,
            sample_rate=REF_AVS_SAMPLE_RATE if audio is not None else None,
            frame_times=np.arange(NUM_FRAMES, dtype=np.float64),
            source=str(self.frames_dir),
        )

    def load_gt_gray(self) -> np.ndarray:
        """The ground-truth masks as stored: uint8 [10, H, W] grayscale, original size.

        Evaluation protocols resize the grayscale image *before* thresholding (the
        TGS-Agent metrics PIL-resize to 224x224 bicubic, then > 0), so they need this.
        """
        from tgs.data.media import load_gray_image

        masks = [load_gray_image(p) for p in self.mask_paths]
        first = masks[0].shape
        for p, m in zip(self.mask_paths, masks):
            if m.shape != first:
                raise MediaError(
                    f"mask {p} is {m.shape[1]}x{m.shape[0]} but {self.mask_paths[0].name} is "
                    f"{first[1]}x{first[0]}",
                    path=p,
                    fix="all masks of one object must have the frame size",
                )
        return np.stack(masks)

    def load_gt(self) -> np.ndarray:
        """Ground truth bool [10, H, W] (> 0 is foreground), original size."""
        return self.load_gt_gray() > 0

    def query(self) -> Query:
        """The row as a Query; DataError if its expression is unusable (``check_expression``)."""
        problem = check_expression(self.row.exp)
        if problem is not None:
            where = f"line {self.row.line} of {self.meta_path}" if self.meta_path else f"line {self.row.line}"
            raise DataError(
                f"{self.uid}: {problem[1]} ({where})",
                path=self.meta_path,
                fix="correct the row's exp column; `tgs data check` lists every such row",
            )
        return Query(uid=self.row.uid, expression=self.row.exp, clip=None, split=self.row.split)


# ---------------------------------------------------------------------------- benchmark


class Benchmark:
    """The rows of a metadata CSV (optionally some splits) bound to a media root.

    Construction reads only the CSV; nothing under ``root`` is touched until a sample
    loads its media. Iteration yields Samples in CSV order. Repeated uids (present in the
    public CSV) are all kept; ``bench[uid]`` returns the first and ``rows_for(uid)`` all.
    """

    def __init__(
        self,
        root: str | Path,
        meta: str | Path,
        splits: str | Sequence[str] | None = None,
        name: str = "refavs",
        *,
        null_audio_dir: str = "media_cross",
        duplicates: DuplicatePolicy = "warn",
    ) -> None:
        self.root = Path(root)
        self.meta_path = Path(meta)
        self.name = name
        self.null_audio_dir = null_audio_dir
        all_rows = read_metadata(self.meta_path, duplicates=duplicates)
        self.splits: tuple[str, ...] | None = self._select_splits(splits, all_rows)
        wanted = set(self.splits) if self.splits is not None else None
        self._rows = [r for r in all_rows if wanted is None or r.split in wanted]
        self._first: dict[str, int] = {}
        for i, r in enumerate(self._rows):
            self._first.setdefault(r.uid, i)

    def _select_splits(self, splits: str | Sequence[str] | None, rows: list[MetaRow]) -> tuple[str, ...] | None:
        if splits is None:
            return None
        chosen = (splits,) if isinstance(splits, str) else tuple(splits)
        present = list(dict.fromkeys(r.split for r in rows))
        for s in chosen:
            if s not in present:
                close = difflib.get_close_matches(s, present, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise DataError(
                    f"split {s!r} has no rows in {self.meta_path}.{hint} Available: {', '.join(present)}",
                    path=self.meta_path,
                    fix="pick splits from the list above",
                )
        return chosen

    def __len__(self) -> int:
        return len(self._rows)

    def __iter__(self) -> Iterator[Sample]:
        for row in self._rows:
            yield self._sample(row)

    def __getitem__(self, uid: str) -> Sample:
        try:
            return self._sample(self._rows[self._first[uid]])
        except KeyError:
            raise KeyError(f"uid {uid!r} is not in benchmark {self.name!r} ({self.meta_path})") from None

    def __contains__(self, uid: object) -> bool:
        return uid in self._first

    def __repr__(self) -> str:
        splits = ",".join(self.splits) if self.splits else "all"
        return f"Benchmark(name={self.name!r}, rows={len(self)}, splits={splits}, root={str(self.root)!r})"

    def _sample(self, row: MetaRow) -> Sample:
        return Sample(row=row, root=self.root, null_audio_dir=self.null_audio_dir, meta_path=self.meta_path)

    @property
    def rows(self) -> list[MetaRow]:
        return list(self._rows)

    def uids(self) -> list[str]:
        """Uids in CSV order (a repeated uid appears once per row)."""
        return [r.uid for r in self._rows]

    def rows_for(self, uid: str) -> list[MetaRow]:
        return [r for r in self._rows if r.uid == uid]

    def duplicate_uids(self) -> list[str]:
        counts = Counter(r.uid for r in self._rows)
        return [u for u, n in counts.items() if n > 1]

    def count_by_split(self) -> dict[str, int]:
        """Rows per split, in order of first appearance in the CSV."""
        return dict(Counter(r.split for r in self._rows))


def ref_avs_bench(
    root: str | Path, meta: str | Path | None = None, splits: str | Sequence[str] | None = None
) -> Benchmark:
    """Ref-AVSBench: the public metadata CSV, default ``root/metadata.csv``."""
    root = Path(root)
    return Benchmark(root, meta if meta is not None else root / "metadata.csv", splits, name="refavs")


def r2_avs_bench(
    root: str | Path, meta: str | Path | None = None, splits: str | Sequence[str] | None = None
) -> Benchmark:
    """R^2-AVSBench: same media and masks, new expressions, default ``root/R2AVSBench_metadata.csv``."""
    root = Path(root)
    return Benchmark(root, meta if meta is not None else root / "R2AVSBench_metadata.csv", splits, name="r2avs")
