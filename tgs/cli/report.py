"""``tgs report``: a self-contained HTML page of a run (metrics, plots, best/worst samples, failures)."""

from __future__ import annotations

from pathlib import Path

import typer

from tgs.cli.console import console, escape_user_text, friendly_errors


@friendly_errors
def report_command(
    run: Path = typer.Argument(..., help="Run directory (holds manifest.json)."),
    data: Path | None = typer.Option(
        None, "--data", help="Benchmark root for the frames and ground truth (default: the root in the manifest)."
    ),
    meta: Path | None = typer.Option(None, "--meta", help="Metadata CSV (default: the benchmark's CSV in the root)."),
    out: Path | None = typer.Option(None, "--out", help="Where to write the page (default: RUN/report.html)."),
    top_k: int = typer.Option(5, "--top-k", min=0, help="How many best and worst samples to show."),
    compare: list[Path] = typer.Option(
        [], "--compare", help="Another run to compare with, e.g. the same run grounding f_object (repeatable)."
    ),
    protocol: str | None = typer.Option(
        None, "--protocol", help="Metrics protocol that ranks samples and feeds the plots (default: tgs if present)."
    ),
    max_frames: int = typer.Option(10, "--max-frames", min=1, help="Frames per overlay strip."),
) -> None:
    """Write RUN/report.html: metrics per split and protocol, plots, best/worst samples with overlays."""
    from tgs.report import build_report

    path = build_report(run, out, data, meta, top_k, compare=compare, protocol=protocol, max_frames=max_frames)
    console.print(f"report: {escape_user_text(path)}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("report")(report_command)
