"""Presets: named, frozen configurations of the Ground and Segment stages.

``paper`` reproduces the original TGS-Agent ground-segment scripts, quirks included;
``best`` (the default) fixes the known weak spots. Every difference between the two is
one named switch of :class:`Preset`, so any mix can be run (``--set box_rule=best`` on
top of ``paper`` measures the effect of that one fix) and the switch table in
``docs/presets.md`` is the complete list of differences.

A preset is data: it is written into the run manifest, and a resumed run refuses a
manifest made under another preset.

A preset says what the stages do, not how the machine runs them: the precision is a
setting (``Settings.dtype``, ``--dtype``), given once for every model. ``paper`` only
changes its default (:func:`default_dtype`).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

__all__ = [
    "BEST",
    "DEFAULT_PRESET",
    "PAPER",
    "PRESETS",
    "SAM3",
    "SAM_SQUASH_SIZE",
    "THINK_SWITCHES",
    "Preset",
    "default_dtype",
    "get_preset",
    "parse_overrides",
    "switch_choices",
]

SAM_SQUASH_SIZE = 224
"""Side of the square frame the original scripts hand to SAM2 (and measure masks at)."""


_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")

SETTINGS_NOT_SWITCHES: dict[str, str] = {
    "dtype": "the precision is a setting, given once for every model: use --dtype (Settings.dtype) instead of "
    "--set dtype",
}
"""Names that are settings, not preset switches, with the one place each is given."""


def _parse_bool(key: str, text: str) -> bool:
    """``--set KEY=true|false|1|0|yes|no`` (any case) -> bool; anything else raises ValueError."""
    value = str(text).strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"preset switch {key}: expected one of {', '.join(_TRUE + _FALSE)}, got {text!r}")


def _switch(default: Any, choices: tuple[str, ...] | None, help: str) -> Any:
    return field(default=default, metadata={"choices": choices, "help": help})


@dataclass(frozen=True)
class Preset:
    """One configuration of Ground + Segment; see ``docs/presets.md`` for the table.

    Choice-valued switches accept exactly the strings in their ``choices`` metadata;
    thresholds are probabilities in [0, 1].
    """

    name: str = "custom"
    object_tag: str = _switch(
        "s_object", ("s_object", "f_object"), "which thinker tag is grounded (the simplified or the fine description)"
    )
    missing_tag: str = _switch(
        "expression",
        ("error_literal", "expression"),
        "chosen tag missing (or empty): ground the literal 'Error' as the original does, or the raw expression",
    )
    null_policy: str = _switch(
        "empty",
        ("paper", "empty"),
        "paper: the chosen tag is exactly 'null' -> empty masks (S = 0) on the null split, 'null.' grounded "
        "elsewhere; "
        "empty: a null answer gives empty masks on every split, nothing is grounded",
    )
    caption_period: str = _switch(
        "dedupe",
        ("script", "dedupe"),
        "caption = lowercased, stripped text + '.': script = as the original scripts (always after thinker "
        "text, so 'dog.' -> 'dog..'; only when missing after a direct expression), dedupe = only when missing",
    )
    box_threshold: float = _switch(0.1, None, "Grounding DINO box threshold on the max token probability")
    text_threshold: float = _switch(0.25, None, "Grounding DINO text threshold (phrase labels only)")
    box_rule: str = _switch(
        "best", ("first", "best"), "which box per frame: first query above threshold, or highest score"
    )
    gdino_preprocess: str = _switch(
        "original",
        ("original", "hf"),
        "Grounding DINO input transform: the original (PIL resize to 800/1333) or the checkpoint's HF processor",
    )
    sam_input: str = _switch(
        "original",
        ("squash224", "original"),
        "frames given to SAM2: squashed to 224x224 with cv2-exact bilinear resizing, or at original size",
    )
    sam_colours: str = _switch(
        "rgb", ("swap_rb", "rgb"), "colour order given to SAM2: R and B swapped (the original's BGR2RGB on RGB), or RGB"
    )
    sam_preprocess: str = _switch(
        "original",
        ("original", "hf"),
        "SAM2 input transform: the original SAM2Transforms (float resize to 1024) or the HF processor",
    )
    segment_mode: str = _switch(
        "video", ("image", "video"), "SAM2 per frame (image predictor) or video propagation from grounded frames"
    )
    segmenter: str = _switch(
        "sam2",
        ("sam2", "sam3"),
        "Ground + Segment models: Grounding DINO + SAM2 (or EdgeTAM), or SAM 3 alone (the object text as its "
        "concept prompt; segment_mode picks its video or image model)",
    )
    sam3_choice: str = _switch(
        "clip_best",
        ("clip_best", "keyframe_best", "union"),
        "segmenter=sam3 only: which of SAM 3's candidates is the referred object: the highest-scoring masklet "
        "over the clip, the highest-scoring one on the keyframes the thinker saw, or all of them merged",
    )
    sam3_threshold: float = _switch(
        0.5,
        None,
        "segmenter=sam3 only: a candidate passes when its presence-gated score (its highest over the frames) is "
        ">= this; none passing gives empty masks (null)",
    )
    video_seeds: str = _switch(
        "all",
        ("all", "best", "first"),
        "video mode only: frames given the box prompt (every grounded frame, the best-scoring one, the first one)",
    )
    propagation_min_seed_score: float = _switch(
        0.0,
        None,
        "dense output only: a grounded keyframe box seeds (or re-seeds) the propagation when its Grounding DINO "
        "score is >= this (which keyframes seed: video_seeds)",
    )
    propagation_reseed_iou: float | None = _switch(
        0.5,
        None,
        "dense output only: re-seed at a grounded keyframe whose box overlaps the tracked mask's box less than "
        "this, so a lost object is found again (none: never; a no-op with video_seeds=all, where every confident "
        "keyframe seeds)",
    )
    propagation_max_conditioning_frames: int | None = _switch(
        4,
        None,
        "dense output only: seeded frames kept in SAM2's memory, the most recent (none: all, SAM2's default; "
        "memory then grows with the seeds)",
    )
    mask_size: str = _switch(
        "original", ("224", "original"), "size of the saved binary masks: 224x224 or the frame size"
    )
    probs_size: str = _switch(
        "224",
        ("224", "mask"),
        "size of the saved probability maps (the F metric's input): 224x224, the TGS protocol's size, or the "
        "mask size (full-resolution float maps are ~37 MB per 720p sample)",
    )
    share_across_expressions: bool = _switch(
        True,
        None,
        "share the work that depends on the frames only between the expressions of one video (Grounding DINO's "
        "image backbone and SAM2's image embeddings once per frame); changes no result, off = one expression at "
        "a time",
    )
    batch_captions: bool = _switch(
        False,
        None,
        "Grounding DINO: all captions of a frame in one padded forward (with share_across_expressions; for GPU "
        "throughput); equal to one caption per forward only up to float rounding, which can change the kept boxes "
        "(agreement in docs/performance.md); off = one caption per forward, exact",
    )

    def __post_init__(self) -> None:
        for f in fields(self):
            choices = f.metadata.get("choices")
            value = getattr(self, f.name)
            if choices is not None and value not in choices:
                raise ValueError(
                    f"preset switch {f.name}: expected one of {', '.join(choices)}, got {value!r}"
                )
        for key in ("box_threshold", "text_threshold", "sam3_threshold"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"preset switch {key}: expected a number in [0, 1], got {value!r}")
            object.__setattr__(self, key, float(value))
        for key in ("propagation_min_seed_score", "propagation_reseed_iou"):
            value = getattr(self, key)
            if value is None and key == "propagation_reseed_iou":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
                none = " or none" if key == "propagation_reseed_iou" else ""
                raise ValueError(f"preset switch {key}: expected a number in [0, 1]{none}, got {value!r}")
            object.__setattr__(self, key, float(value))
        cap = self.propagation_max_conditioning_frames
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
            raise ValueError(
                f"preset switch propagation_max_conditioning_frames: expected an integer >= 1 or none, got {cap!r}"
            )
        for f in fields(self):
            if f.type in ("bool", bool) and not isinstance(getattr(self, f.name), bool):
                raise ValueError(f"preset switch {f.name}: expected true or false, got {getattr(self, f.name)!r}")

    # ------------------------------------------------------------------ derived
    def dedupe_period(self, direct: bool) -> bool:
        """Whether the grounder appends "." only when missing (else always).

        ``caption_period="script"`` follows the original scripts: the thinker script always
        appends, the direct-expression script leaves it to GroundingDINO's ``predict``,
        which appends only when missing.
        """
        return self.caption_period == "dedupe" or direct

    # ------------------------------------------------------------- conversions
    def to_dict(self) -> dict[str, Any]:
        """Every switch by name, for the run manifest."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Preset:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown preset switch(es) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**dict(data))

    def with_overrides(self, overrides: Mapping[str, str]) -> Preset:
        """A copy with switches replaced from ``key=value`` strings (the CLI's ``--set``).

        Unknown keys and invalid values raise ValueError listing the valid names or choices.
        The name stays the base preset's; the manifest records every switch anyway.
        """
        if not overrides:
            return self
        names = {f.name: f for f in fields(self) if f.name != "name"}
        changes: dict[str, Any] = {}
        for key, text in overrides.items():
            if key in SETTINGS_NOT_SWITCHES:
                raise ValueError(f"{key} is not a preset switch: {SETTINGS_NOT_SWITCHES[key]}")
            if key not in names:
                close = difflib.get_close_matches(key, list(names), n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise ValueError(f"unknown preset switch {key!r}.{hint} Switches: {', '.join(names)}")
            if names[key].type in ("bool", bool):
                changes[key] = _parse_bool(key, text)
            elif names[key].type in ("float | None", "int | None") and str(text).strip().lower() == "none":
                changes[key] = None
            elif names[key].type in ("float", float, "float | None"):
                try:
                    changes[key] = float(text)
                except ValueError:
                    raise ValueError(f"preset switch {key}: expected a number in [0, 1], got {text!r}") from None
            elif names[key].type == "int | None":
                try:
                    changes[key] = int(text)
                except ValueError:
                    raise ValueError(f"preset switch {key}: expected an integer >= 1 or none, got {text!r}") from None
            else:
                changes[key] = text
        return replace(self, **changes)

    def differences(self, other: Preset) -> dict[str, tuple[Any, Any]]:
        """Switches whose values differ: name -> (self's value, other's value)."""
        return {
            f.name: (getattr(self, f.name), getattr(other, f.name))
            for f in fields(self)
            if f.name != "name" and getattr(self, f.name) != getattr(other, f.name)
        }


PAPER = Preset(
    name="paper",
    object_tag="s_object",
    missing_tag="error_literal",
    null_policy="paper",
    caption_period="script",
    box_threshold=0.1,
    text_threshold=0.25,
    box_rule="first",
    gdino_preprocess="original",
    sam_input="squash224",
    sam_colours="swap_rb",
    sam_preprocess="original",
    segment_mode="image",
    video_seeds="all",
    propagation_min_seed_score=0.0,
    propagation_reseed_iou=0.5,
    propagation_max_conditioning_frames=4,
    mask_size="224",
    probs_size="224",
    share_across_expressions=True,
    batch_captions=False,
)
"""The original scripts (``ground_segment_scripts/*.py``), quirks included."""

BEST = Preset(
    name="best",
    object_tag="s_object",
    missing_tag="expression",
    null_policy="empty",
    caption_period="dedupe",
    box_threshold=0.1,
    text_threshold=0.25,
    box_rule="best",
    gdino_preprocess="original",
    sam_input="original",
    sam_colours="rgb",
    sam_preprocess="original",
    segment_mode="video",
    video_seeds="all",
    propagation_min_seed_score=0.0,
    propagation_reseed_iou=0.5,
    propagation_max_conditioning_frames=4,
    mask_size="original",
    probs_size="224",
    share_across_expressions=True,
    batch_captions=False,
)
"""The same models with the known weak spots fixed and temporal propagation."""

SAM3 = replace(BEST, name="sam3", segmenter="sam3")
"""``best`` with SAM 3 as Ground + Segment (gated weights, SAM License; ``docs/presets.md``)."""

PRESETS: dict[str, Preset] = {"paper": PAPER, "best": BEST, "sam3": SAM3}
DEFAULT_PRESET = "best"

THINK_SWITCHES: tuple[str, ...] = ("share_across_expressions",)
"""The switches Think reads too (a Think run takes them with ``tgs think --set``); the others are
Ground + Segment's."""

_DEFAULT_DTYPES: dict[str, str] = {"paper": "fp32"}


def default_dtype(preset: Preset) -> str:
    """Ground + Segment's precision when the settings give none (``Settings.dtype`` None, no
    ``--dtype``): ``fp32`` under ``paper`` (and presets made from it with ``--set``, which keep
    its name), since the original scripts run fp32 on every device; ``auto`` otherwise (bf16 on
    CUDA, fp32 on a CPU). A default only: ``--dtype`` is the one way to choose the precision."""
    return _DEFAULT_DTYPES.get(preset.name, "auto")


def get_preset(name: str, overrides: Mapping[str, str] | None = None) -> Preset:
    """A preset by name, optionally with ``--set`` overrides applied."""
    try:
        preset = PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; available: {', '.join(PRESETS)}") from None
    return preset.with_overrides(overrides or {})


def parse_overrides(items: Iterable[str]) -> dict[str, str]:
    """``["box_rule=best", ...]`` -> ``{"box_rule": "best"}``; a malformed item raises ValueError."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise ValueError(f"expected KEY=VALUE (e.g. box_rule=best), got {item!r}")
        if key in out and out[key] != value:
            raise ValueError(f"switch {key!r} set twice ({out[key]!r} and {value!r})")
        out[key] = value
    return out


def switch_choices() -> dict[str, tuple[str, ...] | None]:
    """Every switch name with its valid choices (None for numeric and true/false switches)."""
    return {f.name: f.metadata.get("choices") for f in fields(Preset) if f.name != "name"}
