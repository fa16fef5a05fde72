"""Checks on where a command writes, made before anything is written.

A command that writes named files into an output folder (``tgs segment``: ``overlay.mp4``,
``masks/``, ``result.json``) must never overwrite or delete one of its own inputs, e.g.
``tgs segment OUT/overlay.mp4 "..." --out OUT``, and must say so plainly when the output
folder is an existing file.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tgs.errors import SettingsError

__all__ = ["check_output_folder"]


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_output_folder(out: Path, inputs: Iterable[Path], written: Iterable[str]) -> Path:
    """``out`` if a command may write ``written`` (names relative to ``out``; a folder name
    covers everything in it) there without touching any of ``inputs``.

    SettingsError when ``out`` is an existing file, or when an input is (or lies inside) one
    of the outputs: the input would be replaced or deleted while it is read. Paths are
    compared resolved (symlinks followed), so ``./OUT/../OUT/overlay.mp4`` is caught too.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SettingsError(
            f"the output folder {out} is an existing file", path=out, fix="give --out a folder name (new or existing)"
        )
    targets = [(out / name).resolve() for name in written]
    for given in inputs:
        resolved = Path(given).resolve()
        for target in targets:
            if _inside(resolved, target):
                raise SettingsError(
                    f"the input {given} would be overwritten by this command's output {target.name!r} in {out}",
                    path=given,
                    fix="write to another folder (--out), or move the input out of the output folder first",
                )
    return out
