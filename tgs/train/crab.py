"""Initialisation from the Crab projector pre-training files, as TGS-Agent's fine-tuning does it.

The original fine-tune (``finetune_hyperlora.py``) builds base LLaMA-2 + fresh LoRA, adds the
21 tokens (``resize_token_embeddings``: new rows drawn from N(0, initializer_range) by
transformers 4.37, the version it pins), adds CLIP, BEATs and fresh projectors, then loads
``audio_pretrain.bin`` and then ``visual_pretrain.bin`` (HF ``ahsgdxhs/Crab``) into the model
with ``strict=False``, after popping ``model.embed_tokens.weight`` from each.

Here the same files go through the converter's strict, reported mapping
(``tgs.think.ref_thinker.convert``): every key must be a projector parameter
(``model.vl_projector.*`` / ``model.al_projector.*``), ``lm_head.weight`` (loaded, as the
original's non-strict load does; the later file wins) or ``model.embed_tokens.weight``
(dropped, as the original pops it); anything else raises CheckpointKeyError listing the
keys, a wrong shape raises WeightsError, and projector parameters that neither file
provides are listed as missing. A report says where every tensor came from.

``build_crab_init`` writes the resulting model (without LoRA: ``tgs train`` adds a fresh
adapter) as a Ref-Thinker directory, the ``--init`` of a paper fine-tune;
``apply_crab_projectors`` loads the files into an already built model.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tgs.errors import CheckpointKeyError, MissingWeightsError, WeightsError
from tgs.publish import check_output_dir, staged_directory
from tgs.think.ref_thinker.checkpoint import (
    save_ref_thinker_model,
    shared_tensor_aliases,
    tie_shared,
)
from tgs.think.ref_thinker.convert import PEFT_PREFIX, read_release_file
from tgs.think.ref_thinker.modeling import build_empty_model

__all__ = [
    "CRAB_AUDIO_NAME",
    "CRAB_VISUAL_NAME",
    "CrabReport",
    "apply_crab_projectors",
    "build_crab_init",
    "crab_state",
    "read_crab_files",
]

logger = logging.getLogger(__name__)

CRAB_AUDIO_NAME = "audio_pretrain.bin"
CRAB_VISUAL_NAME = "visual_pretrain.bin"
INIT_RECORD = "crab_init.json"
_PROJECTOR_PREFIXES = ("model.vl_projector.", "model.al_projector.")
_LOADED_EXTRA = ("lm_head.weight",)
_DROPPED = ("model.embed_tokens.weight",)


@dataclass
class CrabReport:
    """Where the Crab tensors went."""

    loaded: dict[str, int] = field(default_factory=dict)  # file -> tensors taken
    overridden: int = 0  # tensors of the audio file replaced by the visual file
    dropped: list[str] = field(default_factory=list)  # "file: key", as the original pops them
    lm_head_from: str | None = None
    files: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _strip_optional_peft_prefix(state: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    """Crab's files come from a model without peft; a peft-wrapped save is accepted too (all keys prefixed)."""
    prefixed = [k.startswith(PEFT_PREFIX) for k in state]
    if state and all(prefixed):
        return {k[len(PEFT_PREFIX) :]: v for k, v in state.items()}
    if any(prefixed):
        raise CheckpointKeyError(
            f"{path.name}: some keys have the peft prefix {PEFT_PREFIX!r} and some do not",
            unexpected=[k for k in state if not k.startswith(PEFT_PREFIX)][:20],
            path=path,
        )
    return state


def read_crab_files(crab_dir: str | Path) -> dict[str, tuple[Path, dict[str, torch.Tensor]]]:
    """{file name: (path, state)} of the two pre-training files, audio first (the original's order)."""
    crab_dir = Path(crab_dir)
    out = {}
    for name in (CRAB_AUDIO_NAME, CRAB_VISUAL_NAME):
        path = crab_dir / name
        if not path.is_file():
            raise MissingWeightsError(
                f"no {name} in {crab_dir}", path=crab_dir, fix="download the Crab projector files (HF ahsgdxhs/Crab)"
            )
        out[name] = (path, _strip_optional_peft_prefix(read_release_file(path), path))
    return out


def crab_state(
    files: Mapping[str, tuple[Path, Mapping[str, torch.Tensor]]],
    expected: Mapping[str, torch.Tensor],
    aliases: Mapping[str, str],
    parameters: set[str],
) -> tuple[dict[str, torch.Tensor], CrabReport]:
    """The tensors to load (model keys -> tensors) and the report; strict key and shape checks.

    expected: the model's state dict without alias keys; aliases: ``shared_tensor_aliases``
    of the model (a Q-Former MLM decoder saved under its alias folds onto its owner);
    parameters: the model's parameter names (every projector parameter must be provided;
    buffers such as the Q-Former's position ids need not be).
    """
    report = CrabReport(files={name: str(path) for name, (path, _) in files.items()})
    taken: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}
    for name, (path, state) in files.items():
        unexpected, wrong = [], []
        count = 0
        for key, tensor in state.items():
            key = aliases.get(key, key)
            if key in _DROPPED:
                report.dropped.append(f"{name}: {key}")
                continue
            if not (key.startswith(_PROJECTOR_PREFIXES) or key in _LOADED_EXTRA) or key not in expected:
                unexpected.append(key)
                continue
            if tuple(tensor.shape) != tuple(expected[key].shape):
                wrong.append(f"{key}: file {tuple(tensor.shape)}, model {tuple(expected[key].shape)}")
                continue
            if key in origin and origin[key] != name:
                report.overridden += 1
            taken[key], origin[key] = tensor, name
            count += 1
        if unexpected:
            raise CheckpointKeyError(
                f"{name}: keys that are neither projector parameters, lm_head nor embed_tokens",
                unexpected=sorted(unexpected),
                path=path,
                fix="pass Crab's projector pre-training files (audio_pretrain.bin, visual_pretrain.bin)",
            )
        if wrong:
            raise WeightsError(f"{path}: {len(wrong)} tensor(s) of the wrong shape: {'; '.join(wrong[:5])}", path=path)
        report.loaded[name] = count
    missing = sorted(k for k in parameters if k.startswith(_PROJECTOR_PREFIXES) and k not in taken)
    if missing:
        raise CheckpointKeyError(
            "the Crab files do not provide every projector parameter",
            missing=missing,
            fix="pass both audio_pretrain.bin and visual_pretrain.bin from the same Crab release",
        )
    report.lm_head_from = origin.get("lm_head.weight")
    return taken, report


