"""Convert the released TGS-Agent files into one self-contained Ref-Thinker directory.

Inputs (what a user downloads):

- ``non_lora_trainables.bin`` and ``checkpoint-*/finetune_weights.bin`` from HF
  ``Jinxing1/TGS-Agent``: peft-named state dicts (``base_model.model.model.layers.N...
  lora_A.default.weight``, ``base_model.model.model.vl_projector...``, ...);
- the base ``Llama-2-7b-chat-hf`` directory (LLM weights and tokenizer);
- the ``clip-vit-large-patch14`` directory (vision tower and image preprocessing);
- ``BEATs_iter3_plus_AS2M_finetuned_on_AS2M_cpt2.pt``.

The weights are applied in the original's order (``inference_hyper_lora.py``): base
LLaMA, CLIP and BEATs, then ``finetune_weights.bin``, then ``non_lora_trainables.bin``,
whose projectors override the checkpoint's. The base ``embed_tokens`` / ``lm_head``
(32000 rows) are superseded by the released 32021-row matrices, as the original's
resize-then-load does. Unlike the original's ``strict=False`` loads, every key of the
released files must land on a model parameter and every parameter must come from some
file; anything else raises CheckpointKeyError listing the keys. Buffers (the Q-Former's
``position_ids``, rotary tables) are recomputed. ``.bin`` files are read with
``torch.load(weights_only=True)``.

The output holds ``config.json``, ``model.safetensors``, the tokenizer with the 21 added
tokens, ``preprocessor_config.json`` and ``conversion.json`` (provenance). LoRA stays an
unmerged peft adapter by default (as the original runs it); ``merge_lora=True`` folds it
into the LLaMA weights (computed in float32).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from tgs.errors import CheckpointKeyError, DataError, MissingWeightsError, WeightsError
from tgs.publish import check_output_dir, staged_directory
from tgs.safety import safe_torch_load
from tgs.think.ref_thinker.checkpoint import (
    LLM_LORA_TARGETS,
    WEIGHTS_NAME,
    save_ref_thinker_model,
    shared_tensor_aliases,
    tie_shared,
)
from tgs.think.ref_thinker.checkpoint import merge_lora as fold_lora
from tgs.think.ref_thinker.configuration import SPECIAL_TOKENS, RefThinkerConfig
from tgs.think.ref_thinker.modeling import build_empty_model
from tgs.think.ref_thinker.tokenizer_legacy import load_llama_tokenizer

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = [
    "NON_LORA_NAME",
    "PEFT_PREFIX",
    "ConversionReport",
    "ReleaseFiles",
    "convert_ref_thinker",
    "read_release_file",
]

logger = logging.getLogger(__name__)

PEFT_PREFIX = "base_model.model."
NON_LORA_NAME = "non_lora_trainables.bin"
FINETUNE_NAME = "finetune_weights.bin"
CONVERSION_RECORD = "conversion.json"
DEFAULT_LORA_ALPHA = 16.0
DEFAULT_LORA_DROPOUT = 0.05

_LLAMA_FIELDS = (
    "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
    "head_dim", "hidden_act", "max_position_embeddings", "initializer_range", "rms_norm_eps", "rope_parameters",
    "attention_bias", "attention_dropout", "mlp_bias", "pretraining_tp", "bos_token_id", "eos_token_id",
)  # fmt: skip
_CLIP_UNUSED = (
    "text_model.", "logit_scale", "text_projection.", "visual_projection.",
    "vision_model.embeddings.position_ids", "embeddings.position_ids",  # a buffer older checkpoints stored
)  # fmt: skip
_VISION_PREFIX = "model.visual_encoder.vision_tower.vision_model."
_AUDIO_PREFIX = "model.audio_encoder.audio_encoder."
_SUPERSEDED_BASE = ("model.embed_tokens.weight", "lm_head.weight")


@dataclass(frozen=True)
class ReleaseFiles:
    """The two released weight files."""

    non_lora_trainables: Path
    finetune_weights: Path

    @classmethod
    def discover(cls, release_dir: str | Path, checkpoint: str | None = None) -> ReleaseFiles:
        """Find ``non_lora_trainables.bin`` and ``<checkpoint>/finetune_weights.bin`` in a download.

        checkpoint: the ``checkpoint-*`` folder to use; needed only when there are several.
        """
        root = Path(release_dir)
        non_lora = root / NON_LORA_NAME
        if not non_lora.is_file():
            raise MissingWeightsError(
                f"no {NON_LORA_NAME} in {root}", path=root, fix="download Jinxing1/TGS-Agent and pass its folder"
            )
        if checkpoint is not None:
            finetune = root / checkpoint / FINETUNE_NAME
            if not finetune.is_file():
                raise MissingWeightsError(f"no {FINETUNE_NAME} in {root / checkpoint}", path=root / checkpoint)
            return cls(non_lora, finetune)
        found = sorted(p for p in root.glob(f"checkpoint-*/{FINETUNE_NAME}"))
        if not found:
            raise MissingWeightsError(
                f"no checkpoint-*/{FINETUNE_NAME} in {root}", path=root, fix="download the checkpoint-551 folder too"
            )
        if len(found) > 1:
            names = ", ".join(p.parent.name for p in found)
            raise DataError(f"several checkpoints in {root} ({names})", path=root, fix="choose one with --checkpoint")
        return cls(non_lora, found[0])


@dataclass
class ConversionReport:
    """What the conversion did: where every parameter came from."""

    output_dir: str
    num_tensors: int
    num_parameters: int
    from_source: dict[str, int] = field(default_factory=dict)
    overridden: dict[str, int] = field(default_factory=dict)
    superseded_base: list[str] = field(default_factory=list)
    recomputed_buffers: list[str] = field(default_factory=list)
    lora: dict[str, Any] | None = None
    merged_lora: bool = False
    dtype: str = "bfloat16"
    sources: dict[str, str] = field(default_factory=dict)


def read_release_file(path: str | Path) -> dict[str, torch.Tensor]:
    """A pickled state dict read with ``weights_only=True``; anything but tensors is refused."""
    path = Path(path)
    data = safe_torch_load(path, what="released weight file")
    if not isinstance(data, dict) or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in data.items()):
        raise WeightsError(f"{path} is not a {{name: tensor}} state dict", path=path)
    return data


def _strip_peft_prefix(state: Mapping[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    bad = [k for k in state if not k.startswith(PEFT_PREFIX)]
    if bad:
        raise CheckpointKeyError(
            f"{path.name}: keys without the peft prefix {PEFT_PREFIX!r}",
            unexpected=bad,
            path=path,
            fix="pass the files exactly as released (they are saved from the peft-wrapped model)",
        )
    return {k[len(PEFT_PREFIX) :]: v for k, v in state.items()}


def _lora_settings(
    released: Iterable[Mapping[str, torch.Tensor]], release_dirs: Iterable[Path], lora_alpha: float | None
) -> dict[str, Any] | None:
    """r from the LoRA tensor shapes; alpha/dropout from adapter_config.json, else the paper's."""
    ranks = {t.shape[0] for state in released for k, t in state.items() if ".lora_A." in k}
    if not ranks:
        return None
    if len(ranks) > 1:
        raise WeightsError(f"LoRA tensors of several ranks {sorted(ranks)} in the released files")
    rank = ranks.pop()
    adapter: dict[str, Any] = {}
    for folder in release_dirs:
        candidate = folder / "adapter_config.json"
        if candidate.is_file():
            adapter = json.loads(candidate.read_text())
            if int(adapter.get("r", rank)) != rank:
                raise WeightsError(
                    f"{candidate} says r={adapter['r']} but the LoRA tensors have rank {rank}", path=candidate
                )
            break
    alpha = lora_alpha if lora_alpha is not None else float(adapter.get("lora_alpha", DEFAULT_LORA_ALPHA))
    dropout = float(adapter.get("lora_dropout", DEFAULT_LORA_DROPOUT))
    return {"r": rank, "lora_alpha": alpha, "lora_dropout": dropout, "target_modules": LLM_LORA_TARGETS}


