"""Shared rich console, logging set-up and error rendering for the CLI."""

from __future__ import annotations

import logging
import re
import unicodedata
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

    keep_newlines: keep line breaks and tabs (multi-line messages the program wrote itself).
    Every CLI print of text that did not come from the program goes through here.
    """
    return _escape_markup("".join(_visible(c, "\n\t" if keep_newlines else "") for c in str(value)))


def setup_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(
        level=level,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False, rich_tracebacks=False)],
        force=True,
    )


def friendly_errors(func: F) -> F:
    """Render a TGSError as one red message and exit 1, instead of a traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except TGSError as exc:
            print_error(exc)
            raise typer.Exit(1) from exc

    return wrapper  # type: ignore[return-value]


def print_error(exc: BaseException) -> None:
    """One red ``error:`` line; the message may hold user text (paths, expressions), so it is escaped."""
    err_console.print(
        f"[bold red]error[/]: {escape_user_text(exc, keep_newlines=True)}", highlight=False, soft_wrap=True
    )


@contextmanager
def progress_bar(description: str, total: int | None, *, disable: bool = False) -> Iterator[Callable[[int], None]]:
    """A rich progress bar; yields ``advance(n)``."""
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        disable=disable,
        transient=False,
    )
    with progress:
        task = progress.add_task(description, total=total)

        def advance(n: int = 1) -> None:
            progress.advance(task, n)

        yield advance


def print_run_summary(stage: str, run_dir: object, summary: Any, records_file: str) -> None:
    """The end-of-stage table (done now / already done / failed / left) and the failures by kind.

    summary: a ``tgs.runners.local.RunSummary``; records_file: where failures are detailed.
    """
    table = Table(title=f"{stage}: {escape_user_text(run_dir)}", title_justify="left")
    for column in ("samples", "done now", "already done", "failed", "left"):
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
            f"[yellow]{summary.failed} sample(s) failed[/] ({kinds}); first: {escape_user_text(first.uid)}: "
            f"{escape_user_text(first.error, keep_newlines=True)}\n"
            f"rerun the same command to retry them; details in {escape_user_text(records_file)}",
            highlight=False,
        )

