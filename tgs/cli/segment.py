"""``tgs segment VIDEO "expression"``: the whole pipeline on any video file; also the helpers
the ``run`` and ``quickstart`` commands share (preset and thinker options, the untrained banner)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.panel import Panel

from tgs.cli.console import console, err_console, escape_user_text, friendly_errors, progress_bar

MODEL_SETS = ("real", "tiny")


def bad(message: str, param: str) -> typer.BadParameter:
    return typer.BadParameter(message, param_hint=param)


def preset_from_options(name: str, sets: list[str], dtype: str | None = None):  # -> Preset
    """The named preset with ``--set KEY=VALUE`` overrides (and ``--dtype``) applied."""
    from tgs.presets import PRESETS, get_preset, parse_overrides

    if name not in PRESETS:
        raise bad(f"expected one of {', '.join(PRESETS)}, got {name!r}", "--preset")
    try:
        overrides = parse_overrides(sets)
        if dtype is not None:
            overrides["dtype"] = dtype
        return get_preset(name, overrides)
    except ValueError as exc:
        raise bad(str(exc), "--set/--dtype") from exc


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


def check_choice(value: str, choices: tuple[str, ...], param: str) -> str:
    if value not in choices:
        raise bad(f"expected one of {', '.join(choices)}, got {value!r}", param)
    return value


def untrained_banner() -> Panel:
    """The unmissable notice printed whenever the tiny model set runs."""
    from tgs.segment_video import UNTRAINED_LABEL

    return Panel(f"[bold]{UNTRAINED_LABEL}[/]", style="bold yellow", expand=False)


@contextmanager
def fraction_progress(description: str) -> Iterator[Callable[..., None]]:
    """A progress bar driven by ``progress(fraction, desc=...)`` calls (the segment_video callback)."""
    steps = 1000
    with progress_bar(description, total=steps) as advance:
        done = 0

        def update(fraction: float, desc: str = "") -> None:
            nonlocal done
            target = round(fraction * steps)
            if target > done:
                advance(target - done)
                done = target

        yield update


def print_segment_result(result) -> None:  # result: tgs.segment_video.SegmentVideoResult
    """The thought, the outputs and the main timings of one segment_video call."""
    thought = result.thought
    e = escape_user_text
    grounded = e(result.object_text) if result.object_text is not None else "(nothing: null answer)"
    lines = [
        f"[bold]object grounded:[/] {grounded}",
        f"[bold]f_object:[/] {e(thought.f_object)}   [bold]s_object:[/] {e(thought.s_object)}   "
        f"[bold]parse:[/] {thought.status.value}",
    ]
    if thought.reasoning:
        lines.append(f"[bold]reasoning:[/] {e(thought.reasoning, keep_newlines=True)}")
    console.print(Panel("\n".join(lines), title="think", title_align="left", expand=False), highlight=False)
    boxed = sum(box is not None for box in result.boxes)
    # Plain lines, not a table: paths stay whole, so they can be copied.
    console.print(f"overlay video: {e(result.overlay_video)}", highlight=False, soft_wrap=True)
    console.print(
        f"masks: {e(result.masks_dir)} ({result.num_frames} PNG, {boxed} frames boxed)",
        highlight=False,
        soft_wrap=True,
    )
    console.print(f"result: {e(result.result_json)}", highlight=False, soft_wrap=True)
    shown = ("think", "ground", "segment", "encode", "total")
    console.print(
        "timings (s): " + ", ".join(f"{k} {result.timings[k]:.2f}" for k in shown if k in result.timings),
        highlight=False,
    )
    for message in result.warnings:
        err_console.print(f"[bold yellow]warning[/]: {e(message, keep_newlines=True)}", highlight=False)


@friendly_errors
def segment_command(
    video: Path = typer.Argument(..., help="Video file: mp4, mkv, webm, avi, ... (any size, fps, length)."),
    expression: str = typer.Argument(
        ..., help='Referring expression, e.g. "the object making the loudest sound".'
    ),
    thinker: str = typer.Option(
        "ref-thinker", "--thinker", help="ref-thinker, omni, api or direct (no reasoning)."
    ),
    model: str | None = typer.Option(
        None,
        "--model",
        help="Thinker weights: a converted Ref-Thinker directory, or an Omni hub id / directory.",
    ),
    thinker_opt: list[str] = typer.Option(
        [],
        "--thinker-opt",
        help="Thinker option KEY=VALUE (repeatable), e.g. base_url=http://localhost:8000/v1.",
    ),
    preset: str = typer.Option(
        "best", "--preset", help="best (fixes + propagation) or paper (original scripts)."
    ),
    set_: list[str] = typer.Option([], "--set", help="Override a preset switch, KEY=VALUE (repeatable)."),
    out: Path | None = typer.Option(None, "--out", help="Output folder (default ./segment_<video name>)."),
    models: str = typer.Option(
        "real", "--models", help="real weights, or the untrained tiny set (install check)."
    ),
    fps: float = typer.Option(
        1.0, "--fps", min=1e-6, help="Frames sampled per second of video (1 = Ref-AVS)."
    ),
    chunk_seconds: float = typer.Option(
        10.0,
        "--chunk-seconds",
        min=1e-6,
        help="Ground + Segment window in seconds (memory is bounded by it).",
    ),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when present), cpu, cuda, cuda:N."),
    dtype: str | None = typer.Option(
        None, "--dtype", help="auto, fp32, bf16, fp16 for every model (default: the preset's)."
    ),
    gdino: str | None = typer.Option(None, "--gdino", help="Grounding DINO hub id or local directory."),
    sam2: str | None = typer.Option(None, "--sam2", help="SAM2.1 hub id or local directory."),
) -> None:
    """Segment the object an expression refers to in any video: overlay video, PNG masks, result.json."""
    from tgs.segment_video import segment_video
    from tgs.think.registry import THINKER_NAMES

    check_choice(models, MODEL_SETS, "--models")
    check_choice(thinker, THINKER_NAMES, "--thinker")
    if not expression.strip():
        raise bad('expected a referring expression, e.g. "the dog barking"', "EXPRESSION")
    sources = {
        k: v for k, v in (("thinker", model), ("grounding_dino", gdino), ("sam2", sam2)) if v is not None
    }
    chosen = preset_from_options(preset, set_, dtype)
    if models == "tiny":
        err_console.print(untrained_banner())
    options = thinker_options_from(thinker_opt)
    with fraction_progress("segment") as progress:
        result = segment_video(
            video,
            expression,
            thinker=thinker,
            preset=chosen,
            models=models,
            out=out,
            fps=fps,
            thinker_options=options,
            sources=sources,
            device=device,
            dtype=dtype,
            chunk_seconds=chunk_seconds,
            progress=progress,
        )
    print_segment_result(result)
    if result.untrained:
        err_console.print(untrained_banner())


def register(app: typer.Typer) -> None:
    app.command("segment")(segment_command)
