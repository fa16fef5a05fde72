"""Training checkpoint -> self-contained Ref-Thinker directory (``tgs models export``), and the
resolution ``tgs think --model`` applies to training outputs.

Export = the init directory (strictly loaded; its weights' sha256 must equal the one the
checkpoint recorded) + a LoRA adapter of the checkpoint's settings + the checkpoint's
trained tensors (strictly: exactly the trained set of the recorded recipe), written with
``save_ref_thinker_model`` next to the init's tokenizer and CLIP image settings. The result
loads with ``RefThinkerForCausalLM.from_pretrained`` / ``RefThinker.from_pretrained`` like a
converted release; ``merge_lora`` folds the adapter into the LLaMA weights.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from tgs.errors import MissingWeightsError, WeightsError
from tgs.publish import check_output_dir, staged_directory
from tgs.think.ref_thinker.checkpoint import (
    WEIGHTS_NAME,
    inject_lora,
    save_ref_thinker_model,
)
from tgs.think.ref_thinker.modeling import load_ref_thinker_model
from tgs.train.checkpoints import (
    MODEL_SUBDIR,
    TRAINABLE_WEIGHTS,
    apply_trainable_tensors,
    file_sha256,
    is_training_checkpoint,
    latest_checkpoint,
    read_checkpoint_record,
    read_trainable_tensors,
)
from tgs.train.config import TrainRecipe
from tgs.train.model import freeze_for_training, lora_differences, trainable_state_dict

__all__ = ["EXPORT_RECORD", "export_checkpoint", "resolve_checkpoint", "resolve_think_model"]

logger = logging.getLogger(__name__)

EXPORT_RECORD = "export.json"


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint folder itself, or the latest checkpoint of a training output folder."""
    path = Path(path)
    if is_training_checkpoint(path):
        return path
    latest = latest_checkpoint(path)
    if latest is None:
        raise MissingWeightsError(
            f"{path} is neither a training checkpoint nor a training output folder with checkpoints",
            path=path,
            fix="pass the --out folder of `tgs train` or one of its checkpoint-<step> folders",
        )
    return latest


def _storage_dtype(weights: Path) -> torch.dtype:
    """The dtype of the first floating tensor of a safetensors file (its storage precision)."""
    from safetensors import safe_open

    with safe_open(str(weights), framework="pt") as handle:
        for key in handle.keys():  # noqa: SIM118 (a safe_open handle is not iterable)
            tensor = handle.get_slice(key)
            dtype = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16}.get(tensor.get_dtype())
            if dtype is not None:
                return dtype
    return torch.float32


def _check_init(record: dict, checkpoint: Path) -> Path:
    init = Path(record["init"]["path"])
    weights = init / WEIGHTS_NAME
    if not weights.is_file():
        raise MissingWeightsError(
            f"{checkpoint} was trained from {init}, which is gone (the checkpoint holds only the trained tensors)",
            path=init,
            fix="restore the init directory at that path, or export with --init pointing to an identical copy",
        )
    digest = file_sha256(weights)
    if digest != record["init"]["sha256"]:
        raise WeightsError(
            f"{weights} is not the init the checkpoint was trained from (sha256 {digest[:12]}..., "
            f"recorded {str(record['init']['sha256'])[:12]}...)",
            path=weights,
            fix="point to the exact init directory the training run used",
        )
    return init


def export_checkpoint(
    checkpoint: str | Path,
    out_dir: str | Path,
    *,
    dtype: torch.dtype | None = None,
    merge_lora: bool = False,
    init_dir: str | Path | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a runnable Ref-Thinker directory from a training checkpoint; returns ``out_dir``.

    checkpoint: a checkpoint folder or a training output folder (its latest checkpoint).
    dtype: storage dtype of the written weights (default: the init directory's).
    merge_lora: fold the adapter into the LLaMA weights (computed in float32).
    init_dir: use this copy of the init directory (its weights must have the recorded hash).
    """
    from transformers import CLIPImageProcessorPil

    from tgs.think.ref_thinker.checkpoint import merge_lora as fold_lora
    from tgs.think.ref_thinker.processing import load_tokenizer

    checkpoint = resolve_checkpoint(checkpoint)
    out_dir = Path(out_dir)
    check_output_dir(out_dir, overwrite, option="folder")
    record = read_checkpoint_record(checkpoint)
    if init_dir is not None:
        record = {**record, "init": {**record["init"], "path": str(init_dir)}}
    init = _check_init(record, checkpoint)
    storage = _storage_dtype(init / WEIGHTS_NAME)
    model = load_ref_thinker_model(init, dtype=torch.float32 if merge_lora else storage)
    lora = record["lora"]
    if model.config.lora is None:
        model.config.lora = lora
        inject_lora(model, lora)
    elif differs := lora_differences(model.config.lora, lora):
        raise WeightsError(f"the init's LoRA adapter differs from the checkpoint's (init vs checkpoint): {'; '.join(differs)}",
                           path=checkpoint)  # fmt: skip
    else:
        model.config.lora = lora  # the dropout the adapter was trained with
    recipe = TrainRecipe.from_dict(record["recipe"], source=str(checkpoint))
    freeze_for_training(model, recipe)
    expected = set(trainable_state_dict(model))
    apply_trainable_tensors(model, read_trainable_tensors(checkpoint), expected, checkpoint / TRAINABLE_WEIGHTS)
    model.requires_grad_(False)
    if merge_lora:
        fold_lora(model)
        model.config.lora = None
    model.config.use_cache = True

    with staged_directory(out_dir) as staging:
        save_ref_thinker_model(model, staging, dtype=dtype or storage)
        load_tokenizer(init).save_pretrained(str(staging))
        CLIPImageProcessorPil.from_pretrained(str(init)).save_pretrained(str(staging))
        provenance = {
            "checkpoint": str(checkpoint.resolve()),
            "global_step": record["global_step"],
            "init": record["init"],
            "merged_lora": merge_lora,
            "dtype": str(dtype or storage).removeprefix("torch."),
            "trained_prompt_variant": recipe.prompt_variant,
        }
        (staging / EXPORT_RECORD).write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
    logger.info("exported %s to %s", checkpoint, out_dir)
    return out_dir


def resolve_think_model(path: str | Path) -> Path:
    """What ``tgs think --model PATH`` should load.

    - a Ref-Thinker directory (config.json + model.safetensors): itself;
    - a training checkpoint, or a training output folder (its latest checkpoint): the
      checkpoint's ``model/`` directory, exported there on first use;
    - anything else: unchanged (the model loader then says what is missing).
    """
    path = Path(path)
    if (path / "config.json").is_file() and (path / WEIGHTS_NAME).is_file():
        return path
    if not is_training_checkpoint(path) and latest_checkpoint(path) is None:
        return path
    checkpoint = resolve_checkpoint(path)
    model_dir = checkpoint / MODEL_SUBDIR
    if not (model_dir / EXPORT_RECORD).is_file():
        logger.info("exporting %s to %s (first use)", checkpoint, model_dir)
        export_checkpoint(checkpoint, model_dir, overwrite=True)
    return model_dir
