"""Where each model comes from: real weights (hub id or local directory) or the tiny set.

A run asks for its models by key before it touches any sample, so a missing weight fails
at start-up with the full list of what is missing and how to get it, never halfway
through a benchmark and never by silently falling back to something else.

The tiny set holds random models with the real architectures at toy sizes. They are
built offline on first use, saved with ``save_pretrained`` under ``$TGS_HOME/tiny/r<TINY_REVISION>/<key>``,
and loaded back through the same ``from_pretrained`` path as real weights. A tiny model is asked
for by its source, :data:`tgs.models.TINY` (``"tiny"``), like a hub id or a folder: a request is
a (key, source) pair and nothing else says which model it is.
"""

from __future__ import annotations

import importlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from tgs.errors import MissingWeightsError
from tgs.models import TINY
from tgs.models.hub_probe import HubProbe, RepoAccess, probe_hub, probe_repo

__all__ = [
    "MODEL_SPECS",
    "ModelSpec",
    "ModelStatus",
    "check_models",
    "register_model",
    "require_models",
    "resolve_source",
    "tgs_home",
]

logger = logging.getLogger(__name__)

TINY_COMPLETE_MARKER = ".tgs-tiny-complete"


@dataclass(frozen=True)
class ModelSpec:
    """One model role of the pipeline.

    key: the role ("grounding_dino", "sam2", ...), used on the CLI and in manifests.
    default_source: hub id or None when there is no public ready-made directory.
    tiny_builder: "module:function" called as ``function(out_dir: Path, seed: int) -> Path``.
    how_to_get: one line telling a user how to obtain the real weights.
    required_files: files a local directory must hold to count as present.
    """

    key: str
    description: str
    default_source: str | None
    tiny_builder: str
    how_to_get: str
    required_files: tuple[str, ...] = ("config.json",)


MODEL_SPECS: dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec) -> None:
    MODEL_SPECS[spec.key] = spec


