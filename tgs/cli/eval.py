"""``tgs eval``: J, F and S of a predictions folder or run directory, under named protocols."""

from __future__ import annotations

from pathlib import Path

import typer

from tgs.cli.console import console, escape_user_text, friendly_errors, progress_bar

PROTOCOL_CHOICES = {"tgs": ("tgs",), "refavs": ("refavs",), "both": ("tgs", "refavs")}
BENCHMARK_CHOICES = ("refavs", "r2avs")


@friendly_errors
def eval_command(
    data: Path = typer.Option(..., "--data", help="Benchmark root holding gt_mask/ (and media/)."),
    pred: Path = typer.Option(..., "--pred", help="Predictions folder (<uid>/00000.png ...) or tgs run directory."),
    meta: Path | None = typer.Option(
        None, "--meta", help="Metadata CSV (default: ROOT/metadata.csv, or ROOT/R2AVSBench_metadata.csv for r2avs)."
    ),
    split: list[str] | None = typer.Option(
        None, "--split", help="Split to score (repeatable; default: test_s, test_u, test_n present in the CSV)."
    ),
    protocol: str = typer.Option("tgs", "--protocol", help="tgs (TGS-Agent scripts), refavs (official), or both."),
    out: Path | None = typer.Option(
        None, "--out", help="Where to write metrics.json (default: PRED/metrics.json); per-sample JSONL beside it."
    ),
    benchmark: str = typer.Option("refavs", "--benchmark", help="refavs (Ref-AVSBench) or r2avs (R^2-AVSBench)."),
    refavs_input: str = typer.Option(
        "probs", "--refavs-input", help="refavs protocol input: probs (probability maps when present) or mask."
    ),
    missing: str = typer.Option(
        "worst", "--missing",
        help="Scoring of samples without a prediction: worst (full mask on null, empty elsewhere) or empty.",
    ),
) -> None:
    """Score predictions: J and F on regular splits, S on the null split, per protocol."""
    if protocol not in PROTOCOL_CHOICES:
        raise typer.BadParameter(f"expected one of {', '.join(PROTOCOL_CHOICES)}, got {protocol!r}",
                                 param_hint="--protocol")
    if benchmark not in BENCHMARK_CHOICES:
        raise typer.BadParameter(f"expected one of {', '.join(BENCHMARK_CHOICES)}, got {benchmark!r}",
                                 param_hint="--benchmark")
    if missing not in ("worst", "empty"):
        raise typer.BadParameter(f"expected worst or empty, got {missing!r}", param_hint="--missing")
    if refavs_input not in ("probs", "mask"):
        raise typer.BadParameter(f"expected probs or mask, got {refavs_input!r}", param_hint="--refavs-input")

    from tgs.data.benchmark import r2_avs_bench, ref_avs_bench
    from tgs.eval import RefAVSProtocol, TGSProtocol, evaluate, open_predictions, save_metrics
    from tgs.eval.evaluate import choose_splits
    from tgs.eval.table import metrics_tables

    factory = ref_avs_bench if benchmark == "refavs" else r2_avs_bench
    bench = factory(data, meta, split or None)
    source = open_predictions(pred)
    protocols = [
        TGSProtocol() if name == "tgs" else RefAVSProtocol(soft_input=refavs_input == "probs")
        for name in PROTOCOL_CHOICES[protocol]
    ]
    splits = choose_splits(bench, split or None, getattr(source, "splits", None), source.description)
    total = sum(1 for s in bench if s.split in splits)
    with progress_bar("evaluating", total=total) as advance:
        result = evaluate(bench, source, protocols, splits, progress=advance, missing=missing)
    metrics_path, samples_path = save_metrics(result, out if out is not None else Path(pred) / "metrics.json")
    for table in metrics_tables(result):
        console.print(table)
    console.print(
        f"metrics: {escape_user_text(metrics_path)}\nper-sample: {escape_user_text(samples_path)}", highlight=False
    )


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)
