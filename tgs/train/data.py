"""Training rows of Ref-Thinker: metadata rows joined with their target chains, tokenized and collated.

As TGS-Agent's ``UnifiedDataset`` / ``DataCollatorForUnifiedDataset`` build them:

- rows: the ``train`` rows of the metadata CSV; the target of row ``uid`` is
  ``targets[uid]["output"]`` of ``RefThinker_instruction_tuning_set.json``; media from
  ``media/<folder>/`` (null rows' audio from ``media_cross/``), ``folder = uid.rsplit('_', 2)[0]``;
- text: the prompt (the *training* variant by default, ``build_prompt``) and the target plus
  ``</s>`` are tokenized separately, without special tokens (both carry their own), and
  concatenated: ``input_ids = prompt_ids + target_ids``;
- labels: ``-100`` on every prompt token, the target ids (answer and ``</s>``) after it;
- frames and audio: exactly the inference preprocessing (``RefThinkerProcessor``), so the
  model trains on what it will see.

The collator left-pads (pad = ``</s>``, label -100, mask 0). Placeholders ``<video>`` /
``<audio>`` become 320 + 320 embeddings inside the model; ``splice_labels`` gives the labels
of that spliced sequence (-100 on every multimodal position), aligned position for position
with ``splice_multimodal``'s output.

A row without a target is never a KeyError in a worker: ``join_targets`` reports every
such uid up front (count and first examples) and either refuses or skips them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import Dataset

from tgs.errors import DataError
from tgs.think.ref_thinker.prompts import PromptVariant, build_prompt, training_target

if TYPE_CHECKING:
    from tgs.data.benchmark import Benchmark, Sample
    from tgs.think.ref_thinker.processing import RefThinkerProcessor

__all__ = [
    "IGNORE_INDEX",
    "MissingTargets",
    "RefThinkerTrainCollator",
    "RefThinkerTrainDataset",
    "TrainRow",
    "join_targets",
    "load_targets",
    "splice_labels",
    "tokenize_example",
]

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100
_SHOWN = 5


def load_targets(path: str | Path) -> dict[str, str]:
    """``{uid: target chain}`` from an instruction-tuning JSON (dict keyed by uid with an ``output``)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"instruction-tuning set not found: {path}", path=path,
                        fix="download RefThinker_instruction_tuning_set.json (HF Jinxing1/TGSAgent-FT-data) "
                            "or make a synthetic one with `tgs data synth`")  # fmt: skip
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path} is not valid JSON: {exc}", path=path) from exc
    if not isinstance(data, dict):
        raise DataError(f"{path} must hold a JSON object keyed by uid, got a {type(data).__name__}", path=path)
    targets: dict[str, str] = {}
    bad: list[str] = []
    for uid, entry in data.items():
        output = entry.get("output") if isinstance(entry, dict) else None
        if isinstance(output, str) and output.strip():
            targets[uid] = output
        else:
            bad.append(uid)
    if bad:
        raise DataError(
            f"{path}: {len(bad)} entr{'y has' if len(bad) == 1 else 'ies have'} no non-empty string 'output' "
            f"(e.g. {', '.join(map(repr, bad[:_SHOWN]))})",
            path=path,
            fix='every value must be an object like {"output": "<think>...</think>\\n<answer>...</answer>"}',
        )
    return targets


@dataclass(frozen=True)
class TrainRow:
    """One training example: a metadata row and its target chain (without ``</s>``)."""

    sample: Sample
    target: str

    @property
    def uid(self) -> str:
        return self.sample.uid


@dataclass(frozen=True)
class MissingTargets:
    """Rows of the chosen splits whose uid has no target in the instruction-tuning set."""

    count: int
    total: int
    examples: tuple[str, ...] = field(default=())

    def describe(self) -> str:
        shown = ", ".join(self.examples)
        more = ", ..." if self.count > len(self.examples) else ""
        return f"{self.count} of {self.total} training rows have no target ({shown}{more})"


def join_targets(
    bench: Benchmark, targets: Mapping[str, str], *, policy: str = "error", targets_path: str | Path | None = None
) -> tuple[list[TrainRow], MissingTargets]:
    """Pair every row of ``bench`` with its target; rows without one are refused or skipped.

    policy: "error" raises DataError naming the count and first uids; "skip" drops them
        (logged as a warning). Repeated uids keep every row, as the original dataset does.
    """
    if policy not in ("error", "skip"):
        raise ValueError(f"policy: expected 'error' or 'skip', got {policy!r}")
    rows: list[TrainRow] = []
    missing: list[str] = []
    total = 0
    for sample in bench:
        total += 1
        target = targets.get(sample.uid)
        if target is None:
            missing.append(sample.uid)
        else:
            rows.append(TrainRow(sample, target))
    report = MissingTargets(len(missing), total, tuple(missing[:_SHOWN]))
    if missing:
        if policy == "error":
            raise DataError(
                report.describe(),
                path=targets_path,
                fix="use the instruction-tuning set made for this metadata CSV, or pass --skip-missing-targets "
                "(recipe missing_targets: skip) to train on the rows that have one",
            )
        logger.warning("%s; skipped", report.describe())
    if not rows:
        raise DataError(
            f"no training rows: {total} row(s) in the chosen splits of {bench.meta_path}, none with a target",
            path=bench.meta_path,
            fix="check --meta, the recipe's splits, and that the targets file belongs to this CSV",
        )
    return rows, report


