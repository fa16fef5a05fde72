"""The one answer to "which models does this call load": a frozen :class:`LoadSpec`.

:func:`load_spec` builds it once from (preset, settings, mode, thinker). It lists every model
the call loads, each a :class:`ModelLoad`: its role, the loader that builds it, its model
registry key, its source (a hub id, a folder, ``"tiny"``, or the registry default), device,
dtype, compile flag and the loader's other arguments. Everything else reads it, so no two
places can disagree about what a call loads:

- pre-flight: :meth:`LoadSpec.require` (every missing model listed, before anything loads);
- ``tgs models list`` (:meth:`LoadSpec.check`), ``tgs models fetch paper``, ``tgs quickstart``
  and the demo's start-up check;
- manifests and result.json: :meth:`LoadSpec.describe`;
- the loaders (:mod:`tgs.core.loading`), which are handed a :class:`ModelLoad` and nothing else;
- the model cache (:class:`tgs.model_cache.ModelCache`): a :class:`ModelLoad` is its key
  (:attr:`LoadSpec.thinker_key`, :attr:`LoadSpec.stages_key`), so a hit is exactly what a
  fresh load would give.

Modes: ``benchmark`` (benchmark runs, ``Pipeline.load``) and ``sampled`` (``tgs segment
--fps``) segment with the preset's SAM2 mode (image or video); ``dense`` (``tgs segment``'s
default, the demo) propagates through every frame with the device's propagation model
(EdgeTAM on a CPU, SAM2.1-L on a GPU) unless ``--sam2`` names one.

With the preset switch ``segmenter=sam3`` one model grounds and segments: the spec has no
Grounding DINO, and its segmenter is SAM 3 (``--sam2`` gives its source): the video model
(``sam3_video``) in ``dense`` mode and under ``segment_mode=video``, the image model
(``sam3``) per frame under ``segment_mode=image``. ``--sam2 sam3_tracker_video`` is the
other use of SAM 3: its tracker as the propagation model, seeded by Grounding DINO's boxes.

Adding a backend (one line per model): its weights as a ``ModelSpec`` in
``tgs/models/registry.py``; its loader as one entry of ``LOADERS`` in ``tgs/core/loading.py``;
and the line below (``_ground_load`` / ``_segment_load``) that picks it for a role.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tgs.core.settings import TINY, Settings
from tgs.errors import SettingsError
from tgs.model_cache import freeze
from tgs.presets import Preset, default_dtype
from tgs.think.registry import THINKER_MODEL_KEYS, canonical_name

__all__ = ["MODES", "LoadSpec", "ModelLoad", "load_spec"]

MODES: tuple[str, ...] = ("benchmark", "sampled", "dense")
"""What the call does with the models (see the module docstring)."""


@dataclass(frozen=True, eq=False)
class ModelLoad:
    """One model a call loads, with everything its loader is told.

    role: the settings role its source comes from ("thinker", "grounding_dino", "sam2").
    loader: which loader builds it (a key of ``tgs.core.loading.LOADERS``; a thinker's name).
    key: its model registry key (``tgs.models.registry.MODEL_SPECS``); None: it has no
        weights (the ``direct`` and ``api`` thinkers).
    source: a hub id, a local folder or "tiny"; None: the registry's default for ``key``.
    device, dtype (None: the model's own default), compile: as the loader gets them.
    options: the loader's other arguments (thresholds, preprocessing, batch sizes; for a
        thinker its options, batch size and sharing). Not shown by ``repr`` (an API key may be
        among them).

    Equal loads compare and hash equal (the options by value), so a load is a cache key.
    """

    role: str
    loader: str
    key: str | None
    source: str | None
    device: str
    dtype: str | None
    compile: bool | str = False
    options: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", dict(self.options))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ModelLoad) and freeze(self) == freeze(other)

    def __hash__(self) -> int:
        return hash(freeze(self))

    @property
    def tiny(self) -> bool:
        """Whether this is the random tiny model of its key."""
        return self.source == TINY

    @property
    def recorded_source(self) -> str | None:
        """What manifests and result.json record: "tiny", the source given, else the registry default."""
        if self.key is None:
            return None
        from tgs.models.registry import MODEL_SPECS

        return self.source or MODEL_SPECS[self.key].default_source

    def resolve(self) -> str:
        """What ``from_pretrained`` gets (a tiny model is built on first use); fails fast when missing."""
        from tgs.models.registry import resolve_source

        if self.key is None:
            raise ValueError(f"{self.loader} has no weights to resolve")
        return resolve_source(self.key, self.source)


@dataclass(frozen=True)
class LoadSpec:
    """Every model of one call: the thinker (None: no Think), Grounding DINO and the segmenter
    (both None: no Ground + Segment; only the grounder None: the segmenter grounds itself,
    SAM 3 under ``segmenter=sam3``). Built by :func:`load_spec`; see the module docstring."""

    mode: str
    thinker: ModelLoad | None = None
    grounder: ModelLoad | None = None
    segmenter: ModelLoad | None = None

    @property
    def models(self) -> tuple[ModelLoad, ...]:
        """The loads, in loading order (thinker, grounder, segmenter)."""
        return tuple(m for m in (self.thinker, self.grounder, self.segmenter) if m is not None)

    @property
    def weights(self) -> tuple[ModelLoad, ...]:
        """The loads that have weights (what pre-flight checks and ``tgs models fetch`` downloads)."""
        return tuple(m for m in self.models if m.key is not None)

    @property
    def keys(self) -> tuple[str, ...]:
        """Registry keys of :attr:`weights`."""
        return tuple(m.key for m in self.weights if m.key is not None)

    @property
    def untrained(self) -> bool:
        """Whether a tiny (untrained) model is among the weights."""
        return any(m.tiny for m in self.weights)

    def require(self) -> None:
        """Fail before anything loads, listing every missing model (tiny ones are built on use)."""
        from tgs.models.registry import require_models

        require_models([(m.key, m.source) for m in self.weights if not m.tiny])  # type: ignore[misc]

    def check(self, sources: Mapping[str, str] | None = None) -> list[Any]:
        """``tgs.models.registry.ModelStatus`` of every weight, in order, without loading anything.

        sources: registry key -> another source to look at for that key (``tgs models list --source``).
        """
        from tgs.models.registry import check_models

        sources = sources or {}
        return check_models([(m.key, m.source if m.tiny else sources.get(m.key, m.source))  # type: ignore[misc]
                             for m in self.weights])  # fmt: skip

    def describe(self) -> dict[str, Any]:
        """Registry key -> source as recorded in manifests and result.json, and the model "set"
        ("tiny", "real" or "mixed")."""
        record: dict[str, Any] = {m.key: m.recorded_source for m in self.weights}
        tiny = {m.tiny for m in self.weights}
        record["set"] = "tiny" if tiny == {True} else ("real" if tiny <= {False} else "mixed")
        return record

    @property
    def grounds_itself(self) -> bool:
        """Whether one model grounds and segments (the segmenter, with no Grounding DINO)."""
        return self.grounder is None and self.segmenter is not None

    @property
    def thinker_key(self) -> Hashable:
        """The model cache's key of the thinker."""
        return ("thinker", self.thinker)

    @property
    def stages_key(self) -> Hashable:
        """The model cache's key of the (Grounding DINO, segmenter) pair."""
        return ("stages", self.grounder, self.segmenter)


def load_spec(
    preset: Preset | None,
    settings: Settings,
    mode: str = "benchmark",
    *,
    thinker: str | None = None,
    thinker_options: Mapping[str, Any] | None = None,
    batch_size: int | None = None,
    share: bool | None = None,
    direct: bool | None = None,
    frame_batch_size: int = 1,
    device_preprocess: bool | None = None,
    compile: bool | str | None = None,
) -> LoadSpec:
    """The models a call loads (see the module docstring).

    preset: Ground + Segment's configuration; None: no Ground + Segment (a Think run).
    thinker: a thinker name; None: no thinker (Ground + Segment of given thoughts).
    thinker_options / batch_size / share: the thinker's options (``--thinker-opt``), samples
        per generate call, and per-video sharing (handed to thinkers that take them).
    direct: the texts grounded are raw expressions (decides the caption period under
        ``caption_period="script"``); default: the thinker is ``direct``.
    frame_batch_size: frames per image-model forward.
    device_preprocess / compile: for the image stages (see ``GroundingDinoGrounder``); None:
        from the settings (frames preprocessed on a GPU whenever the stages run on one, which
        changes no result; ``Settings.compile``).
    """
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {', '.join(MODES)}, got {mode!r}")
    name = None if thinker is None else canonical_name(thinker)
    think = None if name is None else _think_load(name, settings, thinker_options, batch_size, share)
    if preset is None:
        return LoadSpec(mode, think)
    direct = name == "direct" if direct is None else direct
    fast = {
        "device_preprocess": _device_kind(settings.device) == "cuda" if device_preprocess is None else device_preprocess,
        "compile": settings.compile if compile is None else compile,
    }
    return LoadSpec(
        mode,
        think,
        _ground_load(preset, settings, direct, frame_batch_size, fast),
        _segment_load(preset, settings, mode, frame_batch_size, fast),
    )


def _device_kind(device: str) -> str:
    """"cpu", "cuda", ...: the kind a device name names ("auto": what this machine has). Not
    checked for availability here: the device is checked where the models load."""
    if device.strip().lower() == "auto":
        from tgs.devices import resolve_device

        return resolve_device("auto").type
    return device.strip().lower().split(":", 1)[0]


def _think_load(
    name: str, settings: Settings, options: Mapping[str, Any] | None, batch_size: int | None, share: bool | None
) -> ModelLoad:
    key = THINKER_MODEL_KEYS.get(name)
    return ModelLoad(
        role="thinker",
        loader=name,
        key=key,
        source=None if key is None else settings.source("thinker"),
        device=settings.device,
        dtype=settings.dtype,
        compile=settings.compile,
        options={"options": dict(options or {}), "batch_size": batch_size, "share": share},
    )


def _ground_load(
    preset: Preset, settings: Settings, direct: bool, frame_batch_size: int, fast: Mapping[str, Any]
) -> ModelLoad | None:
    """Grounding DINO; None under ``segmenter=sam3`` (SAM 3 grounds by its concept prompt).

    A Grounding DINO source given under ``segmenter=sam3`` would be ignored, so it is refused;
    the tiny set (every role ``tiny``, ``--models tiny``) names one for every role and passes."""
    if preset.segmenter == "sam3":
        given = settings.source("grounding_dino")
        if given is not None and given != TINY:
            raise SettingsError(
                f"SAM 3 finds the object itself; --gdino has no effect under --preset sam3 (got --gdino {given})",
                fix="drop --gdino, or use --preset best to ground with Grounding DINO",
            )
        return None
    return ModelLoad(
        role="grounding_dino",
        loader="grounding_dino",
        key="grounding_dino",
        source=settings.source("grounding_dino"),
        device=settings.device,
        dtype=settings.stage_dtype(default_dtype(preset)),
        compile=fast["compile"],
        options={
            "box_threshold": preset.box_threshold,
            "text_threshold": preset.text_threshold,
            "preprocess": preset.gdino_preprocess,
            "dedupe_period": preset.dedupe_period(direct=direct),
            "frame_batch_size": frame_batch_size,
            "expression_batch_size": None if preset.batch_captions else 1,
            "device_preprocess": fast["device_preprocess"],
        },
    )


def _segment_load(
    preset: Preset, settings: Settings, mode: str, frame_batch_size: int, fast: Mapping[str, Any]
) -> ModelLoad:
    """SAM2's image model (the preset's image mode, per frame) or a video model (propagation);
    SAM 3 under ``segmenter=sam3``."""
    from tgs.segment.sam2_video import PROPAGATION_MODEL_KEYS, default_propagation_model

    given = settings.source("sam2")
    dtype = settings.stage_dtype(default_dtype(preset))
    if preset.segmenter == "sam3":
        return _sam3_load(preset, settings, mode, given, dtype, fast)
    if mode != "dense" and preset.segment_mode == "image":
        if given in PROPAGATION_MODEL_KEYS:
            raise SettingsError(
                f"--sam2 {given} names a video (propagation) model, but the preset segments each frame with "
                "SAM2's image model (segment_mode=image)",
                fix="pass a SAM2.1 hub id or folder, or add --set segment_mode=video",
            )
        options = {"preprocess": preset.sam_preprocess, "frame_batch_size": frame_batch_size, **fast}
        options.pop("compile")
        return ModelLoad("sam2", "sam2_image", "sam2", given, settings.device, dtype, fast["compile"], options)
    if given in PROPAGATION_MODEL_KEYS:  # a registry key: that model from its default source
        key, source = given, None
    elif mode != "dense":
        key, source = "sam2_video", given
    elif given == TINY:  # the tiny EdgeTAM is ten times slower on a CPU than the tiny SAM2
        key, source = "sam2_video_tiny", given
    else:  # a hub id or folder is loaded as the device's default key's model
        key, source = default_propagation_model(_device_kind(settings.device)), given
    # The video models have no compiled form and preprocess on the host: the load carries what the
    # call asked for, and the loader counts each as a fallback (tgs.fast_paths) instead of dropping it.
    options = {"preprocess": preset.sam_preprocess, "device_preprocess": fast["device_preprocess"]}
    if mode != "dense":  # dense output seeds by its own policy (tgs.core.dense)
        options["seed_frames"] = preset.video_seeds
    return ModelLoad("sam2", "sam2_video", key, source, settings.device, dtype, fast["compile"], options)


def _sam3_load(
    preset: Preset, settings: Settings, mode: str, given: str | None, dtype: str | None, fast: Mapping[str, Any]
) -> ModelLoad:
    """SAM 3 grounding and segmenting (``segmenter=sam3``): its video model, which dense output
    streams every frame through (whatever ``segment_mode``), or its image model per frame."""
    from tgs.segment.sam2_video import PROPAGATION_MODEL_KEYS

    if given in PROPAGATION_MODEL_KEYS:
        raise SettingsError(
            f"--sam2 {given} names a propagation model, but the preset grounds and segments with SAM 3 "
            "alone (segmenter=sam3; --sam2 gives SAM 3's source)",
            fix=f"pass a SAM 3 hub id or folder, or use --preset best --sam2 {given} (Grounding DINO seeds it)",
        )
    sam3_mode = "video" if mode == "dense" else preset.segment_mode
    key = "sam3_video" if sam3_mode == "video" else "sam3"
    # SAM 3 has no compiled form and preprocesses on the host: as for the video models above, the
    # load carries what the call asked for and the loader counts each as a fallback (tgs.fast_paths).
    options = {"mode": sam3_mode, "device_preprocess": fast["device_preprocess"]}
    return ModelLoad("sam2", "sam3", key, given, settings.device, dtype, fast["compile"], options)