def _projector_settings(state: Mapping[str, torch.Tensor], heads: int) -> dict[str, Any]:
    """Q-Former sizes, queries and MLP depth as the released projector tensors show them.

    The tensors fix every size but the number of attention heads (12 in bert-base).
    """
    prefix = "model.vl_projector."
    qformer = prefix + "visual_Qformer.bert."
    try:
        queries = state[prefix + "visual_query_tokens"]
        words = state[qformer + "embeddings.word_embeddings.weight"]
        positions = state[qformer + "embeddings.position_embeddings.weight"]
        ffn = state[qformer + "encoder.layer.0.intermediate_query.dense.weight"]
        audio_queries = state["model.al_projector.audio_query_tokens"]
    except KeyError as exc:
        raise CheckpointKeyError(
            "the released files lack projector tensors", missing=[PEFT_PREFIX + str(exc.args[0])],
            fix="pass both released files (non_lora_trainables.bin and finetune_weights.bin)",
        ) from exc  # fmt: skip
    layers = {int(k[len(qformer + "encoder.layer.") :].split(".")[0]) for k in state if k.startswith(qformer + "encoder.layer.")}
    cross = {int(k[len(qformer + "encoder.layer.") :].split(".")[0]) for k in state
             if k.startswith(qformer + "encoder.layer.") and ".crossattention." in k}  # fmt: skip
    if cross != layers:
        raise WeightsError(f"Q-Former cross-attention only in layers {sorted(cross)} of {sorted(layers)}; expected every layer")
    depth = len({k.split(".")[3] for k in state if k.startswith(prefix + "visual_proj.") and k.endswith(".weight")})
    return {
        "qformer_config": {
            "vocab_size": words.shape[0],
            "hidden_size": words.shape[1],
            "num_hidden_layers": len(layers),
            "num_attention_heads": heads,
            "intermediate_size": ffn.shape[0],
            "max_position_embeddings": positions.shape[0],
        },
        "num_video_query_tokens": queries.shape[1],
        "num_audio_query_tokens": audio_queries.shape[1],
        "projector_depth": depth,
    }


