"""Shared rich console, logging set-up and error rendering for the CLI."""

from __future__ import annotations

import logging
import re
import unicodedata
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from tgs.errors import TGSError

# soft_wrap: long lines (paths, commands to copy) are never broken by inserted newlines.
console = Console(stderr=False, soft_wrap=True, emoji=False)  # ":dog:" in a path stays text
err_console = Console(stderr=True, soft_wrap=True, emoji=False)

F = TypeVar("F", bound=Callable[..., Any])


# Libraries whose log lines are not ours: errors only by default, warnings with -v, all with -vv.
THIRD_PARTY_LOGGERS: tuple[str, ...] = (
    "transformers",
    "huggingface_hub",
    "DeepSpeed",
    "deepspeed",
    "accelerate",
    "peft",
    "ray",
    "httpx",
    "httpcore",
    "httpx2",  # the openai client's HTTP library (the api thinker): one INFO line per request
    "urllib3",
    "openai",
    "filelock",
    "gradio",
    "matplotlib",
    "PIL",
    "torch",
)


class _AtLeast(logging.Filter):
    """Drops records below a level on a logger whose library resets its level when imported (DeepSpeed)."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= self.level


def third_party_level(verbosity: int) -> int:
    return logging.ERROR if verbosity <= 0 else logging.WARNING if verbosity == 1 else logging.DEBUG


def _visible(char: str, keep: str) -> str:
    """A control character as a visible escape (``\\x1b``), so it cannot move the cursor or recolour
    the terminal; every other character as it is."""
    if char in keep or unicodedata.category(char) != "Cc":
        return char
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


_TAG_LIKE = re.compile(r"(\\*)(\[[a-z#/@][^[]*?])")  # what rich reads as a tag (rich.markup.RE_TAGS)
_BACKSLASHED_BRACKET = re.compile(r"(\\+)\[")


def _escape_markup(text: str) -> str:
    """``text`` as rich markup that renders exactly ``text``, whatever follows it.

    rich.markup.escape alone is not enough: rich also drops the backslash of any ``\\[``
    that is not a tag (``x\\[y`` showed as ``x[y``), and a trailing backslash escapes the
    markup after it. So: tag-like brackets get rich's escape (backslashes doubled, one added),
    other brackets after backslashes one more backslash, and the text is closed in a no-op
    ``[none]`` style whose closing tag its doubled trailing backslashes cannot escape.
    """

    def plain(segment: str) -> str:
        return _BACKSLASHED_BRACKET.sub(lambda m: m.group(1) + "\\[", segment)

    parts, position = [], 0
    for match in _TAG_LIKE.finditer(text):
        parts.append(plain(text[position : match.start()]))
        parts.append(match.group(1) * 2 + "\\" + match.group(2))
        position = match.end()
    parts.append(plain(text[position:]))
    body = re.sub(r"(\\+)$", lambda m: m.group(1) * 2, "".join(parts))
    return f"[none]{body}[/none]" if body else ""


def escape_user_text(value: object, *, keep_newlines: bool = False) -> str:
    """User-supplied text (an expression, a path, a CSV field, an error naming them) made safe to
    print through rich: shown exactly as typed instead of being read as markup (``"the man [on
    the left]"``, ``"[/]"``, ``"x\\[y"``), and control characters (ESC, BEL, CR, ...) shown as
    ``\\xNN`` escapes instead of acting on the terminal.

    keep_newlines: keep line breaks (multi-line messages the program wrote itself); a tab is
        still shown as ``\\x09``, since it may come from a user's path.
    Every CLI print of text that did not come from the program goes through here.
    """
    return _escape_markup("".join(_visible(c, "\n" if keep_newlines else "") for c in str(value)))


def setup_logging(verbosity: int) -> None:
    """Our messages through one rich handler; other libraries quiet (and printed once) unless -v.

    Libraries that install their own handler (huggingface_hub) would print each line twice,
    once plain and once through ours: their handlers are removed so every line goes through
    ours. Their progress bars (downloads, "Loading weights", "Writing model shards") are off
    unless -v; ours (rich) are not affected.
    """
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(
        level=level,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False, rich_tracebacks=False)],
        force=True,
    )
    quiet_third_party(verbosity)
    warnings.showwarning = show_warning


def show_warning(
    message: Warning | str, category: type[Warning], filename: str, lineno: int, file: Any = None, line: Any = None
) -> None:
    """A Python warning as one plain log line, ``SamplingWarning: --fps 50 is above ...``: no install
    path, no line of our source code (``warnings.showwarning`` of every ``tgs`` command)."""
    text = " ".join(str(message).split())
    logging.getLogger("py.warnings").warning("%s: %s", category.__name__, text)


def quiet_third_party(verbosity: int) -> None:
    """Third-party loggers at ERROR (WARNING with -v, DEBUG with -vv), their progress bars off unless -v."""
    import os
    import sys

    others = third_party_level(verbosity)
    # transformers sets its own level when first imported; tell it ours (an explicit user setting wins).
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", logging.getLevelName(others).lower())
    try:
        from huggingface_hub.utils import disable_progress_bars, enable_progress_bars
        from huggingface_hub.utils import logging as hub_logging

        hub_logging.get_logger()  # make sure its handler exists, then remove it: ours prints once
        disable_progress_bars() if verbosity <= 0 else enable_progress_bars()
    except ImportError:  # pragma: no cover - a dependency of transformers
        pass
    for name in THIRD_PARTY_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(others)
        for old in [f for f in logger.filters if isinstance(f, _AtLeast)]:
            logger.removeFilter(old)
        logger.addFilter(_AtLeast(others))
        if name == "huggingface_hub":
            for handler in list(logger.handlers):
                logger.removeHandler(handler)
            logger.propagate = True
    if "transformers" in sys.modules:  # already imported: its own switches
        from transformers.utils import logging as tf_logging

        tf_logging.set_verbosity(others)
        tf_logging.disable_progress_bar() if verbosity <= 0 else tf_logging.enable_progress_bar()


def _one_line(exc: BaseException) -> str:
    """A user-facing message for an error that is the user's input or machine, not a bug."""
    if isinstance(exc, TGSError):
        return str(exc)
    if isinstance(exc, IsADirectoryError):
        return f"{exc.filename} is a folder, but a file is expected here. Fix: pass the file inside it."
    if isinstance(exc, NotADirectoryError):
        return f"{exc.filename} is a file (or under one), but a folder is expected here. Fix: pass a folder."
    if isinstance(exc, FileNotFoundError):
        return f"{exc.filename or exc}: no such file or folder. Fix: check the path."
    if isinstance(exc, PermissionError):
        return f"{exc.filename or exc}: permission denied. Fix: choose a path you can read and write."
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return f"out of memory ({exc}). Fix: ask for less at once (smaller batches, frames or sizes) or use another device."
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror}{where}"
    return (
        f"unexpected {type(exc).__name__}: {exc}\n"
        "This is a bug in tgs, or an input it does not check yet. Rerun with `tgs --debug ...` to see "
        "the traceback, and please report it."
    )


def _never() -> bool:
    return False


def friendly_errors(func: F, debug: Callable[[], bool] = _never) -> F:
    """Render an error as one red message and exit 1 instead of a traceback (``tgs --debug`` shows it).

    Errors raised on purpose (``TGSError``) and those of the user's files or machine
    (missing file, folder given for a file, permission, out of memory) are explained; anything
    else is named as a possible bug. Typer's usage errors and exits pass through.
    ``debug()`` says whether to re-raise instead (``tgs --debug``). ``tgs.cli.main.build_app``
    applies it to every command, re-wrapping those decorated at definition.
    """
    func = getattr(func, "__tgs_unwrapped__", func)

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except KeyboardInterrupt as exc:
            err_console.print("[bold red]interrupted[/]", highlight=False)
            raise typer.Exit(130) from exc
        except Exception as exc:
            if debug():
                raise
            print_error(exc)
            raise typer.Exit(1) from exc

    wrapper.__tgs_unwrapped__ = func  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


def print_error(exc: BaseException) -> None:
    """One red ``error:`` line; the message may hold user text (paths, expressions), so it is escaped."""
    err_console.print(
        f"[bold red]error[/]: {escape_user_text(_one_line(exc), keep_newlines=True)}", highlight=False, soft_wrap=True
    )


@contextmanager
def progress_bar(
    description: str, total: int | None, *, disable: bool = False, rate_unit: str | None = None
) -> Iterator[Callable[[int], None]]:
    """A rich progress bar with the time left; yields ``advance(n, description=None)`` (a new
    description replaces the bar's label, e.g. "propagating: frame 37 of 150").

    Descriptions are plain text, shown exactly (they hold paths and expressions: ``o/mk[/]out``
    stays ``o/mk[/]out``), never read as markup.
    rate_unit: also show the average rate since the start, per minute (e.g. "videos" -> "3.2 videos/min")."""
    rate = [TextColumn("{task.fields[rate]}")] if rate_unit else []
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        *rate,
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        disable=disable,
        transient=False,
    )
    with progress:
        task = progress.add_task(escape_user_text(description), total=total, rate="")

        def advance(n: int = 1, description: str | None = None) -> None:
            if description:
                progress.update(task, description=escape_user_text(description))
            progress.advance(task, n)
            if rate_unit:  # the average since the start: work that comes back in bursts (Ray) reads steady
                state = progress.tasks[task]
                elapsed = state.elapsed or 0.0
                rate = f"{60 * state.completed / elapsed:.1f} {rate_unit}/min" if elapsed > 0 else ""
                progress.update(task, rate=rate)

        yield advance


def print_run_summary(stage: str, run_dir: object, summary: Any, records_file: str, unit: str = "sample") -> None:
    """The end-of-stage table (done now / already done / failed / left) and the failures by kind.

    summary: a ``tgs.runners.local.RunSummary``; records_file: where failures are detailed;
    unit: what the summary counts ("sample", "video").
    """
    table = Table(title=f"{stage}: {escape_user_text(run_dir)}", title_justify="left")
    for column in (f"{unit}s", "done now", "already done", "failed", "left"):
        table.add_column(column, justify="right")
    table.add_row(
        str(summary.total),
        str(summary.succeeded),
        str(summary.skipped),
        f"[red]{summary.failed}[/]" if summary.failed else "0",
        str(summary.remaining),
    )
    console.print(table)
    if summary.failures:
        first = summary.failures[0]
        kinds = ", ".join(f"{kind}: {n}" for kind, n in summary.failures_by_kind().items())
        err_console.print(
            f"[yellow]{summary.failed} {unit}(s) failed[/] ({kinds}); first: {escape_user_text(first.uid)}: "
            f"{escape_user_text(first.error, keep_newlines=True)}\n"
            f"rerun the same command to retry them; details in {escape_user_text(records_file)}",
            highlight=False,
        )

