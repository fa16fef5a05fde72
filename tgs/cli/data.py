"""``tgs data``: inspect, check and synthesise benchmarks."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import typer
from rich.table import Table

from tgs.cli.console import console, friendly_errors, progress_bar
from tgs.cli.console import escape_user_text as escape

logger = logging.getLogger(__name__)

data_app = typer.Typer(help="Inspect, check and synthesise Ref-AVS style benchmarks.", no_args_is_help=True)

_BENCH_HELP = "Benchmark name used in reports (refavs or r2avs)."


def _open_bench(root: Path, meta: Path | None, split: list[str], name: str):
    from tgs.data.benchmark import Benchmark

    default = "R2AVSBench_metadata.csv" if name == "r2avs" else "metadata.csv"
    return Benchmark(root, meta if meta is not None else root / default, split or None, name=name)


@data_app.command("info")
@friendly_errors
def info(
    root: Path = typer.Argument(..., help="Benchmark root (holds media/, media_cross/, gt_mask/)."),
    meta: Path | None = typer.Option(None, "--meta", help="Metadata CSV [default: ROOT/metadata.csv]."),
    split: list[str] = typer.Option([], "--split", help="Only these splits (repeatable)."),
    name: str = typer.Option("refavs", "--bench", help=_BENCH_HELP),
) -> None:
    """Rows per split of a metadata CSV (reads only the CSV)."""
    bench = _open_bench(root, meta, split, name)
    table = Table(title=f"{escape(bench.name)}: {escape(bench.meta_path)}")
    table.add_column("split")
    table.add_column("rows", justify="right")
    table.add_column("null rows", justify="right")
    nulls: dict[str, int] = {}
    for sample in bench:
        if sample.is_null:
            nulls[sample.split] = nulls.get(sample.split, 0) + 1
    for s, n in bench.count_by_split().items():
        table.add_row(escape(s), str(n), str(nulls.get(s, 0)))
    table.add_row("[bold]all[/]", f"[bold]{len(bench)}[/]", f"[bold]{sum(nulls.values())}[/]")
    console.print(table)
    dups = bench.duplicate_uids()
    if dups:
        console.print(f"[yellow]{len(dups)} uid(s) appear on more than one row[/], e.g. {escape(dups[0])}")


@data_app.command("check")
@friendly_errors
def check(
    root: Path = typer.Argument(..., help="Benchmark root (holds media/, media_cross/, gt_mask/)."),
    meta: Path | None = typer.Option(None, "--meta", help="Metadata CSV [default: ROOT/metadata.csv]."),
    split: list[str] = typer.Option([], "--split", help="Only rows of these splits (repeatable)."),
    decode: bool = typer.Option(False, "--decode", help="Decode every file fully (slow) instead of header checks."),
    workers: int = typer.Option(0, "--workers", help="Threads for file checks [default: min(8, CPUs)]."),
    show: int = typer.Option(30, "--show", help="List at most this many problems (0: all)."),
    name: str = typer.Option("refavs", "--bench", help=_BENCH_HELP),
    null_audio: str = typer.Option(
        "media_cross", "--null-audio", help="Folder of null rows' audio: media_cross (TGS-Agent) or media (Ref-AVS)."
    ),
) -> None:
    """List missing or corrupt frames, audio and masks; exit 1 if there is any."""
    from tgs.data.benchmark import Benchmark
    from tgs.data.check import KINDS, check_benchmark, count_files

    default = "R2AVSBench_metadata.csv" if name == "r2avs" else "metadata.csv"
    bench = Benchmark(root, meta or root / default, split or None, name=name, null_audio_dir=null_audio)
    start = time.perf_counter()
    with progress_bar("checking files", count_files(bench)) as advance:
        count_tokens, counted_by = grounding_token_counter()
        report = check_benchmark(
            bench, decode=decode, workers=workers or None, progress=advance, count_tokens=count_tokens
        )
    seconds = time.perf_counter() - start

    counts = report.counts()
    summary = Table(title=f"{escape(bench.name)}: {len(bench)} rows, {'full decode' if decode else 'quick check'}")
    for col in ("kind", "files checked", "missing", "corrupt", "empty", "size mismatch"):
        summary.add_column(col, justify="left" if col == "kind" else "right")
    for kind in KINDS:
        c = counts[kind]
        cells = [str(c.get(issue, 0)) for issue in ("missing", "corrupt", "empty", "size")]
        cells = [f"[red]{v}[/]" if v != "0" else v for v in cells]
        summary.add_row(kind, str(report.checked[kind]), *cells)
    console.print(summary)
    if report.warnings:
        console.print(
            f"[yellow]{len(report.warnings)} warning(s)[/] (tokens counted with {escape(counted_by)}):",
            highlight=False,
        )
        for w in report.warnings[: show if show > 0 else None]:
            console.print(
                f"  [yellow]{w.kind}[/] {escape(w.issue)}: {escape(str(w.path))}\n      {escape(w.detail)} "
                f"[dim](row {escape(w.uids[0])})[/]",
                highlight=False, soft_wrap=True,
            )
    if report.ok:
        console.print(f"[green]all files present and valid[/] ({seconds:.1f} s)")
        return
    listed = report.problems if show <= 0 else report.problems[:show]
    # One problem per line, paths unbroken so they can be copied; a table would fold them.
    console.print(f"[bold red]{len(report.problems)} problem(s)[/], {len(report.bad_uids())} row(s) affected:")
    for p in listed:
        rows = p.uids[0] + (f" (+{len(p.uids) - 1} more)" if len(p.uids) > 1 else "")
        console.print(
            f"  [red]{p.kind}[/] {escape(p.issue)}: {escape(str(p.path))}\n      {escape(p.detail)} "
            f"[dim](row {escape(rows)})[/]",
            highlight=False, soft_wrap=True, markup=True,
        )
    if len(listed) < len(report.problems):
        console.print(f"... {len(report.problems) - len(listed)} more (use --show 0 to list all)")
    raise typer.Exit(1)


@data_app.command("synth")
@friendly_errors
def synth(
    out: Path = typer.Argument(..., help="Output folder of the synthetic benchmark."),
    videos: int = typer.Option(6, "--videos", min=1, help="Number of videos."),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed gives identical files."),
    size: str = typer.Option("320x180", "--size", help="Frame size WIDTHxHEIGHT (each side >= 32)."),
    force: bool = typer.Option(
        False, "--force", help="Write into a non-empty folder, replacing a previous synthetic benchmark there."
    ),
) -> None:
    """Write a synthetic benchmark in the Ref-AVSBench layout (metadata.csv, media/, gt_mask/...)."""
    from tgs.data.benchmark import Benchmark
    from tgs.data.synth import check_size, generate, parse_size

    try:
        width, height = check_size(parse_size(size))
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--size") from None
    start = time.perf_counter()
    meta = generate(out, videos, seed, (width, height), force=force)
    seconds = time.perf_counter() - start
    counts = Benchmark(out, meta).count_by_split()
    parts = ", ".join(f"{k} {v}" for k, v in counts.items())
    console.print(
        f"wrote {sum(counts.values())} rows ({escape(parts)}) for {videos} videos to {escape(out)} in {seconds:.1f} s",
        highlight=False,
    )
    console.print(f"metadata: {escape(meta)}", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")


def grounding_token_counter() -> tuple[Callable[[str], int], str]:
    """(token counter, what it is): the default Grounding DINO's tokenizer when its weights are
    on this machine (never downloaded for a check), else :func:`estimate_caption_tokens`."""
    from tgs.data.check import estimate_caption_tokens
    from tgs.errors import TGSError
    from tgs.models.registry import check_models

    try:
        status = check_models([("grounding_dino", None)])[0]
        if status.present and not status.location.startswith("hub:"):
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(status.location)
            return (lambda text: len(tokenizer(text)["input_ids"])), f"the tokenizer of {status.source}"
    except (TGSError, OSError, ValueError) as exc:
        logger.info("no Grounding DINO tokenizer to count caption tokens (%s); estimating", exc)
    return estimate_caption_tokens, "an estimate (a lower bound; the Grounding DINO weights are not here)"
