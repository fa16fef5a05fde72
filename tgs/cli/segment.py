"""``tgs segment VIDEO "expression" ["expression" ...]``: the whole pipeline on any video file,
for one or several expressions; also the progress and result printing ``quickstart`` shares."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.panel import Panel

from tgs.cli.common import (
    bad,
    check_choice,
    prepare_process,
    preset_from_options,
    settings_from_options,
    thinker_options_from,
    untrained_banner,
)
from tgs.cli.console import console, err_console, escape_user_text, friendly_errors, progress_bar


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


def print_segment_result(result) -> None:  # result: tgs.core.segment.SegmentVideoResult
    """Per expression the thought and what was grounded; the outputs and the main timings."""
    e = escape_user_text
    for output in result.expressions:
        thought = output.thought
        grounded = e(output.object_text) if output.object_text is not None else "(nothing: null answer)"
        lines = [
            f"[bold]object grounded:[/] {grounded}",
            f"[bold]f_object:[/] {e(thought.f_object)}   [bold]s_object:[/] {e(thought.s_object)}   "
            f"[bold]parse:[/] {thought.status.value}",
        ]
        if thought.reasoning:
            lines.append(f"[bold]reasoning:[/] {e(thought.reasoning, keep_newlines=True)}")
        boxed = sum(box is not None for box in output.boxes)
        lines.append(f"[bold]masks:[/] {e(output.masks_dir)} ({len(output.boxes)} PNG, {boxed} frames boxed)")
        title = f"{output.index + 1}: {e(output.expression)}" if len(result.expressions) > 1 else "think"
        console.print(Panel("\n".join(lines), title=title, title_align="left", expand=False), highlight=False)
    # Plain lines, not a table: paths stay whole, so they can be copied.
    console.print(f"overlay video: {e(result.overlay_video)}", highlight=False, soft_wrap=True)
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
    expressions: list[str] = typer.Argument(
        ...,
        help='One or more referring expressions, e.g. "the dog barking" "the man speaking" (one colour each).',
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
    """Segment what each expression refers to in any video: overlay video, PNG masks per expression, result.json."""
    from tgs.core.segment import segment_video
    from tgs.think.registry import THINKER_NAMES

    check_choice(thinker, THINKER_NAMES, "--thinker")
    if not expressions or any(not text.strip() for text in expressions):
        raise bad('expected referring expressions, e.g. "the dog barking"', "EXPRESSIONS")
    settings = settings_from_options(models, device, dtype, thinker=model, gdino=gdino, sam2=sam2)
    chosen = preset_from_options(preset, set_)
    if settings.untrained:
        err_console.print(untrained_banner())
    options = thinker_options_from(thinker_opt)
    prepare_process(device)
    with fraction_progress("segment") as progress:
        result = segment_video(
            video,
            expressions,
            thinker=thinker,
            preset=chosen,
            settings=settings,
            out=out,
            fps=fps,
            thinker_options=options,
            chunk_seconds=chunk_seconds,
            progress=progress,
        )
    print_segment_result(result)
    if result.untrained:
        err_console.print(untrained_banner())


def register(app: typer.Typer) -> None:
    app.command("segment")(segment_command)
