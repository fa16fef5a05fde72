"""``tgs think``: run a thinker (ref-thinker, omni, api, direct) over a benchmark split and write
thoughts.jsonl (resumable)."""

from __future__ import annotations

from pathlib import Path

import typer

from tgs.cli.common import (
    COMPILE_OPTION,
    bad,
    check_choice,
    models_option,
    prepare_process,
    preset_from_options,
    settings_from_options,
    thinker_options_from,
    untrained_banner,
)
from tgs.cli.console import (
    console,
    err_console,
    escape_user_text,
    friendly_errors,
    print_run_summary,
    progress_bar,
)
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
    thinker: str = typer.Option("ref-thinker", "--thinker", help="ref-thinker, omni, api or direct."),
    model: str | None = typer.Option(
        None,
        "--model",
        help="Thinker weights: a converted Ref-Thinker directory (see `tgs models convert-ref-thinker`), a "
        "`tgs train` output folder / checkpoint (its model is exported on first use), or an Omni hub id / directory.",
    ),
    thinker_opt: list[str] = typer.Option(
        [], "--thinker-opt", help="Thinker option KEY=VALUE (repeatable), e.g. base_url=http://localhost:8000/v1."
    ),
    out: Path = typer.Option(..., "--out", help="Run directory; rerunning the same command resumes it."),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Samples per generate call (8 in the paper)."),
    models: str = models_option(),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when present), cpu, cuda, cuda:N."),
    dtype: str | None = typer.Option(None, "--dtype", help="auto (bf16 on CUDA, fp32 on CPU), bf16, fp16, fp32."),
    compile: bool = COMPILE_OPTION,
    max_new_tokens: int | None = typer.Option(
        None, "--max-new-tokens", min=1, help="Generation length cap (256 in the paper); ref-thinker and omni."
    ),
    unmasked_batches: bool = typer.Option(
        False, "--unmasked-batches", help="ref-thinker: reproduce the original's batched generation without an "
        "attention mask (batches are then the CSV's consecutive samples, not whole videos)."
    ),
    unmerged_lora: bool = typer.Option(
        False, "--unmerged-lora", help="ref-thinker: keep the LoRA adapter separate, as the original runs it."
    ),
    prompt: str | None = typer.Option(None, "--prompt", help="ref-thinker: inference (the paper's) or training."),
    sets: list[str] = typer.Option(
        [], "--set", help="Preset switch Think reads, KEY=VALUE: share_across_expressions=false treats each "
        "expression of a video alone (same answers).",
    ),
    old_share: bool | None = typer.Option(
        None, "--share-across-expressions/--no-share-across-expressions", hidden=True,
    ),
    limit: int | None = typer.Option(None, "--limit", min=0, help="Think about at most N new samples, then stop."),
    executor: str = EXECUTOR_OPTION,
    ray_address: str | None = RAY_ADDRESS_OPTION,
    workers: int | None = WORKERS_OPTION,
    resources_per_worker: str | None = RESOURCES_OPTION,
) -> None:
    """Think: the thinker's answer for every sample; writes thoughts.jsonl under --out."""
    from tgs.core.loading import check_thinker_options
    from tgs.runners.think import ThinkConfig, run_think
    from tgs.think.registry import THINKER_NAMES

    name = check_choice(thinker.strip().lower().replace("_", "-"), THINKER_NAMES, "--thinker")
    if old_share is not None:
        raise bad(
            "sharing a video's work is a preset switch: use --set share_across_expressions="
            f"{str(old_share).lower()}", "--share-across-expressions",
        )
    preset = _think_preset(sets)
    if prompt is not None:
        check_choice(prompt, ("inference", "training"), "--prompt")
    options = thinker_options_from(thinker_opt)
    flags = {
        "max_new_tokens": max_new_tokens,
        "mask_padding": False if unmasked_batches else None,
        "merge_lora": False if unmerged_lora else None,
        "prompt_variant": prompt,
    }
    for key, value in flags.items():
        if value is not None:
            options[key] = value
    settings = settings_from_options(
        models, device, dtype, thinker=_resolve_model(model) if name == "ref-thinker" else model, compile=compile
    )
    try:
        check_thinker_options(name, options)
        config = ThinkConfig(
            data=data,
            meta=meta,
            out=out,
            splits=tuple(split),
            thinker=name,
            thinker_options=options,
            settings=settings,
            batch_size=batch_size,
            preset=preset,
            limit=limit,
        )
    except ValueError as exc:
        raise bad(str(exc), "--thinker-opt/--max-new-tokens/--unmasked-batches/--unmerged-lora/--prompt") from exc
    if settings.untrained:
        err_console.print(untrained_banner())
    prepare_process(device)
    with executor_from_options(executor, ray_address, workers, resources_per_worker, device) as runner:
        outcome = run_think(config, progress=lambda total: progress_bar("think", total), executor=runner)
    print_run_summary("think", outcome.run_dir, outcome.summary, "thoughts.jsonl")
    console.print(f"thoughts: {escape_user_text(outcome.thoughts_path)}", highlight=False)


def _think_preset(sets: list[str]):  # -> Preset
    """The default preset with the ``--set`` switches Think reads; another switch is refused (Think
    would ignore it)."""
    from tgs.presets import DEFAULT_PRESET, THINK_SWITCHES, parse_overrides

    preset = preset_from_options(DEFAULT_PRESET, sets)
    ignored = sorted(set(parse_overrides(sets)) - set(THINK_SWITCHES))
    if ignored:
        raise bad(
            f"{', '.join(ignored)}: a Ground + Segment switch, which Think does not read (give it to tgs "
            f"ground-segment or tgs run); tgs think takes {', '.join(THINK_SWITCHES)}", "--set",
        )
    return preset


def _resolve_model(model: str | None) -> str | None:
    """A training output folder or checkpoint becomes its runnable model directory (tgs.train.export)."""
    from tgs.train.export import resolve_think_model

    return None if model is None else str(resolve_think_model(model))


def register(app: typer.Typer) -> None:
    app.command("think")(think_command)