def tokenize_example(
    tokenizer: Any, expression: str, target: str, variant: PromptVariant, placeholder_ids: Sequence[int]
) -> tuple[list[int], list[int]]:
    """(input_ids, labels) of one example: prompt ids then target ids; labels -100 on the prompt.

    The prompt and ``target + </s>`` are tokenized separately, as the original collator does.
    Raises DataError if a placeholder token is not exactly once in the prompt or appears in
    the target (it would be replaced by media features there).
    """
    prompt_ids = tokenizer(build_prompt(expression, variant), add_special_tokens=False)["input_ids"]
    target_ids = tokenizer(training_target(target), add_special_tokens=False)["input_ids"]
    for token_id in placeholder_ids:
        if prompt_ids.count(token_id) != 1:
            raise DataError(f"the prompt tokenizes to {prompt_ids.count(token_id)} placeholder(s) of id {token_id}, expected 1",
                            fix="the tokenizer lacks Ref-Thinker's added tokens; use the model directory's tokenizer")  # fmt: skip
        if token_id in target_ids:
            raise DataError(
                f"the target chain contains a media placeholder token (id {token_id}): {target[:80]!r}",
                fix="remove <video>/<audio> from the target chains",
            )
    return prompt_ids + target_ids, [IGNORE_INDEX] * len(prompt_ids) + target_ids


class RefThinkerTrainDataset(Dataset):
    """Training rows -> dicts of tensors: input_ids, labels (int64 [L]), pixel_values, audio_fbank.

    pixel_values: float32 [T, 3, 224, 224]; audio_fbank: float32 [10, F, 128]. Media is
    decoded per item (in DataLoader workers), exactly as at inference.
    """

    def __init__(
        self,
        rows: Sequence[TrainRow],
        processor: RefThinkerProcessor,
        *,
        prompt_variant: PromptVariant = "training",
        placeholder_ids: Sequence[int] = (),
    ) -> None:
        self.rows = list(rows)
        self.processor = processor
        self.prompt_variant = prompt_variant
        self.placeholder_ids = tuple(placeholder_ids)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        row = self.rows[index]
        try:
            input_ids, labels = tokenize_example(
                self.processor.tokenizer, row.sample.expression, row.target, self.prompt_variant, self.placeholder_ids
            )
            clip = row.sample.load_clip()
            pixels = self.processor.preprocess_frames(clip.frames)
            fbank = self.processor.preprocess_audio(clip.audio, clip.sample_rate, clip.num_frames)
        except DataError as exc:
            raise type(exc)(f"training row {row.uid}: {exc}") from exc
        return {
            "input_ids": torch.tensor(input_ids, dtype=torch.long),
            "labels": torch.tensor(labels, dtype=torch.long),
            "pixel_values": pixels,
            "audio_fbank": fbank,
        }


@dataclass(frozen=True)
class RefThinkerTrainCollator:
    """Left-pads a list of dataset items into a batch.

    Returns input_ids / labels / attention_mask int64 [B, L] (pad id, -100, 0 on the left
    padding), pixel_values float32 [B, T, 3, 224, 224], audio_fbank float32 [B, 10, F, 128].
    """

    pad_token_id: int

    def __call__(self, items: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        if not items:
            raise ValueError("cannot collate an empty batch")
        longest = max(int(item["input_ids"].shape[0]) for item in items)
        ids, labels, masks = [], [], []
        for item in items:
            n = int(item["input_ids"].shape[0])
            pad = longest - n
            ids.append(torch.cat([torch.full((pad,), self.pad_token_id, dtype=torch.long), item["input_ids"]]))
            labels.append(torch.cat([torch.full((pad,), IGNORE_INDEX, dtype=torch.long), item["labels"]]))
            masks.append(torch.cat([torch.zeros(pad, dtype=torch.long), torch.ones(n, dtype=torch.long)]))
        return {
            "input_ids": torch.stack(ids),
            "labels": torch.stack(labels),
            "attention_mask": torch.stack(masks),
            "pixel_values": torch.stack([item["pixel_values"] for item in items]),
            "audio_fbank": torch.stack([item["audio_fbank"] for item in items]),
        }


def splice_labels(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    labels: torch.Tensor,
    placeholder_lengths: Mapping[int, int],
) -> torch.Tensor:
    """Labels of the spliced sequence: each placeholder becomes ``n`` positions of -100.

    input_ids / attention_mask / labels: int [B, L] (any padding side); placeholder_lengths:
    placeholder token id -> number of embeddings that replace it. Returns int64 [B, L'],
    left padded with -100, position for position aligned with ``splice_multimodal``'s
    output for the same inputs (same unpadded order, same left padding).
    """
    if not input_ids.shape == attention_mask.shape == labels.shape or input_ids.ndim != 2:
        raise ValueError(
            f"input_ids {tuple(input_ids.shape)}, attention_mask {tuple(attention_mask.shape)} and labels "
            f"{tuple(labels.shape)} must be equal [B, L]"
        )
    rows: list[torch.Tensor] = []
    for b in range(input_ids.shape[0]):
        keep = attention_mask[b].bool()
        ids, lab = input_ids[b][keep], labels[b][keep]
        found = sorted((int(pos), token) for token in placeholder_lengths for pos in (ids == token).nonzero().flatten())
        pieces, start = [], 0
        for pos, token in found:
            if lab[pos] != IGNORE_INDEX:
                raise ValueError(f"sample {b}: placeholder {token} at position {pos} is supervised; it must be -100")
            pieces.append(lab[start:pos])
            pieces.append(torch.full((placeholder_lengths[token],), IGNORE_INDEX, dtype=lab.dtype, device=lab.device))
            start = pos + 1
        pieces.append(lab[start:])
        rows.append(torch.cat(pieces))
    longest = max(row.shape[0] for row in rows)
    return torch.stack(
        [torch.cat([torch.full((longest - r.shape[0],), IGNORE_INDEX, dtype=r.dtype, device=r.device), r]) for r in rows]
    ).to(torch.long)