def _build_config(
    llama_dir: Path,
    clip_dir: Path,
    beats_config: dict[str, Any],
    base_vocab: int,
    lora: dict[str, Any] | None,
    projector: dict[str, Any],
    vision_feature_layer: int,
) -> RefThinkerConfig:
    from transformers import CLIPVisionConfig, LlamaConfig

    llama = LlamaConfig.from_pretrained(str(llama_dir)).to_dict()
    vision = CLIPVisionConfig.from_pretrained(str(clip_dir)).to_diff_dict()
    for key in ("transformers_version", "model_type", "architectures", "dtype", "torch_dtype"):
        vision.pop(key, None)
    audio = dict(beats_config, encoder_layerdrop=0.0)  # the original sets it to 0 after loading
    return RefThinkerConfig(
        vocab_size=base_vocab + len(SPECIAL_TOKENS),
        first_added_token_id=base_vocab,
        pad_token_id=llama.get("eos_token_id", 2),
        vision_config=vision,
        audio_config=audio,
        vision_feature_layer=vision_feature_layer,
        lora=lora,
        **projector,
        **{k: llama[k] for k in _LLAMA_FIELDS if llama.get(k) is not None},
    )


def _load_tokenizer(llama_dir: Path) -> tuple[PreTrainedTokenizerBase, int]:
    try:
        tokenizer = load_llama_tokenizer(llama_dir)  # tokenizing as the original's transformers 4.37.2
    except (OSError, ValueError) as exc:
        raise MissingWeightsError(f"no usable LLaMA tokenizer in {llama_dir}: {exc}", path=llama_dir) from exc
    base_vocab = len(tokenizer)
    tokenizer.add_tokens(list(SPECIAL_TOKENS), special_tokens=True)
    ids = tokenizer.convert_tokens_to_ids(list(SPECIAL_TOKENS))
    if ids != list(range(base_vocab, base_vocab + len(SPECIAL_TOKENS))):
        raise WeightsError(
            f"the tokenizer in {llama_dir} already knows some of Ref-Thinker's tokens (ids {ids})",
            path=llama_dir,
            fix="pass the unmodified base LLaMA-2-7b-chat-hf directory",
        )
    tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer, base_vocab


def _component_states(
    llama_dir: Path, clip_dir: Path, beats_path: Path, dtype: torch.dtype
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, Any]]:
    """(LLaMA, CLIP vision, BEATs) state dicts under the Ref-Thinker key names, and BEATs' cfg."""
    from transformers import CLIPVisionModel, LlamaForCausalLM

    from tgs.models.hf_loading import load_model
    from tgs.think.ref_thinker.beats import load_beats_checkpoint

    cpu = torch.device("cpu")
    llama = load_model(
        LlamaForCausalLM, llama_dir, what="base LLaMA", how_to_get="download meta-llama/Llama-2-7b-chat-hf",
        device=cpu, dtype=dtype,
    )  # fmt: skip
    llm_state = dict(llama.state_dict())
    del llama
    clip = load_model(
        CLIPVisionModel, clip_dir, what="CLIP vision tower", how_to_get="download openai/clip-vit-large-patch14",
        device=cpu, dtype=dtype, allowed_unexpected=_CLIP_UNUSED,
    )  # fmt: skip
    vision_state = {_VISION_PREFIX + k: v for k, v in clip.state_dict().items()}
    beats = load_beats_checkpoint(beats_path)
    audio_state = {_AUDIO_PREFIX + k: v for k, v in beats.state_dict().items()}
    return llm_state, vision_state, audio_state, beats.config.to_dict()


