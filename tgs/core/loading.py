"""The one place a :class:`~tgs.core.load_spec.LoadSpec` becomes loaded models.

- :data:`LOADERS`: loader name (``ModelLoad.loader``) -> the function that builds it;
  :func:`load_model` loads one :class:`~tgs.core.load_spec.ModelLoad`, :func:`load_stages_from`
  a spec's (Grounding DINO, segmenter) pair. Which models a call loads is decided by
  :func:`tgs.core.load_spec.load_spec` alone; the loaders only build what it lists.
- :func:`load_thinker`, :func:`load_stages`: the same for a library
  caller who holds a thinker name or a preset (they build the spec, then load from it).
- :func:`thinker_options`: the options a user may give a thinker (``--thinker-opt``):
  what :func:`tgs.think.registry.build_thinker` accepts minus what the core sets itself
  from the settings and the run (source, device, dtype, batch size).

Process-wide allocator settings are not made here (see ``tgs.cpu_memory``): the CLI sets
them once at its entry point; a library caller may call ``keep_freed_memory`` itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from tgs import fast_paths
from tgs.core.load_spec import LoadSpec, ModelLoad, load_spec
from tgs.core.settings import Settings
from tgs.ground_segment import Grounder, Segmenter
from tgs.presets import Preset
from tgs.think.base import Thinker
from tgs.think.registry import accepted_options, build_thinker, canonical_name

__all__ = [
    "CORE_THINKER_OPTIONS",
    "LOADERS",
    "load_model",
    "load_stages",
    "load_stages_from",
    "load_thinker",
    "public_options",
    "thinker_options",
]

SHARE_OPTION = "share_across_expressions"

CORE_THINKER_OPTIONS: frozenset[str] = frozenset({"source", "device", "dtype", "batch_size", SHARE_OPTION})
"""Thinker options the core sets from the settings, the preset and the run, never from ``--thinker-opt``."""

_SHARE_HINT = "; the preset switch: --set share_across_expressions=false"

SECRET_OPTIONS: tuple[str, ...] = ("api_key",)
"""Thinker options never written to disk in clear."""


def public_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Thinker options as written to manifests and result.json: secrets masked, values JSON-safe, sorted."""
    out: dict[str, Any] = {}
    for key, value in sorted(options.items()):
        if key in SECRET_OPTIONS and value:
            out[key] = "***"
        elif value is None or isinstance(value, (str, int, float, bool)):
            out[key] = value
        else:
            out[key] = repr(value)
    return out


def thinker_options(thinker: str) -> frozenset[str]:
    """The options a user may give ``thinker``; the one table every command checks against."""
    return accepted_options(thinker) - CORE_THINKER_OPTIONS - {"settings"}


def check_thinker_options(thinker: str, options: Mapping[str, Any]) -> None:
    """ValueError naming the unknown options and listing the accepted ones."""
    allowed = thinker_options(thinker)
    unknown = sorted(set(options) - allowed)
    if unknown:
        name = canonical_name(thinker)
        owned = sorted(set(unknown) & CORE_THINKER_OPTIONS)
        where = "set by the command's own options" + (_SHARE_HINT if SHARE_OPTION in owned else "")
        hint = f" ({', '.join(owned)}: {where})" if owned else ""
        raise ValueError(
            f"thinker {name!r} has no option {', '.join(map(repr, unknown))}{hint}; "
            f"accepted: {', '.join(sorted(allowed)) or '(none)'}"
        )


def load_thinker(
    thinker: str,
    settings: Settings,
    options: Mapping[str, Any] | None = None,
    *,
    batch_size: int | None = None,
    preset: Preset | None = None,
) -> Thinker:
    """The thinker ``thinker`` of :func:`~tgs.core.load_spec.load_spec`, built (see :func:`load_model`).

    batch_size: samples per generate call, for thinkers that batch.
    preset: its ``share_across_expressions`` (None: on) is handed to a thinker that accepts it
        (per-video sharing); for another thinker with a local model (Qwen2.5-Omni) sharing is a
        counted fallback (:mod:`tgs.fast_paths`); remote and direct thinkers have nothing to share.
    """
    share = True if preset is None else preset.share_across_expressions
    spec = load_spec(None, settings, thinker=thinker, thinker_options=options, batch_size=batch_size, share=share)
    return load_model(spec.thinker)  # type: ignore[arg-type]


