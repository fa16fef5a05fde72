"""One writer per run directory: a second process is refused with the holder's pid; the lock
of a process that died is taken over."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
from pathlib import Path

import pytest

from tgs.errors import RunError
from tgs.run_store import LOCK, RunStore

MANIFEST = {"kind": "test", "config": 1}


def _hold(run_dir: str, ready, release) -> None:
    store = RunStore.open(run_dir, MANIFEST)
    ready.set()
    release.wait(60)
    store.close()


def _try_open(run_dir: str, queue) -> None:
    try:
        RunStore.open(run_dir, MANIFEST).close()
        queue.put("opened")
    except RunError as exc:
        queue.put(str(exc))


@pytest.fixture
def ctx():
    return mp.get_context("spawn")


def test_a_second_writer_is_refused_with_the_holders_pid(tmp_path: Path, ctx):
    ready, release, queue = ctx.Event(), ctx.Event(), ctx.Queue()
    holder = ctx.Process(target=_hold, args=(str(tmp_path / "run"), ready, release))
    holder.start()
    try:
        assert ready.wait(60)
        other = ctx.Process(target=_try_open, args=(str(tmp_path / "run"), queue))
        other.start()
        other.join(60)
        message = queue.get(timeout=5)
        assert f"pid {holder.pid}" in message
        with pytest.raises(RunError, match=str(holder.pid)):  # this process too
            RunStore.open(tmp_path / "run", MANIFEST)
    finally:
        release.set()
        holder.join(60)
    RunStore.open(tmp_path / "run", MANIFEST).close()  # free again once the holder closed


def test_the_lock_of_a_killed_writer_is_taken_over(tmp_path: Path, ctx):
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold, args=(str(tmp_path / "run"), ready, release))
    holder.start()
    assert ready.wait(60)
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(60)
    assert (tmp_path / "run" / LOCK).read_text().strip() == str(holder.pid)  # stale file left behind
    store = RunStore.open(tmp_path / "run", MANIFEST)
    try:
        assert (tmp_path / "run" / LOCK).read_text().strip() == str(os.getpid())
    finally:
        store.close()


def test_readers_take_no_lock(tmp_path: Path):
    store = RunStore.open(tmp_path / "run", MANIFEST)
    try:
        store.append("samples", {"uid": "a_b_1", "status": "ok"})
        assert RunStore(tmp_path / "run").done_uids("samples") == {"a_b_1"}
    finally:
        store.close()
