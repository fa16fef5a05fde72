"""What a training checkpoint holds, and strict reading of it.

A checkpoint is HF Trainer's ``checkpoint-<step>/`` folder; besides the Trainer's own files
(``optimizer.pt``, ``scheduler.pt``, ``rng_state*.pth``, ``trainer_state.json`` with the
data position, or DeepSpeed's ``global_step*/`` under DeepSpeed) it holds::

    trainable.safetensors    every trained tensor (LoRA, projectors, embed_tokens, lm_head)
                             under its Ref-Thinker key, shared tensors once
    train_checkpoint.json    format stamp, step, the init directory (path + sha256 of its
                             weights), the LoRA settings, the recipe
    model/                   (optional) a runnable Ref-Thinker directory: written at save
                             time with ``checkpoint_model: full``, else on first use by
                             ``tgs think`` / ``tgs models export``

The frozen weights are not copied into every checkpoint: they are the init directory's,
whose hash is recorded and checked before a checkpoint is resumed or exported.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tgs.errors import CheckpointKeyError, DataError, MissingWeightsError, WeightsError
from tgs.think.ref_thinker.checkpoint import WEIGHTS_NAME, shared_tensor_aliases

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_RECORD",
    "MODEL_SUBDIR",
    "TRAINABLE_WEIGHTS",
    "apply_trainable_tensors",
    "checkpoint_step",
    "file_sha256",
    "is_training_checkpoint",
    "latest_checkpoint",
    "read_checkpoint_record",
    "read_trainable_tensors",
    "write_checkpoint_weights",
]

CHECKPOINT_FORMAT = "tgs-ref-thinker-train-checkpoint/1"
CHECKPOINT_RECORD = "train_checkpoint.json"
TRAINABLE_WEIGHTS = "trainable.safetensors"
MODEL_SUBDIR = "model"
_CHECKPOINT_DIR = re.compile(r"^checkpoint-(\d+)$")


def file_sha256(path: str | Path, chunk: int = 8 << 20) -> str:
    """sha256 of a file's bytes (streamed)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def write_checkpoint_weights(directory: str | Path, tensors: Mapping[str, torch.Tensor], record: Mapping[str, Any]) -> Path:
    """Write ``trainable.safetensors`` and ``train_checkpoint.json`` (record + format + tensor count)."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / TRAINABLE_WEIGHTS
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(weights), metadata={"format": "pt"})
    full_record = {"format": CHECKPOINT_FORMAT, **record, "num_tensors": len(tensors)}
    (directory / CHECKPOINT_RECORD).write_text(json.dumps(full_record, indent=2) + "\n", encoding="utf-8")
    return weights


def is_training_checkpoint(path: str | Path) -> bool:
    path = Path(path)
    return (path / CHECKPOINT_RECORD).is_file() and (path / TRAINABLE_WEIGHTS).is_file()


def checkpoint_step(path: str | Path) -> int | None:
    match = _CHECKPOINT_DIR.match(Path(path).name)
    return int(match.group(1)) if match else None


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The ``checkpoint-<step>`` folder of ``run_dir`` with the highest step that holds our files."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return None
    found = [(checkpoint_step(p), p) for p in run_dir.iterdir() if p.is_dir() and checkpoint_step(p) is not None]
    found = [(step, p) for step, p in found if is_training_checkpoint(p)]
    return max(found)[1] if found else None


def read_checkpoint_record(checkpoint: str | Path) -> dict[str, Any]:
    """The validated ``train_checkpoint.json`` of a checkpoint folder."""
    checkpoint = Path(checkpoint)
    path = checkpoint / CHECKPOINT_RECORD
    if not path.is_file():
        raise MissingWeightsError(
            f"{checkpoint} is not a Ref-Thinker training checkpoint (no {CHECKPOINT_RECORD})",
            path=checkpoint,
            fix="pass a checkpoint-<step> folder written by `tgs train`, or the training output folder",
        )
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path} is not valid JSON: {exc}", path=path) from exc
    if not isinstance(record, dict) or record.get("format") != CHECKPOINT_FORMAT:
        found = record.get("format") if isinstance(record, dict) else None
        raise DataError(f"{path}: format {found!r}, expected {CHECKPOINT_FORMAT!r}", path=path)
    for key in ("init", "lora", "recipe", "global_step"):
        if key not in record:
            raise DataError(f"{path} lacks the field {key!r}", path=path)
    return record


def read_trainable_tensors(checkpoint: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of ``trainable.safetensors`` (CPU)."""
    from safetensors.torch import load_file

    path = Path(checkpoint) / TRAINABLE_WEIGHTS
    if not path.is_file():
        raise MissingWeightsError(f"no {TRAINABLE_WEIGHTS} in {checkpoint}", path=checkpoint)
    return load_file(str(path), device="cpu")


def apply_trainable_tensors(
    model: nn.Module, tensors: Mapping[str, torch.Tensor], expected_keys: set[str], path: str | Path
) -> None:
    """Copy checkpoint tensors into ``model`` (a Ref-Thinker) in place; the key sets must be equal.

    expected_keys: the keys the checkpoint must hold (the trained tensors of this model).
    Raises CheckpointKeyError listing missing / unexpected keys, WeightsError on a shape
    mismatch; nothing is copied unless everything matches.
    """
    aliases = shared_tensor_aliases(model)
    state = {k: v for k, v in model.state_dict().items() if k not in aliases}
    missing = sorted(expected_keys - set(tensors))
    unexpected = sorted(set(tensors) - expected_keys)
    if missing or unexpected:
        raise CheckpointKeyError(
            f"{Path(path).name} does not hold exactly the trained tensors of this model",
            missing=missing,
            unexpected=unexpected,
            path=path,
            fix="the checkpoint belongs to another recipe (LoRA targets, trained modules) or another model",
        )
    absent = sorted(k for k in expected_keys if k not in state)
    if absent:
        raise CheckpointKeyError("keys of the trained set are not in the model", missing=absent, path=path)
    wrong = [f"{k}: file {tuple(t.shape)}, model {tuple(state[k].shape)}" for k, t in tensors.items() if t.shape != state[k].shape]
    if wrong:
        raise WeightsError(f"{path}: {len(wrong)} tensor(s) of the wrong shape: {'; '.join(wrong[:5])}", path=path)
    with torch.no_grad():
        for key, tensor in tensors.items():
            state[key].copy_(tensor.to(device=state[key].device, dtype=state[key].dtype))


def init_weights_path(init_dir: str | Path) -> Path:
    return Path(init_dir) / WEIGHTS_NAME
