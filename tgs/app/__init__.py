"""The web demo: segment a video by a referring expression, in the browser (Gradio).

The page takes a video (an upload, or a synthetic clip generated on demand), an
expression, a thinker and a preset; it calls :func:`tgs.core.segment.segment_video` and
shows the reasoning chain, the overlay video and the time spent in each stage.

A demo server may be reachable by other people, so it is locked down by default:

- it binds ``127.0.0.1``; share links are refused; Gradio's analytics, version check,
  MCP server, PWA manifest and monitoring are off; the theme's fonts are served by the
  server itself, so the page loads with no outside network;
- uploads are limited twice: Gradio's ``max_file_size`` stops an oversize upload while it
  streams, and :func:`probe_upload` checks every file before use: size, a video suffix,
  and the content itself (PyAV must find an MP4/MOV, Matroska/WebM or AVI container
  with a decodable video stream, at most ``max_video_seconds`` long). A rejected upload
  shows its reason in the page's status line;
- every file the demo writes lives under one work folder (:class:`DemoWorkspace`):
  Gradio's upload cache (``GRADIO_TEMP_DIR`` points there), the synthetic clips, and one
  temporary folder per browser session holding one folder per run. A user's file name is
  never used as a path (the upload is linked to ``input.<suffix>`` with our suffix), a
  result outside its run folder is refused, and Gradio may serve only the sessions
  folder (``allowed_paths``). A session's folder is removed when the session ends.

Modules: :mod:`~tgs.app.uploads` (limits, probe), :mod:`~tgs.app.workspace` (folders,
synthetic clips), :mod:`~tgs.app.backend` (one request, no Gradio), :mod:`~tgs.app.page`
(the Gradio page and server). Gradio is an optional dependency (``pip install
'tgs[demo]'``), imported only when a page is built.
"""

from tgs.app.backend import THINKER_CHOICES, UPLOAD_CHOICE, DemoBackend, DemoOutcome
from tgs.app.page import DEFAULT_HOST, DEFAULT_PORT, build_demo, confine_process_writes, loopback, serve
from tgs.app.uploads import UPLOAD_SUFFIXES, DemoLimits, VideoProbe, describe_limits, probe_upload
from tgs.app.workspace import SYNTHETIC_CLIPS, DemoWorkspace

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "SYNTHETIC_CLIPS",
    "THINKER_CHOICES",
    "UPLOAD_CHOICE",
    "UPLOAD_SUFFIXES",
    "DemoBackend",
    "DemoLimits",
    "DemoOutcome",
    "DemoWorkspace",
    "VideoProbe",
    "build_demo",
    "confine_process_writes",
    "describe_limits",
    "loopback",
    "probe_upload",
    "serve",
]
