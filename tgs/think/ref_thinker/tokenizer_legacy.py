"""The LLaMA tokenizer as the original's transformers 4.37.2 tokenized with it.

TGS-Agent loaded the base LLaMA-2 tokenizer as transformers 4.37.2's *slow* sentencepiece
``LlamaTokenizer``, added its 21 tokens with ``add_tokens(..., special_tokens=True)`` and
tokenized each text as ``convert_tokens_to_ids(tokenize(text))``. tgs runs on transformers 5,
whose ``LlamaTokenizer`` is the ``tokenizers`` (Rust) BPE rebuilt from the vocabulary and
merges; the two agree on the vocabulary but not on where the word prefix ``▁`` goes. This
module is the one place that makes transformers 5 give the original's ids:
:func:`load_llama_tokenizer` (used by the converter and by ``load_tokenizer``, hence by the
thinker and training) and :func:`match_original` (for a tokenizer already in memory).

The ``legacy`` flag (a key of ``tokenizer_config.json``): transformers 4.37 read a missing or
null key as ``legacy=True`` (with a warning); transformers 5 reads it as false. The base files
the original used decide, so :func:`original_legacy` reads the key (missing or null -> True)
and :func:`pin_legacy` writes it explicitly into every directory tgs produces.

Why ``legacy=True`` needs more than the flag. How the two versions tokenize
``"<f_object> ... </f_object>"``:

- 4.37.2, slow: ``PreTrainedTokenizer.tokenize`` splits the raw text at added tokens (none of
  them strips spaces) and hands each stretch between them to ``sentencepiece`` on its own.
  With ``legacy=True`` the sentencepiece model keeps its ``add_dummy_prefix``, and
  sentencepiece prepends ``▁`` to *every* stretch unconditionally, even one that already
  starts with a space: ``" ... "`` -> ``"▁▁...▁"`` -> ``▁``, ``▁...``, ``▁`` (LLaMA's
  normalizer does not fold whitespace). This is the well-known ``" Hello"`` ->
  ``["▁", "▁Hello"]`` of LLaMA.
- 5.x: the stretches between added tokens go through the ``Metaspace`` pre-tokenizer with
  ``prepend_scheme="always"`` (``legacy=True``); Metaspace replaces spaces by ``▁`` and adds
  the prefix only when the stretch does not already start with ``▁``: ``" ... "`` ->
  ``"▁...▁"``, one ``▁`` fewer.

So every stretch after an added token that starts with a space loses one ``▁`` in
transformers 5: five times in each Ref-Thinker prompt's answer-format text (after
``<f_object>``, ``<s_object>``, ``<frame>``, ``<box>``, ``</box>``) and more in training
targets. Stretches that start with anything else (``"\\nThis"``, ``")"``) get the same single
prefix in both. :func:`match_original` therefore gives the backend sentencepiece's own
order for ``legacy=True``: a normalizer that prepends ``▁`` to each stretch and then turns
spaces into ``▁`` (tokenizers normalizes each stretch between added tokens separately,
since they are matched on the raw text), and no pre-tokenizer; this is also the pipeline of
the ``tokenizer.json`` files LLaMA-2 shipped with. transformers 5 rebuilds its pipeline from
the vocabulary on every load (a saved normalizer is not read back), so this is applied on
every load, not only at conversion.

``legacy=False`` needs nothing: 4.37.2 then switches the dummy prefix off and prepends ``▁``
once to the whole text, and transformers 5's ``prepend_scheme="first"`` gives the same ids
for every text tgs tokenizes. (One difference remains, outside tgs' texts: a text whose very
first character, before any added token, is a space gets an extra ``▁`` in 4.37.2. Prompts
start with ``<s>`` and answers with ``<think>``.)

Both are checked against ids recorded with transformers 4.37.2 itself
(``scripts/record_tokenizer_ids.py``, ``tests/fixtures/tokenizer_legacy``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tgs.errors import DataError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = ["LEGACY_WHEN_MISSING", "load_llama_tokenizer", "match_original", "original_legacy", "pin_legacy"]

# transformers 4.37 (the original's): ``legacy=None`` -> warns and behaves as True.
LEGACY_WHEN_MISSING = True

SPIECE_UNDERLINE = "\u2581"  # "▁", sentencepiece's word prefix / escaped space


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


def match_original(tokenizer: PreTrainedTokenizerBase, legacy: bool) -> PreTrainedTokenizerBase:
    """Make a transformers 5 LLaMA tokenizer give transformers 4.37.2's slow ids for ``legacy``.

    ``legacy=True``: every stretch of text between added tokens gets sentencepiece's dummy
    prefix ``▁`` unconditionally (see the module docstring for why transformers 5 differs).
    ``legacy=False``: transformers 5's own pipeline already matches. Either way ``legacy`` is
    pinned (:func:`pin_legacy`). Raises DataError for a tokenizer that is not a LLaMA-style
    sentencepiece BPE (a ``▁`` Metaspace pre-tokenizer, no normalizer), which this would
    silently mistokenize.
    """
    from tokenizers import normalizers, pre_tokenizers

    pin_legacy(tokenizer, legacy)
    backend = tokenizer.backend_tokenizer
    if backend.normalizer is not None and backend.pre_tokenizer is None and _is_dummy_prefix(backend.normalizer):
        return tokenizer  # already matched (a tokenizer passed through here twice)
    pre = backend.pre_tokenizer
    if (
        backend.normalizer is not None
        or not isinstance(pre, pre_tokenizers.Metaspace)
        or pre.replacement != SPIECE_UNDERLINE
        or pre.split
    ):
        raise DataError(
            f"the tokenizer {tokenizer.name_or_path or type(tokenizer).__name__} is not a LLaMA sentencepiece "
            f"tokenizer as transformers 5 builds it (normalizer {backend.normalizer}, pre-tokenizer {pre})",
            fix="pass the base meta-llama/Llama-2-7b-chat-hf tokenizer files (tokenizer.model / tokenizer.json)",
        )
    if not legacy:
        if pre.prepend_scheme != "first":  # 4.37.2 has no add_prefix_space: the prefix is always there
            backend.pre_tokenizer = pre_tokenizers.Metaspace(SPIECE_UNDERLINE, prepend_scheme="first", split=False)
        return tokenizer
    backend.normalizer = normalizers.Sequence(
        [normalizers.Prepend(SPIECE_UNDERLINE), normalizers.Replace(" ", SPIECE_UNDERLINE)]
    )
    backend.pre_tokenizer = None
    return tokenizer


def _is_dummy_prefix(normalizer: Any) -> bool:
    state = json.loads(normalizer.__getstate__())
    steps = [step.get("type") for step in state.get("normalizers", [])]
    return state.get("type") == "Sequence" and steps == ["Prepend", "Replace"]


def load_llama_tokenizer(path: str | Path) -> PreTrainedTokenizerBase:
    """The LLaMA tokenizer in ``path`` (a base LLaMA or a Ref-Thinker directory), tokenizing as the original.

    ``legacy`` comes from the directory's ``tokenizer_config.json`` as 4.37 read it
    (:func:`original_legacy`); :func:`match_original` then makes the ids equal 4.37.2's.
    """
    from transformers import AutoTokenizer

    legacy = original_legacy(path)
    return match_original(AutoTokenizer.from_pretrained(str(path), legacy=legacy), legacy)
