"""The generic sample loop: skip done, record failures and go on, batches, limit, interruption."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import pytest

from tgs.errors import MediaError
from tgs.run_store import RunStore
from tgs.runners.local import error_kind, per_item, run_local


@dataclass(frozen=True)
class Item:
    uid: str
    value: int


ITEMS = [Item(f"u{i}", i) for i in range(6)]


def _square(item: Item) -> dict:
    if item.value == 3:
        raise MediaError("frame 3.jpg not found", path=f"/data/{item.uid}/3.jpg")
    if item.value == 4:
        raise ZeroDivisionError("boom")
    return {"square": item.value**2}


def _open(tmp_path: Path) -> RunStore:
    return RunStore.open(tmp_path / "run", {"kind": "test"})


def test_failures_are_recorded_and_the_run_goes_on(tmp_path: Path) -> None:
    store = _open(tmp_path)
    summary = run_local(ITEMS, per_item(_square), store=store, stream="samples")
    records = store.latest("samples")
    assert [r["uid"] for r in store.records("samples")] == [f"u{i}" for i in range(6)]
    assert records["u2"] == {"uid": "u2", "status": "ok", "square": 4}
    assert records["u3"]["status"] == "failed" and records["u3"]["error_kind"] == "media"
    assert "3.jpg not found" in records["u3"]["error"] and "/data/u3/3.jpg" in records["u3"]["error"]
    assert records["u4"] == {"uid": "u4", "status": "failed", "error": "boom", "error_kind": "ZeroDivisionError"}
    assert (summary.total, summary.succeeded, summary.failed, summary.skipped) == (6, 4, 2, 0)
    assert summary.failures_by_kind() == {"media": 1, "ZeroDivisionError": 1}


def test_rerun_skips_done_and_retries_failed(tmp_path: Path) -> None:
    store = _open(tmp_path)
    run_local(ITEMS, per_item(_square), store=store, stream="samples")
    seen: list[str] = []

    def fixed(item: Item) -> dict:
        seen.append(item.uid)
        return {"square": item.value**2}

    summary = run_local(ITEMS, per_item(fixed), store=store, stream="samples")
    assert seen == ["u3", "u4"]
    assert (summary.skipped, summary.succeeded, summary.failed) == (4, 2, 0)
    assert store.done_uids("samples") == {f"u{i}" for i in range(6)}


def test_repeated_uids_are_processed_once(tmp_path: Path) -> None:
    store = _open(tmp_path)
    items = [Item("a", 1), Item("b", 2), Item("a", 5)]
    summary = run_local(items, per_item(lambda it: {"v": it.value}), store=store, stream="s")
    assert summary.total == 2 and store.latest("s")["a"]["v"] == 1 and len(store.records("s")) == 2


def test_batches_whole_batch_failure_and_item_errors(tmp_path: Path) -> None:
    store = _open(tmp_path)
    batches: list[list[str]] = []

    def process(batch: list[Item]) -> list:
        batches.append([it.uid for it in batch])
        if any(it.value == 4 for it in batch):
            raise RuntimeError("out of memory")
        return [ValueError("bad item") if it.value == 1 else {"v": it.value} for it in batch]

    summary = run_local(ITEMS, process, store=store, stream="s", batch_size=4)
    assert batches == [["u0", "u1", "u2", "u3"], ["u4", "u5"]]
    latest = store.latest("s")
    assert latest["u1"]["error_kind"] == "ValueError" and latest["u0"]["status"] == "ok"
    assert latest["u4"]["error"] == latest["u5"]["error"] == "out of memory"
    assert summary.failures_by_kind() == {"RuntimeError": 2, "ValueError": 1}
    with pytest.raises(ValueError, match="batch_size"):
        run_local(ITEMS, process, store=store, stream="s", batch_size=0)


def test_limit_then_resume(tmp_path: Path) -> None:
    store = _open(tmp_path)
    fn = per_item(lambda it: {"v": it.value})
    first = run_local(ITEMS, fn, store=store, stream="s", limit=2)
    assert first.stopped_early and first.processed == 2 and first.remaining == 4
    second = run_local(ITEMS, fn, store=store, stream="s")
    assert not second.stopped_early and second.skipped == 2 and second.succeeded == 4
    assert [r["uid"] for r in store.records("s")] == [f"u{i}" for i in range(6)]


def test_interruption_keeps_what_was_committed(tmp_path: Path) -> None:
    store = _open(tmp_path)

    def interrupted(item: Item) -> dict:
        if item.value == 2:
            raise KeyboardInterrupt
        return {"v": item.value}

    with pytest.raises(KeyboardInterrupt):
        run_local(ITEMS, per_item(interrupted), store=store, stream="s")
    assert store.done_uids("s") == {"u0", "u1"}


def test_progress_gets_the_number_to_do_and_advances(tmp_path: Path) -> None:
    store = _open(tmp_path)
    store.append("s", {"uid": "u0", "status": "ok"})
    calls: list[tuple[str, int]] = []

    @contextlib.contextmanager
    def progress(total: int):
        calls.append(("total", total))
        yield lambda n=1: calls.append(("advance", n))

    run_local(ITEMS, per_item(lambda it: {}), store=store, stream="s", batch_size=2, progress=progress)
    assert calls == [("total", 5), ("advance", 2), ("advance", 2), ("advance", 1)]


def test_error_kind() -> None:
    assert error_kind(MediaError("x")) == "media" and error_kind(KeyError("k")) == "KeyError"
