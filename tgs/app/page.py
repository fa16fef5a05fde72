"""The Gradio page and its server: layout, event wiring, locked-down launch settings."""

from __future__ import annotations

import functools
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tgs.app.backend import MAX_EXPRESSIONS, THINKER_CHOICES, UPLOAD_CHOICE, DemoBackend, SegmentFn
from tgs.app.uploads import UPLOAD_SUFFIXES, DemoLimits, mb
from tgs.app.workspace import DemoWorkspace, inside
from tgs.errors import TGSError

if TYPE_CHECKING:
    import gradio as gr

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "build_demo", "confine_process_writes", "loopback", "serve"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
_SESSION_TTL_S = 6 * 3600


_CSS = """
#tgs-status p { margin: 0.25em 0; }
#tgs-models-banner { border-left: 4px solid #d97706; padding: 0.25em 0.75em; }
#tgs-timings table { font-size: 0.85em; width: auto; }
#tgs-timings th, #tgs-timings td { padding: 1px 12px !important; }
"""


_HEADER = (
    "# TGS: segment any video\n\n"
    "Upload a video (or pick a synthetic clip), say which object you mean, and the agent thinks "
    "(names the object), grounds it (boxes) and segments it (masks) on every analysed frame."
)


def _models_banner(models: str) -> str:
    if models == "tiny":
        return (
            "**Running with untrained tiny models**: the answers, boxes and masks are random. "
            "This mode checks that the demo works end to end; start it with `--models real` for real results."
        )
    return "Models: the released weights (`--models real`)."


def build_demo(
    *,
    models: str = "real",
    segment_fn: SegmentFn | None = None,
    workdir: Path | None = None,
    max_upload_mb: float = 200,
    max_video_seconds: float = 600.0,
) -> gr.Blocks:
    """The demo page, ready to ``launch()``: the returned Blocks' launch applies the demo's limits.

    models: "real" or "tiny" (untrained; the page says so). segment_fn: the pipeline, by
    default :func:`tgs.core.segment.segment_video`. workdir: the one folder the demo writes
    to (default: a fresh temporary folder). max_upload_mb: upload limit (MiB).

    Gradio reads its upload folder from the environment, so this points ``GRADIO_TEMP_DIR``
    at ``workdir/gradio`` and sets ``GRADIO_ANALYTICS_ENABLED=False`` for the process.
    """
    workspace = DemoWorkspace(workdir)
    limits = DemoLimits(max_upload_bytes=int(max_upload_mb * 1024 * 1024), max_video_seconds=max_video_seconds)
    backend = DemoBackend(workspace, models=models, segment_fn=segment_fn, limits=limits)
    os.environ["GRADIO_TEMP_DIR"] = str(workspace.gradio_cache)
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    gr = _import_gradio()  # after GRADIO_TEMP_DIR: some Gradio modules read it on import
    title = "TGS demo (untrained tiny models)" if models == "tiny" else "TGS demo"
    with _blocks_class()(backend, title=title, analytics_enabled=False) as demo:
        _layout(gr, backend)
    return demo


def _import_gradio():  # -> module gradio
    try:
        import gradio
    except ImportError as exc:
        raise TGSError("the web demo needs Gradio, which is not installed", fix="pip install 'tgs[demo]'") from exc
    return gradio


def _layout(gr: Any, backend: DemoBackend) -> None:
    from tgs.presets import DEFAULT_PRESET, PRESETS

    gr.Markdown(_HEADER, elem_id="tgs-header")
    gr.Markdown(_models_banner(backend.models), elem_id="tgs-models-banner")
    session = gr.State(None, time_to_live=_SESSION_TTL_S, delete_callback=backend.workspace.drop_session)
    with gr.Row():
        with gr.Column(scale=1):
            choice = gr.Dropdown(list(backend.clip_choices), value=UPLOAD_CHOICE, label="Video", elem_id="tgs-clip")
            upload = gr.File(
                label=f"Upload ({', '.join(UPLOAD_SUFFIXES)}; up to {mb(backend.limits.max_upload_bytes)})",
                file_types=list(UPLOAD_SUFFIXES),
                type="filepath",
                elem_id="tgs-upload",
            )
            expression = gr.Textbox(
                label=f"Expressions (one per line, up to {MAX_EXPRESSIONS}; one colour each)",
                placeholder="e.g. the object making the loudest sound",
                lines=2,
                max_length=(backend.limits.max_expression_chars + 1) * MAX_EXPRESSIONS,
                elem_id="tgs-expression",
            )
            thinker = gr.Dropdown(list(THINKER_CHOICES), value="ref-thinker", label="Thinker", elem_id="tgs-thinker")
            preset = gr.Radio(list(PRESETS), value=DEFAULT_PRESET, label="Preset", elem_id="tgs-preset")
            fps = gr.Slider(0.5, 5.0, value=1.0, step=0.5, label="Keyframes grounded per second (masks on every frame)", elem_id="tgs-fps")
            submit = gr.Button("Segment", variant="primary", elem_id="tgs-submit")
        with gr.Column(scale=1):
            status = gr.Markdown("", line_breaks=True, elem_id="tgs-status")
            overlay = gr.Video(label="Overlay", interactive=False, elem_id="tgs-overlay")
            answer = gr.Markdown("", elem_id="tgs-answer")
            reasoning = gr.Textbox(label="Reasoning chain", lines=6, interactive=False, elem_id="tgs-reasoning")
            timings = gr.Markdown("", elem_id="tgs-timings")
            result_file = gr.File(label="result.json", interactive=False, elem_id="tgs-result")

    def on_choice(picked: str, current: str) -> str:
        return backend.suggestion(picked, current)

    def on_submit(session_dir, picked, uploaded, text, thinker_name, preset_name, rate, progress=gr.Progress()):
        if session_dir is None or not Path(session_dir).is_dir():
            session_dir = str(backend.workspace.new_session())
        outcome = backend.run(
            session=Path(session_dir),
            choice=picked,
            upload=uploaded,
            expression=text,
            thinker=thinker_name,
            preset=preset_name,
            fps=rate,
            progress=progress,  # segment_video reports progress(fraction, desc=...), as gr.Progress takes
        )
        files = (outcome.overlay_video, outcome.result_json)
        overlay_path, json_path = (None if f is None else str(f) for f in files)
        return (session_dir, outcome.status, overlay_path, outcome.answer, outcome.reasoning, outcome.timings, json_path)

    choice.change(on_choice, inputs=[choice, expression], outputs=expression)
    submit.click(
        on_submit,
        inputs=[session, choice, upload, expression, thinker, preset, fps],
        outputs=[session, status, overlay, answer, reasoning, timings, result_file],
        concurrency_limit=1,  # one pipeline at a time: the models are large
    )


