"""The one place settings, a preset and a thinker name become loaded stage objects.

- :func:`thinker_requests` / :func:`stage_requests`: the (role, registry key) of every
  model a thinker or a preset needs, so a caller checks them all before loading any;
- :func:`thinker_options`: the options a user may give a thinker (``--thinker-opt``):
  what :func:`tgs.think.registry.build_thinker` accepts minus what the core sets itself
  from the settings and the run (source, device, dtype, batch size);
- :func:`load_thinker`, :func:`load_stages`: strict loads through the model registry.

Process-wide allocator settings are not made here (see ``tgs.cpu_memory``): the CLI sets
them once at its entry point; a library caller may call ``keep_freed_memory`` itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tgs.core.settings import Settings
from tgs.pipeline import Grounder, Segmenter
from tgs.presets import Preset
from tgs.think.base import Thinker
from tgs.think.registry import THINKER_MODEL_KEYS, accepted_options, build_thinker, canonical_name

__all__ = [
    "CORE_THINKER_OPTIONS",
    "load_grounder",
    "load_propagator",
    "load_stages",
    "load_thinker",
    "propagation_request",
    "public_options",
    "stage_requests",
    "thinker_options",
    "thinker_requests",
]

CORE_THINKER_OPTIONS: frozenset[str] = frozenset({"source", "models", "device", "dtype", "batch_size"})
"""Thinker options the core sets from the settings and the run, never from ``--thinker-opt``."""

SHARE_OPTION = "share_across_expressions"

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


def thinker_requests(thinker: str) -> list[tuple[str, str]]:
    """(role, registry key) of the thinker's weights; none for ``direct`` and ``api``."""
    key = THINKER_MODEL_KEYS.get(canonical_name(thinker))
    return [] if key is None else [("thinker", key)]


def stage_requests(preset: Preset) -> list[tuple[str, str]]:
    """(role, registry key) of Grounding DINO and the SAM2 model the preset segments with; with
    ``segmenter=sam3`` only SAM 3 (its source is the Segment role's, ``--sam2``)."""
    if preset.segmenter == "sam3":
        return [("sam2", preset.sam_model_key)]
    return [("grounding_dino", "grounding_dino"), ("sam2", preset.sam_model_key)]


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
        hint = f" ({', '.join(owned)}: set by the command's own options)" if owned else ""
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
    share_across_expressions: bool | None = None,
) -> Thinker:
    """The thinker ``thinker`` built from user ``options`` plus the settings' source, device and dtype.

    batch_size: samples per generate call, for thinkers that batch.
    share_across_expressions: handed to a thinker that accepts it (per-video sharing);
        ignored by the others, which have nothing to share.
    """
    name = canonical_name(thinker)
    options = dict(options or {})
    check_thinker_options(name, options)
    accepted = accepted_options(name)
    if name in THINKER_MODEL_KEYS:
        options["source"] = settings.resolve("thinker", THINKER_MODEL_KEYS[name])
        options["device"] = settings.device
        if settings.dtype is not None:
            options["dtype"] = settings.dtype
    if settings.compile and {"decode", "compile"} <= accepted:  # a static-cache decode step, compiled
        options.setdefault("decode", "static")
        options.setdefault("compile", True)
    if batch_size is not None and "batch_size" in accepted:
        options["batch_size"] = batch_size
    if share_across_expressions is not None and SHARE_OPTION in accepted:
        options.setdefault(SHARE_OPTION, share_across_expressions)
    return build_thinker(name, **options)


def _fast_paths(
    settings: Settings, device_preprocess: bool | None, compile: bool | str | None
) -> tuple[bool, bool | str]:
    """(device_preprocess, compile) as given, else from the settings: frames preprocessed on a GPU
    whenever the stages run on one (it changes no result), ``Settings.compile``."""
    return (settings.on_gpu if device_preprocess is None else device_preprocess,
            settings.compile if compile is None else compile)  # fmt: skip