for _spec in (
    ModelSpec(
        key="grounding_dino",
        description="Grounding DINO (Swin-T OGC), the Ground stage",
        default_source="IDEA-Research/grounding-dino-tiny",
        tiny_builder="tgs.testing.tiny_vision:build_tiny_grounding_dino",
        how_to_get="`tgs models fetch grounding_dino` (or `huggingface-cli download IDEA-Research/grounding-dino-tiny`, or pass a local directory)",
    ),
    ModelSpec(
        key="sam2",
        description="SAM2.1 image model, the Segment stage (per-frame mode)",
        default_source="facebook/sam2.1-hiera-large",
        tiny_builder="tgs.testing.tiny_vision:build_tiny_sam2",
        how_to_get="`tgs models fetch sam2` (or `huggingface-cli download facebook/sam2.1-hiera-large`, or pass a local directory)",
    ),
    ModelSpec(
        key="sam2_video",
        description="SAM2.1 video model, the Segment stage (propagation mode)",
        default_source="facebook/sam2.1-hiera-large",
        tiny_builder="tgs.testing.tiny_vision:build_tiny_sam2_video",
        how_to_get="`tgs models fetch sam2_video` (or `huggingface-cli download facebook/sam2.1-hiera-large`, or pass a local directory)",
    ),
    *(
        ModelSpec(
            key=f"sam2_video_{size}",
            description=f"SAM2.1-{label} video model, the Segment stage (propagation mode)",
            default_source=f"facebook/sam2.1-hiera-{size.replace('_', '-')}",
            tiny_builder="tgs.testing.tiny_vision:build_tiny_sam2_video",
            how_to_get=f"huggingface-cli download facebook/sam2.1-hiera-{size.replace('_', '-')} (or pass a local directory)",
        )
        for size, label in (("tiny", "T"), ("small", "S"), ("base_plus", "B+"), ("large", "L"))
    ),
    ModelSpec(
        key="edgetam_video",
        description="EdgeTAM video model (RepViT + 2D spatial perceiver), fast propagation on a CPU",
        default_source="facebook/EdgeTAM",
        tiny_builder="tgs.testing.tiny_vision:build_tiny_edgetam_video",
        how_to_get="huggingface-cli download facebook/EdgeTAM (or pass a local directory)",
    ),
    *(
        ModelSpec(
            key=key,
            description=f"SAM 3 {label} (SAM License, gated), {role}",
            default_source="facebook/sam3",
            tiny_builder="tgs.testing.tiny_sam3:build_tiny_sam3",
            how_to_get=(
                "gated, SAM License: accept the licence at https://huggingface.co/facebook/sam3 and log in with "
                f"`huggingface-cli login` (or set HF_TOKEN), then `tgs models fetch {key}` (or pass a local directory)"
            ),
        )
        for key, label, role in (
            ("sam3_video", "video model (detector + tracker)", "Ground + Segment by concept, preset sam3"),
            ("sam3", "image model (detector)", "Ground + Segment by concept per frame (sam3, segment_mode=image)"),
            ("sam3_tracker_video", "tracker", "propagation from Grounding DINO's boxes (--sam2 sam3_tracker_video)"),
        )
    ),
    ModelSpec(
        key="ref_thinker",
        description="Ref-Thinker (LLaMA-2-7B + CLIP ViT-L/14 + BEATs + Q-Former projectors), the Think stage",
        default_source=None,
        tiny_builder="tgs.testing.tiny_thinker:build_tiny_ref_thinker",
        how_to_get=(
            "`tgs models fetch ref-thinker --out DIR` (downloads Jinxing1/TGS-Agent, meta-llama/Llama-2-7b-chat-hf, "
            "openai/clip-vit-large-patch14 and the BEATs iter3+ AS2M cpt2 file, then runs `tgs models "
            "convert-ref-thinker`), then pass DIR as --model"
        ),
    ),
    ModelSpec(
        key="omni",
        description="Qwen2.5-Omni thinker (3B or 7B), the zero-shot audio-visual Think stage",
        default_source="Qwen/Qwen2.5-Omni-3B",
        tiny_builder="tgs.testing.tiny_omni:build_tiny_omni",
        how_to_get="`tgs models fetch omni` (or `huggingface-cli download Qwen/Qwen2.5-Omni-3B` or -7B, or pass a local directory)",
    ),
):
    register_model(_spec)


@dataclass(frozen=True)
class ModelStatus:
    key: str
    source: str | None
    location: str
    present: bool
    how_to_get: str


def tgs_home() -> Path:
    """Cache root for tgs-made files (tiny models): $TGS_HOME, else $XDG_CACHE_HOME/tgs."""
    env = os.environ.get("TGS_HOME")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tgs"


def _spec(key: str) -> ModelSpec:
    try:
        return MODEL_SPECS[key]
    except KeyError:
        raise KeyError(f"unknown model {key!r}; available: {', '.join(sorted(MODEL_SPECS))}") from None


def _load_builder(ref: str) -> Callable[..., Path]:
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


# The tiny builders' revision, part of the cache path: a cache built by older builders (e.g. with
# layers left at zero) is never read back as if it were today's. Bump it whenever a builder
# changes what it saves.
TINY_REVISION = 2


def _tiny_dir(key: str) -> Path:
    return tgs_home() / "tiny" / f"r{TINY_REVISION}" / key


