"""``tgs models``: which models a configuration needs, where they are looked for, and tools for weights."""

from __future__ import annotations

import importlib

import typer
from rich.table import Table

from tgs.cli.console import console, escape_user_text
from tgs.models.registry import MODEL_SPECS, check_models

models_app = typer.Typer(help="List, check and convert model weights.", no_args_is_help=True)

# Modules adding more commands to ``tgs models`` through their own ``register(models_app)``.
EXTRA_COMMAND_MODULES: tuple[str, ...] = ("tgs.cli.models_convert", "tgs.cli.models_export", "tgs.cli.models_fetch")


@models_app.command("list")
def list_models(
    models: str = typer.Option("real", "--models", help="Model set: real weights or the untrained tiny set."),
    source: list[str] = typer.Option(
        [], "--source", help="Override a source as KEY=PATH_OR_HUB_ID (repeatable)."
    ),
    preset: str | None = typer.Option(
        None, "--preset", help="Only the models Ground + Segment needs under this preset (paper, best)."
    ),
    set_: list[str] = typer.Option(
        [], "--set", help="Preset switch override KEY=VALUE, as for ground-segment (e.g. segment_mode=image)."
    ),
) -> None:
    """Show every model role (or those a preset needs), where it is looked for, and whether it is present."""
    overrides: dict[str, str] = {}
    for item in source:
        key, sep, value = item.partition("=")
        if not sep or key not in MODEL_SPECS:
            raise typer.BadParameter(f"expected KEY=SOURCE with KEY in {sorted(MODEL_SPECS)}, got {item!r}")
        overrides[key] = value
    keys = list(MODEL_SPECS) if preset is None else list(_preset_model_keys(preset, set_))
    statuses = check_models([(k, overrides.get(k)) for k in keys], models)  # type: ignore[arg-type]
    title = f"models ({models})" + (f" needed by preset {preset}" if preset is not None else "")
    table = Table(title=title)
    for col in ("role", "source", "present", "looked for at"):
        table.add_column(col, overflow="fold")
    for status in statuses:
        table.add_row(
            status.key,
            escape_user_text(status.source or "-"),
            "[green]yes[/]" if status.present else "[red]no[/]",
            escape_user_text(status.location),
        )
    console.print(table)
    for status in statuses:
        if not status.present:
            console.print(f"{status.key}: get it: {escape_user_text(status.how_to_get)}", highlight=False, soft_wrap=True)
    if not all(s.present for s in statuses):
        raise typer.Exit(1)


def _preset_model_keys(name: str, sets: list[str]) -> tuple[str, ...]:
    from tgs.presets import get_preset, parse_overrides

    try:
        return get_preset(name, parse_overrides(sets)).model_keys()
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--preset/--set") from exc


def register(app: typer.Typer) -> None:
    for name in EXTRA_COMMAND_MODULES:
        importlib.import_module(name).register(models_app)
    app.add_typer(models_app, name="models")
