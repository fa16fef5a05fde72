"""What the page does, without Gradio: stage the input, call the pipeline, check and format results."""

from __future__ import annotations

import logging
import os
import shutil
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tgs.app.uploads import DemoLimits, probe_upload
from tgs.app.workspace import (
    SYNTHETIC_CLIPS,
    DemoWorkspace,
    inside,
    suggested_expression,
    synthetic_clip_label,
)
from tgs.errors import MediaError, TGSError, TGSWarning
from tgs.model_cache import ModelCache
from tgs.types import Thought

if TYPE_CHECKING:
    from tgs.core.load_spec import LoadSpec
    from tgs.core.segment import SegmentVideoResult
    from tgs.core.settings import Settings

__all__ = [
    "MAX_EXPRESSIONS",
    "THINKER_CHOICES",
    "UPLOAD_CHOICE",
    "DemoBackend",
    "DemoOutcome",
    "SegmentFn",
    "demo_load_spec",
    "demo_settings",
    "escape_markdown",
    "format_answer",
    "format_timings",
]

logger = logging.getLogger(__name__)

THINKER_CHOICES = ("ref-thinker", "direct", "omni")
"""Thinkers offered by the page ("api" needs an endpoint and a key, so it is CLI-only)."""

UPLOAD_CHOICE = "Uploaded video"
"""The clip choice that means "the uploaded file" (the others are synthetic clips)."""

SegmentFn = Callable[..., "SegmentVideoResult"]
"""Called like :func:`tgs.core.segment.segment_video` with (video, expressions, *, thinker,
preset, settings, out, fps=None (dense output), keyframe_fps, progress, cache); returns its result (or an object with the same fields)."""

MAX_EXPRESSIONS = 8
"""Expressions one request may ask about (one per line)."""

def demo_settings(models: str) -> Settings:
    """The settings of every request of a demo serving the ``models`` set ("real" or "tiny")."""
    from tgs.core.settings import Settings

    if models not in ("real", "tiny"):
        raise ValueError(f"models: expected 'real' or 'tiny', got {models!r}")
    return Settings.tiny(device="auto") if models == "tiny" else Settings()


def demo_load_spec(models: str, *, thinker: str = "direct", preset: str = "best") -> LoadSpec:
    """What a request with ``thinker`` and ``preset`` loads; the server checks the Ground + Segment
    models of the default request (``direct``, ``best``) before it opens a port. Dense output, as
    :meth:`DemoBackend.run` asks for (``fps=None``)."""
    from tgs.core.segment import segment_load_spec

    return segment_load_spec(thinker, preset, demo_settings(models), dense=True)


@dataclass(frozen=True)
class DemoOutcome:
    """What the page shows after a request.

    status: one line of Markdown (done, or the error and its fix). The other fields are
    empty when the request failed: overlay video and result file (inside the run folder),
    the thinker's answer (Markdown), its reasoning chain (plain text), stage timings (Markdown).
    """

    status: str
    overlay_video: Path | None = None
    result_json: Path | None = None
    answer: str = ""
    reasoning: str = ""
    timings: str = ""

    @property
    def ok(self) -> bool:
        return self.overlay_video is not None


_MARKDOWN_SPECIALS = set("\\`*_{}[]()#+-.!|<>~")


def escape_markdown(text: str) -> str:
    """``text`` with Markdown's special characters escaped (model output is shown verbatim)."""
    return "".join("\\" + c if c in _MARKDOWN_SPECIALS else c for c in text)


def format_timings(timings: Mapping[str, float]) -> str:
    """Step timings (seconds) as a Markdown table in the order given, ending with the total.

    The total is the pipeline's own ``total`` when it reports one (wall time of the call),
    else the sum of the steps.
    """
    steps = {str(k): float(v) for k, v in timings.items() if k != "total"}
    total = float(timings["total"]) if "total" in timings else sum(steps.values())
    rows = ["| step | seconds |", "|---|---:|"]
    rows += [f"| {escape_markdown(step)} | {seconds:.2f} |" for step, seconds in steps.items()]
    rows.append(f"| **total** | **{total:.2f}** |")
    return "\n".join(rows)


