"""Record the original's token ids for the Ref-Thinker texts: the fixture of tests/think/test_tokenizer_ids.py.

TGS-Agent tokenized with transformers 4.37.2's *slow* sentencepiece tokenizer
(``scripts/finetune/inference_hyper_lora.py`` and ``finetune_hyperlora.py``)::

    tokenizer = LlamaTokenizer.from_pretrained(base, padding_side="left", use_fast=True)
    tokenizer.add_tokens([...21 tokens...], special_tokens=True)   # models/unified_arch.py
    ids = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(text))  # dataset/unified_dataset.py

(``use_fast`` means nothing to the concrete slow class.) This script does exactly that with
transformers 4.37.2 itself, which tgs cannot import (it pins transformers 5), so it runs in
a separate environment and refuses any other transformers version::

    python3.11 -m venv /tmp/tokenizer-venv
    /tmp/tokenizer-venv/bin/pip install transformers==4.37.2 sentencepiece==0.2.0 \\
        tokenizers==0.15.2 protobuf==4.25.3
    PYTHONPATH=. /tmp/tokenizer-venv/bin/python scripts/record_tokenizer_ids.py tests/fixtures/tokenizer_legacy

(the versions of the original's ``think_environment.yml``; no torch needed).

The tokenizer: the real LLaMA-2 ``tokenizer.model`` cannot be downloaded here, so the
fixture holds a tiny sentencepiece BPE model trained with LLaMA's settings (byte fallback,
dummy prefix, no whitespace folding, digits split, whitespace-only pieces allowed) on the
Ref-Thinker texts. ``--train`` (re)trains it; without it the shipped ``tokenizer.model`` is
used, so the recorded ids always belong to the file the test loads. The base
``tokenizer_config.json`` is LLaMA-2's without the ``legacy`` key; the ids are recorded for
that file as it is and with ``"legacy": true`` / ``false`` added.

The cases: every Ref-Thinker text tgs tokenizes with this tokenizer (inference and training
prompts from ``tgs.think.ref_thinker.prompts`` for several expressions, and training
targets), and edge cases around added tokens. The fixture also stores each text, so the
test can tell when the prompts changed and the fixture must be recorded again.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from pathlib import Path

logger = logging.getLogger("record_tokenizer_ids")

TRANSFORMERS_VERSION = "4.37.2"

# models/unified_arch.py, initialize_MM_tokenizer: the tokens the original adds, in its order.
# The test checks this list against tgs.think.ref_thinker.configuration.SPECIAL_TOKENS.
ADDED_TOKENS = [
    "<image>", "<image_start>", "<image_end>", "<video>", "<video_start>", "<video_end>",
    "<audio>", "<audio_start>", "<audio_end>", "<think>", "</think>", "<answer>", "</answer>",
    "<f_object>", "</f_object>", "<s_object>", "</s_object>", "<frame>", "</frame>", "<box>", "</box>",
]  # fmt: skip

# LLaMA-2-7b-chat-hf's tokenizer_config.json, less "legacy" (the key the cases vary).
BASE_CONFIG = {
    "add_bos_token": True,
    "add_eos_token": False,
    "bos_token": {"__type": "AddedToken", "content": "<s>", "lstrip": False, "normalized": False,
                  "rstrip": False, "single_word": False},
    "clean_up_tokenization_spaces": False,
    "eos_token": {"__type": "AddedToken", "content": "</s>", "lstrip": False, "normalized": False,
                  "rstrip": False, "single_word": False},
    "model_max_length": 1000000000000000019884624838656,
    "pad_token": None,
    "padding_side": "right",
    "sp_model_kwargs": {},
    "tokenizer_class": "LlamaTokenizer",
    "unk_token": {"__type": "AddedToken", "content": "<unk>", "lstrip": False, "normalized": False,
                  "rstrip": False, "single_word": False},
}  # fmt: skip

# config name -> the "legacy" value written into tokenizer_config.json (None: key absent)
CONFIGS: dict[str, bool | None] = {"absent": None, "true": True, "false": False}

EXPRESSIONS = [
    "The dog barking on the left",
    "The Object Making The Loudest Sound.",
    "the guitar being played, not the piano",
    "the man's voice (the one on the right)",
    "  two leading spaces and a trailing one ",
    "the 2nd car from the left",
    "the café's espresso machine",
    "something that isn't there",
]

ANSWERS = [
    "<think>The dog barks loudly on the left.</think>\n<answer>\n<f_object> a black dog </f_object>\n"
    "<s_object> dog </s_object>\nThe corresponding bbox is: <frame> <box> 10, 20, 30, 40 </box> </frame>\n</answer>",
    "<think>\nNothing in the video makes that sound.\n</think>\n<answer>\n<f_object> null </f_object>\n"
    "<s_object> null </s_object>\nThe corresponding bbox is: <frame> <box> null </box> </frame>\n</answer>",
]

# Added tokens next to spaces, punctuation, newlines, text edges and each other.
EDGE_CASES = {
    "space_after": "<f_object> dog",
    "spaces_around": "<f_object> ... </f_object>",
    "two_spaces_after": "<f_object>  dog",
    "only_space_between": "<frame> <box>",
    "punctuation_after": "<f_object>.",
    "punctuation_then_space": "<f_object>. dog",
    "word_after": "<f_object>dog",
    "at_end": "the dog <f_object>",
    "at_end_after_space": "dog </f_object>",
    "space_at_end": "<f_object> ",
    "at_start": "<f_object> dog </f_object>",
    "adjacent": "<f_object></f_object>",
    "adjacent_three": "<video_start><video><video_end>",
    "newline_after": "<f_object>\ndog",
    "newline_then_space": "<think>\n dog",
    "space_then_newline": "<think> \ndog",
    "bos_then_space": "<s> This is",
    "bos_then_text": "<s>This is",
    "eos_after_text": "dog.</s>",
    "eos_after_space": "dog </s>",
    "text_only": "This is a video:",
    "leading_space_no_token": " dog",
    "literal_metaspace_after": "<f_object>\u2581dog",
    "tab_after": "<f_object>\tdog",
    "digits_after": "<box> 10, 20 </box>",
    "non_ascii_after": "<f_object> café",
    "empty": "",
}


def _texts() -> dict[str, str]:
    from tgs.think.ref_thinker.prompts import build_prompt, training_target

    texts: dict[str, str] = {}
    for n, expression in enumerate(EXPRESSIONS):
        for variant in ("inference", "training"):
            texts[f"prompt_{variant}_{n}"] = build_prompt(expression, variant)  # type: ignore[arg-type]
    for n, answer in enumerate(ANSWERS):
        texts[f"target_{n}"] = training_target(answer)
    texts.update({f"edge_{name}": text for name, text in EDGE_CASES.items()})
    return texts


def _train_model(out: Path, texts: dict[str, str]) -> None:
    """A tiny sentencepiece BPE model with LLaMA's normalizer and trainer settings."""
    import sentencepiece as spm

    corpus = [*texts.values(), *ANSWERS, " ".join(EXPRESSIONS).lower(), "  indented line", "a  b   c"] * 4
    with tempfile.TemporaryDirectory() as tmp:
        prefix = Path(tmp) / "tiny"
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(corpus),
            model_prefix=str(prefix),
            model_type="bpe",
            vocab_size=420,
            character_coverage=1.0,
            byte_fallback=True,
            split_digits=True,
            allow_whitespace_only_pieces=True,
            remove_extra_whitespaces=False,
            add_dummy_prefix=True,
            normalization_rule_name="identity",
            unk_id=0,
            bos_id=1,
            eos_id=2,
            pad_id=-1,
            num_threads=1,
            minloglevel=2,
        )
        out.mkdir(parents=True, exist_ok=True)
        (out / "tokenizer.model").write_bytes(prefix.with_suffix(".model").read_bytes())


