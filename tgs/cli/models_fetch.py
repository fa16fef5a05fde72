"""``tgs models fetch``: download weights (and convert Ref-Thinker) in one command."""

from __future__ import annotations

from pathlib import Path

import typer

from tgs.cli.console import console, err_console, escape_user_text

HUB_ALLOW = ("*.json", "*.safetensors", "*.txt", "*.model", "*.jinja")


def _say(text: str) -> None:
    err_console.print(text, highlight=False, markup=False)


def _hub_keys() -> list[str]:
    from tgs.models.registry import MODEL_SPECS

    return [key for key, spec in MODEL_SPECS.items() if spec.default_source is not None]


def fetch_command(
    what: str = typer.Argument(..., help="ref-thinker, paper (everything the paper preset needs), or a model role."),
    out: Path | None = typer.Option(None, "--out", help="Ref-Thinker directory to write (ref-thinker, paper)."),
    downloads: Path | None = typer.Option(
        None, "--downloads", help="Where the BEATs file is kept (default: $TGS_HOME/downloads)."
    ),
    beats_url: str | None = typer.Option(None, "--beats-url", help="Another URL (a mirror) for the BEATs file."),
    beats_sha256: str | None = typer.Option(None, "--beats-sha256", help="Check the BEATs file against this sha256."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a non-empty --out."),
    merge_lora: bool = typer.Option(False, "--merge-lora", help="Fold LoRA into the LLaMA weights (faster)."),
    vision_feature_layer: int = typer.Option(
        23, "--vision-feature-layer", help="CLIP hidden_states index fed to the projector (paper: 23)."
    ),
    qformer_heads: int = typer.Option(12, "--qformer-heads", min=1, help="Q-Former attention heads (bert-base: 12)."),
) -> None:
    """Download model weights (resumable; HF_ENDPOINT and `huggingface-cli login` are honoured)."""
    from tgs.model_fetch import BEATS_FILE, HubRepo, check_access, fetch_hub_repo, fetch_ref_thinker
    from tgs.models.registry import MODEL_SPECS, tgs_home

    choices = ["ref-thinker", "paper", *_hub_keys()]
    if what not in choices:
        raise typer.BadParameter(f"expected one of {', '.join(choices)}, got {what!r}", param_hint="WHAT")
    if what in ("ref-thinker", "paper") and out is None:
        raise typer.BadParameter(f"`tgs models fetch {what}` writes the Ref-Thinker directory: pass --out DIR",
                                 param_hint="--out")  # fmt: skip
    hub_keys = [what] if what in MODEL_SPECS else _paper_hub_keys() if what == "paper" else []
    repos = {MODEL_SPECS[k].default_source: HubRepo(MODEL_SPECS[k].default_source, HUB_ALLOW,  # type: ignore[arg-type]
                                                    MODEL_SPECS[k].required_files[0]) for k in hub_keys}  # fmt: skip
    endpoint = check_access(list(repos.values())) if repos else None
    for repo in repos.values():
        _say(f"downloading {repo.repo_id}")
        console.print(f"{repo.repo_id}: {escape_user_text(fetch_hub_repo(repo, endpoint))}", highlight=False)
    if out is not None and what in ("ref-thinker", "paper"):
        fetch_ref_thinker(
            out,
            downloads=downloads or tgs_home() / "downloads",
            beats_url=beats_url or BEATS_FILE.url,
            beats_sha256=beats_sha256 or BEATS_FILE.sha256,
            say=_say,
            overwrite=overwrite,
            convert_options={
                "merge_lora": merge_lora,
                "vision_feature_layer": vision_feature_layer,
                "qformer_attention_heads": qformer_heads,
            },
        )
        shown = escape_user_text(out)
        console.print(f"Ref-Thinker ready: {shown}  (use it with --thinker ref-thinker --model {shown})", highlight=False)


def _paper_hub_keys() -> list[str]:
    """The downloadable weights a benchmark run under the paper preset loads (its load spec)."""
    from tgs.core.load_spec import load_spec
    from tgs.core.settings import Settings
    from tgs.presets import get_preset

    return [k for k in load_spec(get_preset("paper"), Settings(device="cpu")).keys if k in _hub_keys()]


def register(app: typer.Typer) -> None:
    """Add the command to the ``tgs models`` sub-app."""
    app.command("fetch")(fetch_command)