def format_answer(thought: Thought, object_text: str | None) -> str:
    """The thinker's answer (fine and simplified object, or null) and the text that was grounded."""
    if thought.is_null:
        parts = ["**answer:** nothing in the video matches the expression (null)"]
    else:
        parts = [
            f"**{label}:** {'(missing)' if value is None else escape_markdown(value)}"
            for label, value in (("object", thought.f_object), ("simplified", thought.s_object))
        ]
    if object_text is not None:
        parts.append(f"**grounded:** {escape_markdown(object_text)}")
    return " · ".join(parts)


class DemoBackend:
    """Everything the page does, without Gradio: stage the input, call the pipeline, check results.

    segment_fn: the pipeline (default :func:`tgs.core.segment.segment_video`, imported on
    first use); models: "real" or "tiny" (untrained, for tests and install checks), made
    into the :class:`~tgs.core.settings.Settings` of every call.
    model_cache: the models kept loaded between requests, for the server's lifetime
    (default: a new :class:`~tgs.model_cache.ModelCache` holding one thinker and one
    Grounding DINO + SAM2 pair); passed to every ``segment_fn`` call as ``cache``.
    """

    def __init__(
        self,
        workspace: DemoWorkspace,
        *,
        models: str = "real",
        segment_fn: SegmentFn | None = None,
        limits: DemoLimits | None = None,
        model_cache: ModelCache | None = None,
    ) -> None:
        self.workspace = workspace
        self.models = models
        self.settings = demo_settings(models)
        self.limits = limits or DemoLimits()
        self._segment_fn = segment_fn
        self.model_cache = model_cache if model_cache is not None else ModelCache()
        self.clip_choices: dict[str, int | None] = {UPLOAD_CHOICE: None}
        self.clip_choices.update({synthetic_clip_label(seed): seed for seed in SYNTHETIC_CLIPS})

    @property
    def segment_fn(self) -> SegmentFn:
        if self._segment_fn is None:
            from tgs.core.segment import segment_video

            self._segment_fn = segment_video
        return self._segment_fn

    def suggestion(self, choice: str, current: str) -> str:
        """The expression box after a clip is picked: a synthetic clip suggests one if the box is empty."""
        seed = self.clip_choices.get(choice)
        if seed is None or (current or "").strip():
            return current
        return suggested_expression(seed)

    def stage_input(self, choice: str, upload: str | Path | None, run_dir: Path) -> Path:
        """The video to segment, linked into ``run_dir`` under a name of ours; MediaError if unusable."""
        if choice not in self.clip_choices:
            raise MediaError(f"unknown clip choice {choice!r}", fix=f"pick one of: {', '.join(self.clip_choices)}")
        seed = self.clip_choices[choice]
        if seed is not None:
            source, suffix = self.workspace.synthetic_clip(seed), ".mp4"
        else:
            if upload is None or not str(upload):
                raise MediaError("no video uploaded", fix="upload a video or pick a synthetic clip")
            source = Path(upload)
            if not inside(source, self.workspace.gradio_cache) or not source.is_file():
                raise MediaError("the upload is not in the demo's upload folder", fix="upload the video again")
            suffix = probe_upload(source, self.limits).suffix
        target = run_dir / f"input{suffix}"
        try:
            os.link(source, target)
        except OSError:
            shutil.copyfile(source, target)
        return target

    def check_expression(self, expression: str | None) -> str:
        text = " ".join((expression or "").split())
        if not text:
            raise ValueError("the expression is empty: describe the object to segment, e.g. 'the barking dog'")
        if len(text) > self.limits.max_expression_chars:
            raise ValueError(
                f"the expression has {len(text)} characters; at most {self.limits.max_expression_chars} are accepted"
            )
        return text

    def check_expressions(self, expressions: str | None) -> list[str]:
        """One expression per non-empty line of the box (at most :data:`MAX_EXPRESSIONS`)."""
        lines = [line for line in (expressions or "").splitlines() if line.strip()]
        if not lines:
            return [self.check_expression(expressions)]
        if len(lines) > MAX_EXPRESSIONS:
            raise ValueError(f"{len(lines)} expressions given; at most {MAX_EXPRESSIONS} per request (one per line)")
        return [self.check_expression(line) for line in lines]

    def run(
        self,
        *,
        session: Path,
        choice: str,
        upload: str | Path | None,
        expression: str | None,
        thinker: str,
        preset: str,
        fps: float,
        progress: Callable[..., Any] | None = None,
    ) -> DemoOutcome:
        """Segment one video; failures come back as an outcome with an error status (never raised)."""
        from tgs.presets import PRESETS

        run_dir = self.workspace.new_run(session)
        try:
            if thinker not in THINKER_CHOICES:
                raise ValueError(f"unknown thinker {thinker!r}; pick one of {', '.join(THINKER_CHOICES)}")
            if preset not in PRESETS:
                raise ValueError(f"unknown preset {preset!r}; pick one of {', '.join(PRESETS)}")
            if not (0 < float(fps) <= 30):
                raise ValueError(f"keyframes per second: expected a value in (0, 30], got {fps}")
            texts = self.check_expressions(expression)
            video = self.stage_input(choice, upload, run_dir)
            with warnings.catch_warnings(record=True) as caught:  # e.g. a short clip's padded audio
                warnings.simplefilter("always", TGSWarning)
                result = self.segment_fn(
                    video,
                    texts,
                    thinker=thinker,
                    preset=preset,
                    settings=self.settings,
                    out=run_dir / "result",
                    fps=None,  # dense: a mask on every frame, the overlay at its rate (as demo_load_spec says)
                    keyframe_fps=float(fps),  # the slider: frames grounded per second
                    progress=progress,
                    cache=self.model_cache,
                )
            notes = [str(w.message) for w in caught if issubclass(w.category, TGSWarning)]
            return self._outcome(result, run_dir, notes)
        except (TGSError, ValueError) as exc:
            logger.info("demo request refused: %s", exc)
            return DemoOutcome(status=f"**Error:** {escape_markdown(self.workspace.hide_root(str(exc)))}")
        except Exception as exc:  # the page must answer; the log keeps the traceback
            logger.exception("demo request failed")
            return DemoOutcome(
                status=f"**Internal error** ({type(exc).__name__}): "
                f"{escape_markdown(self.workspace.hide_root(str(exc)))}"
            )

    def _outcome(self, result: SegmentVideoResult, run_dir: Path, notes: Sequence[str] = ()) -> DemoOutcome:
        """What the page shows of a finished call; refuses outputs outside ``run_dir``.

        notes: the warnings raised during the call (shown in plain words beside the result's own)."""
        for produced in (result.overlay_video, result.result_json):
            if not inside(Path(produced), run_dir):
                raise RuntimeError(f"the pipeline wrote {Path(produced).name} outside its run folder; not serving it")
        if not Path(result.overlay_video).is_file():
            raise RuntimeError("the pipeline reported an overlay video that does not exist")
        timings = dict(result.timings)
        total = float(timings["total"]) if "total" in timings else sum(timings.values())
        status = [f"**Done** in {total:.1f} s."]
        if result.untrained:
            status.append("Untrained tiny models: the masks are meaningless.")
        shown = list(dict.fromkeys([*result.warnings, *notes]))  # each once, in order
        status += [escape_markdown(self.workspace.hide_root(note)) for note in shown]
        result_json = Path(result.result_json)
        if result_json.is_file():  # served to the visitor: no absolute server paths in it
            result_json.write_text(self.workspace.hide_root(result_json.read_text(encoding="utf-8")), encoding="utf-8")
        return DemoOutcome(
            status=" ".join(status),
            overlay_video=Path(result.overlay_video),
            result_json=result_json if result_json.is_file() else None,
            answer=_answers(result),
            reasoning=_reasonings(result),
            timings=format_timings(timings),
        )


def _answers(result: SegmentVideoResult) -> str:
    """The answer of every expression; numbered when there are several."""
    outputs = list(getattr(result, "expressions", ()))
    if len(outputs) <= 1:
        return format_answer(result.thought, result.object_text)
    return "\n\n".join(
        f"**{o.index + 1}. {escape_markdown(o.expression)}** · {format_answer(o.thought, o.object_text)}"
        for o in outputs
    )


def _reasonings(result: SegmentVideoResult) -> str:
    outputs = list(getattr(result, "expressions", ()))
    if len(outputs) <= 1:
        return result.thought.reasoning or result.thought.raw
    return "\n\n".join(f"{o.index + 1}. {o.thought.reasoning or o.thought.raw}" for o in outputs)
