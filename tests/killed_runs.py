"""A CLI run that a test kills with SIGKILL, and ending what a killed run leaves behind.

Shared by the kill-and-resume tests of every runner: the run gets one torch thread, the
driver's self-kill point from ``KILL_AFTER_ENV`` (or none), and its own process group, so
that what a killed Ray driver leaves (Ray's agents) can be ended with :func:`reap`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess

from tgs.runners.executor import KILL_AFTER_ENV


def start_killable(command: list[str], kill_after: int | None = None) -> subprocess.Popen:
    """Start ``command``; with ``kill_after`` the driver SIGKILLs itself right after that many commits."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env.pop(KILL_AFTER_ENV, None)
    if kill_after is not None:
        env[KILL_AFTER_ENV] = str(kill_after)
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)


def reap(run: subprocess.Popen) -> None:
    """End the processes a SIGKILLed run left in its group (a Ray instance's agents)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(run.pid, signal.SIGKILL)


def kill_when_ready(target, args: tuple) -> None:
    """Run ``target(*args, ready)`` in a spawned process, wait until it sets ``ready`` (an Event it
    is handed last), then SIGKILL it: a writer killed mid-output at a point it chose, no sleeps."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    writer = ctx.Process(target=target, args=(*args, ready))
    writer.start()
    try:
        assert ready.wait(120), "the writer never reached its kill point"
    finally:
        os.kill(writer.pid, signal.SIGKILL)
        writer.join(60)
    assert writer.exitcode == -signal.SIGKILL
