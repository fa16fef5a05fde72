"""Shared rich console, logging set-up and error rendering for the CLI."""

from __future__ import annotations

import logging
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
console = Console(stderr=False, soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

F = TypeVar("F", bound=Callable[..., Any])


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
            err_console.print(f"[bold red]error[/]: {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from exc

    return wrapper  # type: ignore[return-value]


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
    table = Table(title=f"{stage}: {run_dir}", title_justify="left")
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
            f"[yellow]{summary.failed} sample(s) failed[/] ({kinds}); first: {first.uid}: {first.error}\n"
            f"rerun the same command to retry them; details in {records_file}",
            highlight=False,
        )

