"""Ref-Thinker, the Crab-based audio-visual LLM of TGS-Agent: encoders, projectors, LLM.

Modules: ``configuration`` (RefThinkerConfig), ``qformer`` / ``projector`` (the BLIP-2
projectors), ``beats`` (audio encoder), ``modeling`` (RefThinkerForCausalLM),
``checkpoint`` (strict save/load), ``prompts`` / ``processing`` (text, frames, audio),
``generation``, ``thinker`` (the Thinker stage) and ``convert`` (released files ->
directory). Names below are imported on first use, so ``import tgs.think.ref_thinker``
does not load transformers.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "RefThinkerConfig": "configuration",
    "RefThinkerForCausalLM": "modeling",
    "RefThinkerProcessor": "processing",
    "RefThinker": "thinker",
    "GenerationSettings": "generation",
    "build_prompt": "prompts",
    "ReleaseFiles": "convert",
    "convert_ref_thinker": "convert",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
