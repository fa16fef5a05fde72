"""``RefThinker``: the Thinker stage over a Ref-Thinker directory.

It owns the device, dtype and batching; the processor owns prompts and media, the model
sees tensors only, and answers go through the shared tag parser. Per-sample problems
(a clip that cannot be preprocessed) are returned as exceptions by ``think_each`` so a
runner records them and goes on; a batch whose generation fails is retried one sample
at a time, so one bad sample does not fail its batch (a counted fallback, ``think.batch``).

Expressions of the same video (items whose Clip is the same object) share work when
``share_across_expressions`` is on (the default) and padding is masked: the clip is
preprocessed and encoded (CLIP, BEATs, both projectors) once, the prompt prefix common to
its expressions is prefilled once, and every expression continues from that KV cache
(``sharing.py``). Each answer equals the one the expression gets alone (tested in fp32).
Off, or with the original's unmasked batches (then a counted fallback,
``think.shared_prefix``: :mod:`tgs.fast_paths`), every item runs the whole path by itself.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import torch

from tgs import fast_paths
from tgs.devices import resolve_device, resolve_dtype
from tgs.errors import ThinkerError
from tgs.think.base import PerItemThinker, batch_failed
from tgs.think.parser import parse_answer
from tgs.think.ref_thinker.generation import (
    GenerationSettings,
    generate_after_prefix,
    generate_ids,
    prefill_clip,
)
from tgs.think.ref_thinker.modeling import RefThinkerForCausalLM
from tgs.think.ref_thinker.processing import RefThinkerProcessor
from tgs.think.ref_thinker.prompts import PromptVariant
from tgs.think.ref_thinker.sharing import PrefixedRow
from tgs.types import Clip, Query, Thought

__all__ = ["PreparedSample", "RefThinker"]

logger = logging.getLogger(__name__)


class PreparedSample:
    """One sample's model inputs before batching (prompt text and tensors)."""

    __slots__ = ("audio_fbank", "pixel_values", "query")

    def __init__(self, query: Query, pixel_values: torch.Tensor, audio_fbank: torch.Tensor) -> None:
        self.query = query
        self.pixel_values = pixel_values
        self.audio_fbank = audio_fbank


