"""An output folder with one writer, whose outputs appear complete or not at all.

Two rules every command that writes named outputs into a folder follows (``tgs run``'s run
directory, ``tgs segment``'s ``OUT/``), kept here so that each is written once:

- **One writer** (:func:`lock_folder`): an exclusive ``flock`` on ``FOLDER/.lock``, which
  holds the writer's pid. A second process that wants to write there is refused with an
  error naming the folder and that pid. The kernel drops the lock when its process dies,
  so the lock file of a killed writer (``kill -9``) is stale and simply taken over.
- **Partial names** (:func:`partial_path`, :class:`StagedOutputs`): a file is written under
  a hidden partial name beside its final one and renamed when complete (same folder, so
  the rename is atomic); a set of outputs that belong together is written into a hidden
  staging folder ``FOLDER/.partial/`` and published in one step when all are complete, so a
  killed call leaves the previous complete outputs untouched and never a broken file
  under a final name. The next writer removes a killed call's staging folder.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from tgs.errors import TGSError

__all__ = ["LOCK", "STAGING", "StagedOutputs", "holding_folder", "lock_folder", "partial_path"]

LOCK = ".lock"
STAGING = ".partial"


def partial_path(path: str | Path) -> Path:
    """Where ``path`` is written before the rename: a hidden name beside it with the same suffix
    (a video's suffix chooses its container), e.g. ``overlay.mp4`` -> ``.overlay.partial.mp4``."""
    path = Path(path)
    return path.with_name(f".{path.stem}.partial{path.suffix}")


def lock_folder(
    folder: str | Path, what: str, error: type[TGSError], *, reentrant: bool = True
) -> IO[str] | None:
    """Become the only writer of ``folder`` (created if missing): the open lock file, to be closed
    when done (closing releases the lock), or None when this process already holds it.

    what: how the folder is named in the error ("run directory", "output folder");
    error: the error raised (with the holder's pid) when another live process holds it;
    reentrant: whether this process may write while it already holds the lock (several
    ``RunStore`` objects of one run); if not, a second writer in this process is refused too.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with _HOLDERS_GUARD:
        if _HOLDERS.get(folder.resolve()) == threading.get_ident():
            return None  # a writer nested in this thread's holding_folder: the holder's lock covers it
    path = folder / LOCK
    handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held until the caller closes it
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        if holder == str(os.getpid()) and reentrant:
            return None  # this process already writes here
        raise error(
            f"{what} {folder} is being written by another process (pid {holder})",
            path=folder,
            fix=f"wait for process {holder} to finish (or stop it), or choose another --out",
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


_HOLDERS: dict[Path, int] = {}  # folder -> the thread that holds it for the writers nested in it
_HOLDERS_GUARD = threading.Lock()


@contextmanager
def holding_folder(folder: str | Path, what: str, error: type[TGSError]) -> Iterator[None]:
    """Be the only writer of ``folder`` for the block (:func:`lock_folder`), including every writer
    the block calls in this thread: their :func:`lock_folder` (e.g. a :class:`StagedOutputs`) returns
    None, the block's lock covering them. So a step before them (a URL's copy into the folder) and
    theirs are one unit that no other writer enters between, while another thread or process is
    still refused."""
    lock = lock_folder(folder, what, error, reentrant=False)
    key = Path(folder).resolve()
    with _HOLDERS_GUARD:
        _HOLDERS[key] = threading.get_ident()
    try:
        yield
    finally:
        with _HOLDERS_GUARD:
            _HOLDERS.pop(key, None)
        if lock is not None:
            lock.close()


class StagedOutputs:
    """The outputs of one call into ``folder``, written into ``folder/.partial/`` and published
    together by :meth:`publish`; a context manager holding the folder's lock.

    Entering takes the lock and replaces a killed call's staging folder with an empty one;
    leaving with an error removes the staging folder (the previous outputs stay as they
    were); leaving releases the lock. :meth:`publish` moves every staged entry to its
    final name: the ``marker`` file (e.g. ``result.json``, which describes the others) is
    removed first and published last, so a marker in the folder always describes the
    files beside it, even if the process dies between the renames.
    """

    def __init__(self, folder: str | Path, *, marker: str, error: type[TGSError]) -> None:
        self.folder = Path(folder)
        self.staging = self.folder / STAGING
        self.marker = marker
        self._error = error
        self._lock: IO[str] | None = None

    def __enter__(self) -> StagedOutputs:
        self._lock = lock_folder(self.folder, "output folder", self._error, reentrant=False)
        shutil.rmtree(self.staging, ignore_errors=True)  # a killed call's partial outputs
        self.staging.mkdir()
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            shutil.rmtree(self.staging, ignore_errors=True)
        finally:
            if self._lock is not None:
                self._lock.close()
                self._lock = None

    def path(self, name: str) -> Path:
        """Where the output ``name`` (relative to the folder) is written before publishing."""
        return self.staging / name

    def publish(self, replaced: Iterable[Path] = ()) -> None:
        """Move every staged entry to its final name (folders merged into existing ones, so
        files that are not ours stay), after removing the marker and the previous call's
        outputs ``replaced`` (files under the folder; folders left empty by that are removed)."""
        (self.folder / self.marker).unlink(missing_ok=True)
        for path in replaced:
            path.unlink(missing_ok=True)
            parent = path.parent
            while parent != self.folder and self.folder in parent.parents and not any(parent.iterdir()):
                parent.rmdir()
                parent = parent.parent
        for entry in sorted(self.staging.iterdir()):
            if entry.name != self.marker:
                _move(entry, self.folder / entry.name)
        if (self.staging / self.marker).exists():
            os.replace(self.staging / self.marker, self.folder / self.marker)


def _move(source: Path, target: Path) -> None:
    """``source`` to ``target``: a file replaces, a folder is renamed whole when ``target`` is
    absent and merged entry by entry into an existing one."""
    if source.is_dir() and target.is_dir():
        for entry in sorted(source.iterdir()):
            _move(entry, target / entry.name)
        source.rmdir()
    else:
        os.replace(source, target)
