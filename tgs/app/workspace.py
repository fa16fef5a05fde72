"""The one folder the demo writes to, and the synthetic clips it offers.

Layout under the root: ``gradio/`` (Gradio's upload cache), ``clips/synthetic-<seed>.mp4``
(generated on first use), ``sessions/session-*/run-*/`` (one temporary folder per browser
session, one per run inside it). Names are made by :mod:`tempfile`, never from user input.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from pathlib import Path

__all__ = [
    "SYNTHETIC_CLIPS",
    "DemoWorkspace",
    "inside",
    "suggested_expression",
    "synthetic_clip_label",
]

SYNTHETIC_CLIPS = (0, 1, 2)
"""Seeds of the synthetic clips offered by the page (:func:`tgs.data.synth.write_video`)."""

_SYNTH_SECONDS = 10.0
_SYNTH_FPS = 10.0
_SYNTH_SIZE = (320, 180)


def inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` lies inside ``folder``, symbolic links and ``..`` resolved."""
    return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(folder))


class DemoWorkspace:
    """The one folder the demo writes to.

    Layout: ``gradio/`` (Gradio's upload cache), ``clips/synthetic-<seed>.mp4`` (generated on
    first use), ``sessions/session-*/run-*/`` (one temporary folder per browser session,
    one per run inside it). ``root=None`` makes a fresh temporary folder.
    """

    def __init__(self, root: Path | None = None) -> None:
        if root is None:
            root = Path(tempfile.mkdtemp(prefix="tgs-demo-"))
        self.root = Path(root).resolve()
        self.gradio_cache = self.root / "gradio"
        self.clips = self.root / "clips"
        self.sessions = self.root / "sessions"
        for folder in (self.gradio_cache, self.clips, self.sessions):
            folder.mkdir(parents=True, exist_ok=True)
        self._clip_lock = threading.Lock()

    def contains(self, path: Path) -> bool:
        """Whether ``path`` (links resolved) lies inside the work folder."""
        return inside(path, self.root)

    def hide_root(self, text: str) -> str:
        """``text`` with the work folder's absolute path taken out of every path in it
        (``/tmp/tgs-demo-x/sessions/s/run/input.mp4`` -> ``sessions/s/run/input.mp4``): what the
        page and the downloadable result.json show, so a visitor never learns the server's folders."""
        return text.replace(str(self.root) + os.sep, "").replace(str(self.root), ".")

    def new_session(self) -> Path:
        """A fresh folder for one browser session's runs."""
        return Path(tempfile.mkdtemp(prefix="session-", dir=self.sessions))

    def new_run(self, session: Path) -> Path:
        """A fresh run folder inside ``session`` (which must be one of this workspace's sessions)."""
        if Path(session).resolve().parent != self.sessions or not Path(session).is_dir():
            raise ValueError(f"not a session folder of this workspace: {session}")
        return Path(tempfile.mkdtemp(prefix="run-", dir=session))

    def drop_session(self, session: str | Path | None) -> None:
        """Remove a session's folder (called when the browser session ends); others are left alone."""
        if session is None:
            return
        folder = Path(session)
        if folder.resolve().parent == self.sessions:
            shutil.rmtree(folder, ignore_errors=True)

    def synthetic_clip(self, seed: int) -> Path:
        """The synthetic clip of ``seed`` (10 s, 10 fps, 320x180, with audio), written on first use."""
        from tgs.data.synth import write_video

        path = self.clips / f"synthetic-{int(seed)}.mp4"
        with self._clip_lock:
            if not path.is_file():
                partial = self.clips / f"synthetic-{int(seed)}.partial.mp4"
                write_video(partial, _SYNTH_SECONDS, _SYNTH_FPS, _SYNTH_SIZE, int(seed), with_audio=True)
                partial.replace(path)
        return path


def synthetic_clip_label(seed: int) -> str:
    """The page's name for a synthetic clip: what is in it, so the user can refer to it."""
    from tgs.data.synth import make_video

    scene = make_video(seed, 0, duration=_SYNTH_SECONDS)
    objects = ", ".join(f"{o.colour} {o.shape}" for o in scene.objects)
    return f"Synthetic clip {seed}: {objects}"


def suggested_expression(seed: int) -> str:
    """An expression that names the first object of a synthetic clip."""
    from tgs.data.synth import make_video

    first = make_video(seed, 0, duration=_SYNTH_SECONDS).objects[0]
    return f"the {first.colour} {first.shape}"
