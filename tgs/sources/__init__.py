"""Sources of frames for the live mode: files, cameras, network streams and standard input.

:func:`detect_source` says what a spec names; :func:`open_source` opens it as a
:class:`LiveSource` (a reader thread, a real-time or every-frame policy, ring buffers for the
thinker's window, reconnects). :func:`fetch_finite` copies a finite network video (a file over
http(s)) to a local file, so it is segmented exactly as that file would be. docs/live.md.
"""

from tgs.sources.fetch import fetch_finite, is_finite, is_url
from tgs.sources.kinds import SourceKind, detect_source
from tgs.sources.live import Gap, LiveSource, Policy, ReconnectPolicy, SourceFrame, SourceStats, open_source
from tgs.sources.rings import ThinkWindow

__all__ = [
    "Gap",
    "LiveSource",
    "Policy",
    "ReconnectPolicy",
    "SourceFrame",
    "SourceKind",
    "SourceStats",
    "ThinkWindow",
    "detect_source",
    "fetch_finite",
    "is_finite",
    "is_url",
    "open_source",
]
