"""``tgs segment --batch LIST --out DIR``: many videos, each with its expressions, into one folder.

Called by ``tgs segment`` when ``--batch`` is given (the options are that command's);
the work is :func:`tgs.runners.segment_batch.segment_many`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tgs.cli.common import bad
from tgs.cli.console import console, err_console, escape_user_text, print_run_summary, progress_bar
from tgs.cli.executor_options import executor_from_options

__all__ = ["run_batch"]


@contextmanager
def video_progress(total: int) -> Iterator[Callable[[int], None]]:
    """One bar over the videos, with the rate (videos per minute) and the time left."""
    with progress_bar("videos", total=total, rate_unit="videos") as advance:
        yield advance


def run_batch(
    batch: Path,
    *,
    video: str | None,
    expressions: list[str] | None,
    expressions_file: Path | None,
    out: Path | None,
    options: Any,  # tgs.runners.segment_batch.SegmentOptions
    executor: str,
    ray_address: str | None,
    workers: int | None,
    resources: str | None,
    device: str,
) -> None:
    """Read the list, segment every video not done yet, print the summary."""
    from tgs.runners.batch_list import read_batch_list
    from tgs.runners.segment_batch import latest_index, segment_many

    if video is not None or expressions:
        shown = " ".join(str(v) for v in [video, *(expressions or [])] if v is not None)
        raise bad(f"--batch takes the videos and expressions from its list, not from the command line ({shown})",
                  "--batch")
    if out is None:
        raise bad("--batch needs --out DIR: every video gets DIR/<name>/ and DIR/index.jsonl", "--out")
    items = read_batch_list(batch, expressions_file)
    expression_count = sum(len(item.expressions) for item in items)
    err_console.print(f"{len(items)} video(s), {expression_count} expression(s) -> {escape_user_text(out)}",
                      highlight=False)
    with executor_from_options(executor, ray_address, workers, resources, device) as chosen:
        outcome = segment_many(items, out, options, executor=chosen, progress=video_progress)
    print_run_summary("segment --batch", out, outcome.summary, str(outcome.index), unit="video")
    lines = latest_index(out)
    wanted = {(item.uid, k) for item in items for k in range(len(item.expressions))}
    ok = sum(1 for key in wanted if lines.get(key, {}).get("status") == "ok")
    console.print(f"expressions: {ok} of {len(wanted)} segmented; index: {escape_user_text(outcome.index)}",
                  highlight=False, soft_wrap=True)
