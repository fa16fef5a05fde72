"""The fine-tuning recipe of Ref-Thinker as data, with the paper's values as defaults.

Source: TGS-Agent ``scripts/finetune/finetune_hyperlora.{sh,py}``,
``deepspeed/stage2-offload.json`` and ``scripts/pretrain/trainer.py``. Every default below is
the value the original run used; a field whose default is not the paper's says so.

One fact needs care. The shell script passes ``--lr_scheduler_type cosine``, but the
DeepSpeed config it also passes has a ``scheduler`` block (``WarmupDecayLR``), and under
HF Trainer + DeepSpeed that block wins: the run used DeepSpeed's log-rate warmup over
``ceil(0.03 * steps)`` steps, then a linear decay to 0, with the first two optimizer steps
at learning rate 0. ``lr_scheduler="deepspeed_warmup_decay"`` (the default) reproduces that
schedule with or without DeepSpeed (see ``tgs.train.schedules``); ``"cosine"`` is what the
script's flag asked for.

A recipe loads from JSON or YAML (``TrainRecipe.from_file``); unknown keys are refused with
a did-you-mean, values are type-checked and validated, and ``to_dict`` writes it back with a
format stamp.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

from tgs.errors import DataError
from tgs.think.ref_thinker.configuration import LORA_TARGET_MODULES

__all__ = [
    "DEEPSPEED_CONFIGS",
    "LR_SCHEDULERS",
    "RECIPE_FORMAT",
    "TRAINABLE_MODULES",
    "TrainRecipe",
    "adapt_to_cpu",
    "deepspeed_config_path",
]

RECIPE_FORMAT = "tgs-train-recipe/1"

# Module groups the original trains besides LoRA (its ``save_modules`` plus lm_head and
# embed_tokens), under their Ref-Thinker state-dict prefixes.
TRAINABLE_MODULES: dict[str, str] = {
    "vl_projector": "model.vl_projector.",
    "al_projector": "model.al_projector.",
    "embed_tokens": "model.embed_tokens.",
    "lm_head": "lm_head.",
}
LR_SCHEDULERS = ("deepspeed_warmup_decay", "cosine", "linear", "constant_with_warmup")
# DeepSpeed configs shipped with the package (tgs/train/deepspeed/<name>.json).
DEEPSPEED_CONFIGS = ("zero2", "zero2_offload", "zero3")

MissingTargetPolicy = Literal["error", "skip"]
PromptVariant = Literal["training", "inference"]
CheckpointModel = Literal["delta", "full"]
SaveStrategy = Literal["epoch", "steps"]


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass(frozen=True)
class TrainRecipe:
    """Everything that decides what a fine-tuning run computes (paper defaults)."""

    # ------------------------------------------------------------------ LoRA
    lora_r: int = field(default=8, metadata=_help("LoRA rank (8 in the paper)."))
    lora_alpha: float = field(default=16.0, metadata=_help("LoRA alpha; the update is scaled by alpha / r."))
    lora_dropout: float = field(default=0.05, metadata=_help("Dropout on the LoRA input."))
    qformer_dropout: float = field(
        default=0.1, metadata=_help("Dropout inside the projectors' Q-Formers (bert-base's 0.1, as the original trains).")
    )
    lora_target_modules: tuple[str, ...] = field(
        default=LORA_TARGET_MODULES, metadata=_help("LLaMA projections that get LoRA (q/k/v/o/gate/up/down).")
    )
    trainable_modules: tuple[str, ...] = field(
        default=tuple(TRAINABLE_MODULES),
        metadata=_help("Fully trained module groups besides LoRA: vl_projector, al_projector, embed_tokens, lm_head."),
    )
    # ---------------------------------------------------------- optimisation
    learning_rate: float = field(default=1e-4, metadata=_help("Peak learning rate."))
    num_train_epochs: float = field(default=6.0, metadata=_help("Epochs over the training rows."))
    max_steps: int = field(default=-1, metadata=_help("Stop after this many optimizer steps (-1: run the epochs)."))
    per_device_train_batch_size: int = field(default=4, metadata=_help("Samples per device per micro-batch."))
    gradient_accumulation_steps: int = field(default=8, metadata=_help("Micro-batches per optimizer step."))
    warmup_ratio: float = field(default=0.03, metadata=_help("Warm-up steps = ceil(ratio * total steps)."))
    weight_decay: float = field(default=0.0, metadata=_help("AdamW weight decay."))
    lr_scheduler: str = field(
        default="deepspeed_warmup_decay",
        metadata=_help("deepspeed_warmup_decay (what the paper's run used), cosine, linear, constant_with_warmup."),
    )
    adam_beta1: float = field(default=0.9, metadata=_help("AdamW beta1 (HF / DeepSpeed default)."))
    adam_beta2: float = field(default=0.999, metadata=_help("AdamW beta2."))
    adam_epsilon: float = field(default=1e-8, metadata=_help("AdamW epsilon."))
    max_grad_norm: float = field(default=1.0, metadata=_help("Gradient clipping norm (HF default, 'auto' in DeepSpeed)."))
    bf16: bool = field(default=True, metadata=_help("bf16 mixed precision; frozen weights are held in bf16."))
    gradient_checkpointing: bool = field(default=True, metadata=_help("Recompute LLaMA activations in backward."))
    frozen_encoders_mode: str = field(
        default="train",
        metadata=_help("train: CLIP/BEATs follow the trainer into train mode (their dropout, if any, is active), as "
                       "in the original; eval: keep them in eval mode."),
    )  # fmt: skip
    seed: int = field(default=42, metadata=_help("Seed of LoRA init, data order and dropout."))
    # ------------------------------------------------------------------ data
    prompt_variant: str = field(
        default="training",
        metadata=_help("training (the original's training prompt) or inference (train on the prompt used at test time)."),
    )
    splits: tuple[str, ...] = field(default=("train",), metadata=_help("Metadata splits to train on."))
    missing_targets: str = field(
        default="error", metadata=_help("A row without a target: error (refuse, listing them) or skip.")
    )
    dataloader_num_workers: int = field(default=4, metadata=_help("DataLoader worker processes (4 in the paper)."))
    # ------------------------------------------------------------- checkpoints
    save_strategy: str = field(default="epoch", metadata=_help("Checkpoint every epoch (paper) or every save_steps."))
    save_steps: int = field(default=500, metadata=_help("Steps between checkpoints with save_strategy=steps."))
    save_total_limit: int | None = field(default=10, metadata=_help("Keep at most this many checkpoints (None: all)."))
    checkpoint_model: str = field(
        default="delta",
        metadata=_help("delta: checkpoints hold the trained tensors (a runnable model is exported on first use); "
                       "full: every checkpoint also holds a runnable model directory."),
    )  # fmt: skip
    # ------------------------------------------------------------- execution
    logging_steps: int = field(default=1, metadata=_help("Log the loss every N optimizer steps."))
    report_to: tuple[str, ...] = field(default=(), metadata=_help("Extra loggers: tensorboard, wandb (off by default)."))
    deepspeed: str | None = field(
        default=None, metadata=_help("DeepSpeed config: zero2, zero2_offload (the paper's), zero3, or a JSON path.")
    )
    ddp_find_unused_parameters: bool = field(
        default=True, metadata=_help("DDP: allow parameters without gradient (the Q-Former's unused MLM head).")
    )

    def __post_init__(self) -> None:
        for name in ("lora_target_modules", "trainable_modules", "splits", "report_to"):
            value = getattr(self, name)
            if isinstance(value, str) or not isinstance(value, tuple):
                object.__setattr__(self, name, (value,) if isinstance(value, str) else tuple(value))
        self._validate()

    # -------------------------------------------------------------- checks
    def _validate(self) -> None:
        problems: list[str] = []

        def need(ok: bool, message: str) -> None:
            if not ok:
                problems.append(message)

        need(self.lora_r >= 1, f"lora_r must be >= 1, got {self.lora_r}")
        need(self.lora_alpha > 0, f"lora_alpha must be > 0, got {self.lora_alpha}")
        need(0.0 <= self.lora_dropout < 1.0, f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        need(0.0 <= self.qformer_dropout < 1.0, f"qformer_dropout must be in [0, 1), got {self.qformer_dropout}")
        unknown_targets = sorted(set(self.lora_target_modules) - set(LORA_TARGET_MODULES))
        need(not unknown_targets, f"lora_target_modules: unknown {unknown_targets}; choose from {list(LORA_TARGET_MODULES)}")
        need(bool(self.lora_target_modules), "lora_target_modules must not be empty")
        unknown_groups = sorted(set(self.trainable_modules) - set(TRAINABLE_MODULES))
        need(not unknown_groups, f"trainable_modules: unknown {unknown_groups}; choose from {list(TRAINABLE_MODULES)}")
        need(self.learning_rate > 0, f"learning_rate must be > 0, got {self.learning_rate}")
        need(self.num_train_epochs > 0, f"num_train_epochs must be > 0, got {self.num_train_epochs}")
        need(self.max_steps == -1 or self.max_steps >= 1, f"max_steps must be -1 or >= 1, got {self.max_steps}")
        need(self.per_device_train_batch_size >= 1, "per_device_train_batch_size must be >= 1")
        need(self.gradient_accumulation_steps >= 1, "gradient_accumulation_steps must be >= 1")
        need(0.0 <= self.warmup_ratio < 1.0, f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        need(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        need(self.lr_scheduler in LR_SCHEDULERS, f"lr_scheduler: expected one of {list(LR_SCHEDULERS)}, got {self.lr_scheduler!r}")
        need(0 <= self.adam_beta1 < 1 and 0 <= self.adam_beta2 < 1, "adam betas must be in [0, 1)")
        need(self.adam_epsilon > 0, "adam_epsilon must be > 0")
        need(self.max_grad_norm >= 0, "max_grad_norm must be >= 0 (0: no clipping)")
        need(self.frozen_encoders_mode in ("train", "eval"), f"frozen_encoders_mode: expected train or eval, got {self.frozen_encoders_mode!r}")
        need(self.prompt_variant in get_args(PromptVariant), f"prompt_variant: expected training or inference, got {self.prompt_variant!r}")
        need(bool(self.splits), "splits must not be empty")
        need(self.missing_targets in get_args(MissingTargetPolicy), f"missing_targets: expected error or skip, got {self.missing_targets!r}")
        need(self.dataloader_num_workers >= 0, "dataloader_num_workers must be >= 0")
        need(self.save_strategy in get_args(SaveStrategy), f"save_strategy: expected epoch or steps, got {self.save_strategy!r}")
        need(self.save_steps >= 1, "save_steps must be >= 1")
        need(self.save_total_limit is None or self.save_total_limit >= 1, "save_total_limit must be None or >= 1")
        need(self.checkpoint_model in get_args(CheckpointModel), f"checkpoint_model: expected delta or full, got {self.checkpoint_model!r}")
        need(self.logging_steps >= 1, "logging_steps must be >= 1")
        bad_reporters = sorted(set(self.report_to) - {"tensorboard", "wandb"})
        need(not bad_reporters, f"report_to: unknown {bad_reporters}; choose from tensorboard, wandb")
        if problems:
            raise ValueError("invalid training recipe: " + "; ".join(problems))

    # ------------------------------------------------------------- derived
    @property
    def lora(self) -> dict[str, Any]:
        """The ``RefThinkerConfig.lora`` entry this recipe trains (peft settings + target regex)."""
        from tgs.think.ref_thinker.checkpoint import LLM_LORA_TARGETS

        if set(self.lora_target_modules) == set(LORA_TARGET_MODULES):
            targets = LLM_LORA_TARGETS  # the converter's regex, so trained and converted configs agree
        else:
            attention = [m[0] for m in ("q_proj", "k_proj", "v_proj", "o_proj") if m in self.lora_target_modules]
            mlp = [m.removesuffix("_proj") for m in ("gate_proj", "up_proj", "down_proj") if m in self.lora_target_modules]
            parts = []
            if attention:
                parts.append(rf"self_attn\.({'|'.join(attention)})_proj")
            if mlp:
                parts.append(rf"mlp\.({'|'.join(mlp)})_proj")
            targets = rf"model\.layers\.\d+\.({'|'.join(parts)})"
        return {"r": self.lora_r, "lora_alpha": self.lora_alpha, "lora_dropout": self.lora_dropout, "target_modules": targets}

    @property
    def trainable_prefixes(self) -> tuple[str, ...]:
        """State-dict prefixes of the fully trained groups (LoRA tensors are added separately)."""
        return tuple(TRAINABLE_MODULES[name] for name in self.trainable_modules)

    def global_batch_size(self, world_size: int) -> int:
        return self.per_device_train_batch_size * self.gradient_accumulation_steps * world_size

    def steps_per_epoch(self, num_examples: int, world_size: int) -> int:
        """Optimizer steps per epoch as HF Trainer counts them (micro-batches per device // accumulation)."""
        micro_batches = math.ceil(num_examples / (self.per_device_train_batch_size * world_size))
        return max(micro_batches // self.gradient_accumulation_steps, 1)

    # ----------------------------------------------------------------- I/O
    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for key, value in data.items():
            if isinstance(value, tuple):
                data[key] = list(value)
        return {"format": RECIPE_FORMAT, **data}

    def replace(self, **changes: Any) -> TrainRecipe:
        """A copy with some fields changed (validated like any recipe)."""
        return TrainRecipe.from_dict({**self.to_dict(), **changes})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "recipe") -> TrainRecipe:
        """Build from plain data; unknown keys and values of the wrong type raise ValueError."""
        data = dict(data)
        stamp = data.pop("format", RECIPE_FORMAT)
        if stamp != RECIPE_FORMAT:
            raise ValueError(f"{source}: format {stamp!r} is not {RECIPE_FORMAT!r}")
        known = {f.name: f for f in fields(cls)}
        unknown = [k for k in data if k not in known]
        if unknown:
            hints = []
            for key in unknown:
                close = difflib.get_close_matches(key, list(known), n=1)
                hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            raise ValueError(f"{source}: unknown field(s) {', '.join(hints)}")
        hints = get_type_hints(cls)
        return cls(**{key: _coerce(key, value, hints[key], source) for key, value in data.items()})

    @classmethod
    def from_file(cls, path: str | Path) -> TrainRecipe:
        """Load a recipe from ``.json``, ``.yaml`` or ``.yml``; omitted fields keep the paper's values."""
        path = Path(path)
        if not path.is_file():
            raise DataError(f"training recipe not found: {path}", path=path)
        text = path.read_text(encoding="utf-8")
        try:
            if path.suffix.lower() in (".yaml", ".yml"):
                import yaml

                data = yaml.safe_load(text) or {}
            else:
                data = json.loads(text)
        except Exception as exc:  # a parse error of either format
            raise DataError(f"cannot parse training recipe {path}: {exc}", path=path) from exc
        if not isinstance(data, dict):
            raise DataError(f"training recipe {path} must hold a mapping of field: value", path=path)
        try:
            return cls.from_dict(data, source=str(path))
        except ValueError as exc:
            raise DataError(str(exc), path=path, fix="`tgs train --show-recipe` lists the fields and the paper's values") from exc

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def field_help(cls) -> list[tuple[str, Any, str]]:
        """(name, paper default, help) of every field, for the CLI."""
        return [(f.name, f.default, f.metadata.get("help", "")) for f in fields(cls)]


def _coerce(key: str, value: Any, hint: Any, source: str) -> Any:
    """Check ``value`` against the field type; ints are accepted for floats, lists for tuples."""
    origin, args = get_origin(hint), get_args(hint)
    if origin is tuple:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{source}: {key} must be a list of strings, got {value!r}")
        return tuple(value)
    if args and type(None) in args:  # Optional[...]
        if value is None:
            return None
        inner = next(a for a in args if a is not type(None))
        return _coerce(key, value, inner, source)
    if hint is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{source}: {key} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{source}: {key} must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{source}: {key} must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ValueError(f"{source}: {key} must be a string, got {value!r}")
        return value
    raise TypeError(f"unsupported recipe field type {hint!r} for {key}")  # internal: a new field type


def deepspeed_config_path(name_or_path: str) -> Path:
    """A shipped DeepSpeed config by name (zero2, zero2_offload, zero3), or a JSON file path."""
    if name_or_path in DEEPSPEED_CONFIGS:
        return Path(__file__).with_name("deepspeed") / f"{name_or_path}.json"
    path = Path(name_or_path)
    if not path.is_file():
        raise DataError(
            f"DeepSpeed config {name_or_path!r} is neither a shipped config nor a file",
            path=path,
            fix=f"use one of {', '.join(DEEPSPEED_CONFIGS)} or a path to a DeepSpeed JSON config",
        )
    return path


def adapt_to_cpu(recipe: TrainRecipe, explicit: Collection[str]) -> tuple[TrainRecipe, list[str]]:
    """The recipe for a machine without a GPU, and what changed from it (one line each).

    The paper trains in bf16 mixed precision on GPUs; transformers refuses bf16 without a
    GPU, so on a CPU the recipe's default becomes fp32 and the change is said aloud. A bf16
    the user asked for explicitly (``--set bf16=true``) is not overridden: ValueError
    naming the flag instead.
    """
    changes: dict[str, Any] = {}
    notes: list[str] = []
    if recipe.bf16:
        if "bf16" in explicit:
            raise ValueError("bf16=true needs a GPU and none is visible; use --set bf16=false to train on the CPU")
        changes["bf16"] = False
        notes.append("bf16: true -> false (no GPU: fp32 on the CPU; the paper used bf16 mixed precision)")
    if recipe.dataloader_num_workers and "dataloader_num_workers" not in explicit:
        changes["dataloader_num_workers"] = 0
        notes.append(
            f"dataloader_num_workers: {recipe.dataloader_num_workers} -> 0 "
            "(the CPU also computes; worker processes only compete with it)"
        )
    return (recipe.replace(**changes) if changes else recipe), notes