def load_stages(
    preset: Preset,
    settings: Settings,
    *,
    direct: bool = False,
    frame_batch_size: int = 1,
    device_preprocess: bool | None = None,
    compile: bool | str | None = None,
) -> tuple[Grounder, Segmenter]:
    """Grounding DINO and the SAM2 segmenter ``preset`` asks for, loaded strictly.

    direct: the texts grounded are raw expressions (decides the caption period under
    ``caption_period="script"``). dtype: the settings', else the preset's.
    device_preprocess / compile (False, True or a torch.compile backend): handed to the
    image stages (see ``GroundingDinoGrounder``; same results as the host, eager path);
    None: from the settings (frames preprocessed on a GPU whenever the stages run on one,
    which changes no result; ``Settings.compile``).
    """
    device_preprocess, compile = _fast_paths(settings, device_preprocess, compile)
    dtype = settings.stage_dtype(preset.dtype)
    if preset.segmenter == "sam3":  # one model grounds and segments: it is both stages
        from tgs.segment.sam3 import Sam3GroundSegmenter

        stage = Sam3GroundSegmenter.from_pretrained(
            settings.resolve("sam2", preset.sam_model_key), device=settings.device, dtype=dtype,
            mode=preset.segment_mode,
        )
        return stage, stage  # type: ignore[return-value]
    grounder = load_grounder(
        preset, settings, direct=direct, frame_batch_size=frame_batch_size,
        device_preprocess=device_preprocess, compile=compile,
    )
    source = settings.resolve("sam2", preset.sam_model_key)
    segmenter: Segmenter
    if preset.segment_mode == "image":
        from tgs.segment.sam2_image import Sam2ImageSegmenter

        segmenter = Sam2ImageSegmenter.from_pretrained(
            source, device=settings.device, dtype=dtype, preprocess=preset.sam_preprocess,
            frame_batch_size=frame_batch_size, device_preprocess=device_preprocess, compile=compile,
        )
    else:
        from tgs.segment.sam2_video import Sam2VideoSegmenter

        segmenter = Sam2VideoSegmenter.from_pretrained(
            source, device=settings.device, dtype=dtype, seed_frames=preset.video_seeds,
            preprocess=preset.sam_preprocess,
        )
    return grounder, segmenter


def load_grounder(
    preset: Preset,
    settings: Settings,
    *,
    direct: bool = False,
    frame_batch_size: int = 1,
    device_preprocess: bool | None = None,
    compile: bool | str | None = None,
) -> Grounder:
    """Grounding DINO as ``preset`` configures it, loaded strictly (see :func:`load_stages`)."""
    from tgs.ground.grounding_dino import GroundingDinoGrounder

    device_preprocess, compile = _fast_paths(settings, device_preprocess, compile)
    dtype = settings.stage_dtype(preset.dtype)
    return GroundingDinoGrounder.from_pretrained(
        settings.resolve("grounding_dino", "grounding_dino"),
        device=settings.device,
        dtype=dtype,
        box_threshold=preset.box_threshold,
        text_threshold=preset.text_threshold,
        frame_batch_size=frame_batch_size,
        preprocess=preset.gdino_preprocess,
        dedupe_period=preset.dedupe_period(direct=direct),
        device_preprocess=device_preprocess,
        compile=compile,
    )


def propagation_request(settings: Settings) -> tuple[str, Settings]:
    """(registry key of the propagation model, settings whose ``sam2`` source loads it).

    ``--sam2`` may name a registry key (``edgetam_video``, ``sam2_video_tiny``, ...: its default
    source), a hub id or a folder (loaded as the device's default key's model); none: the
    device's default (:func:`tgs.segment.sam2_video.default_propagation_model`). The tiny model
    set uses the tiny SAM2 video model (the tiny EdgeTAM is ten times slower on a CPU).
    """
    from tgs.segment.sam2_video import PROPAGATION_MODEL_KEYS, default_propagation_model

    given = settings.source("sam2")
    if given in PROPAGATION_MODEL_KEYS:
        sources = {k: v for k, v in settings.sources.items() if k != "sam2"}
        return given, Settings(device=settings.device, dtype=settings.dtype, sources=sources)  # type: ignore[return-value]
    if settings.is_tiny("sam2"):
        return "sam2_video_tiny", settings
    return default_propagation_model(settings.device), settings


def load_propagator(settings: Settings, key: str, dtype: str, preprocess: str = "original") -> Any:
    """The SAM2-family video model of registry ``key`` (a ``Sam2VideoSegmenter``), loaded strictly."""
    from tgs.segment.sam2_video import Sam2VideoSegmenter

    return Sam2VideoSegmenter.from_pretrained(
        settings.resolve("sam2", key), device=settings.device, dtype=dtype, preprocess=preprocess
    )