class RefThinker(PerItemThinker):
    """Ref-Thinker as a Thinker: (Query, Clip) pairs -> Thoughts.

    batch_size: samples per generate call (8 in the original).
    device / dtype: names or torch objects; None = auto (CUDA bf16 when present, else CPU fp32).
    share_across_expressions: encode each clip and prefill its common prompt prefix once
        for all its expressions (same answers; masked mode only). False: every item alone.
    """

    name = "ref-thinker"

    def __init__(
        self,
        model: RefThinkerForCausalLM,
        processor: RefThinkerProcessor,
        *,
        batch_size: int = 8,
        settings: GenerationSettings | None = None,
        share_across_expressions: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model.eval()
        self.processor = processor
        self.batch_size = batch_size
        self.settings = settings or GenerationSettings()
        self.share_across_expressions = share_across_expressions

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        *,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        batch_size: int = 8,
        settings: GenerationSettings | None = None,
        prompt_variant: PromptVariant = "inference",
        merge_lora: bool = True,
        share_across_expressions: bool = True,
    ) -> RefThinker:
        """Load a converted Ref-Thinker directory for inference.

        ``merge_lora`` folds the LoRA adapter into the LLaMA projections once at load
        (:func:`~tgs.think.ref_thinker.checkpoint.merge_lora`): the same function up to one
        rounding of each merged weight, with fewer kernels per decoding step. False keeps
        the adapter as the original runs it.
        """
        from tgs.think.ref_thinker.checkpoint import merge_lora as merge

        torch_device = resolve_device(device)
        torch_dtype = resolve_dtype(dtype, torch_device)
        processor = RefThinkerProcessor.from_pretrained(path, prompt_variant=prompt_variant)
        model = RefThinkerForCausalLM.from_pretrained(path, device=torch_device, dtype=torch_dtype)
        if merge_lora:
            merged = merge(model)
            logger.debug("merged %d LoRA adapters into their projections", merged)
        return cls(
            model, processor, batch_size=batch_size, settings=settings, share_across_expressions=share_across_expressions
        )

    @property
    def device(self) -> torch.device:
        return self.model.lm_head.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.lm_head.weight.dtype

    # ---------------------------------------------------------------- protocol
    def think_each(self, items: Sequence[tuple[Query, Clip | None]]) -> list[Thought | Exception]:
        """One Thought or one exception per item, in order.

        Items whose Clip is the same object are one video: with sharing on (and masked
        padding) its encoders and common prompt prefix run once for all its expressions.
        The answers are those of the plain path (each expression alone).
        """
        items = list(items)
        if not self.share_across_expressions:
            return self._think_separately(items)
        # A clip with one expression has nothing to share: it is batched the plain way (whole
        # prompts, encoders batched across clips), which is cheaper per sample on a GPU.
        counts = Counter(id(clip) for _, clip in items if clip is not None)
        together = [i for i, (_, clip) in enumerate(items) if clip is not None and counts[id(clip)] > 1]
        if together and not self.settings.mask_padding:
            fast_paths.fell_back(
                "think.shared_prefix",
                "unmasked batches (mask_padding=False) cannot continue a shared prefix; every prompt is prefilled whole",
            )
            return self._think_separately(items)
        alone = sorted(set(range(len(items))) - set(together))
        outcomes: list[Thought | Exception | None] = [None] * len(items)
        for indices, think in ((together, self._think_shared), (alone, self._think_separately)):
            if indices:
                for index, outcome in zip(indices, think([items[i] for i in indices])):
                    outcomes[index] = outcome
        return outcomes  # type: ignore[return-value]

    def _think_separately(self, items: list[tuple[Query, Clip | None]]) -> list[Thought | Exception]:
        """Every item by itself: preprocessing, encoders and the whole prompt per sample."""
        prepared: list[PreparedSample | Exception] = []
        for query, clip in items:
            try:
                prepared.append(self.prepare(query, clip))
            except Exception as exc:  # recorded per sample
                prepared.append(exc)
        ready = [p for p in prepared if isinstance(p, PreparedSample)]
        if self.settings.decode == "static" and self.settings.mask_padding:
            # fewer pads per batch; exact, since a masked sample's answer does not depend on its batch
            ready.sort(key=lambda p: len(self.processor.prompt_ids(p.query.expression)))
        answers: dict[int, Thought | Exception] = {}
        for start in range(0, len(ready), self.batch_size):
            chunk = ready[start : start + self.batch_size]
            for sample, outcome in zip(chunk, self._generate_chunk(chunk)):
                answers[id(sample)] = outcome
        return [p if isinstance(p, Exception) else answers[id(p)] for p in prepared]

    def _think_shared(self, items: list[tuple[Query, Clip | None]]) -> list[Thought | Exception]:
        """Group by clip; per clip: preprocess and tokenize once, then prefill lazily per chunk.

        Rows are batched in clip order (shortest prompt first within a clip), so a batch may
        hold rows of several clips; a clip's prefix is prefilled when its first row is
        batched and freed after its last one, so a call over many videos holds few caches.
        """
        outcomes: list[Thought | Exception | None] = [None] * len(items)
        groups: dict[int, list[int]] = {}  # id(clip) -> its items (think_each sends clips of 2+ items, none None)
        for index, (_, clip) in enumerate(items):
            groups.setdefault(id(clip), []).append(index)
        media: dict[int, PreparedSample] = {}
        prompts: dict[int, list[int]] = {}
        order: list[tuple[int, int]] = []  # (group key, item index)
        for key, indices in groups.items():
            try:
                media[key] = self.prepare(*items[indices[0]])
            except Exception as exc:  # bad media: every expression of the clip fails alike
                for index in indices:
                    outcomes[index] = exc
                continue
            for index in indices:
                prompts[index] = self.processor.prompt_ids(items[index][0].expression)
            order.extend((key, index) for index in sorted(indices, key=lambda i: len(prompts[i])))
        rows: dict[int, PrefixedRow] = {}  # a row (and, with its last row, its clip's prefix) is freed once used
        prefilled: set[int] = set()
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            for key in dict.fromkeys(k for k, _ in chunk):
                if key not in prefilled:
                    prefilled.add(key)
                    self._prefill_group(groups[key], items, media[key], prompts, rows, outcomes)
            ready = [index for _, index in chunk if index in rows]
            for index, outcome in zip(ready, self._generate_rows(ready, rows, items)):
                outcomes[index] = outcome
            for _, index in chunk:
                rows.pop(index, None)
        return outcomes  # type: ignore[return-value]  # every item got a Thought or an exception above

    def _prefill_group(
        self,
        indices: list[int],
        items: list[tuple[Query, Clip | None]],
        sample: PreparedSample,
        prompts: dict[int, list[int]],
        rows: dict[int, PrefixedRow],
        outcomes: list[Thought | Exception | None],
    ) -> None:
        """Encode one clip and prefill its common prefix; on failure every expression of it fails."""
        try:
            prefixed = prefill_clip(
                self.model, sample.pixel_values, sample.audio_fbank, [prompts[i] for i in indices], self.settings
            )
        except Exception as exc:
            for index in indices:
                outcomes[index] = ThinkerError(f"{items[index][0].uid}: generation failed: {exc}")
            return
        fast_paths.ran("think.shared_prefix")
        rows.update(zip(indices, prefixed))

    def _generate_rows(
        self, indices: list[int], rows: dict[int, PrefixedRow], items: list[tuple[Query, Clip | None]]
    ) -> list[Thought | Exception]:
        """Answers of a batch of prefixed rows; a failing batch is retried row by row."""
        if not indices:
            return []
        tokenizer = self.processor.tokenizer
        try:
            ids = generate_after_prefix(
                self.model,
                [rows[i] for i in indices],
                self.settings,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            )
            texts = self.processor.decode(ids)
        except Exception as exc:
            if len(indices) == 1:
                return [ThinkerError(f"{items[indices[0]][0].uid}: generation failed: {exc}")]
            batch_failed(exc)
            return [outcome for index in indices for outcome in self._generate_rows([index], rows, items)]
        return [parse_answer(items[i][0].uid, text) for i, text in zip(indices, texts)]

    # ------------------------------------------------------------------- steps
    def prepare(self, query: Query, clip: Clip | None) -> PreparedSample:
        """Preprocess one sample (frames and audio); raises on bad media."""
        if clip is None:
            raise ThinkerError(f"{query.uid}: Ref-Thinker needs the decoded clip (frames and audio)")
        pixels = self.processor.preprocess_frames(clip.frames)
        fbank = self.processor.preprocess_audio(clip.audio, clip.sample_rate, clip.num_frames)
        return PreparedSample(query, pixels, fbank)

    def answer_texts(self, samples: Sequence[PreparedSample]) -> list[str]:
        """Raw decoded answers (special tokens kept, cut after the first ``</s>``) of one batch."""
        batch = self.processor.collate(
            [s.query.expression for s in samples], [s.pixel_values for s in samples], [s.audio_fbank for s in samples]
        )
        tokenizer = self.processor.tokenizer
        ids = generate_ids(
            self.model, batch, self.settings, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
        )
        return self.processor.decode(ids)

    def _generate_chunk(self, chunk: list[PreparedSample]) -> list[Thought | Exception]:
        try:
            texts = self.answer_texts(chunk)
        except Exception as exc:
            if len(chunk) == 1:
                return [ThinkerError(f"{chunk[0].query.uid}: generation failed: {exc}")]
            batch_failed(exc)
            return [outcome for sample in chunk for outcome in self._generate_chunk([sample])]
        return [parse_answer(s.query.uid, text) for s, text in zip(chunk, texts)]
