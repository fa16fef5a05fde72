"""``tgs models export`` (training checkpoint -> runnable directory) and ``tgs models init-ref-thinker``
(base LLaMA + CLIP + BEATs + Crab projectors -> the directory a paper fine-tune starts from)."""

from __future__ import annotations

from pathlib import Path

import typer

from tgs.cli.console import console, escape_user_text, friendly_errors


def _dtype(name: str | None) -> object:
    from tgs.devices import resolve_dtype

    if name is None:
        return None
    try:
        return resolve_dtype(name, "cpu")
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--dtype") from exc


@friendly_errors
def export_command(
    checkpoint: Path = typer.Argument(..., help="A checkpoint-<step> folder of `tgs train`, or its --out (latest checkpoint)."),
    out: Path = typer.Argument(..., help="Directory to write (must be empty or absent)."),
    dtype: str | None = typer.Option(None, "--dtype", help="Storage dtype bf16, fp16, fp32 [default: the init's]."),
    merge_lora: bool = typer.Option(False, "--merge-lora", help="Fold LoRA into the LLaMA weights."),
    init: Path | None = typer.Option(None, "--init", help="Another copy of the init directory (same weights hash)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a non-empty OUT."),
) -> None:
    """Write a self-contained Ref-Thinker directory (loadable by `tgs think --model`) from a training checkpoint."""
    from tgs.train.export import export_checkpoint, resolve_checkpoint

    source = resolve_checkpoint(checkpoint)
    export_checkpoint(source, out, dtype=_dtype(dtype), merge_lora=merge_lora, init_dir=init, overwrite=overwrite)  # type: ignore[arg-type]
    console.print(f"exported {escape_user_text(source)} to {escape_user_text(out)}", highlight=False)


@friendly_errors
def init_ref_thinker_command(
    llama: Path = typer.Option(..., "--llama", help="Base Llama-2-7b-chat-hf directory (weights and tokenizer)."),
    clip: Path = typer.Option(..., "--clip", help="clip-vit-large-patch14 directory."),
    beats: Path = typer.Option(..., "--beats", help="BEATs_iter3_plus_AS2M_finetuned_on_AS2M_cpt2.pt file."),
    crab: Path = typer.Option(..., "--crab", help="Folder with Crab's audio_pretrain.bin and visual_pretrain.bin."),
    out: Path = typer.Option(..., "--out", help="Directory to write (must be empty or absent)."),
    dtype: str = typer.Option("bf16", "--dtype", help="Storage dtype: bf16 (as the original trains), fp16, fp32."),
    seed: int = typer.Option(42, "--seed", help="Seed of the 21 new embedding / lm_head rows."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a non-empty --out."),
) -> None:
    """Build the paper's fine-tuning start (no LoRA yet): base LLaMA + 21 tokens + CLIP + BEATs + Crab projectors."""
    from tgs.train.crab import build_crab_init

    report = build_crab_init(llama, clip, beats, crab, out, dtype=_dtype(dtype), seed=seed, overwrite=overwrite)  # type: ignore[arg-type]
    console.print(f"wrote {escape_user_text(out)}", highlight=False)
    for name, count in report.loaded.items():
        console.print(f"  {count:5d} tensors from {name}", highlight=False)
    if report.overridden:
        console.print(f"  {report.overridden:5d} tensors of the audio file replaced by the visual file", highlight=False)
    for dropped in report.dropped:
        console.print(f"  dropped {dropped} (as the original does)", highlight=False)
    console.print(f"train from it: tgs train --init {escape_user_text(out)} ...", highlight=False)


def register(app: typer.Typer) -> None:
    """Add the commands to the ``tgs models`` sub-app."""
    app.command("export")(export_command)
    app.command("init-ref-thinker")(init_ref_thinker_command)
