"""``tgs run``: Think, Ground + Segment and evaluate a whole benchmark split in one resumable command."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from tgs.cli.common import (
    COMPILE_OPTION,
    bad,
    check_choice,
    models_option,
    prepare_process,
    preset_from_options,
    preset_names,
    settings_from_options,
    thinker_options_from,
    untrained_banner,
)
from tgs.cli.console import console, err_console, escape_user_text, friendly_errors, progress_bar
from tgs.cli.executor_options import (
    EXECUTOR_OPTION,
    RAY_ADDRESS_OPTION,
    RESOURCES_OPTION,
    WORKERS_OPTION,
    executor_from_options,
)

PROTOCOL_CHOICES = {"tgs": ("tgs",), "refavs": ("refavs",), "both": ("tgs", "refavs")}
BENCHMARK_META = {"refavs": "metadata.csv", "r2avs": "R2AVSBench_metadata.csv"}


def _stage_table(outcome) -> Table:  # outcome: tgs.runners.full_run.FullRunOutcome
    table = Table(title=f"run: {escape_user_text(outcome.run_dir)}", title_justify="left")
    for column in ("stage", "status", "samples", "done now", "already done", "failed", "left", "output"):
        table.add_column(column, justify="left" if column in ("stage", "status", "output") else "right")
    for stage in (outcome.think, outcome.ground_segment):
        summary = stage.summary
        numbers = ["-"] * 5
        if summary is not None:
            numbers = [
                str(summary.total),
                str(summary.succeeded),
                str(summary.skipped),
                f"[red]{summary.failed}[/]" if summary.failed else "0",
                str(summary.remaining),
            ]
        table.add_row(stage.name, stage.status, *numbers, "" if stage.path is None else escape_user_text(stage.path))
    return table


@friendly_errors
def run_command(
    data: Path = typer.Option(..., "--data", help="Benchmark root (media/, media_cross/, gt_mask/)."),
    meta: Path | None = typer.Option(
        None,
        "--meta",
        help="Metadata CSV (default: ROOT/metadata.csv, or ROOT/R2AVSBench_metadata.csv for r2avs).",
    ),
    split: list[str] = typer.Option(["test_s"], "--split", help="Split to run (repeatable)."),
    thinker: str = typer.Option(
        "ref-thinker", "--thinker", help="ref-thinker, omni, api or direct (no Think)."
    ),
    model: str | None = typer.Option(
        None,
        "--model",
        help="Thinker weights: a converted Ref-Thinker directory, or an Omni hub id / directory.",
    ),
    thinker_opt: list[str] = typer.Option(
        [], "--thinker-opt", help="Thinker option KEY=VALUE (repeatable), e.g. max_new_tokens=128."
    ),
    thoughts: Path | None = typer.Option(
        None,
        "--thoughts",
        help="Reuse an earlier Think: a thoughts file or a `tgs think` / `tgs run` think directory.",
    ),
    preset: str = typer.Option(
        "best",
        "--preset",
        help=f"{preset_names()}: best (fixes + propagation), paper (original scripts), sam3 (SAM 3 as Ground + "
        "Segment); docs/presets.md.",
    ),
    set_: list[str] = typer.Option([], "--set", help="Override a preset switch, KEY=VALUE (repeatable)."),
    out: Path = typer.Option(..., "--out", help="Run directory; rerunning the same command resumes it."),
    models: str = models_option(),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when present), cpu, cuda, cuda:N."),
    dtype: str | None = typer.Option(
        None, "--dtype",
        help="auto, fp32, bf16, fp16 for every model (default: Ground + Segment in fp32 under --preset paper, else auto).",
    ),
    gdino: str | None = typer.Option(None, "--gdino", help="Grounding DINO hub id or local directory."),
    compile: bool = COMPILE_OPTION,
    sam2: str | None = typer.Option(None, "--sam2", help="SAM2.1 hub id or local directory."),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Samples per Think step (8 in the paper)."),
    frame_batch_size: int = typer.Option(
        1, "--frame-batch-size", min=1, help="Frames per Ground/Segment forward."
    ),
    protocol: str = typer.Option("tgs", "--protocol", help="Metrics protocol: tgs, refavs or both."),
    benchmark: str = typer.Option(
        "refavs", "--benchmark", help="refavs (Ref-AVSBench) or r2avs (R^2-AVSBench)."
    ),
    executor: str = EXECUTOR_OPTION,
    ray_address: str | None = RAY_ADDRESS_OPTION,
    workers: int | None = WORKERS_OPTION,
    resources_per_worker: str | None = RESOURCES_OPTION,
) -> None:
    """Think + Ground + Segment + evaluate a benchmark split; resumable, and reuses an earlier Think."""
    from tgs.core.loading import check_thinker_options
    from tgs.runners.full_run import FullRunConfig, run_full
    from tgs.think.registry import THINKER_NAMES

    check_choice(thinker, THINKER_NAMES, "--thinker")
    check_choice(protocol, tuple(PROTOCOL_CHOICES), "--protocol")
    check_choice(benchmark, tuple(BENCHMARK_META), "--benchmark")
    settings = settings_from_options(models, device, dtype, thinker=model, gdino=gdino, sam2=sam2, compile=compile)
    try:
        config = FullRunConfig(
            data=data,
            meta=meta if meta is not None else data / BENCHMARK_META[benchmark],
            out=out,
            splits=tuple(split),
            thinker=thinker,
            thinker_options=thinker_options_from(thinker_opt),
            thoughts=thoughts,
            preset=preset_from_options(preset, set_),
            settings=settings,
            batch_size=batch_size,
            frame_batch_size=frame_batch_size,
            protocols=PROTOCOL_CHOICES[protocol],
            benchmark=benchmark,
        )
        if config.runs_think:
            check_thinker_options(config.thinker, config.thinker_options)
    except ValueError as exc:
        raise bad(str(exc), "--thinker/--thoughts/--model/--thinker-opt") from exc
    if settings.untrained:
        err_console.print(untrained_banner())
    prepare_process(device)
    with executor_from_options(executor, ray_address, workers, resources_per_worker, device) as runner:
        outcome = run_full(config, progress=lambda stage: lambda total: progress_bar(stage, total), executor=runner)
    console.print(_stage_table(outcome))
    failures = outcome.ground_segment.summary.failures if outcome.ground_segment.summary else []
    if failures:
        err_console.print(
            f"[yellow]{len(failures)} sample(s) failed[/]; first: {escape_user_text(failures[0].uid)}: "
            f"{escape_user_text(failures[0].error, keep_newlines=True)}",
            highlight=False,
        )
    for note in outcome.notes:
        err_console.print(f"[yellow]note[/]: {escape_user_text(note, keep_newlines=True)}", highlight=False)
    for stage, rate in outcome.throughput.items():
        if rate.get("expressions_per_s") is not None:
            console.print(f"{stage}: {rate['expressions_per_s']:.3f} expressions/s", highlight=False)
    if outcome.metrics is not None:
        from tgs.eval.table import metrics_tables

        for table in metrics_tables(outcome.metrics):
            console.print(table)
        console.print(f"metrics: {escape_user_text(outcome.metrics_path)}", highlight=False)
    if settings.untrained:
        err_console.print(untrained_banner())


def register(app: typer.Typer) -> None:
    app.command("run")(run_command)
