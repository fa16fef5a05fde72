"""Property tests of the metadata CSV reader (tgs.data.benchmark.read_metadata).

Valid rows written with the csv module must come back exactly, with the line each row
starts on; any mutation of a valid file (a dropped or extra column, a bad fid, a bad
header, random or non-UTF-8 bytes, truncation) either parses into rows that keep every
invariant or raises MetadataError naming the file (and the line) -- never anything else.
"""

from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tgs.data.benchmark import HEADER, MetaRow, media_folder, read_metadata
from tgs.errors import MetadataError

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True)

_UNSAFE = set("/\\\x00:")
# A plain folder name: no separator, ':' or NUL, not "." or "..", not blank.
component = st.text(st.characters(codec="utf-8", exclude_characters=_UNSAFE), min_size=1, max_size=12).filter(
    lambda s: s not in (".", "..") and s.strip() != ""
)
class_name = st.text(st.characters(codec="utf-8", exclude_characters=_UNSAFE | {"_"}), min_size=1, max_size=8)
free_text = st.text(st.characters(codec="utf-8"), max_size=40)


@st.composite
def meta_row(draw: st.DrawFn) -> tuple[str, str, str, str, str]:
    vid = draw(component)
    null = draw(st.booleans())
    k = draw(st.integers(0, 99))
    uid = f"null_c-{vid}_null_{k}" if null else f"{vid}_{draw(class_name)}_{k}"
    split = draw(st.sampled_from(["train", "val", "test_s", "test_u", "test_n", "TODO"]) | component)
    fid = str(draw(st.integers(0, 10**6)))
    exp = draw(free_text)
    return vid, uid, split, fid, exp


def to_csv(rows: list[tuple[str, ...]], header: tuple[str, ...] = HEADER, lineterminator: str = "\r\n") -> str:
    """CSV text as the csv module writes it; with "\n" line ends every field is quoted, because the
    writer only quotes fields holding characters of its line terminator and would leave a "\r" bare."""
    buffer = io.StringIO(newline="")
    quoting = csv.QUOTE_MINIMAL if lineterminator == "\r\n" else csv.QUOTE_ALL
    writer = csv.writer(buffer, lineterminator=lineterminator, quoting=quoting)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def start_lines(rows: list[tuple[str, ...]], lineterminator: str) -> list[int]:
    """1-based line on which each row starts, counting lines the way a newline='' reader does."""
    lines = []
    for i in range(len(rows)):
        before = to_csv(rows[:i], lineterminator=lineterminator)
        lines.append(len(io.StringIO(before, newline="").readlines()) + 1)
    return lines


def read_bytes(data: bytes) -> list[MetaRow]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "meta.csv"
        path.write_bytes(data)
        return read_metadata(path, duplicates="allow")


