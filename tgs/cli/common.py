"""Helpers the commands share: usage errors, presets, thinker options, the one Settings, the process set-up."""

from __future__ import annotations

import json
import os
from typing import Any

import typer
from rich.panel import Panel

__all__ = [
    "COMPILE_OPTION",
    "MODEL_SETS",
    "bad",
    "check_choice",
    "check_model_set",
    "models_option",
    "prepare_process",
    "preset_from_options",
    "preset_names",
    "ray_worker_setup",
    "settings_from_options",
    "thinker_options_from",
    "untrained_banner",
]

MODEL_SETS = ("real", "tiny")

COMPILE_OPTION = typer.Option(
    False,
    "--compile",
    help="torch.compile Ground + Segment's heavy modules and give Ref-Thinker a static KV cache with a compiled "
    "decode step (for GPUs; the first batches pay the compilation).",
)


def bad(message: str, param: str) -> typer.BadParameter:
    return typer.BadParameter(message, param_hint=param)


def check_choice(value: str, choices: tuple[str, ...], param: str) -> str:
    if value not in choices:
        raise bad(f"expected one of {', '.join(choices)}, got {value!r}", param)
    return value


def check_model_set(value: str) -> str:
    """The one check of ``--models`` (real or tiny): every command's ``--models`` option runs it
    as the command line is parsed, so a bad set is refused before anything runs or loads."""
    return check_choice(value, MODEL_SETS, "--models")


def models_option(help: str = "real weights, or the untrained tiny set (install check).") -> Any:
    """The ``--models`` option of every command that takes one (checked by :func:`check_model_set`)."""
    return typer.Option("real", "--models", help=help, callback=check_model_set)


def preset_names() -> str:
    """``paper|best|sam3``: every preset by name, for an option's help (read from ``tgs.presets.PRESETS``,
    so a new preset shows up in every command's help)."""
    from tgs.presets import PRESETS

    return "|".join(PRESETS)


def preset_from_options(name: str, sets: list[str]):  # -> Preset
    """The named preset with ``--set KEY=VALUE`` overrides applied."""
    from tgs.presets import PRESETS, get_preset, parse_overrides

    if name not in PRESETS:
        raise bad(f"expected one of {', '.join(PRESETS)}, got {name!r}", "--preset")
    try:
        return get_preset(name, parse_overrides(sets))
    except ValueError as exc:
        raise bad(str(exc), "--set") from exc


def thinker_options_from(items: list[str]) -> dict[str, Any]:
    """``["max_frames=8", "base_url=http://..."]`` -> options.

    Values are read as JSON when they parse (``8``, ``true``, ``null``), else kept as text.
    """
    from tgs.presets import parse_overrides

    try:
        raw = parse_overrides(items)
    except ValueError as exc:
        raise bad(str(exc), "--thinker-opt") from exc
    options: dict[str, Any] = {}
    for key, text in raw.items():
        try:
            options[key] = json.loads(text)
        except json.JSONDecodeError:
            options[key] = text
    return options


def settings_from_options(
    models: str,
    device: str,
    dtype: str | None,
    *,
    thinker: str | None = None,
    gdino: str | None = None,
    sam2: str | None = None,
    compile: bool = False,
):  # -> tgs.core.settings.Settings
    """The one Settings object of a command: ``--models``, ``--device``, ``--dtype``, ``--compile``
    and the sources."""
    from tgs.core.settings import Settings

    check_model_set(models)
    try:
        return Settings.from_options(
            models=models, device=device, dtype=dtype, compile=compile, thinker=thinker, grounding_dino=gdino, sam2=sam2
        )
    except ValueError as exc:
        raise bad(str(exc), "--models/--model/--gdino/--sam2/--dtype") from exc


def prepare_process(device: str) -> None:
    """Process-wide settings of a command that runs models: on a CPU, keep freed memory
    (``tgs.cpu_memory``). Set here, at the entry point, never by a library call."""
    from tgs.cpu_memory import keep_freed_memory
    from tgs.devices import resolve_device

    try:
        resolved = resolve_device(device)
    except ValueError:  # the command reports a bad device itself, where the stages load
        return
    keep_freed_memory(resolved)


WORKER_DEVICE_ENV = "TGS_WORKER_DEVICE"
"""The device a command's Ray workers run on, for :func:`ray_worker_setup`."""


def ray_worker_setup() -> None:
    """Run by Ray in every worker process of a ``tgs`` command (``worker_process_setup_hook``):
    the same process-wide settings as the command's own process."""
    prepare_process(os.environ.get(WORKER_DEVICE_ENV, "auto"))


def untrained_banner() -> Panel:
    """The unmissable notice printed whenever the tiny model set runs."""
    from tgs.core.settings import UNTRAINED_LABEL

    return Panel(f"[bold]{UNTRAINED_LABEL}[/]", style="bold yellow", expand=False)
