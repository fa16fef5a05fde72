"""The pipeline core and public Python API: load once, then call on a video and its expressions.

::

    from tgs.core import Pipeline, Settings

    pipe = Pipeline.load(thinker="ref-thinker", preset="best",
                         settings=Settings(device="cuda", sources={"thinker": "/models/ref-thinker"}))
    for r in pipe("clip.mp4", ["the dog barking", "the man speaking"]):
        print(r.thought.s_object, r.masks.shape)   # bool [T, H, W]

- :class:`Settings` (``tgs.core.settings``): device, dtype, model sources ("tiny" is a source);
- :class:`Pipeline` (``tgs.core.flow``): Think -> Ground -> Segment over videos, a
  generator of :class:`ExpressionResult`;
- :func:`segment_video` (``tgs.core.segment``): a video file of any length with several
  expressions into a mask on every frame (dense output, ``tgs.core.dense``: PNG masks,
  masks.json, an overlay video at the source's rate with its audio) and result.json;
  ``fps=N`` for N sampled frames per second instead;
- :meth:`Pipeline.open_video` / :func:`open_video` (``tgs.core.segment``): a video session
  (``tgs.core.session``) yielding one :class:`tgs.types.FrameResult` per frame as it is made.
"""

from __future__ import annotations

from typing import Any

from tgs.core.flow import ExpressionResult, Pipeline, VideoItems
from tgs.core.settings import Settings

__all__ = ["ExpressionResult", "Pipeline", "Settings", "VideoItems", "open_video", "segment_video"]


def __getattr__(name: str) -> Any:
    if name in ("segment_video", "open_video"):  # imported on use: it pulls in video decoding and encoding
        from tgs.core import segment

        return getattr(segment, name)
    raise AttributeError(f"module 'tgs.core' has no attribute {name!r}")
