"""``tgs models convert-ref-thinker``: released TGS-Agent files -> one Ref-Thinker directory."""

from __future__ import annotations

from pathlib import Path

import typer

from tgs.cli.console import console, escape_user_text, friendly_errors


@friendly_errors
def convert_ref_thinker_command(
    release: Path = typer.Option(
        ..., "--release", help="Folder of the TGS-Agent download (non_lora_trainables.bin, checkpoint-*/)."
    ),
    llama: Path = typer.Option(..., "--llama", help="Base Llama-2-7b-chat-hf directory (weights and tokenizer)."),
    clip: Path = typer.Option(..., "--clip", help="clip-vit-large-patch14 directory."),
    beats: Path = typer.Option(..., "--beats", help="BEATs_iter3_plus_AS2M_finetuned_on_AS2M_cpt2.pt file."),
    out: Path = typer.Option(..., "--out", help="Directory to write (must be empty or absent)."),
    checkpoint: str | None = typer.Option(
        None, "--checkpoint", help="checkpoint-* folder to use when the release has several."
    ),
    merge_lora: bool = typer.Option(False, "--merge-lora", help="Fold LoRA into the LLaMA weights (faster)."),
    dtype: str = typer.Option("bf16", "--dtype", help="Storage dtype: bf16 (as the original runs), fp16, fp32."),
    lora_alpha: float | None = typer.Option(
        None, "--lora-alpha", help="LoRA alpha when the release has no adapter_config.json (default 16)."
    ),
    vision_feature_layer: int = typer.Option(
        23, "--vision-feature-layer", help="CLIP hidden_states index fed to the projector (paper: 23)."
    ),
    qformer_heads: int = typer.Option(12, "--qformer-heads", min=1, help="Q-Former attention heads (bert-base: 12)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a non-empty --out."),
) -> None:
    """Convert the released Ref-Thinker weights into a directory `tgs think --model` loads strictly."""
    from tgs.devices import resolve_dtype
    from tgs.think.ref_thinker.convert import ReleaseFiles, convert_ref_thinker

    try:
        torch_dtype = resolve_dtype(dtype, "cpu")
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--dtype") from exc
    report = convert_ref_thinker(
        ReleaseFiles.discover(release, checkpoint),
        llama,
        clip,
        beats,
        out,
        merge_lora=merge_lora,
        dtype=torch_dtype,
        lora_alpha=lora_alpha,
        vision_feature_layer=vision_feature_layer,
        qformer_attention_heads=qformer_heads,
        overwrite=overwrite,
    )
    console.print(
        f"wrote {escape_user_text(report.output_dir)}: {report.num_tensors} tensors, {report.num_parameters / 1e9:.2f} B parameters "
        f"({report.dtype}, LoRA {'merged' if report.merged_lora else 'kept as an adapter'})",
        highlight=False,
    )
    for source, count in report.from_source.items():
        console.print(f"  {count:5d} tensors from {escape_user_text(source)}", highlight=False)
    for what, count in report.overridden.items():
        console.print(f"  {count:5d} tensors overridden ({what})", highlight=False)


def register(app: typer.Typer) -> None:
    """Add the command to the ``tgs models`` sub-app."""
    app.command("convert-ref-thinker")(convert_ref_thinker_command)
