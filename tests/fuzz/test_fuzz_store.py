"""Property tests of the run store (tgs.run_store): records, torn tails, masks, uids."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tgs.errors import RunError
from tgs.run_store import RunStore, safe_uid
from tgs.types import Masks

# Few examples: every append is fsynced, which costs wall time on a busy disk.
SETTINGS = settings(
    max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)

# Any JSON value with string keys; floats finite (NaN != NaN would make equality meaningless).
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
records = st.dictionaries(st.text(max_size=10), json_values, max_size=5)


@SETTINGS
@given(batch=st.lists(records, min_size=1, max_size=6))
@example(batch=[{"predict": "half an emoji \ud83d"}, {"uid": "b"}])  # raised UnicodeEncodeError before the fix
@example(batch=[{"a\n": "line\rbreaks\u2028\u2029 \x00"}])
def test_records_round_trip(batch: list[dict]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        with RunStore(tmp) as store:
            for record in batch:
                store.append("stream", record)
        assert RunStore(tmp).records("stream") == batch
        raw = (Path(tmp) / "stream.jsonl").read_bytes()
        raw.decode("utf-8")  # every committed line is valid UTF-8 JSON
        assert raw.count(b"\n") == len(batch)


@st.composite
def written_then_cut(draw: st.DrawFn) -> tuple[list[dict], bytes, int]:
    """(records, the file's bytes, an offset at which the file is cut)."""
    batch = draw(st.lists(records, min_size=1, max_size=5))
    data = b"".join((json.dumps(r, ensure_ascii=False) + "\n").encode("utf-8") for r in batch)
    cut = draw(st.integers(0, len(data)))
    return batch, data, cut


@SETTINGS
@given(case=written_then_cut(), garbage=st.binary(max_size=40).filter(lambda b: b"\n" not in b))
def test_torn_tail_at_any_offset_keeps_committed_records(case: tuple[list[dict], bytes, int], garbage: bytes) -> None:
    """A crash leaves the file cut anywhere (plus junk); committed lines survive, the tail is cut on reopen."""
    batch, data, cut = case
    torn = data[:cut] + garbage
    committed = batch[: data[:cut].count(b"\n")]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "stream.jsonl"
        path.write_bytes(torn)
        assert RunStore(tmp).records("stream") == committed
        with RunStore(tmp) as store:
            store.append("stream", {"uid": "after"})
        assert RunStore(tmp).records("stream") == [*committed, {"uid": "after"}]
        assert path.read_bytes().startswith(data[: data.rfind(b"\n", 0, cut) + 1])


@pytest.mark.parametrize("tail", [5000, 4096, 4095, 8193])
def test_torn_tail_longer_than_the_repair_chunk(tmp_path: Path, tail: int) -> None:
    """The repair walks back in 4 kB blocks: a torn line longer than a block is still cut whole."""
    path = tmp_path / "stream.jsonl"
    path.write_bytes(b'{"uid": "a"}\n' + b"x" * tail)
    with RunStore(tmp_path) as store:
        store.append("stream", {"uid": "b"})
    assert path.read_bytes() == b'{"uid": "a"}\n{"uid": "b"}\n'


@st.composite
def masks(draw: st.DrawFn) -> Masks:
    t, h, w = draw(st.integers(1, 3)), draw(st.integers(1, 9)), draw(st.integers(1, 19))
    binary = draw(hnp.arrays(np.bool_, (t, h, w)))
    with_probs = draw(st.booleans())
    probs = None
    if with_probs:
        probs = draw(hnp.arrays(np.float32, (t, h, w), elements=st.floats(0, 1, width=32)))
    return Masks(masks=binary, probs=probs)


@SETTINGS
@given(sample=masks())
def test_masks_round_trip_exactly(sample: Masks) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = RunStore(tmp)
        store.save_masks("vid_cat_1", sample)
        back = store.load_masks("vid_cat_1")
    np.testing.assert_array_equal(back.masks, sample.masks)
    if sample.probs is None:
        assert back.probs is None
    else:
        np.testing.assert_array_equal(back.probs, sample.probs)


@SETTINGS
@given(uid=st.text(max_size=20))
@example(uid="abc\n")  # accepted before the fix ('$' matches before a trailing newline)
@example(uid="..")
@example(uid="a/../../b")
@example(uid="-_x_1")
def test_mask_paths_stay_in_the_run_directory(uid: str) -> None:
    run_dir = Path("/run")
    try:
        path = RunStore(run_dir).mask_path(uid)
    except RunError:
        return
    assert safe_uid(uid) == uid
    assert path.parent == run_dir / "masks"
    assert path.name == uid + ".npz"
    assert all(c.isascii() and (c.isalnum() or c in "._-") for c in uid)
    assert ".." not in uid
