"""Fine-tuning Ref-Thinker with the paper's recipe (``tgs train``).

Modules: ``config`` (TrainRecipe, the paper's values), ``data`` (rows + targets, tokens,
labels, collation), ``model`` (LoRA + trained groups, the rest frozen), ``crab`` (Crab
projector initialisation), ``schedules`` (the paper's effective learning-rate schedule),
``trainer`` (HF Trainer subclass), ``checkpoints`` (what a checkpoint holds), ``export``
(checkpoint -> runnable directory; ``tgs think --model`` resolution) and ``run``
(``run_training``). Names below are imported on first use, so ``import tgs.train`` stays
light.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TrainRecipe": "config",
    "TrainJob": "run",
    "TrainOutcome": "run",
    "run_training": "run",
    "build_training_model": "model",
    "RefThinkerTrainingModel": "model",
    "export_checkpoint": "export",
    "resolve_think_model": "export",
    "build_crab_init": "crab",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