def read_or_error(data: bytes) -> tuple[list[MetaRow] | None, MetadataError | None, Path]:
    """Parse ``data`` from a file; any exception other than MetadataError fails the test."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "meta.csv"
        path.write_bytes(data)
        try:
            return read_metadata(path, duplicates="allow"), None, path
        except MetadataError as exc:
            return None, exc, path


def assert_names_file(exc: MetadataError, path: Path) -> None:
    assert exc.path == str(path)
    assert str(path) in str(exc)


def assert_row_invariants(rows: list[MetaRow]) -> None:
    previous = 1
    for row in rows:
        assert row.line > previous  # strictly after the header and the previous row
        previous = row.line
        assert row.fid >= 0
        assert row.vid.strip() and row.uid.strip() and row.split.strip()
        folder = media_folder(row.uid)  # never raises for an accepted row
        assert folder not in (".", "..") and not _UNSAFE & set(folder)


@SETTINGS
@given(rows=st.lists(meta_row(), max_size=8), crlf=st.booleans(), bom=st.booleans())
@example(rows=[("v", "v_cat_1", "train", "0", 'a "quoted", multi\nline\r\nexpression ')], crlf=True, bom=True)
@example(rows=[("v", "v_cat_1", "train", "7", "")], crlf=False, bom=False)
def test_written_rows_round_trip(rows: list[tuple[str, ...]], crlf: bool, bom: bool) -> None:
    terminator = "\r\n" if crlf else "\n"
    data = to_csv(rows, lineterminator=terminator).encode("utf-8")
    parsed = read_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    assert [(r.vid, r.uid, r.split, str(r.fid), r.exp) for r in parsed] == rows
    assert [r.line for r in parsed] == start_lines(rows, terminator)


@st.composite
def one_bad_row(draw: st.DrawFn) -> tuple[list[tuple[str, ...]], int, str]:
    """Valid rows with row ``index`` broken in one way; returns (rows, index, how)."""
    rows = draw(st.lists(meta_row(), min_size=1, max_size=6))
    index = draw(st.integers(0, len(rows) - 1))
    how = draw(st.sampled_from(["drop", "extra", "fid", "empty_id", "escape"]))
    row = list(rows[index])
    if how == "drop":
        del row[draw(st.integers(0, 4))]
    elif how == "extra":
        row.insert(draw(st.integers(0, 5)), draw(free_text))
    elif how == "fid":
        row[3] = draw(
            st.sampled_from(["", "-1", "1.0", "x", "0x1", "1e3", "1_000", "²", " "])
            | st.text(st.characters(codec="utf-8", exclude_categories=["Nd"]), min_size=1)
        )
    elif how == "empty_id":
        row[draw(st.sampled_from([0, 1, 2]))] = draw(st.sampled_from(["", " ", "\t"]))
    else:
        bad = draw(st.sampled_from(["..", ".", "../x", "a/b", "/abs", "C:\\x", "a\\b", "a\x00b", "c:"]))
        if draw(st.booleans()):
            row[0] = bad
        else:
            row[1] = f"{bad}_cat_1"
    rows[index] = tuple(row)
    return rows, index, how


@SETTINGS
@given(case=one_bad_row())
@example(case=([("v", "v_cat_1", "train", "²", "x")], 0, "fid"))
@example(case=([("v", "v_cat_1", "train", "0", "x"), ("..", "v_cat_1", "val", "0", "y")], 1, "escape"))
def test_a_broken_row_names_the_file_and_its_line(case: tuple[list[tuple[str, ...]], int, str]) -> None:
    rows, index, _ = case
    data = to_csv(rows).encode("utf-8")
    parsed, error, path = read_or_error(data)
    assert parsed is None, "a broken row was accepted"
    assert_names_file(error, path)
    line = start_lines(rows, "\r\n")[index]
    assert f"line {line}" in str(error)


@SETTINGS
@given(rows=st.lists(meta_row(), max_size=3), header=st.lists(st.sampled_from([*HEADER, "id", "", " "]), max_size=6))
def test_a_wrong_header_is_refused_on_line_1(rows: list[tuple[str, ...]], header: list[str]) -> None:
    data = to_csv(rows, header=tuple(header)).encode("utf-8")
    parsed, error, path = read_or_error(data)
    if tuple(h.strip() for h in header) == HEADER:
        assert parsed is not None and len(parsed) == len(rows)
        return
    assert error is not None
    assert_names_file(error, path)
    assert "line 1" in str(error) or "is empty" in str(error)


@st.composite
def mutated_file(draw: st.DrawFn) -> bytes:
    """A valid file with random bytes inserted, bytes overwritten or the end cut off."""
    rows = draw(st.lists(meta_row(), min_size=1, max_size=5))
    data = bytearray(to_csv(rows).encode("utf-8"))
    header_end = data.index(b"\n") + 1
    for _ in range(draw(st.integers(1, 3))):
        # mostly in the rows (a damaged header is one error), mostly CSV-meaningful bytes
        at = draw(st.integers(min(header_end, len(data)), len(data)) | st.integers(0, len(data)))
        how = draw(st.sampled_from(["insert", "overwrite", "truncate"]))
        chunk = draw(
            st.lists(st.sampled_from([b'"', b",", b"\r", b"\n", b"\x00", b"a", b"7", b" ", b"_", b"/"]), min_size=1,
                     max_size=4).map(b"".join)
            | st.binary(min_size=1, max_size=6)
            | st.sampled_from([b"\xff", b"\xc3", b"\xe9"])
        )
        if how == "insert":
            data[at:at] = chunk
        elif how == "overwrite":
            data[at : at + len(chunk)] = chunk
        else:
            del data[at:]
    return bytes(data)


@SETTINGS
@given(data=mutated_file())
@example(data=b"vid,uid,split,fid,exp\r\nv,v_cat_1,train,0,\xff\xfe\r\n")
@example(data=b"vid,uid,split,fid,exp\r\nv,v_cat_1,train,0,\"unterminated\r\n")
@example(data=b"")
@example(data=b"\xef\xbb\xbf")
def test_any_mutation_parses_consistently_or_raises_metadata_error(data: bytes) -> None:
    parsed, error, path = read_or_error(data)
    if error is not None:
        assert_names_file(error, path)
        if not str(error).startswith(f"{path} is empty"):
            assert "line " in str(error)
        return
    assert_row_invariants(parsed)
    assert read_bytes(data) == parsed  # deterministic


def test_non_utf8_error_points_at_the_byte(tmp_path: Path) -> None:
    rows = [("v", "v_cat_1", "train", "0", "one"), ("w", "w_dog_2", "val", "1", "two\nlines"), ("x", "x_a_3", "val", "2", "é")]
    data = to_csv(rows).encode("utf-8").replace("é".encode(), b"\xe9")  # Latin-1 in a UTF-8 file
    path = tmp_path / "meta.csv"
    path.write_bytes(data)
    with pytest.raises(MetadataError, match=r"line 5 is not valid UTF-8 \(byte 0xe9") as info:
        read_metadata(path)
    assert info.value.path == str(path)
