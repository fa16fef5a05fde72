"""``tgs segment VIDEO "expression" ["expression" ...]``: the whole pipeline on any video file,
for one or several expressions; also the progress and result printing ``quickstart`` shares."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.panel import Panel

from tgs.cli.common import (
    bad,
    check_choice,
    models_option,
    prepare_process,
    preset_from_options,
    preset_names,
    settings_from_options,
    thinker_options_from,
    untrained_banner,
)
from tgs.cli.console import console, err_console, escape_user_text, friendly_errors, progress_bar
from tgs.cli.executor_options import EXECUTOR_OPTION, RAY_ADDRESS_OPTION, RESOURCES_OPTION, WORKERS_OPTION
from tgs.cli.segment_live import refuse_misused, run_live


@contextmanager
def fraction_progress(description: str) -> Iterator[Callable[..., None]]:
    """A progress bar driven by ``progress(fraction, desc=...)`` calls (the segment_video callback),
    with the time left; its label follows ``desc`` (dense output: "propagating: frame 37 of 150")."""
    steps = 1000
    with progress_bar(description, total=steps) as advance:
        done = 0

        def update(fraction: float, desc: str = "") -> None:
            nonlocal done
            target = max(round(fraction * steps), done)
            advance(target - done, description=f"{description}: {desc}" if desc else None)
            done = target

        yield update


def print_segment_result(result) -> None:  # result: tgs.core.segment.SegmentVideoResult
    """Per expression the thought and what was grounded; the outputs and the main timings."""
    e = escape_user_text
    for output in result.expressions:
        thought = output.thought
        grounded = e(output.object_text) if output.object_text is not None else "(nothing: null answer)"
        lines = [
            f"[bold]object grounded:[/] {grounded}",
            f"[bold]f_object:[/] {e(thought.f_object)}   [bold]s_object:[/] {e(thought.s_object)}   "
            f"[bold]parse:[/] {thought.status.value}",
        ]
        if thought.reasoning:
            lines.append(f"[bold]reasoning:[/] {e(thought.reasoning, keep_newlines=True)}")
        boxed = sum(box is not None for box in output.boxes)
        if getattr(result, "mode", "sampled") == "dense":
            lines.append(
                f"[bold]masks:[/] {result.num_frames} frames, {boxed} of {len(output.boxes)} keyframes boxed: "
                f"{e(output.masks_dir)}"
            )
        else:
            lines.append(f"[bold]masks:[/] {e(output.masks_dir)} ({len(output.boxes)} PNG, {boxed} frames boxed)")
        title = f"{output.index + 1}: {e(output.expression)}" if len(result.expressions) > 1 else "think"
        console.print(Panel("\n".join(lines), title=title, title_align="left", expand=False), highlight=False)
    # Plain lines, not a table: paths stay whole, so they can be copied.
    console.print(f"overlay video: {e(result.overlay_video)}", highlight=False, soft_wrap=True)
    if getattr(result, "masks_json", None) is not None:
        console.print(f"masks (COCO RLE): {e(result.masks_json)}", highlight=False, soft_wrap=True)
    console.print(f"result: {e(result.result_json)}", highlight=False, soft_wrap=True)
    shown = ("think", "ground", "segment", "propagate", "encode", "total")
    console.print(
        "timings (s): " + ", ".join(f"{k} {result.timings[k]:.2f}" for k in shown if k in result.timings),
        highlight=False,
    )
    # result.warnings were shown as they came, one line each (tgs.cli.console.show_warning)


@friendly_errors
def segment_command(
    video: str | None = typer.Argument(
        None, help="Video file (mp4, mkv, webm, avi, ...; any size, fps, length) or its URL (https://...), or a "
        "live source: a camera (/dev/video0, v4l2:..., avfoundation:0), a stream URL (rtsp, rtmp, srt, udp, tcp, "
        "a live HLS playlist) or - (standard input); none with --batch."
    ),
    expressions: list[str] | None = typer.Argument(
        None,
        help='One or more referring expressions, e.g. "the dog barking" "the man speaking" (one colour each).',
    ),
    thinker: str = typer.Option(
        "ref-thinker", "--thinker", help="ref-thinker, omni, api or direct (no reasoning)."
    ),
    model: str | None = typer.Option(
        None,
        "--model",
        help="Thinker weights: a converted Ref-Thinker directory, or an Omni hub id / directory.",
    ),
    thinker_opt: list[str] = typer.Option(
        [],
        "--thinker-opt",
        help="Thinker option KEY=VALUE (repeatable), e.g. base_url=http://localhost:8000/v1.",
    ),
    preset: str = typer.Option(
        "best",
        "--preset",
        help=f"{preset_names()}: best (fixes + propagation), paper (original scripts), sam3 (SAM 3 as Ground + "
        "Segment); docs/presets.md.",
    ),
    set_: list[str] = typer.Option([], "--set", help="Override a preset switch, KEY=VALUE (repeatable)."),
    out: Path | None = typer.Option(None, "--out", help="Output folder (default ./segment_<video name>)."),
    models: str = models_option(),
    fps: float | None = typer.Option(
        None,
        "--fps",
        min=1e-6,
        help="Sampled output: segment only N frames per second (1 = Ref-AVS). Default: a mask on every frame.",
    ),
    keyframe_fps: float = typer.Option(
        1.0, "--keyframe-fps", min=1e-6, help="Frames grounded per second, the keyframes propagation starts from."
    ),
    no_png: bool = typer.Option(
        False, "--no-png", help="Skip the PNG mask per frame (masks.json has every mask); for long videos."
    ),
    chunk_seconds: float = typer.Option(
        10.0,
        "--chunk-seconds",
        min=1e-6,
        help="Ground + Segment window in seconds (memory is bounded by it).",
    ),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when present), cpu, cuda, cuda:N."),
    dtype: str | None = typer.Option(
        None, "--dtype",
        help="auto, fp32, bf16, fp16 for every model (default: Ground + Segment in fp32 under --preset paper, else auto).",
    ),
    gdino: str | None = typer.Option(None, "--gdino", help="Grounding DINO hub id or local directory."),
    sam2: str | None = typer.Option(
        None,
        "--sam2",
        help="Segment model: a hub id, a local directory, or a propagation model key (edgetam_video, "
        "sam2_video_tiny, _small, _base_plus, _large, sam3_tracker_video); default EdgeTAM on a CPU, SAM2.1-L on "
        "a GPU. Under --preset sam3 it names SAM 3's source.",
    ),
    batch: Path | None = typer.Option(
        None, "--batch", help="Many videos: a CSV/TSV/JSONL list (video, expression[, id]) or a folder of videos "
        "(with --expressions); each into OUT/<name>/, plus OUT/index.jsonl. Resumable."
    ),
    expressions_file: Path | None = typer.Option(
        None, "--expressions", help="With --batch FOLDER: the expressions for every video, one per line."
    ),
    rethink_every: float | None = typer.Option(
        None, "--rethink-every", min=1e-6, help="Live: seconds of stream between thinks (default: each completed "
        "10 s window)."
    ),
    every_frame: bool = typer.Option(
        False, "--every-frame", help="Live: never skip a frame (falls behind a fast source); default: the newest "
        "frame, the others counted as skipped."
    ),
    reconnect: bool = typer.Option(
        False, "--reconnect", help="Live: retry a dropped network source with backoff (the gap is recorded)."
    ),
    audio: str | None = typer.Option(
        None, "--audio", help="Live: a separate microphone, e.g. alsa:default, pulse:default, avfoundation::0."
    ),
    png: bool = typer.Option(False, "--png", help="Live: also write a PNG mask per emitted frame and expression."),
    executor: str = EXECUTOR_OPTION,
    ray_address: str | None = RAY_ADDRESS_OPTION,
    workers: int | None = WORKERS_OPTION,
    resources: str | None = RESOURCES_OPTION,
) -> None:
    """Segment what each expression refers to in any video: a mask on every frame (PNG per expression and
    frame, masks.json), an overlay video at the source's rate with its audio, result.json. A live source
    (camera, stream URL, -) is segmented as it arrives into masks.jsonl and a fragmented overlay until it
    ends or Ctrl-C (docs/live.md)."""
    from tgs.core.loading import check_thinker_options
    from tgs.core.segment import check_segment_call, segment_load_spec, segment_video
    from tgs.think.registry import THINKER_NAMES

    # Every option is checked before any work (no model loaded, nothing written, no progress bar).
    check_choice(thinker, THINKER_NAMES, "--thinker")
    if batch is None:  # the options of many videos, refused rather than dropped
        misused = [name for name, given in (("--executor", executor != "local"),
                                            ("--expressions", expressions_file is not None),
                                            ("--ray-address", ray_address is not None),
                                            ("--workers", workers is not None),
                                            ("--resources-per-worker", resources is not None)) if given]
        if misused:
            raise bad(f"only with --batch (many videos): leave {', '.join(misused)} out for one video", misused[0])
    if batch is None and (video is None or not expressions):  # both are required without --batch
        raise bad("missing argument: give a video and its expressions, or --batch LIST",
                  "VIDEO" if video is None else "EXPRESSIONS")
    from tgs.core.live_mode import is_live

    live_source = batch is None and video is not None and is_live(video)
    refuse_misused({"--rethink-every": rethink_every is not None, "--every-frame": every_frame,
                    "--reconnect": reconnect, "--audio": audio is not None, "--png": png, "--fps": fps is not None,
                    "--keyframe-fps": keyframe_fps != 1.0, "--no-png": no_png, "--chunk-seconds": chunk_seconds != 10.0},
                   live_source)
    if no_png and fps is not None:
        raise bad("--no-png applies to the dense output (without --fps)", "--no-png")
    settings = settings_from_options(models, device, dtype, thinker=model, gdino=gdino, sam2=sam2)
    chosen = preset_from_options(preset, set_)
    options = thinker_options_from(thinker_opt)
    try:
        check_thinker_options(thinker, options)
    except ValueError as exc:
        raise bad(str(exc), "--thinker-opt") from exc
    if live_source:
        from tgs.core.live_mode import LiveSettings
        from tgs.sources import ReconnectPolicy

        live = LiveSettings(every_frame=every_frame, rethink_every=rethink_every,
                            reconnect=ReconnectPolicy() if reconnect else None, audio_device=audio, png=png)
        run_live(str(video), list(expressions or []), thinker=thinker, preset=chosen, settings=settings, out=out,
                 thinker_options=options, live=live, device=device)
        return
    if batch is not None:  # each video file is checked as it comes (a bad one is an error line, the batch goes on)
        from tgs.cli.segment_batch import run_batch
        from tgs.devices import resolve_device
        from tgs.runners.segment_batch import SegmentOptions

        # What every video shares is checked once, here: else each video would fail alike, one line each.
        # As check_segment_call does (a bad name, CUDA without CUDA); on Ray, CUDA is the workers', not
        # this process's: their GPUs are asked of the cluster, which refuses what it cannot hold.
        if executor == "local" or not settings.device.strip().lower().startswith("cuda"):
            resolve_device(settings.device)
        segment_load_spec(thinker, chosen, settings, dense=fps is None, thinker_options=options).require()
        if settings.untrained:
            err_console.print(untrained_banner())
        prepare_process(device)
        batch_options = SegmentOptions(thinker=thinker, preset=chosen, settings=settings, fps=fps,
                                       keyframe_fps=keyframe_fps, png=not no_png, chunk_seconds=chunk_seconds,
                                       thinker_options=options)
        run_batch(batch, video=video, expressions=expressions, expressions_file=expressions_file, out=out,
                  options=batch_options, executor=executor, ray_address=ray_address, workers=workers,
                  resources=resources, device=device)
        if settings.untrained:
            err_console.print(untrained_banner())
        return
    from tgs.runners.url_video import local_video
    from tgs.sources import is_url
    from tgs.sources.fetch import url_stem

    if is_url(video):  # a finite video over the network: copied into OUT, segmented as that file
        out = out if out is not None else Path(f"segment_{url_stem(video)}")
        err_console.print(f"copying {escape_user_text(video)}", highlight=False)
    with local_video(video, out) as copied:
        local = copied.path
        check_segment_call(local, expressions, thinker=thinker, settings=settings, out=out, fps=fps,
                           keyframe_fps=keyframe_fps, chunk_seconds=chunk_seconds, thinker_options=options)
        if settings.untrained:
            err_console.print(untrained_banner())
        prepare_process(device)
        with fraction_progress("segment") as progress:
            result = segment_video(
                local,
                expressions,
                thinker=thinker,
                preset=chosen,
                settings=settings,
                out=out,
                fps=fps,
                thinker_options=options,
                chunk_seconds=chunk_seconds,
                progress=progress,
                keyframe_fps=keyframe_fps,
                png=not no_png,
                video_label=copied.label,
            )
    print_segment_result(result)
    if result.untrained:
        err_console.print(untrained_banner())


def register(app: typer.Typer) -> None:
    app.command("segment")(segment_command)
