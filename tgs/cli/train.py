"""``tgs train``: fine-tune Ref-Thinker with the paper's recipe (resumable; DDP / DeepSpeed under a launcher)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from tgs.cli.common import models_option
from tgs.cli.console import console, err_console, escape_user_text, friendly_errors


def _show_recipe(value: bool) -> None:
    if not value:
        return
    from tgs.train.config import TrainRecipe

    table = Table(title="training recipe (defaults = the paper's run)", title_justify="left")
    for column in ("field", "default", "meaning"):
        table.add_column(column, overflow="fold")
    for name, default, meaning in TrainRecipe.field_help():
        table.add_row(name, json.dumps(list(default) if isinstance(default, tuple) else default), meaning)
    console.print(table)
    raise typer.Exit()


def _parse_sets(items: list[str]) -> dict[str, Any]:
    """KEY=VALUE pairs; VALUE is read as JSON when it parses (numbers, true/false, lists), else as text."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--set")
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw
    return out


def _recipe(config: Path | None, sets: list[str], overrides: dict[str, Any]) -> Any:
    from tgs.train.config import TrainRecipe

    recipe = TrainRecipe.from_file(config) if config is not None else TrainRecipe()
    changes = {**_parse_sets(sets), **{k: v for k, v in overrides.items() if v is not None}}
    if not changes:
        return recipe
    try:
        return recipe.replace(**changes)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--set / options") from exc


def _fit_machine(recipe: Any, sets: list[str], device: str) -> tuple[Any, str]:
    """Without a GPU: CPU-working settings (said aloud), or one line naming the flag to change."""
    import torch

    from tgs.train.config import adapt_to_cpu

    if device == "cuda" or (device == "auto" and torch.cuda.is_available()):
        return recipe, device
    try:
        recipe, notes = adapt_to_cpu(recipe, set(_parse_sets(sets)))
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--set") from exc
    if notes:
        err_console.print(
            "[yellow]no GPU[/]: training on the CPU, changed from the paper's recipe:\n  " + "\n  ".join(notes),
            highlight=False,
        )
    return recipe, "cpu"


@friendly_errors
def train_command(
    data: Path = typer.Option(..., "--data", help="Benchmark root (media/, media_cross/)."),
    meta: Path = typer.Option(..., "--meta", help="Metadata CSV (vid,uid,split,fid,exp); the recipe's splits are used."),
    targets: Path = typer.Option(
        ..., "--targets", help="Instruction-tuning JSON (RefThinker_instruction_tuning_set.json: {uid: {output}})."
    ),
    out: Path = typer.Option(..., "--out", help="Run folder: manifest, train_log.jsonl, checkpoint-<step>/."),
    init: Path | None = typer.Option(
        None, "--init", help="Ref-Thinker directory to start from (`tgs models init-ref-thinker` for the paper's start)."
    ),
    config: Path | None = typer.Option(None, "--config", help="Recipe file (JSON/YAML); omitted fields keep the paper's values."),
    set_: list[str] = typer.Option([], "--set", help="Recipe override KEY=VALUE (repeatable), e.g. learning_rate=2e-4."),
    max_steps: int | None = typer.Option(None, "--max-steps", min=1, help="Stop after N optimizer steps (short runs)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last checkpoint."),
    deepspeed: str | None = typer.Option(
        None, "--deepspeed", help="zero2, zero2_offload (the paper's), zero3, or a DeepSpeed JSON file."
    ),
    crab: Path | None = typer.Option(
        None, "--crab", help="Folder with Crab's audio_pretrain.bin / visual_pretrain.bin to initialise the projectors."
    ),
    skip_missing_targets: bool = typer.Option(
        False, "--skip-missing-targets", help="Train on the rows that have a target instead of refusing."
    ),
    prompt: str | None = typer.Option(
        None, "--prompt", help="training (default, the original's) or inference (the prompt used at test time)."
    ),
    report_to: list[str] = typer.Option([], "--report-to", help="Also log to tensorboard and/or wandb."),
    models: str = models_option("real (use --init), or tiny: the random tiny Ref-Thinker."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when present), cpu, cuda."),
    show_recipe: bool = typer.Option(
        False, "--show-recipe", callback=_show_recipe, is_eager=True, help="List the recipe fields and defaults, then exit."
    ),
) -> None:
    """Fine-tune Ref-Thinker (LoRA + projectors + embeddings + lm_head) on instruction-tuning targets.

    One process: `tgs train ...`. Several GPUs / nodes: `torchrun --nproc_per_node 4 -m tgs.cli.main train ...`
    or `accelerate launch -m tgs.cli.main train ...` (add `--deepspeed zero2_offload` for the paper's setup).
    """
    from tgs.models.registry import resolve_source
    from tgs.train.run import TrainJob, run_training

    if models == "real" and init is None:
        raise typer.BadParameter("pass --init DIR (or --models tiny for an install check)", param_hint="--init")
    if models == "tiny" and init is not None:
        raise typer.BadParameter("--init and --models tiny exclude each other", param_hint="--init")
    if device not in ("auto", "cpu", "cuda"):
        raise typer.BadParameter(f"expected auto, cpu or cuda, got {device!r}", param_hint="--device")
    overrides: dict[str, Any] = {
        "max_steps": max_steps,
        "deepspeed": deepspeed,
        "prompt_variant": prompt,
        "missing_targets": "skip" if skip_missing_targets else None,
        "report_to": report_to or None,
    }
    recipe = _recipe(config, set_, overrides)
    recipe, device = _fit_machine(recipe, set_, device)
    init_dir = Path(resolve_source("ref_thinker", "tiny")) if models == "tiny" else init
    job = TrainJob(
        data=data, meta=meta, targets=targets, init=init_dir, out=out, recipe=recipe,  # type: ignore[arg-type]
        resume=resume, crab=crab, device=device,
    )  # fmt: skip
    outcome = run_training(job)
    if not outcome.is_main:
        return
    table = Table(title=f"train: {escape_user_text(outcome.out)}", title_justify="left")
    for column in ("rows", "steps", "first loss", "last loss", "last checkpoint"):
        table.add_column(column, justify="right" if column != "last checkpoint" else "left")
    first = f"{outcome.losses[0]:.4f}" if outcome.losses else "-"
    last = f"{outcome.losses[-1]:.4f}" if outcome.losses else "-"
    table.add_row(str(outcome.num_rows), str(outcome.global_step), first, last, escape_user_text(outcome.last_checkpoint))
    console.print(table)
    if outcome.missing.count:
        console.print(f"[yellow]{escape_user_text(outcome.missing.describe())}[/]; skipped", highlight=False)
    console.print(
        f"think with it: tgs think --model {escape_user_text(outcome.out)} ... (uses the latest checkpoint), "
        f"or export: tgs models export {escape_user_text(outcome.last_checkpoint)} OUT",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