def _build_tiny(key: str, seed: int = 0) -> Path:
    """Build the tiny model once; concurrent builders race safely (first rename wins)."""
    target = _tiny_dir(key)
    if (target / TINY_COMPLETE_MARKER).exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=target.parent))
    try:
        logger.info("building the tiny %s model in %s", key, target)
        _load_builder(_spec(key).tiny_builder)(staging, seed=seed)
        (staging / TINY_COMPLETE_MARKER).write_text("ok\n")
        try:
            os.rename(staging, target)
        except OSError:
            if not (target / TINY_COMPLETE_MARKER).exists():
                shutil.rmtree(target, ignore_errors=True)
                os.rename(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _looks_like_path(source: str) -> bool:
    return source.startswith(("/", ".", "~")) or os.sep in source.strip("/").split("/", 1)[-1] or Path(source).exists()


def _cached(spec: ModelSpec, source: str) -> str | None:
    """The cached directory of a hub id's snapshot, or None (no network)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(source, spec.required_files[0])
    except Exception:  # a malformed id, or no hub library
        return None
    return str(Path(cached).parent) if isinstance(cached, str) else None


class _HubAsker:
    """Asks the hub at most once per check: one reachability probe, then one HEAD per repository."""

    def __init__(self) -> None:
        self._probe: HubProbe | None = None

    @property
    def probe(self) -> HubProbe:
        if self._probe is None:
            self._probe = probe_hub()
            logger.info("hub probe: %s %s", self._probe.describe(), self._probe.detail)
        return self._probe

    def status(self, spec: ModelSpec, source: str) -> tuple[str, bool, str]:
        """(location text, downloadable, how to get it) for a hub id that is not cached."""
        probe = self.probe
        if not probe.answered:
            return f"hub:{source} (not cached; {probe.describe()})", False, spec.how_to_get
        access = probe_repo(source, spec.required_files[0], probe.endpoint)
        if access is RepoAccess.AVAILABLE:
            return f"hub:{source} (will be downloaded)", True, spec.how_to_get
        how = spec.how_to_get
        if access is RepoAccess.GATED:
            how = (
                f"accept the licence at {probe.endpoint}/{source} and log in with `huggingface-cli login` "
                f"(or set HF_TOKEN); then {how}"
            )
        return f"hub:{source} (not cached; {access.value})", False, how


def _locate(spec: ModelSpec, source: str, hub: _HubAsker) -> tuple[str, bool, str]:
    """(where it is or would be, whether it is usable now, how to get it)."""
    path = Path(source).expanduser()
    if path.exists() or _looks_like_path(source):
        present = path.is_dir() and all((path / f).exists() for f in spec.required_files)
        return str(path), present, spec.how_to_get
    cached = _cached(spec, source)
    if cached is not None:
        return cached, True, spec.how_to_get
    return hub.status(spec, source)


def check_models(requests: Iterable[tuple[str, str | None]]) -> list[ModelStatus]:
    """Status of each (key, source) without loading anything; source None = the default,
    :data:`~tgs.models.TINY` = the tiny model (always usable: built on first use).

    Local directories and the hub cache are looked at first; the hub is asked only about
    hub ids that are not cached, with one short probe for all of them.
    """
    hub = _HubAsker()
    out = []
    for key, source in requests:
        spec = _spec(key)
        if source == TINY:
            out.append(ModelStatus(key, TINY, str(_tiny_dir(key)), True, "built on first use"))
            continue
        src = source or spec.default_source
        if src is None:
            out.append(ModelStatus(key, None, "(no default: pass a local directory)", False, spec.how_to_get))
            continue
        location, present, how = _locate(spec, src, hub)
        out.append(ModelStatus(key, src, location, present, how))
    return out


def require_models(requests: Iterable[tuple[str, str | None]]) -> None:
    """Fail at start-up, listing every missing model, before any sample is processed."""
    missing = [s for s in check_models(requests) if not s.present]
    if not missing:
        return
    lines = [f"  - {s.key}: {s.source or '(none given)'} -> {s.location}\n    get it: {s.how_to_get}" for s in missing]
    raise MissingWeightsError(
        "missing model weights:\n" + "\n".join(lines),
        fix="download them (or pass local directories), or run the same pipeline on the untrained tiny "
        "models with `--models tiny` as an install check",
    )


def resolve_source(key: str, source: str | None = None) -> str:
    """The path or hub id to hand to ``from_pretrained`` for one model: source None = the
    registry default, :data:`~tgs.models.TINY` = the tiny model (built on first use)."""
    if source == TINY:
        return str(_build_tiny(key))
    require_models([(key, source)])
    spec = _spec(key)
    src = source or spec.default_source
    assert src is not None  # require_models rejected a missing default
    path = Path(src).expanduser()
    if path.exists() or _looks_like_path(src):
        return str(path)
    return _cached(spec, src) or src