def apply_crab_projectors(model: nn.Module, crab_dir: str | Path) -> CrabReport:
    """Load the Crab projectors (and lm_head, if the files hold it) into ``model`` in place."""
    aliases = shared_tensor_aliases(model)
    expected = {k: v for k, v in model.state_dict().items() if k not in aliases}
    parameters = {name for name, _ in model.named_parameters()}
    taken, report = crab_state(read_crab_files(crab_dir), expected, aliases, parameters)
    with torch.no_grad():
        for key, tensor in taken.items():
            expected[key].copy_(tensor.to(expected[key].dtype))
    logger.info("Crab init: %s; dropped %s", report.loaded, report.dropped or "nothing")
    return report


def _resized_rows(base: torch.Tensor, rows: int, std: float, generator: torch.Generator) -> torch.Tensor:
    """``base`` [V, D] followed by ``rows - V`` rows drawn from N(0, std) (transformers 4.37's resize)."""
    extra = torch.randn(rows - base.shape[0], base.shape[1], generator=generator, dtype=torch.float32) * std
    return torch.cat([base.float(), extra]).to(base.dtype)


def build_crab_init(
    llama_dir: str | Path,
    clip_dir: str | Path,
    beats_path: str | Path,
    crab_dir: str | Path,
    out_dir: str | Path,
    *,
    dtype: torch.dtype = torch.bfloat16,
    seed: int = 42,
    vision_feature_layer: int = 23,
    qformer_attention_heads: int = 12,
    overwrite: bool = False,
) -> CrabReport:
    """Write the model the original fine-tune starts from (without LoRA) to ``out_dir``.

    Base LLaMA (its embed_tokens / lm_head grown by 21 rows drawn with ``seed``), CLIP, BEATs,
    then the Crab files (audio, then visual). The directory loads with
    ``RefThinkerForCausalLM.from_pretrained`` and is ``tgs train --init``'s input.
    """
    from transformers import CLIPImageProcessorPil

    from tgs.think.ref_thinker.convert import (
        _Assembler,
        _build_config,
        _component_states,
        _fold_aliases,
        _load_tokenizer,
        _projector_settings,
    )

    llama_dir, clip_dir, beats_path, out_dir = Path(llama_dir), Path(clip_dir), Path(beats_path), Path(out_dir)
    check_output_dir(out_dir, overwrite)
    files = read_crab_files(crab_dir)
    merged = {k: v for _, state in files.values() for k, v in state.items()}
    tokenizer, base_vocab = _load_tokenizer(llama_dir)
    llm_state, vision_state, audio_state, beats_config = _component_states(llama_dir, clip_dir, beats_path, dtype)
    config = _build_config(
        llama_dir, clip_dir, beats_config, base_vocab, None,
        _projector_settings(merged, qformer_attention_heads), vision_feature_layer,
    )  # fmt: skip
    model = build_empty_model(config)
    aliases = shared_tensor_aliases(model)
    expected = {k: v for k, v in model.state_dict().items() if k not in aliases}
    generator = torch.Generator().manual_seed(seed)
    for key in ("model.embed_tokens.weight", "lm_head.weight"):
        llm_state[key] = _resized_rows(llm_state[key], config.vocab_size, config.initializer_range, generator)
    assembler = _Assembler(expected, dtype)
    assembler.add("base LLaMA (+21 rows)", llm_state)
    assembler.add("CLIP", vision_state)
    assembler.add("BEATs", _fold_aliases(audio_state, aliases, "BEATs"))
    taken, report = crab_state(files, expected, aliases, {name for name, _ in model.named_parameters()})
    assembler.add("Crab", taken)
    values, _ = assembler.finish(model)
    for alias, owner in aliases.items():
        values[alias] = values[owner]
    model.load_state_dict(values, strict=True, assign=True)
    tie_shared(model, aliases)

    with staged_directory(out_dir) as staging:
        save_ref_thinker_model(model, staging, dtype=dtype)
        tokenizer.save_pretrained(str(staging))
        CLIPImageProcessorPil.from_pretrained(str(clip_dir)).save_pretrained(str(staging))
        record = {
            "crab": report.to_dict(),
            "sources": {"llama": str(llama_dir), "clip": str(clip_dir), "beats": str(beats_path)},
            "new_token_rows": {"seed": seed, "std": config.initializer_range},
            "dtype": str(dtype).removeprefix("torch."),
        }
        (staging / INIT_RECORD).write_text(json.dumps(record, indent=2) + "\n")
    logger.info("wrote the Crab-initialised Ref-Thinker to %s", out_dir)
    return report
