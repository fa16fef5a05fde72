"""``tgs demo --serve``: the web demo (Gradio) on this machine.

Without ``--serve`` the command only says how to start the server and what it would
allow, so that a bare ``tgs demo`` never opens a port by surprise.
"""

from __future__ import annotations

from pathlib import Path

import typer

from tgs.cli.common import models_option
from tgs.cli.console import console, err_console, escape_user_text, friendly_errors


@friendly_errors
def demo_command(
    serve: bool = typer.Option(False, "--serve", help="Start the web server (otherwise: print how to)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; anything but loopback exposes the demo."),
    port: int = typer.Option(7860, "--port", min=1, max=65535, help="TCP port."),
    models: str = models_option(),
    max_upload_mb: float = typer.Option(200.0, "--max-upload-mb", min=0.001, help="Largest accepted upload (MiB)."),
    max_video_seconds: float = typer.Option(
        600.0, "--max-video-seconds", min=0.1, help="Longest accepted uploaded video (seconds)."
    ),
    workdir: Path | None = typer.Option(
        None, "--workdir", help="The one folder the demo writes to (default: a fresh temporary folder)."
    ),
) -> None:
    """Web demo: upload a video or pick a synthetic clip, type an expression, see the masks."""
    from tgs.app import DemoLimits, describe_limits, loopback

    limits = DemoLimits(max_upload_bytes=int(max_upload_mb * 1024 * 1024), max_video_seconds=max_video_seconds)
    url = f"http://{host}:{port}"
    if not serve:
        console.print(
            f"Start the web demo with [bold]tgs demo --serve[/] (then open {url} in a browser).\n"
            f"It would accept {'; '.join(describe_limits(limits))}; models: {models}.",
            highlight=False,
        )
        return
    from tgs.app.backend import demo_load_spec

    # Ground + Segment serve every request: a missing model stops here, all listed, before a port opens.
    demo_load_spec(models).require()
    if not loopback(host):
        err_console.print(
            f"[yellow]warning[/]: binding {escape_user_text(host)} lets anyone who can reach this machine use the demo "
            "(it has no login). Use --host 127.0.0.1 to keep it local.",
            highlight=False,
        )
    _serve(host, port, models, workdir, max_upload_mb, max_video_seconds)


def _serve(host: str, port: int, models: str, workdir: Path | None, max_upload_mb: float, max_seconds: float) -> None:
    """Serve until Ctrl+C (or SIGTERM); a work folder made here is removed afterwards."""
    import shutil
    import signal
    import tempfile

    from tgs.app import confine_process_writes, serve
    from tgs.cli.common import prepare_process

    prepare_process("auto")  # the server's models load onto the default device
    root = workdir if workdir is not None else Path(tempfile.mkdtemp(prefix="tgs-demo-"))
    confine_process_writes(root)

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)  # stop like Ctrl+C, so the server closes and cleans up
    console.print(f"TGS demo ({models} models) on http://{escape_user_text(host)}:{port} - Ctrl+C to stop.", highlight=False)
    console.print(f"work folder: {escape_user_text(root)}", highlight=False)
    try:
        serve(
            host=host,
            port=port,
            models=models,
            workdir=root,
            max_upload_mb=max_upload_mb,
            max_video_seconds=max_seconds,
            block=True,
        )
    finally:
        if workdir is None:
            shutil.rmtree(root, ignore_errors=True)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_command)
