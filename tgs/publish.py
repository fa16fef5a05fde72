"""Write a model directory so that readers see all of it or none of it.

Converting, exporting and initialising a model each write several files (weights,
tokenizer, processor, a provenance record). A crash half-way must not leave a directory
that looks loadable, and overwriting an old one must not destroy it before the new one is
complete. So the files go into a staging folder beside the target (the same file system,
so the final rename cannot fail for crossing devices), and the folder is renamed into place
only once the writer returns.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tgs.errors import DataError

__all__ = ["check_output_dir", "staged_directory"]


def check_output_dir(out_dir: Path, overwrite: bool, *, option: str = "--out") -> None:
    """Refuse a non-empty output directory unless ``overwrite``."""
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise DataError(
            f"output directory {out_dir} is not empty",
            path=out_dir,
            fix=f"choose a new {option} or pass --overwrite",
        )


@contextmanager
def staged_directory(out_dir: str | Path) -> Iterator[Path]:
    """An empty folder beside ``out_dir``; when the block ends without an error it replaces
    ``out_dir`` (an existing one is removed first), otherwise it is deleted."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-staging-", dir=out_dir.parent))
    try:
        yield staging
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
