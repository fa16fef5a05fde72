"""``tgs segment SOURCE "expression" ...`` on a live source (a camera, a stream URL, ``-``): the
options only a live source takes, the status shown while it runs, and the summary at the end.
The run itself is :func:`tgs.core.live_run.segment_live`."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.live import Live
from rich.table import Table

from tgs.cli.common import bad, prepare_process, untrained_banner
from tgs.cli.console import console, err_console, escape_user_text

LIVE_ONLY = ("--rethink-every", "--every-frame", "--reconnect", "--audio", "--png")
"""Options that only a live source takes (a file is read whole, every frame)."""

FILE_ONLY = ("--fps", "--keyframe-fps", "--no-png", "--chunk-seconds")
"""Options of a video file that a live source has no use for."""


def refuse_misused(given: Mapping[str, bool], live: bool) -> None:
    """A live-only option with a file, or a file-only one with a live source: one line naming it."""
    wrong = [name for name in (FILE_ONLY if live else LIVE_ONLY) if given.get(name)]
    if wrong:
        if live:
            raise bad(f"{', '.join(wrong)} applies to a video file, not a live source: leave it out", wrong[0])
        raise bad(f"{', '.join(wrong)} applies to a live source (a camera, a stream URL, '-'), not a file",
                  wrong[0])


def _fmt_ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f} ms"


class LiveStatus:
    """The console status of a live run: one block, refreshed a few times a second (not one
    line per frame): frames emitted / decoded / skipped, latency, rate, what each expression
    is grounded with. Rendered from the session's running counts (cheap)."""

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self.session: Any = None
        self.started = time.monotonic()

    def __rich__(self) -> Table:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold")
        table.add_column()
        if self.session is None:
            table.add_row("live", "loading the models and opening the source ...")
            return table
        s = self.session.mode.status()
        decoded = "?" if s["decoded"] is None else str(s["decoded"])
        rate = "-" if s["emitted_fps"] is None else f"{s['emitted_fps']:.1f}"
        table.add_row("frames", f"{s['emitted']} emitted of {decoded} decoded, {s['skipped']} skipped, {rate} fps")
        table.add_row("latency", f"last {_fmt_ms(s['latency_last'])}, p50 {_fmt_ms(s['latency_p50'])}, "
                                 f"p95 {_fmt_ms(s['latency_p95'])}")
        if s["reconnects"]:
            table.add_row("reconnects", str(s["reconnects"]))
        for k, text in enumerate(self.texts):
            current = s["object_texts"][k] if k < len(s["object_texts"]) else None
            shown = "(waiting for the thinker)" if current is None else escape_user_text(current)
            table.add_row(f"{k + 1}", f"{escape_user_text(text)} -> {shown}")
        if s["thinking"]:
            table.add_row("thinker", "thinking ...")
        return table


def run_live(
    source: str,
    expressions: list[str],
    *,
    thinker: str,
    preset: Any,
    settings: Any,
    out: Path | None,
    thinker_options: dict[str, Any],
    live: Any,
    device: str,
) -> None:
    """Check, run until the source ends or Ctrl-C / SIGTERM, print where everything went."""
    from tgs.core.live_run import segment_live
    from tgs.core.segment_call import check_live_call

    check_live_call(source, expressions, thinker=thinker, settings=settings, thinker_options=thinker_options)
    if settings.untrained:
        err_console.print(untrained_banner())
    prepare_process(device)
    status = LiveStatus(list(expressions))
    err_console.print("live: Ctrl-C (or SIGTERM) ends the run; every output stays valid", highlight=False)

    def started(session: Any) -> None:
        status.session = session

    try:
        with Live(status, console=err_console, refresh_per_second=4, transient=True):
            result = segment_live(source, expressions, thinker=thinker, preset=preset, settings=settings, out=out,
                                  live=live, thinker_options=thinker_options, signals=True, on_start=started)
    finally:
        # rich's refresh thread holds the status: when its native thread frees that last reference at
        # interpreter exit, the session's tensors would be freed on an exiting thread, which aborts the
        # process ("terminate called without an active exception"); so the status lets the session go
        status.session = None
    print_live_result(result)
    if result.untrained:
        err_console.print(untrained_banner())


def print_live_result(result: Any) -> None:  # result: tgs.core.live_run.LiveResult
    """Why it ended, the counts and latencies, each expression's answers, the outputs."""
    e = escape_user_text
    live = result.live
    latency = live["latency_s"]
    console.print(f"ended: {e(live['end'])}", highlight=False)
    console.print(
        f"frames: {live['frames_emitted']} emitted, {live['frames_skipped']} skipped "
        f"({100 * live['skipped_ratio']:.1f} %), latency p50 {_fmt_ms(latency['p50'])}, p95 {_fmt_ms(latency['p95'])}",
        highlight=False,
    )
    for gap in live["gaps"]:
        console.print(f"gap: {gap['start']:.2f} s -> {gap['end']:.2f} s ({e(gap['reason'])}, "
                      f"{gap['attempts']} attempt(s))", highlight=False)
    for expression in result.record["expressions"]:
        spans = expression["answers"]
        said = "; ".join(f"{s['start']:.1f}-{'…' if s['end'] is None else format(s['end'], '.1f')} s: "
                         f"{e(str(s['object_text']))}" for s in spans) or "no answer yet"
        console.print(f"{expression['index'] + 1}: {e(expression['expression'])} -> {said}", highlight=False)
    console.print(f"masks (one line per frame): {e(result.masks_jsonl)}", highlight=False, soft_wrap=True)
    console.print(f"overlay video (fragmented MP4): {e(result.overlay_video)}", highlight=False, soft_wrap=True)
    console.print(f"result: {e(result.result_json)}", highlight=False, soft_wrap=True)
