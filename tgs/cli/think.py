"""``tgs think``: run Ref-Thinker over a benchmark split and write thoughts.jsonl (resumable)."""

from __future__ import annotations

from pathlib import Path

import typer

from tgs.cli.console import console, escape_user_text, friendly_errors, print_run_summary, progress_bar
from tgs.cli.executor_options import (
    EXECUTOR_OPTION,
    RAY_ADDRESS_OPTION,
    RESOURCES_OPTION,
    WORKERS_OPTION,
    executor_from_options,
)


@friendly_errors
def think_command(
    data: Path = typer.Option(..., "--data", help="Benchmark root (media/, media_cross/)."),
    meta: Path = typer.Option(..., "--meta", help="Metadata CSV (vid,uid,split,fid,exp)."),
    split: list[str] = typer.Option(["test_s"], "--split", help="Split to think about (repeatable)."),
    model: str | None = typer.Option(
        None,
        "--model",
        help="Converted Ref-Thinker directory (see `tgs models convert-ref-thinker`), or a `tgs train` output "
        "folder / checkpoint (its model is exported on first use).",
    ),
    out: Path = typer.Option(..., "--out", help="Run directory; rerunning the same command resumes it."),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Samples per generate call (8 in the paper)."),
    models: str = typer.Option("real", "--models", help="real weights, or the untrained tiny set (install check)."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when present), cpu, cuda, cuda:N."),
    dtype: str = typer.Option("auto", "--dtype", help="auto (bf16 on CUDA, fp32 on CPU), bf16, fp16, fp32."),
    max_new_tokens: int = typer.Option(256, "--max-new-tokens", min=1, help="Generation length cap (256 in the paper)."),
    unmasked_batches: bool = typer.Option(
        False, "--unmasked-batches", help="Reproduce the original's batched generation without an attention mask."
    ),
    unmerged_lora: bool = typer.Option(
        False, "--unmerged-lora", help="Keep the LoRA adapter separate, as the original runs it (default: merged at load)."
    ),
    prompt: str = typer.Option("inference", "--prompt", help="inference (the paper's) or training prompt variant."),
    limit: int | None = typer.Option(None, "--limit", min=0, help="Think about at most N new samples, then stop."),
    executor: str = EXECUTOR_OPTION,
    ray_address: str | None = RAY_ADDRESS_OPTION,
    workers: int | None = WORKERS_OPTION,
    resources_per_worker: str | None = RESOURCES_OPTION,
) -> None:
    """Think: Ref-Thinker answers for every sample; writes thoughts.jsonl under --out."""
    from tgs.runners.think import ThinkConfig, run_think

    if models not in ("real", "tiny"):
        raise typer.BadParameter(f"expected real or tiny, got {models!r}", param_hint="--models")
    if prompt not in ("inference", "training"):
        raise typer.BadParameter(f"expected inference or training, got {prompt!r}", param_hint="--prompt")
    config = ThinkConfig(
        data=data,
        meta=meta,
        out=out,
        splits=tuple(split),
        model=_resolve_model(model),
        models=models,  # type: ignore[arg-type]
        device=device,
        dtype=dtype,
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        mask_padding=not unmasked_batches,
        merge_lora=not unmerged_lora,
        prompt_variant=prompt,
        limit=limit,
    )
    with executor_from_options(executor, ray_address, workers, resources_per_worker) as runner:
        outcome = run_think(config, progress=lambda total: progress_bar("think", total), executor=runner)
    print_run_summary("think", outcome.run_dir, outcome.summary, "thoughts.jsonl")
    console.print(f"thoughts: {escape_user_text(outcome.thoughts_path)}", highlight=False)


def _resolve_model(model: str | None) -> str | None:
    """A training output folder or checkpoint becomes its runnable model directory (tgs.train.export)."""
    from tgs.train.export import resolve_think_model

    return None if model is None else str(resolve_think_model(model))


def register(app: typer.Typer) -> None:
    app.command("think")(think_command)
