"""``tgs models``: which models a configuration needs, where they are looked for, and tools for weights."""

from __future__ import annotations

import importlib

import typer
from rich.table import Table

from tgs.cli.console import console
from tgs.models.registry import MODEL_SPECS, check_models

models_app = typer.Typer(help="List, check and convert model weights.", no_args_is_help=True)

# Modules adding more commands to ``tgs models`` through their own ``register(models_app)``.
EXTRA_COMMAND_MODULES: tuple[str, ...] = ()


@models_app.command("list")
def list_models(
    models: str = typer.Option("real", "--models", help="Model set: real weights or the untrained tiny set."),
    source: list[str] = typer.Option(
        [], "--source", help="Override a source as KEY=PATH_OR_HUB_ID (repeatable)."
    ),
) -> None:
    """Show every model role, where it is looked for, and whether it is present."""
    overrides: dict[str, str] = {}
    for item in source:
        key, sep, value = item.partition("=")
        if not sep or key not in MODEL_SPECS:
            raise typer.BadParameter(f"expected KEY=SOURCE with KEY in {sorted(MODEL_SPECS)}, got {item!r}")
        overrides[key] = value
    statuses = check_models([(k, overrides.get(k)) for k in MODEL_SPECS], models)  # type: ignore[arg-type]
    table = Table(title=f"models ({models})")
    for col in ("role", "source", "looked for at", "present"):
        table.add_column(col)
    for status in statuses:
        table.add_row(
            status.key,
            status.source or "-",
            status.location,
            "[green]yes[/]" if status.present else f"[red]no[/] - {status.how_to_get}",
        )
    console.print(table)
    if not all(s.present for s in statuses):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    for name in EXTRA_COMMAND_MODULES:
        importlib.import_module(name).register(models_app)
    app.add_typer(models_app, name="models")