def _theme(gr: Any):
    """Gradio's default look with fonts the server ships (no Google Fonts request)."""
    return gr.themes.Default(
        font=(gr.themes.LocalFont("Source Sans Pro"), "ui-sans-serif", "system-ui", "sans-serif"),
        font_mono=(gr.themes.LocalFont("IBM Plex Mono"), "ui-monospace", "Consolas", "monospace"),
    )


@functools.cache
def _blocks_class():  # -> type[gr.Blocks]; made on first use so that Gradio is imported only then
    gr = _import_gradio()

    class DemoBlocks(gr.Blocks):
        """Blocks whose ``launch`` defaults to the demo's safe settings and refuses share links."""

        def __init__(self, backend: DemoBackend, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.tgs_backend = backend

        def launch(self, **options: Any):  # type: ignore[override]
            if options.get("share"):
                raise ValueError("the TGS demo does not create public share links")
            workspace = self.tgs_backend.workspace
            served = [str(workspace.sessions)]  # run outputs; Gradio copies them into its cache to serve
            if any(not inside(Path(p), workspace.root) for p in options.get("allowed_paths") or []):
                raise ValueError(f"allowed_paths must stay inside the demo's work folder {workspace.root}")
            settings: dict[str, Any] = {
                "server_name": DEFAULT_HOST,
                "share": False,
                "max_file_size": self.tgs_backend.limits.max_upload_bytes,
                "allowed_paths": served,
                "ssr_mode": False,
                "mcp_server": False,
                "pwa": False,
                "enable_monitoring": False,
                "footer_links": [],
                "theme": _theme(gr),
                "css": _CSS,
            }
            settings.update(options)
            return super().launch(**settings)

    return DemoBlocks


def serve(
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    models: str = "real",
    workdir: Path | None = None,
    max_upload_mb: float = 200,
    max_video_seconds: float = 600.0,
    segment_fn: SegmentFn | None = None,
    block: bool = True,
) -> gr.Blocks:
    """Build the demo and serve it at ``http://host:port``.

    block=True waits until the server is interrupted (Ctrl+C), then closes it and, when
    ``workdir`` was None, removes the temporary work folder. block=False returns the
    running demo (``demo.close()`` stops it; the work folder is the caller's to remove).
    """
    demo = build_demo(
        models=models,
        segment_fn=segment_fn,
        workdir=workdir,
        max_upload_mb=max_upload_mb,
        max_video_seconds=max_video_seconds,
    )
    demo.queue(default_concurrency_limit=1)
    demo.launch(server_name=host, server_port=port, prevent_thread_lock=True, quiet=True)
    if not block:
        return demo
    try:
        demo.block_thread()
    finally:
        demo.close()
        if workdir is None:
            shutil.rmtree(demo.tgs_backend.workspace.root, ignore_errors=True)
    return demo


def confine_process_writes(workdir: Path) -> None:
    """Send this process's incidental writes into ``workdir``: for a process that only serves the demo.

    Libraries the demo loads write scratch and cache files of their own: Python's
    ``tempfile`` users (Gradio's editor history, torch's compile cache) go to
    ``workdir/tmp``, matplotlib's font cache (imported by Gradio) to ``workdir/cache``
    unless ``MPLCONFIGDIR`` is set, and Gradio's uploads to ``workdir/gradio``. Model
    caches (``TGS_HOME``, ``HF_HOME``) are left where they are: the weights live there.
    Call it before Gradio or torch is imported.
    """
    import tempfile

    scratch, cache = Path(workdir) / "tmp", Path(workdir) / "cache"
    scratch.mkdir(parents=True, exist_ok=True)
    cache.mkdir(parents=True, exist_ok=True)
    os.environ["TMPDIR"] = str(scratch)
    tempfile.tempdir = str(scratch)
    os.environ.setdefault("MPLCONFIGDIR", str(cache / "matplotlib"))
    os.environ["GRADIO_TEMP_DIR"] = str(Path(workdir) / "gradio")
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"


def loopback(host: str) -> bool:
    """Whether ``host`` names only this machine (anything else exposes the demo to the network)."""
    return host in ("127.0.0.1", "localhost", "::1") or host.startswith("127.")
