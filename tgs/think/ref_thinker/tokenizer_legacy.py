"""The LLaMA tokenizer's ``legacy`` flag, read as the original's transformers (4.37) read it.

With ``legacy`` true, every stretch of text after an added token (``<video_end>``, ...) gets
the sentencepiece word prefix ``▁``; with it false it does not, so every Ref-Thinker prompt
tokenizes differently. transformers 4.37 treated a ``tokenizer_config.json`` without the key
as ``legacy=True``; transformers 5 treats it as false. The base LLaMA files the original used
decide, so the converter reads the key (missing or null -> True) and writes it explicitly
into every directory it produces; loading passes it on, whatever transformers' default is.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["LEGACY_WHEN_MISSING", "original_legacy", "pin_legacy"]

# transformers 4.37 (the original's): ``legacy=None`` -> warns and behaves as True.
LEGACY_WHEN_MISSING = True


def original_legacy(tokenizer_dir: str | Path) -> bool:
    """``legacy`` as transformers 4.37 used it for this directory's tokenizer."""
    path = Path(tokenizer_dir) / "tokenizer_config.json"
    try:
        value = json.loads(path.read_text(encoding="utf-8")).get("legacy")
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError, AttributeError):
        value = None
    return LEGACY_WHEN_MISSING if value is None else bool(value)


def pin_legacy(tokenizer: Any, legacy: bool) -> Any:
    """Record ``legacy`` in the tokenizer, so ``save_pretrained`` writes it explicitly."""
    tokenizer.init_kwargs["legacy"] = legacy
    tokenizer.legacy = legacy
    return tokenizer
