"""``tgs models``: which models a configuration needs, where they are looked for, and tools for weights."""

from __future__ import annotations

import importlib

import typer
from rich.table import Table

from tgs.cli.common import (
    check_choice,
    models_option,
    preset_from_options,
    preset_names,
    settings_from_options,
)
from tgs.cli.console import console, escape_user_text
from tgs.models import TINY
from tgs.models.registry import MODEL_SPECS, check_models

models_app = typer.Typer(help="List, check and convert model weights.", no_args_is_help=True)

# Modules adding more commands to ``tgs models`` through their own ``register(models_app)``.
EXTRA_COMMAND_MODULES: tuple[str, ...] = ("tgs.cli.models_convert", "tgs.cli.models_export", "tgs.cli.models_fetch")


@models_app.command("list")
def list_models(
    models: str = models_option("Model set: real weights or the untrained tiny set."),
    source: list[str] = typer.Option(
        [], "--source", help="Override a source as KEY=PATH_OR_HUB_ID (repeatable)."
    ),
    preset: str | None = typer.Option(
        None, "--preset", help=f"Only the models a call under this preset loads ({preset_names()}); see --mode."
    ),
    set_: list[str] = typer.Option(
        [], "--set", help="Preset switch override KEY=VALUE, as for ground-segment (e.g. segment_mode=image)."
    ),
    mode: str = typer.Option(
        "benchmark", "--mode",
        help="With --preset: benchmark (tgs run / ground-segment), sampled (tgs segment --fps) or dense "
        "(tgs segment, the demo).",
    ),
    thinker: str | None = typer.Option(None, "--thinker", help="With --preset: add this thinker's weights."),
    device: str = typer.Option("auto", "--device", help="With --preset: the device (dense picks its model by it)."),
) -> None:
    """Show every model role (or those a call under a preset loads), where it is looked for, and whether it is present."""
    from tgs.core.load_spec import MODES

    overrides: dict[str, str] = {}
    for item in source:
        key, sep, value = item.partition("=")
        if not sep or key not in MODEL_SPECS:
            raise typer.BadParameter(f"expected KEY=SOURCE with KEY in {sorted(MODEL_SPECS)}, got {item!r}")
        overrides[key] = value
    check_choice(mode, MODES, "--mode")
    if models == TINY and overrides:
        raise typer.BadParameter("the tiny set uses its own random models; drop --source or --models tiny",
                                 param_hint="--source")
    if preset is None:
        statuses = check_models([(k, TINY if models == TINY else overrides.get(k)) for k in MODEL_SPECS])
    else:
        statuses = _call_spec(preset, set_, mode, thinker, models, device).check(overrides)
    title = f"models ({models})" + (f" a {mode} call under preset {preset} loads" if preset is not None else "")
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


def _call_spec(preset: str, sets: list[str], mode: str, thinker: str | None, models: str, device: str):  # -> LoadSpec
    """The load spec of a call (the one answer to which models it loads)."""
    from tgs.core.load_spec import load_spec

    chosen = preset_from_options(preset, sets)
    try:
        return load_spec(chosen, settings_from_options(models, device, None), mode, thinker=thinker)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--thinker") from exc


def register(app: typer.Typer) -> None:
    for name in EXTRA_COMMAND_MODULES:
        importlib.import_module(name).register(models_app)
    app.add_typer(models_app, name="models")
