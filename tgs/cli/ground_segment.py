"""``tgs ground-segment``: ground and segment every sample of a benchmark from thoughts (or the expressions)."""

from __future__ import annotations

from pathlib import Path

import typer

from tgs.cli.common import (
    COMPILE_OPTION,
    bad,
    models_option,
    prepare_process,
    preset_from_options,
    preset_names,
    settings_from_options,
)
from tgs.cli.console import console, escape_user_text, friendly_errors, print_run_summary, progress_bar
from tgs.cli.executor_options import (
    EXECUTOR_OPTION,
    RAY_ADDRESS_OPTION,
    RESOURCES_OPTION,
    WORKERS_OPTION,
    executor_from_options,
)

PROTOCOL_CHOICES = {"tgs": ("tgs",), "refavs": ("refavs",), "both": ("tgs", "refavs")}
BENCHMARK_META = {"refavs": "metadata.csv", "r2avs": "R2AVSBench_metadata.csv"}


@friendly_errors
def ground_segment_command(
    data: Path = typer.Option(..., "--data", help="Benchmark root (media/, gt_mask/)."),
    meta: Path | None = typer.Option(
        None, "--meta", help="Metadata CSV (default: ROOT/metadata.csv, or ROOT/R2AVSBench_metadata.csv for r2avs)."
    ),
    split: list[str] | None = typer.Option(None, "--split", help="Split to run (repeatable; default: every row)."),
    thoughts: Path | None = typer.Option(
        None, "--thoughts", help="Thinker outputs: our thoughts.jsonl, the original inference_results.jsonl, "
        "or a `tgs think` run directory."
    ),
    direct: bool = typer.Option(False, "--direct", help="Ground the raw expressions (the paper's baseline)."),
    preset: str = typer.Option(
        "best",
        "--preset",
        help=f"{preset_names()}: paper (original scripts, quirks included), best, sam3 (SAM 3 as Ground + Segment).",
    ),
    set_: list[str] = typer.Option(
        [], "--set", help="Override a preset switch, KEY=VALUE (repeatable), e.g. --set box_rule=best."
    ),
    out: Path = typer.Option(..., "--out", help="Run directory; rerunning the same command resumes it."),
    models: str = models_option(),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N."),
    dtype: str | None = typer.Option(
        None, "--dtype", help="auto, fp32, bf16, fp16 (default: fp32 under --preset paper, else auto)."
    ),
    gdino: str | None = typer.Option(None, "--gdino", help="Grounding DINO hub id or local directory."),
    compile: bool = COMPILE_OPTION,
    sam2: str | None = typer.Option(None, "--sam2", help="SAM2.1 hub id or local directory."),
    frame_batch_size: int = typer.Option(1, "--frame-batch-size", min=1, help="Frames per model forward."),
    limit: int | None = typer.Option(None, "--limit", min=0, help="Process at most N new samples, then stop."),
    no_eval: bool = typer.Option(False, "--no-eval", help="Do not write metrics.json."),
    protocol: str = typer.Option("tgs", "--protocol", help="Metrics protocol: tgs, refavs or both."),
    benchmark: str = typer.Option("refavs", "--benchmark", help="refavs (Ref-AVSBench) or r2avs (R^2-AVSBench)."),
    executor: str = EXECUTOR_OPTION,
    ray_address: str | None = RAY_ADDRESS_OPTION,
    workers: int | None = WORKERS_OPTION,
    resources_per_worker: str | None = RESOURCES_OPTION,
) -> None:
    """Ground + Segment every sample; writes masks, boxes, samples.jsonl and metrics.json under --out."""
    from tgs.runners.ground_segment import GroundSegmentConfig, run_ground_segment

    if (thoughts is None) == (not direct):
        raise bad("give exactly one of --thoughts FILE or --direct", "--thoughts/--direct")
    if protocol not in PROTOCOL_CHOICES:
        raise bad(f"expected one of {', '.join(PROTOCOL_CHOICES)}, got {protocol!r}", "--protocol")
    if benchmark not in BENCHMARK_META:
        raise bad(f"expected one of {', '.join(BENCHMARK_META)}, got {benchmark!r}", "--benchmark")
    settings = settings_from_options(models, device, dtype, gdino=gdino, sam2=sam2, compile=compile)
    config = GroundSegmentConfig(
        data=data,
        meta=meta if meta is not None else data / BENCHMARK_META[benchmark],
        out=out,
        preset=preset_from_options(preset, set_),
        thoughts=thoughts,
        direct=direct,
        splits=tuple(split) if split else None,
        benchmark=benchmark,
        settings=settings,
        frame_batch_size=frame_batch_size,
        limit=limit,
        evaluate=not no_eval,
        protocols=PROTOCOL_CHOICES[protocol],
    )
    prepare_process(device)
    with executor_from_options(executor, ray_address, workers, resources_per_worker, device) as runner:
        outcome = run_ground_segment(
            config, progress=lambda total: progress_bar("ground-segment", total), executor=runner
        )
    _print_summary(outcome)
    if outcome.metrics is not None:
        from tgs.eval.table import metrics_tables

        for table in metrics_tables(outcome.metrics):
            console.print(table)
        console.print(f"metrics: {escape_user_text(outcome.metrics_path)}", highlight=False)


def _print_summary(outcome) -> None:
    print_run_summary("ground-segment", outcome.run_dir, outcome.summary, "samples.jsonl")
    for note in outcome.notes:
        console.print(escape_user_text(note, keep_newlines=True), highlight=False)


def register(app: typer.Typer) -> None:
    app.command("ground-segment")(ground_segment_command)