def _llm_key(key: str, expected: Mapping[str, torch.Tensor]) -> str:
    """A base LLaMA key under the (possibly LoRA-wrapped) model: q_proj.weight -> q_proj.base_layer.weight."""
    if key in expected:
        return key
    module, _, leaf = key.rpartition(".")
    wrapped = f"{module}.base_layer.{leaf}"
    return wrapped if wrapped in expected else key


def _fold_aliases(state: dict[str, torch.Tensor], aliases: Mapping[str, str], source: str) -> dict[str, torch.Tensor]:
    """Copies of shared tensors (BEATs' position-bias table, an MLM decoder) go to their owner key."""
    for alias, owner in aliases.items():
        if alias not in state:
            continue
        value = state.pop(alias)
        if owner in state and not torch.equal(state[owner], value):
            raise WeightsError(f"{source}: {alias!r} must equal {owner!r} (the model shares one tensor), but they differ")
        state.setdefault(owner, value)
    return state


class _Assembler:
    """Collects tensors for every model key from the sources, in order, with strict checks."""

    def __init__(self, expected: Mapping[str, torch.Tensor], dtype: torch.dtype) -> None:
        self.expected = expected
        self.dtype = dtype
        self.values: dict[str, torch.Tensor] = {}
        self.origin: dict[str, str] = {}
        self.overridden: dict[str, int] = {}
        self.wrong_shapes: list[str] = []

    def add(self, source: str, state: Mapping[str, torch.Tensor], path: Path | None = None) -> None:
        unexpected = sorted(k for k in state if k not in self.expected)
        if unexpected:
            raise CheckpointKeyError(
                f"{source}: keys that are no parameter of Ref-Thinker",
                unexpected=[PEFT_PREFIX + k if path is not None else k for k in unexpected],
                path=path,
                fix="these files do not belong to this architecture (or to this LLaMA / CLIP / BEATs)",
            )
        for key, tensor in state.items():
            target = self.expected[key]
            if tuple(tensor.shape) != tuple(target.shape):
                self.wrong_shapes.append(f"{source}: {key} is {tuple(tensor.shape)}, model has {tuple(target.shape)}")
                continue
            if key in self.origin:  # a later file overrides an earlier one, as in the original
                transition = f"{self.origin[key]} -> {source}"
                self.overridden[transition] = self.overridden.get(transition, 0) + 1
            self.values[key] = tensor.to(self.dtype) if tensor.is_floating_point() else tensor
            self.origin[key] = source

    def finish(self, model: nn.Module) -> tuple[dict[str, torch.Tensor], list[str]]:
        """All values; unset persistent buffers are taken from the freshly built model."""
        if self.wrong_shapes:
            raise WeightsError(f"{len(self.wrong_shapes)} tensor(s) of the wrong shape: " + "; ".join(self.wrong_shapes[:5]))
        parameters = {name for name, _ in model.named_parameters(remove_duplicate=False)}
        missing = sorted(k for k in self.expected if k not in self.values and k in parameters)
        if missing:
            raise CheckpointKeyError(
                "no input file provides these Ref-Thinker parameters",
                missing=missing,
                fix="check that the released files are complete (both non_lora_trainables.bin and finetune_weights.bin)",
            )
        recomputed = sorted(k for k in self.expected if k not in self.values)
        values = dict(self.values)
        for key in recomputed:
            values[key] = self.expected[key]
        return values, recomputed


