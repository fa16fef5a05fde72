"""``tgs quickstart``: the whole pipeline on a generated clip, then its metrics against the known masks.

The clip is synthetic (``tgs.data.synth``): drawn shapes that each make their own tone,
written both as a video file with audio (what ``tgs segment`` reads) and as a one-video
benchmark in the Ref-AVSBench layout (whose ground-truth masks score the result). One
expression about the clip is segmented with ``tgs.core.segment.segment_video`` under the
``best`` preset, and J / F are computed under the TGS-Agent protocol.

Default weights: the thinker is ``omni`` (Qwen/Qwen2.5-Omni-3B), the one audio-visual
thinker with public ready-to-load weights; Ref-Thinker has no public converted directory
(``--thinker ref-thinker --model DIR`` after ``tgs models convert-ref-thinker``). Grounding
DINO and SAM2.1 use their registry defaults. Missing weights stop the command before
anything is generated, listing them and printing the same command with ``--models tiny``,
which runs the identical pipeline on random tiny models as an install check; every output
is then labelled UNTRAINED. There is never a silent fallback.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import numpy as np
import typer

from tgs.cli.common import (
    check_choice,
    models_option,
    prepare_process,
    settings_from_options,
    untrained_banner,
)
from tgs.cli.console import console, err_console, escape_user_text, friendly_errors, print_error
from tgs.cli.segment import fraction_progress, print_segment_result

DEFAULT_THINKER = "omni"
DEFAULT_SEED = 2
CLIP_SECONDS = 10.0
CLIP_FPS = 25.0
CLIP_SIZE = (320, 180)
MANIFEST_NAME = "quickstart.json"
PRESET = "best"
SEGMENT_FPS = 1.0
"""Sampled output at the clip's ground-truth rate (Ref-AVS: 1 fps), so masks and ground truth share frames."""


def tiny_command(out: Path, thinker: str, seed: int) -> str:
    """The same quickstart on the tiny models, as a shell command line."""
    parts = ["tgs", "quickstart", "--out", str(out), "--models", "tiny"]
    if thinker != DEFAULT_THINKER:
        parts += ["--thinker", thinker]
    if seed != DEFAULT_SEED:
        parts += ["--seed", str(seed)]
    return shlex.join(parts)


def pick_row(data: Path) -> dict[str, Any]:
    """The row segmented: the first one that asks about sound, else the first non-null one."""
    info = json.loads((data / "synth_info.json").read_text(encoding="utf-8"))["uids"]
    rows = [{"uid": uid, **row} for uid, row in info.items() if not row["is_null"]]
    sound = [row for row in rows if row["kind"] == "sound"]
    return (sound or rows)[0]


def make_clip(data: Path, seed: int) -> tuple[Path, Path, dict[str, Any]]:
    """(video file with audio, metadata CSV, the chosen row) of one synthetic clip."""
    from tgs.data.synth import generate, write_video

    meta = generate(data, videos=1, seed=seed, size=CLIP_SIZE, force=True)  # quickstart's own folder
    video = write_video(data / "clip.mp4", CLIP_SECONDS, CLIP_FPS, CLIP_SIZE, seed, with_audio=True)
    return video, meta, pick_row(data)


def score(data: Path, meta: Path, uid: str, masks_dir: Path, out: Path) -> dict[str, Any]:
    """J and F (TGS-Agent protocol) of the segment_video masks against the clip's ground truth."""
    from tgs.data.benchmark import Benchmark
    from tgs.data.media import load_gray_image
    from tgs.eval import evaluate, save_metrics
    from tgs.types import Masks

    sample = Benchmark(data, meta)[uid]
    paths = sorted(masks_dir.glob("[0-9][0-9][0-9][0-9][0-9].png"))
    masks = Masks(np.stack([load_gray_image(p) > 0 for p in paths]))
    result = evaluate([sample], {uid: masks}, ["tgs"], [sample.split])
    save_metrics(result, out)
    return result


@friendly_errors
def quickstart_command(
    out: Path = typer.Option(
        Path("quickstart"), "--out", help="Folder for the clip, the outputs and the metrics."
    ),
    models: str = models_option("real weights (default), or tiny: an untrained install check."),
    thinker: str = typer.Option(
        DEFAULT_THINKER, "--thinker", help="omni (default), ref-thinker (needs --model), api or direct."
    ),
    model: str | None = typer.Option(None, "--model", help="Thinker weights (hub id or directory)."),
    seed: int = typer.Option(DEFAULT_SEED, "--seed", help="Which synthetic clip (a function of the seed)."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when present), cpu, cuda, cuda:N."),
) -> None:
    """Run the whole pipeline on a generated clip and score it: the first thing to try after installing."""
    from tgs.core.segment import segment_load_spec, segment_video
    from tgs.core.settings import UNTRAINED_LABEL
    from tgs.errors import MissingWeightsError
    from tgs.think.registry import THINKER_NAMES

    check_choice(thinker, THINKER_NAMES, "--thinker")
    settings = settings_from_options(models, device, None, thinker=model)
    try:
        segment_load_spec(thinker, PRESET, settings, dense=SEGMENT_FPS is None).require()  # before generating anything
    except MissingWeightsError as exc:
        print_error(exc)
        err_console.print(
            "\nTo check the installation without weights, run the same pipeline on the untrained tiny models "
            "(results are meaningless):\n",
            highlight=False,
        )
        err_console.print(f"    {escape_user_text(tiny_command(out, thinker, seed))}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from exc
    untrained = settings.untrained
    if untrained:
        err_console.print(untrained_banner())
    prepare_process(device)
    video, meta, row = make_clip(out / "data", seed)
    with fraction_progress("quickstart") as progress:
        result = segment_video(
            video,
            [row["exp"]],
            thinker=thinker,
            preset=PRESET,
            settings=settings,
            out=out / "segment",
            fps=SEGMENT_FPS,
            progress=progress,
        )
    masks = result.expressions[0].masks_dir
    metrics = score(out / "data", meta, row["uid"], masks, out / "metrics.json")
    block = metrics["protocols"]["tgs"]["splits"][row["split"]]
    manifest = {
        "untrained": untrained,
        "label": UNTRAINED_LABEL if untrained else None,
        "thinker": thinker,
        "models": models,
        "seed": seed,
        "clip": str(video),
        "expression": row["exp"],
        "uid": row["uid"],
        "target": row["object"],
        "outputs": {
            "segment": str(result.out_dir),
            "overlay_video": str(result.overlay_video),
            "masks": str(masks),
            "result": str(result.result_json),
            "metrics": str(out / "metrics.json"),
        },
        "metrics": {"protocol": "tgs", "J": block.get("J"), "F": block.get("F")},
    }
    (out / MANIFEST_NAME).write_text(
        json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    console.print(
        f"clip: {escape_user_text(video)}  expression: {escape_user_text(repr(row['exp']))}  "
        f"(the {escape_user_text(row['object'])})",
        highlight=False,
    )
    print_segment_result(result)
    console.print(
        f"J {block.get('J', 0):.4f}  F {block.get('F', 0):.4f}  (TGS-Agent protocol, "
        f"metrics: {escape_user_text(out / 'metrics.json')})",
        highlight=False,
    )
    console.print(f"summary: {escape_user_text(out / MANIFEST_NAME)}", highlight=False)
    if untrained:
        err_console.print(untrained_banner())


def register(app: typer.Typer) -> None:
    app.command("quickstart")(quickstart_command)