def _build_thinker(load: ModelLoad) -> Thinker:
    """A thinker from its load: the user's options plus the source, device and dtype of its weights."""
    name = canonical_name(load.loader)
    options = dict(load.options.get("options") or {})
    check_thinker_options(name, options)
    accepted = accepted_options(name)
    if load.key is not None:
        options["source"] = load.resolve()
        options["device"] = load.device
        if load.dtype is not None:
            options["dtype"] = load.dtype
    if load.compile and {"decode", "compile"} <= accepted:  # a static-cache decode step, compiled
        options.setdefault("decode", "static")
        options.setdefault("compile", True)
    elif load.compile:
        fast_paths.fell_back("compile", f"thinker {name!r} has no compiled decoding; it runs eagerly")
    batch_size, share = load.options.get("batch_size"), load.options.get("share")
    if batch_size is not None and "batch_size" in accepted:
        options["batch_size"] = batch_size
    if share is not None and SHARE_OPTION in accepted:
        options[SHARE_OPTION] = share
    elif share and load.key is not None:  # a local model that could, but does not, share
        fast_paths.fell_back("think.shared_prefix", f"thinker {name!r} runs every expression of a video in full")
    return build_thinker(name, **options)


def _build_grounder(load: ModelLoad) -> Grounder:
    from tgs.ground.grounding_dino import GroundingDinoGrounder

    return GroundingDinoGrounder.from_pretrained(
        load.resolve(), device=load.device, dtype=load.dtype, compile=load.compile, **load.options
    )


def _build_sam2_image(load: ModelLoad) -> Segmenter:
    from tgs.segment.sam2_image import Sam2ImageSegmenter

    return Sam2ImageSegmenter.from_pretrained(
        load.resolve(), device=load.device, dtype=load.dtype, compile=load.compile, **load.options
    )


def _build_sam2_video(load: ModelLoad) -> Segmenter:
    from tgs.segment.sam2_video import Sam2VideoSegmenter

    options = dict(load.options)
    _eager_video_model("the SAM2-family video model (propagation)", options.pop("device_preprocess", False),
                       load.compile)
    return Sam2VideoSegmenter.from_pretrained(load.resolve(), device=load.device, dtype=load.dtype, **options)


def _eager_video_model(what: str, device_preprocess: bool, compile: bool | str) -> None:
    """Count the GPU fast paths the SAM2-family video models and SAM 3 lack (logged once,
    :mod:`tgs.fast_paths`): they run eagerly and preprocess each frame on the host."""
    if compile:
        fast_paths.fell_back("compile", f"{what} has no compiled form; it runs eagerly")
    if device_preprocess:
        fast_paths.fell_back("device_preprocess", f"{what} preprocesses its frames on the host")


def _build_sam3(load: ModelLoad) -> Any:
    """SAM 3's video or image model (``options["mode"]``): the grounder and the segmenter at once."""
    from tgs.segment.sam3 import Sam3GroundSegmenter

    options = dict(load.options)
    _eager_video_model("SAM 3", options.pop("device_preprocess", False), load.compile)
    return Sam3GroundSegmenter.from_pretrained(load.resolve(), device=load.device, dtype=load.dtype, **options)


LOADERS: dict[str, Callable[[ModelLoad], Any]] = {
    "grounding_dino": _build_grounder,
    "sam2_image": _build_sam2_image,
    "sam2_video": _build_sam2_video,
    "sam3": _build_sam3,
}
"""``ModelLoad.loader`` -> the function that builds it; a thinker's loader is its name (every
thinker is built by :func:`tgs.think.registry.build_thinker`)."""


def load_model(load: ModelLoad) -> Any:
    """The model ``load`` describes, loaded strictly (missing weights fail before any loading)."""
    if load.role == "thinker":
        return _build_thinker(load)
    return LOADERS[load.loader](load)


def load_stages_from(spec: LoadSpec) -> tuple[Grounder, Segmenter]:
    """The spec's Grounding DINO and segmenter, loaded in that order; a segmenter that grounds
    itself (:attr:`~tgs.core.load_spec.LoadSpec.grounds_itself`, SAM 3) is both, one object."""
    if spec.segmenter is None:
        raise ValueError("this load spec has no Ground + Segment stages (built without a preset)")
    if spec.grounder is None:
        stage = load_model(spec.segmenter)
        return stage, stage
    return load_model(spec.grounder), load_model(spec.segmenter)


def load_stages(
    preset: Preset,
    settings: Settings,
    *,
    direct: bool = False,
    frame_batch_size: int = 1,
    device_preprocess: bool | None = None,
    compile: bool | str | None = None,
    mode: str = "benchmark",
) -> tuple[Grounder, Segmenter]:
    """Grounding DINO and the segmenter of :func:`~tgs.core.load_spec.load_spec` (``mode``), loaded strictly.

    direct: the texts grounded are raw expressions (decides the caption period under
    ``caption_period="script"``). dtype: the settings', else the preset's.
    device_preprocess / compile (False, True or a torch.compile backend): handed to the
    image stages (see ``GroundingDinoGrounder``; same results as the host, eager path);
    None: from the settings.
    """
    spec = load_spec(preset, settings, mode, direct=direct, frame_batch_size=frame_batch_size,
                     device_preprocess=device_preprocess, compile=compile)  # fmt: skip
    return load_stages_from(spec)
