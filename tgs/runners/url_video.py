"""A video given by URL, segmented as the file it is: ``tgs segment URL`` and a batch list's URL rows.

A finite video FFmpeg reads over the network (a file over http(s), an HLS playlist that ends)
is copied packet by packet (:func:`tgs.sources.fetch_finite`, no re-encoding: the same decoded
frames, timestamps and audio) into ``OUT/.source/``, segmented from there by the same
``segment_video`` as any file, and the copy is removed. ``result.json`` then names the URL as
its video (the copy is gone), so a URL row of a batch and ``tgs segment URL`` write the same
outputs. The copy is made while holding ``OUT``'s lock (one writer per folder); a killed
call's copy is removed by the next call. A live URL (no duration) is refused with a
MediaError that says so: a batch row records it as that row's error.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tgs.core.segment import RESULT_NAME
from tgs.errors import RunError
from tgs.output_folder import lock_folder, partial_path
from tgs.paths import check_output_folder
from tgs.sources import fetch_finite, is_url

__all__ = ["SOURCE_STAGING", "local_video"]

logger = logging.getLogger(__name__)

SOURCE_STAGING = ".source"
"""Where in an output folder a URL's video is copied while it is segmented."""


@contextmanager
def local_video(video: str | Path, out: str | Path | None) -> Iterator[Path]:
    """The local file to segment for ``video`` into ``out``: a path as it is (``out`` unused); a URL
    copied into ``out/.source/`` for the block, after which (on success) ``out/result.json`` names the URL."""
    if not is_url(video):
        yield Path(video)
        return
    if out is None:
        raise ValueError(f"local_video: a URL ({video}) needs the output folder it is copied into")
    url, out = str(video), Path(out)
    check_output_folder(out, [], [])  # an existing file named like the folder: one clear error
    staging = out / SOURCE_STAGING
    lock = lock_folder(out, "output folder", RunError, reentrant=False)
    try:
        shutil.rmtree(staging, ignore_errors=True)  # a killed call's copy
        local = fetch_finite(url, staging)
    finally:
        if lock is not None:
            lock.close()
    try:
        yield local
        _name_the_url(out / RESULT_NAME, local, url)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _name_the_url(result_json: Path, local: Path, url: str) -> None:
    """result.json's video path: the URL instead of the removed copy (written whole, then renamed)."""
    data = json.loads(result_json.read_text(encoding="utf-8"))
    video = data.get("video") if isinstance(data, dict) else None
    if not isinstance(video, dict) or video.get("path") != str(local.resolve()):
        logger.warning("%s does not name the copy of %s as its video; left as it is", result_json, url)
        return
    video["path"] = url
    partial = partial_path(result_json)
    partial.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(partial, result_json)
