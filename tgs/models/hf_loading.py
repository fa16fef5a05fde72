"""Strict, fail-fast loading of transformers models and processors.

``from_pretrained`` in transformers warns and randomly initialises weights that a checkpoint
lacks; for a reproduction that is a silent wrong result. Here every load asks for the
loading report and raises :class:`~tgs.errors.CheckpointKeyError` listing the keys when
anything is missing, unexpected or of the wrong shape. A source that is neither a local
directory nor reachable on the hub raises :class:`~tgs.errors.MissingWeightsError` at once,
naming the source and how to get it.
"""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from tgs.errors import CheckpointKeyError, MissingWeightsError, WeightsError

__all__ = ["load_model", "load_processor", "resolve_pretrained_source"]

logger = logging.getLogger(__name__)


def _looks_like_local_path(source: str) -> bool:
    """Hub ids are ``name`` or ``org/name``; anything else path-like is a local directory."""
    if source.startswith(("/", ".", "~")) or source.endswith("/"):
        return True
    return source.count("/") > 1 or (os.sep != "/" and os.sep in source)


def resolve_pretrained_source(source: str | Path, *, what: str, how_to_get: str) -> str:
    """Check that ``source`` can be loaded, without loading it; returns the string to pass on.

    A local directory must exist and hold ``config.json``. A hub id is accepted when it is in
    the local cache or the hub may be used (HF_HUB_OFFLINE unset); otherwise this raises
    MissingWeightsError naming ``what`` is missing and ``how_to_get`` it.
    """
    text = str(source)
    path = Path(text).expanduser()
    if isinstance(source, Path) or path.exists() or _looks_like_local_path(text):
        if not path.is_dir():
            raise MissingWeightsError(f"{what}: no model directory at {path}", path=path, fix=how_to_get)
        if not (path / "config.json").is_file():
            raise MissingWeightsError(
                f"{what}: {path} has no config.json, so it is not a saved model directory",
                path=path,
                fix=how_to_get,
            )
        return str(path)
    from huggingface_hub import constants, try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(text, "config.json")
    except Exception:  # a malformed id: treated as not cached
        cached = None
    if not isinstance(cached, str) and constants.HF_HUB_OFFLINE:
        raise MissingWeightsError(
            f"{what}: {text!r} is neither a local directory nor in the Hugging Face cache, and hub access is "
            "off (HF_HUB_OFFLINE=1)",
            fix=how_to_get,
        )
    return text


def _report_keys(info: dict[str, Any], allowed_unexpected: Iterable[str] = ()) -> tuple[list, list, list]:
    allowed = tuple(allowed_unexpected)
    missing = sorted(info.get("missing_keys") or ())
    unexpected = sorted(k for k in (info.get("unexpected_keys") or ()) if not k.startswith(allowed))
    mismatched = sorted(str(m[0] if isinstance(m, tuple) else m) for m in (info.get("mismatched_keys") or ()))
    return missing, unexpected, mismatched


def load_model(
    model_cls: Any,
    source: str | Path,
    *,
    what: str,
    how_to_get: str,
    device: torch.device,
    dtype: torch.dtype,
    allowed_unexpected: Iterable[str] = (),
) -> Any:
    """``model_cls.from_pretrained(source)`` in eval mode on ``device``/``dtype``, strictly.

    allowed_unexpected: key prefixes a checkpoint may hold beyond the model (for example a
        SAM2 video checkpoint loaded into the image model); everything else is an error.
    """
    src = resolve_pretrained_source(source, what=what, how_to_get=how_to_get)
    try:
        # ignore_mismatched_sizes only moves shape mismatches into the report, which is checked below.
        model, info = model_cls.from_pretrained(
            src, dtype=dtype, output_loading_info=True, ignore_mismatched_sizes=True
        )
    except (pickle.UnpicklingError, EOFError) as exc:  # a pickled .bin that torch's weights-only loader refused
        raise WeightsError(
            f"{what}: refusing to load {src!r}: its pickled weights are not a plain tensor checkpoint (damaged, or "
            f"holding Python objects, which tgs never unpickles because that can run arbitrary code). torch: {exc}",
            path=src,
            fix="use the model's .safetensors weights, or convert the .bin in a trusted environment with "
            "from_pretrained(...).save_pretrained(dir, safe_serialization=True)",
        ) from exc
    except OSError as exc:
        raise MissingWeightsError(f"{what}: cannot load {src!r}: {exc}", path=src, fix=how_to_get) from exc
    except (RuntimeError, ValueError) as exc:  # corrupt files, wrong config
        raise WeightsError(
            f"{what}: {src!r} does not load into {model_cls.__name__}: {exc}", path=src
        ) from exc
    missing, unexpected, mismatched = _report_keys(info, allowed_unexpected)
    if missing or unexpected or mismatched:
        message = f"{what}: checkpoint {src!r} does not match {model_cls.__name__}"
        if mismatched:
            message += f"; {len(mismatched)} key(s) with other shapes, e.g. {mismatched[:3]}"
        raise CheckpointKeyError(
            message,
            missing=missing,
            unexpected=unexpected,
            path=src,
            fix="use a checkpoint saved for this architecture (config.json and weights from the same model)",
        )
    logger.info("loaded %s from %s (%s, %s)", what, src, device, dtype)
    return model.to(device).eval()


def load_processor(processor_cls: Any, source: str | Path, *, what: str, how_to_get: str) -> Any:
    """``processor_cls.from_pretrained(source)`` with the same fail-fast errors as load_model."""
    src = resolve_pretrained_source(source, what=what, how_to_get=how_to_get)
    try:
        return processor_cls.from_pretrained(src)
    except OSError as exc:
        raise MissingWeightsError(
            f"{what}: no usable processor files in {src!r}: {exc}", path=src, fix=how_to_get
        ) from exc