def convert_ref_thinker(
    release: ReleaseFiles,
    llama_dir: str | Path,
    clip_dir: str | Path,
    beats_path: str | Path,
    out_dir: str | Path,
    *,
    merge_lora: bool = False,
    dtype: torch.dtype = torch.bfloat16,
    lora_alpha: float | None = None,
    vision_feature_layer: int = 23,
    qformer_attention_heads: int = 12,
    overwrite: bool = False,
) -> ConversionReport:
    """Build the fine-tuned Ref-Thinker from the released files and write it to ``out_dir``.

    dtype: storage dtype of the written weights (the original runs in bfloat16).
    lora_alpha: LoRA scale numerator when no adapter_config.json comes with the release
        (default 16, the paper's; the scale is alpha / r).
    vision_feature_layer: CLIP ``hidden_states`` index fed to the projector (23, the paper's).
    qformer_attention_heads: the one Q-Former size the tensors do not show (12, bert-base).
    Raises CheckpointKeyError (keys), WeightsError (shapes, unsafe files), MissingWeightsError.
    """
    from transformers import CLIPImageProcessorPil

    llama_dir, clip_dir, beats_path, out_dir = Path(llama_dir), Path(clip_dir), Path(beats_path), Path(out_dir)
    check_output_dir(out_dir, overwrite)
    non_lora = _strip_peft_prefix(read_release_file(release.non_lora_trainables), release.non_lora_trainables)
    finetune = _strip_peft_prefix(read_release_file(release.finetune_weights), release.finetune_weights)
    lora = _lora_settings(
        (non_lora, finetune), (release.finetune_weights.parent, release.non_lora_trainables.parent), lora_alpha
    )
    tokenizer, base_vocab = _load_tokenizer(llama_dir)
    work_dtype = torch.float32 if merge_lora else dtype
    llm_state, vision_state, audio_state, beats_config = _component_states(llama_dir, clip_dir, beats_path, work_dtype)
    projector = _projector_settings({**finetune, **non_lora}, qformer_attention_heads)
    config = _build_config(llama_dir, clip_dir, beats_config, base_vocab, lora, projector, vision_feature_layer)

    model = build_empty_model(config)
    aliases = shared_tensor_aliases(model)
    expected = {k: v for k, v in model.state_dict().items() if k not in aliases}
    assembler = _Assembler(expected, work_dtype)
    superseded = [k for k in _SUPERSEDED_BASE if k in llm_state]
    assembler.add("base LLaMA", {_llm_key(k, expected): v for k, v in llm_state.items() if k not in superseded})
    assembler.add("CLIP", vision_state)
    assembler.add("BEATs", _fold_aliases(audio_state, aliases, "BEATs"))
    assembler.add(FINETUNE_NAME, _fold_aliases(finetune, aliases, FINETUNE_NAME), release.finetune_weights)
    assembler.add(NON_LORA_NAME, _fold_aliases(non_lora, aliases, NON_LORA_NAME), release.non_lora_trainables)
    values, recomputed = assembler.finish(model)
    for alias, owner in aliases.items():
        values[alias] = values[owner]
    model.load_state_dict(values, strict=True, assign=True)
    tie_shared(model, aliases)
    if merge_lora and lora is not None:
        fold_lora(model)
        model.config.lora = None

    with staged_directory(out_dir) as staging:
        save_ref_thinker_model(model, staging, dtype=dtype)
        tokenizer.save_pretrained(str(staging))
        CLIPImageProcessorPil.from_pretrained(str(clip_dir)).save_pretrained(str(staging))
        report = ConversionReport(
            output_dir=str(out_dir),
            num_tensors=len(values) - len(aliases),
            num_parameters=sum(p.numel() for p in model.parameters()),
            from_source=_count(assembler.origin.values()),
            overridden=assembler.overridden,
            superseded_base=superseded,
            recomputed_buffers=recomputed,
            lora=lora,
            merged_lora=merge_lora and lora is not None,
            dtype=str(dtype).removeprefix("torch."),
            sources={
                "non_lora_trainables": str(release.non_lora_trainables),
                "finetune_weights": str(release.finetune_weights),
                "llama": str(llama_dir),
                "clip": str(clip_dir),
                "beats": str(beats_path),
            },
        )
        (staging / CONVERSION_RECORD).write_text(json.dumps(asdict(report), indent=2) + "\n")
        _verify_keys(staging)
    logger.info("wrote Ref-Thinker to %s (%d tensors)", out_dir, report.num_tensors)
    return report


def _count(values: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts


def _verify_keys(directory: Path) -> None:
    """The written file's keys equal those a fresh model of the written config expects."""
    from safetensors import safe_open

    config = RefThinkerConfig.from_pretrained(str(directory))
    model = build_empty_model(config)
    aliases = shared_tensor_aliases(model)
    expected = {k for k in model.state_dict() if k not in aliases}
    with safe_open(str(directory / WEIGHTS_NAME), framework="pt") as handle:
        found = set(handle.keys())
    if found != expected:
        raise CheckpointKeyError(
            "the written directory does not load strictly (a converter bug)",
            missing=sorted(expected - found),
            unexpected=sorted(found - expected),
            path=directory,
        )
