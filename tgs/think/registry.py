"""Thinkers by name, and the one way runners call them.

``build_thinker(name, **options)`` makes any thinker from plain options (CLI flags,
config files); heavy backends (transformers models) are imported only when asked for.
Unknown names and unknown options fail at once, listing what is accepted:

- ``direct``: the expression itself, the paper's baseline (no options);
- ``api``: :class:`tgs.think.api.ApiThinker` (its constructor's arguments);
- ``omni``: :class:`tgs.think.omni.OmniThinker` (``source`` and the options of
  ``OmniThinker.from_pretrained``);
- ``ref-thinker``: ``tgs.think.ref_thinker.thinker.RefThinker`` (``source``,
  the options of its ``from_pretrained``, e.g. ``share_across_expressions``, and
  ``max_new_tokens``/``mask_padding``/``autocast``/``decode``/``compile``, which make its
  ``GenerationSettings``).

``source`` is a hub id, a local directory or ``"tiny"`` (the random tiny model: install
checks, tests), resolved by the model registry (default: its default for that role).

Failure semantics: a thinker that can fail per sample has ``think_each(items) ->
list[Thought | Exception]``; :func:`think_each` calls it, or wraps a plain ``think`` so
that its failure is reported for every item of the batch. Runners use :func:`think_each`
and record each exception as that sample's failure.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tgs.errors import SettingsError
from tgs.think.base import DirectThinker, Thinker
from tgs.types import Clip, Query, Thought

__all__ = ["THINKER_MODEL_KEYS", "THINKER_NAMES", "accepted_options", "build_thinker", "canonical_name", "think_each"]

THINKER_NAMES: tuple[str, ...] = ("direct", "api", "omni", "ref-thinker")

THINKER_MODEL_KEYS: dict[str, str] = {"omni": "omni", "ref-thinker": "ref_thinker"}
"""Thinker name -> model registry key of its weights (thinkers without weights are absent)."""
_REF_THINKER_SETTINGS = ("max_new_tokens", "mask_padding", "autocast", "decode", "compile")


def canonical_name(name: str) -> str:
    """``name`` as one of :data:`THINKER_NAMES` (case and ``_``/``-`` forgiven); ValueError otherwise."""
    return _canonical(name)


def _canonical(name: str) -> str:
    key = name.strip().lower().replace("_", "-")
    if key not in THINKER_NAMES:
        close = difflib.get_close_matches(key, THINKER_NAMES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown thinker {name!r}; available: {', '.join(THINKER_NAMES)}.{hint}")
    return key


def _accepted(fn: Callable[..., Any], skip: tuple[str, ...] = ()) -> set[str]:
    params = inspect.signature(fn).parameters.values()
    return {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in skip}


def _check_options(name: str, options: Mapping[str, Any], accepted: set[str]) -> None:
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise SettingsError(
            f"thinker {name!r} has no option {', '.join(map(repr, unknown))}; "
            f"accepted: {', '.join(sorted(accepted)) or '(none)'}",
            fix="check the --thinker-opt KEY=VALUE names",
        )


def _model_source(name: str, options: dict[str, Any]) -> str:
    """Pop ``source`` and resolve it through the model registry (fails fast)."""
    from tgs.models.registry import resolve_source

    source = options.pop("source", None)
    return resolve_source(THINKER_MODEL_KEYS[name], None if source is None else str(source))


def accepted_options(name: str) -> frozenset[str]:
    """Every option :func:`build_thinker` accepts for thinker ``name``: the one option table.

    ``source`` picks the weights; the rest are the thinker's constructor or
    ``from_pretrained`` arguments (ref-thinker also takes its generation settings).
    Imports the thinker's module (for ref-thinker and omni: torch and transformers).
    """
    key = _canonical(name)
    if key == "direct":
        return frozenset()
    if key == "api":
        from tgs.think.api import ApiThinker

        return frozenset(_accepted(ApiThinker.__init__, skip=("self",)))
    if key == "omni":
        from tgs.think.omni import OmniThinker

        return frozenset(_accepted(OmniThinker.from_pretrained, skip=("source",)) | {"source"})
    ref_thinker = importlib.import_module("tgs.think.ref_thinker.thinker").RefThinker
    loader = _accepted(ref_thinker.from_pretrained, skip=("path",))
    return frozenset(loader | set(_REF_THINKER_SETTINGS) | {"source"})


def build_thinker(name: str, **options: Any) -> Thinker:
    """A thinker by name ("direct", "api", "omni", "ref-thinker"), built from ``options``."""
    key = _canonical(name)
    _check_options(key, options, set(accepted_options(key)))
    if key == "direct":
        return DirectThinker()
    if key == "api":
        from tgs.think.api import ApiThinker

        return ApiThinker(**options)
    if key == "omni":
        from tgs.think.omni import OmniThinker

        source = _model_source(key, options)
        return OmniThinker.from_pretrained(source, **options)
    return _build_ref_thinker(options)


def _build_ref_thinker(options: dict[str, Any]) -> Thinker:
    source = _model_source("ref-thinker", options)  # missing weights fail before loading
    ref_thinker = importlib.import_module("tgs.think.ref_thinker.thinker").RefThinker
    settings = {k: options.pop(k) for k in _REF_THINKER_SETTINGS if k in options}
    if settings:
        from tgs.think.ref_thinker.generation import GenerationSettings

        if options.get("settings") is not None:
            raise ValueError(f"pass either settings= or {', '.join(settings)}, not both")
        options["settings"] = GenerationSettings(**settings)
    return ref_thinker.from_pretrained(source, **options)


def think_each(thinker: Thinker, items: Sequence[tuple[Query, Clip | None]]) -> list[Thought | Exception]:
    """One Thought or one exception per item, in order, for any thinker.

    Uses the thinker's own ``think_each`` when it has one (failures stay per sample);
    otherwise a failing ``think`` call is reported for every item of the batch.
    """
    items = list(items)
    own = getattr(thinker, "think_each", None)
    if callable(own):
        outcomes = list(own(items))
    else:
        try:
            outcomes = list(thinker.think(items))
        except Exception as exc:  # the whole batch failed
            return [exc] * len(items)
    if len(outcomes) != len(items):
        raise RuntimeError(f"thinker {thinker.name!r} returned {len(outcomes)} results for {len(items)} items")
    return outcomes
