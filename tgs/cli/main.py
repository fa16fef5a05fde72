"""Entry point of the ``tgs`` command.

Each command group lives in its own module exposing ``register(app)``; they are listed
here so that adding a group is one line and ``tgs --help`` shows them all.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import typer

from tgs import __version__

# Modules under tgs.cli that define commands, in the order shown by --help.
COMMAND_MODULES: tuple[str, ...] = (
    "tgs.cli.quickstart",
    "tgs.cli.segment",
    "tgs.cli.run",
    "tgs.cli.data",
    "tgs.cli.eval",
    "tgs.cli.think",
    "tgs.cli.train",
    "tgs.cli.ground_segment",
    "tgs.cli.models",
    "tgs.cli.report",
    "tgs.cli.demo",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tgs {__version__}")
        raise typer.Exit()


def build_app() -> typer.Typer:
    app = typer.Typer(
        name="tgs",
        help="Think-Ground-Segment: referring audio-visual segmentation.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_show_locals=False,
    )

    debug_state = {"debug": False}  # set by the root option, read by the commands' error handler

    @app.callback()
    def _root(
        verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="More logging (-v info, -vv debug)."),
        version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
        debug: bool = typer.Option(False, "--debug", help="Show the Python traceback of an error."),
    ) -> None:
        from tgs.cli.console import setup_logging

        setup_logging(verbose)
        debug_state["debug"] = debug

    for name in COMMAND_MODULES:
        importlib.import_module(name).register(app)
    _friendly_everywhere(app, lambda: debug_state["debug"])
    return app


def _friendly_everywhere(app: typer.Typer, debug: Callable[[], bool]) -> None:
    """Every command, in every group, reports errors as one message (``--debug``: the traceback)."""
    from tgs.cli.console import friendly_errors

    for command in app.registered_commands:
        if command.callback is not None:
            command.callback = friendly_errors(command.callback, debug)
    for group in app.registered_groups:
        if group.typer_instance is not None:
            _friendly_everywhere(group.typer_instance, debug)


def main() -> None:
    build_app()()  # warnings: one plain line each (tgs.cli.console.show_warning, set by the root callback)


if __name__ == "__main__":
    main()
