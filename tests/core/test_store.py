"""Run store: commit rule, torn lines, resume checks, mask round trip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tgs.errors import RunError
from tgs.run_store import RunStore, safe_uid
from tgs.types import Masks


def test_append_and_read(tmp_path: Path) -> None:
    store = RunStore.open(tmp_path / "run", {"preset": "paper"})
    store.append("samples", {"uid": "a", "status": "ok"})
    store.append("samples", {"uid": "b", "status": "failed", "error": "boom"})
    assert [r["uid"] for r in store.records("samples")] == ["a", "b"]
    assert store.done_uids("samples") == {"a"}
    store.append("samples", {"uid": "b", "status": "ok"})
    assert store.done_uids("samples") == {"a", "b"}
    store.close()


def test_torn_tail_is_ignored_then_cut(tmp_path: Path) -> None:
    store = RunStore.open(tmp_path / "run", {"preset": "paper"})
    store.append("thoughts", {"uid": "a", "status": "ok"})
    store.close()
    path = store.stream_path("thoughts")
    with open(path, "a") as fh:
        fh.write('{"uid": "b", "stat')  # crash mid-write
    reopened = RunStore.open(tmp_path / "run", {"preset": "paper"})
    assert [r["uid"] for r in reopened.records("thoughts")] == ["a"]
    reopened.append("thoughts", {"uid": "b", "status": "ok"})
    reopened.close()
    lines = path.read_text().splitlines()
    assert [json.loads(x)["uid"] for x in lines] == ["a", "b"]


def test_corrupt_middle_line_is_an_error(tmp_path: Path) -> None:
    store = RunStore.open(tmp_path / "run", {})
    store.stream_path("x").write_text('{"uid": "a"}\nnot json\n{"uid": "b"}\n')
    with pytest.raises(RunError, match="line 2"):
        store.records("x")


def test_resume_refuses_other_configuration(tmp_path: Path) -> None:
    RunStore.open(tmp_path / "run", {"preset": "paper", "created": 1})
    RunStore.open(tmp_path / "run", {"preset": "paper", "created": 2})  # same config: fine
    with pytest.raises(RunError, match="another configuration"):
        RunStore.open(tmp_path / "run", {"preset": "best"})
    with pytest.raises(RunError, match="already holds"):
        RunStore.open(tmp_path / "run", {"preset": "paper"}, resume=False)


def test_mask_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    masks = Masks(rng.random((10, 17, 23)) > 0.5, rng.random((10, 8, 9)).astype(np.float32))
    store = RunStore.open(tmp_path / "run", {})
    store.save_masks("vid_a_1", masks)
    back = store.load_masks("vid_a_1")
    np.testing.assert_array_equal(back.masks, masks.masks)
    np.testing.assert_array_equal(back.probs, masks.probs)
    assert not list((tmp_path / "run" / "masks").glob("*.tmp"))


def test_corrupt_mask_file_names_uid(tmp_path: Path) -> None:
    store = RunStore.open(tmp_path / "run", {})
    path = store.mask_path("u1")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"garbage")
    with pytest.raises(RunError, match="u1"):
        store.load_masks("u1")


@pytest.mark.parametrize("uid", ["../x", "a/b", "", ".hidden", "a..b"])
def test_unsafe_uids_rejected(uid: str) -> None:
    with pytest.raises(RunError):
        safe_uid(uid)


def test_real_uids_are_safe() -> None:
    for uid in ["--KCIeTv6PM_14000_24000_cat_1", "null_c--cLOg0sQ0Zo_420000_430000_null_1"]:
        assert safe_uid(uid) == uid
