"""A video given by URL, segmented as the file it is: ``tgs segment URL`` and a batch list's URL rows.

A finite video FFmpeg reads over the network (a file over http(s), an HLS playlist that ends)
is copied packet by packet (:func:`tgs.sources.fetch_finite`, no re-encoding: the same decoded
frames, timestamps and audio) into ``OUT/.source/``, segmented from there by the same
``segment_video`` as any file (its ``video_label`` the URL, so ``result.json`` names the URL from
the first write: the copy is gone afterwards), and the copy is removed; a URL row of a batch
and ``tgs segment URL`` write the same outputs. ``OUT``'s lock is held from before the copy to
after the segmentation (one writer per folder, no other between them); a killed call's copy
is removed by the next call. A live URL (no duration) is refused with a
MediaError that says so: a batch row records it as that row's error.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tgs.errors import RunError
from tgs.output_folder import holding_folder
from tgs.paths import check_output_folder
from tgs.sources import fetch_finite, is_url

__all__ = ["SOURCE_STAGING", "LocalVideo", "local_video"]

SOURCE_STAGING = ".source"
"""Where in an output folder a URL's video is copied while it is segmented."""


@dataclass(frozen=True)
class LocalVideo:
    """The file to segment for a video spec, and what result.json names as its video."""

    path: Path
    label: str | None  # the URL of a copied video; None: the path itself


@contextmanager
def local_video(video: str | Path, out: str | Path | None) -> Iterator[LocalVideo]:
    """The local file to segment for ``video`` into ``out``: a path as it is (``out`` unused); a URL
    copied into ``out/.source/`` for the block, its label the URL (``segment_video(...,
    video_label=local.label)`` names the URL in result.json the first time it writes it).

    For a URL, the copy and everything the block writes into ``out`` (the segmentation) are one
    writer's work: ``out``'s lock is held for the whole block, and the writer nested in it in this
    thread (``segment_video``'s staged outputs) writes under it (:func:`tgs.output_folder.holding_folder`).
    """
    if not is_url(video):
        yield LocalVideo(Path(video), None)
        return
    if out is None:
        raise ValueError(f"local_video: a URL ({video}) needs the output folder it is copied into")
    url, out = str(video), Path(out)
    check_output_folder(out, [], [])  # an existing file named like the folder: one clear error
    staging = out / SOURCE_STAGING
    with holding_folder(out, "output folder", RunError):
        try:
            shutil.rmtree(staging, ignore_errors=True)  # a killed call's copy
            yield LocalVideo(fetch_finite(url, staging), url)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