def _write_tokenizer_json(base: Path) -> None:
    """``tokenizer.json`` beside ``tokenizer.model``, converted by 4.37.2 as the hub's LLaMA-2 one was."""
    from transformers import LlamaTokenizerFast

    with tempfile.TemporaryDirectory() as tmp:
        LlamaTokenizerFast.from_pretrained(str(base), from_slow=True, legacy=True).save_pretrained(tmp)
        (base / "tokenizer.json").write_bytes((Path(tmp) / "tokenizer.json").read_bytes())


def _write_config(directory: Path, legacy: bool | None) -> None:
    config = dict(BASE_CONFIG)
    if legacy is not None:
        config["legacy"] = legacy
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def _record(base: Path, legacy: bool | None, texts: dict[str, str]) -> dict[str, list[int]]:
    """The original's ids for each text, the base config's "legacy" set to ``legacy``."""
    from transformers import LlamaTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        (directory / "tokenizer.model").write_bytes((base / "tokenizer.model").read_bytes())
        _write_config(directory, legacy)
        tokenizer = LlamaTokenizer.from_pretrained(str(directory), padding_side="left", use_fast=True)
        tokenizer.add_tokens(ADDED_TOKENS, special_tokens=True)
        return {name: tokenizer.convert_tokens_to_ids(tokenizer.tokenize(text)) for name, text in texts.items()}


