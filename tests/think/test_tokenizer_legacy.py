"""The LLaMA tokenizer's ``legacy`` flag is read as the original's transformers 4.37 read it.

A base ``tokenizer_config.json`` without the key meant ``legacy=True`` there (a ``▁`` word
prefix on every stretch of text after an added token) and means false in transformers 5.
The converter reads the key (missing -> True), writes it explicitly, and loading honours it
through ``match_original``. The ids themselves are checked against transformers 4.37.2's in
``test_tokenizer_ids.py``; here: the flag's path through conversion and loading, on the
project's tiny BPE tokenizer, and ``match_original``'s own contract.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tgs.errors import DataError
from tgs.testing.tiny_thinker import build_tiny_llama_tokenizer
from tgs.think.ref_thinker.convert import _load_tokenizer
from tgs.think.ref_thinker.processing import load_tokenizer
from tgs.think.ref_thinker.prompts import build_prompt
from tgs.think.ref_thinker.tokenizer_legacy import match_original

PROMPT = build_prompt("The dog barking on the left")


def _base_dir(root: Path, legacy: bool | None) -> Path:
    """A base LLaMA tokenizer directory whose config says legacy true, false, or nothing."""
    out = root / f"llama_{legacy}"
    build_tiny_llama_tokenizer().save_pretrained(str(out))
    config_path = out / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config.pop("legacy", None)
    if legacy is not None:
        config["legacy"] = legacy
    config_path.write_text(json.dumps(config))
    return out


def _ids(tokenizer: object) -> list[int]:
    return tokenizer(PROMPT, add_special_tokens=False)["input_ids"]  # type: ignore[operator]


@pytest.mark.parametrize(("in_config", "resolved"), [(True, True), (False, False), (None, True)])
def test_converter_and_loader_use_the_original_legacy(
    in_config: bool | None, resolved: bool, tmp_path: Path
) -> None:
    base = _base_dir(tmp_path, in_config)
    tokenizer, _ = _load_tokenizer(base)
    converted_ids = _ids(tokenizer)
    explicit, _ = _load_tokenizer(_base_dir(tmp_path / "explicit", resolved))
    assert converted_ids == _ids(explicit)

    out = tmp_path / "converted"
    tokenizer.save_pretrained(str(out))
    assert json.loads((out / "tokenizer_config.json").read_text())["legacy"] is resolved  # written explicitly
    assert _ids(load_tokenizer(out)) == converted_ids


def test_missing_key_tokenizes_like_legacy_true_not_like_false(tmp_path: Path) -> None:
    ids = {legacy: _ids(_load_tokenizer(_base_dir(tmp_path, legacy))[0]) for legacy in (True, False, None)}
    assert ids[None] == ids[True]
    assert ids[True] != ids[False]
    tokenizer, _ = _load_tokenizer(_base_dir(tmp_path / "again", None))
    tokens = tokenizer.convert_ids_to_tokens(ids[None])
    after = tokens[tokens.index("<video_end>") + 1]
    assert after == "▁"  # legacy: the word prefix after an added token
    stretch = "".join(tokens[tokens.index("<f_object>") + 1 : tokens.index("</f_object>")])
    assert stretch == "▁▁...▁"  # " ... " after it: the prefix, then the space, as sentencepiece does


def test_converted_directory_without_the_key_loads_as_legacy(tmp_path: Path) -> None:
    """Directories converted before the pin (no key) load as 4.37 read their base: legacy true."""
    base = _base_dir(tmp_path, True)
    tokenizer, _ = _load_tokenizer(base)
    out = tmp_path / "old_converted"
    tokenizer.save_pretrained(str(out))
    config = json.loads((out / "tokenizer_config.json").read_text())
    config.pop("legacy")
    (out / "tokenizer_config.json").write_text(json.dumps(config))
    assert _ids(load_tokenizer(out)) == _ids(tokenizer)


def test_match_original_is_idempotent(tmp_path: Path) -> None:
    tokenizer, _ = _load_tokenizer(_base_dir(tmp_path, True))
    once = _ids(tokenizer)
    assert _ids(match_original(tokenizer, True)) == once


def test_match_original_refuses_a_tokenizer_it_would_mistokenize(tmp_path: Path) -> None:
    from tokenizers import pre_tokenizers

    tokenizer, _ = _load_tokenizer(_base_dir(tmp_path, False))
    tokenizer.backend_tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    with pytest.raises(DataError, match="not a LLaMA sentencepiece tokenizer"):
        match_original(tokenizer, True)


def test_add_prefix_space_false_is_ignored_as_by_4_37(tmp_path: Path) -> None:
    """4.37.2's LlamaTokenizer has no ``add_prefix_space``: the text's first word keeps its "▁"."""
    base = _base_dir(tmp_path, False)
    config = json.loads((base / "tokenizer_config.json").read_text())
    (base / "tokenizer_config.json").write_text(json.dumps({**config, "add_prefix_space": False}))
    tokenizer, _ = _load_tokenizer(base)
    plain, _ = _load_tokenizer(_base_dir(tmp_path / "plain", False))
    assert tokenizer.tokenize("dog <f_object>")[0].startswith("▁")
    assert _ids(tokenizer) == _ids(plain)
