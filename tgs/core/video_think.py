"""Think about a whole video: what the thinker sees of it, and the one Think call of a session.

The thinker sees a summary of the whole video (:func:`think_plan`), the same for every
expression: :data:`THINK_FRAMES` frames spread evenly over it and either the whole audio track
(videos up to :data:`DIGEST_SECONDS`) or the second of audio starting at each summary frame.
All expressions are handed to the thinker together with that one clip (it shares the clip's
work among them). Without a :class:`~tgs.model_cache.ModelCache` the thinker is released
before Ground + Segment load.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tgs.core.stages import think_items
from tgs.errors import TGSError, ThinkerError
from tgs.types import Clip, Query, Thought

__all__ = ["DIGEST_SECONDS", "DIGEST_SNIPPET_SECONDS", "THINK_FRAMES", "summary_clip", "think_plan", "think_video"]

THINK_FRAMES = 10
"""Frames the thinker sees, spread over the whole video: Ref-Thinker's trained input."""

DIGEST_SECONDS = 10.0
"""Videos up to this long are heard whole by the thinker; longer ones through snippets."""

DIGEST_SNIPPET_SECONDS = 1.0
"""Audio heard per summary frame of a long video (one Ref-AVS second per frame)."""


def thinker_options_for(thinker: str, options: Mapping[str, Any], duration: float) -> dict[str, Any]:
    """The thinker's options for a video of ``duration`` s: Omni hears a long video's 10 s digest
    at one frame per second of it."""
    out = dict(options)
    if thinker == "omni" and duration > DIGEST_SECONDS:
        out.setdefault("fps", 1.0)
    return out


def think_plan(duration: float) -> tuple[list[float], list[tuple[float, float]] | None]:
    """(target times of the summary frames, audio segments heard; None = the whole track).

    THINK_FRAMES frames spread evenly over the video (frame k on screen at ``k * duration / 10``).
    A video up to DIGEST_SECONDS long is heard whole; a longer one through the
    DIGEST_SNIPPET_SECONDS of audio that start at each summary frame, so the thinker gets
    a 10-second digest, frame k paired with audio second k as in a Ref-AVS clip.
    """
    from tgs.data.media import sample_times

    times = sample_times(duration, THINK_FRAMES)
    if duration <= DIGEST_SECONDS:
        return times, None
    return times, [(t, t + DIGEST_SNIPPET_SECONDS) for t in times]


def summary_clip(video: Path, duration: float, has_audio: bool) -> Clip:
    """The clip the thinker sees: see :func:`think_plan`."""
    from tgs.data.audio_stream import stream_audio_mono
    from tgs.data.media import REF_AVS_SAMPLE_RATE, load_video_frames

    _, segments = think_plan(duration)
    frames, times = load_video_frames(video, THINK_FRAMES)
    audio = stream_audio_mono(video, REF_AVS_SAMPLE_RATE, segments=segments) if has_audio else None
    if audio is not None and audio.shape[0] == 0:
        audio = None
    return Clip(
        frames=frames,
        audio=audio,
        sample_rate=REF_AVS_SAMPLE_RATE if audio is not None else None,
        frame_times=times,
        source=str(video),
    )


def think_video(
    thinker: Any, clip: Clip | None, queries: Sequence[Query], video: Path, run: Callable[..., Any]
) -> list[Thought]:
    """One thought per query about ``clip`` (None: the direct thinker, which needs no pixels), in
    one thinker call; a failed thought fails the call (ThinkerError naming the video).
    run: the caller's timer (``run(step, fn, *args)``)."""
    outcomes = run("think", think_items, thinker, [(q, clip) for q in queries])
    thoughts = []
    for outcome in outcomes:
        if isinstance(outcome, TGSError):
            raise outcome
        if isinstance(outcome, Exception):
            raise ThinkerError(f"the {thinker.name} thinker failed on {video}: {outcome}", path=video) from outcome
        thoughts.append(outcome)
    return thoughts


def think_record(clip: Clip | None, duration: float | None) -> dict[str, Any]:
    """What the thinker saw, for result.json (the one builder of this record, every mode's): the
    clip's frame times and the audio it heard, ``"whole"`` or the ``"snippets"`` of a video longer
    than DIGEST_SECONDS (:func:`think_plan`). duration: the video's, whose plan says which; None: the
    clip is the whole input, heard whole (a benchmark sample). ``clip`` None: nothing (direct)."""
    if clip is None:
        return {"frame_times": [], "audio": None, "audio_seconds": 0.0}
    snippets = duration is not None and think_plan(duration)[1] is not None
    heard = 0.0 if clip.audio is None else clip.audio.shape[0] / float(clip.sample_rate or 1)
    return {
        "frame_times": [round(float(t), 6) for t in clip.frame_times],
        "audio": None if clip.audio is None else ("snippets" if snippets else "whole"),
        "audio_seconds": round(heard, 6),
    }