def _dumps(fixture: dict) -> str:
    """JSON with one line per text and per id list, so a re-recording diffs readably."""
    lines = []
    for key, value in fixture.items():
        if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
            inner = [
                f"  {json.dumps(name)}: {{\n"
                + ",\n".join(f"   {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in rows.items())
                + "\n  }"
                for name, rows in value.items()
            ]
            lines.append(f" {json.dumps(key)}: {{\n" + ",\n".join(inner) + "\n }")
        elif isinstance(value, dict) and key == "texts":
            rows = ",\n".join(f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in value.items())
            lines.append(f" {json.dumps(key)}: {{\n{rows}\n }}")
        else:
            lines.append(f" {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("out", type=Path, help="fixture folder (tests/fixtures/tokenizer_legacy)")
    parser.add_argument("--train", action="store_true", help="(re)train the tiny tokenizer.model first")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    import sentencepiece
    import transformers

    if transformers.__version__ != TRANSFORMERS_VERSION:
        parser.error(
            f"needs transformers=={TRANSFORMERS_VERSION} (the original's), found {transformers.__version__}; "
            "run it in the separate environment described at the top of this script"
        )
    texts = _texts()
    base: Path = args.out / "base"
    if args.train:
        _train_model(base, texts)
        _write_config(base, None)
        _write_tokenizer_json(base)
    elif not (base / "tokenizer.model").is_file():
        parser.error(f"{base / 'tokenizer.model'} does not exist; pass --train to create it")

    from transformers import LlamaTokenizer

    tokenizer = LlamaTokenizer.from_pretrained(str(base), legacy=True)
    fixture = {
        "recorded_with": {"transformers": transformers.__version__, "sentencepiece": sentencepiece.__version__},
        "how": "LlamaTokenizer.from_pretrained(base, padding_side='left', use_fast=True); "
        "add_tokens(added_tokens, special_tokens=True); convert_tokens_to_ids(tokenize(text))",
        "base_vocab_size": len(tokenizer),
        "added_tokens": ADDED_TOKENS,
        "expressions": EXPRESSIONS,
        "answers": ANSWERS,
        "configs": CONFIGS,
        "texts": texts,
        "ids": {name: _record(base, legacy, texts) for name, legacy in CONFIGS.items()},
    }
    partial = args.out / "ids.json.partial"
    partial.write_text(_dumps(fixture), encoding="utf-8")
    os.replace(partial, args.out / "ids.json")
    differ = sum(fixture["ids"]["true"][n] != fixture["ids"]["false"][n] for n in texts)
    logger.info("%d texts x %d configs -> %s (%d texts differ between legacy true and false)",
                len(texts), len(CONFIGS), args.out / "ids.json", differ)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
