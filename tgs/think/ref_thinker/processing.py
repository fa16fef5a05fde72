"""Turns (expression, clip) pairs into Ref-Thinker tensors, and generated ids into text.

As TGS-Agent's test dataset and collator do it:

- prompt: ``build_prompt`` (inference variant by default), tokenized without adding
  special tokens (the text carries its own ``<s>``), batches left padded with
  pad = eos = ``</s>``;
- frames: each frame PIL-resized to 224 x 224 (Pillow's default bicubic filter), then the
  CLIP image processor (rescale 1/255, CLIP mean/std) -> float32 [T, 3, 224, 224];
- audio: 16 kHz mono (resampled like ``librosa.load`` when the clip has another rate),
  10 chunks of ``int(len / 10)`` samples, Kaldi fbank, BEATs normalisation ->
  float32 [10, 98, 128] for 10 s (``tgs.data.fbank.ref_thinker_fbank``).

Short-chunk padding: a clip shorter than :data:`MIN_AUDIO_SECONDS` (1.75 s) has chunks too
short for BEATs' 16x16 patch (16 fbank frames = 2,800 samples per chunk); each chunk is then
zero-padded at its end to that minimum (``ref_thinker_fbank(min_chunk_frames=...)``), with a
:class:`~tgs.errors.ShortAudioWarning` saying so in plain words. The original fails on such
clips; every clip it accepts gets identical features.

A clip without audio gets the fbank of 10 s of silence (the original has no such case: it
fails to read the file). That is logged as a NoAudioWarning, since the answer then rests on
the frames alone.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from tgs.data.fbank import ref_thinker_fbank, samples_for_frames
from tgs.data.media import REF_AVS_SAMPLE_RATE, resample_like_librosa
from tgs.errors import DataError, NoAudioWarning, ShortAudioWarning
from tgs.think.ref_thinker.configuration import SPECIAL_TOKENS
from tgs.think.ref_thinker.prompts import PromptVariant, build_prompt
from tgs.think.ref_thinker.tokenizer_legacy import load_llama_tokenizer

if TYPE_CHECKING:
    from transformers import CLIPImageProcessorPil, PreTrainedTokenizerBase

__all__ = ["ProcessorItem", "RefThinkerBatch", "RefThinkerProcessor", "load_tokenizer"]

logger = logging.getLogger(__name__)

IMAGE_SIZE = 224


@dataclass(frozen=True)
class ProcessorItem:
    """One sample to think about.

    frames: uint8 [T, H, W, 3] RGB; audio: float32 [N] mono at ``sample_rate`` Hz or None.
    """

    expression: str
    frames: np.ndarray
    audio: np.ndarray | None
    sample_rate: int | None


@dataclass
class RefThinkerBatch:
    """Model inputs of a batch.

    input_ids / attention_mask: int64 [B, L], left padded; pixel_values: float32
    [B, T, 3, 224, 224]; audio_fbank: float32 [B, 10, F, 128].
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    pixel_values: torch.Tensor
    audio_fbank: torch.Tensor

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> RefThinkerBatch:
        """Move to ``device``; floating tensors also to ``dtype`` when given."""
        return RefThinkerBatch(
            input_ids=self.input_ids.to(device),
            attention_mask=self.attention_mask.to(device),
            pixel_values=self.pixel_values.to(device=device, dtype=dtype or self.pixel_values.dtype),
            audio_fbank=self.audio_fbank.to(device=device, dtype=dtype or self.audio_fbank.dtype),
        )


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerBase:
    """The tokenizer saved with a Ref-Thinker directory, set up for left-padded batches.

    Checks that the 21 added tokens are present with consecutive ids (a base LLaMA
    tokenizer, without them, would silently split ``<video>`` into pieces).
    """
    tokenizer = load_llama_tokenizer(path)  # ids as the original's transformers 4.37.2 gave them
    ids = tokenizer.convert_tokens_to_ids(list(SPECIAL_TOKENS))
    first = ids[0]
    if ids != list(range(first, first + len(SPECIAL_TOKENS))) or first == tokenizer.unk_token_id:
        raise DataError(
            f"the tokenizer in {path} lacks Ref-Thinker's {len(SPECIAL_TOKENS)} added tokens "
            f"(got ids {ids[:4]}...)",
            path=path,
            fix="use a directory written by `tgs models convert-ref-thinker`",
        )
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token  # pad = eos = </s>, as the original
    return tokenizer


MIN_AUDIO_FRAMES = 16
"""Fbank frames BEATs needs per chunk: one patch of its default ``input_patch_size`` (16)."""

MIN_AUDIO_SECONDS = 10 * samples_for_frames(MIN_AUDIO_FRAMES) / REF_AVS_SAMPLE_RATE
"""Shortest clip (s) whose 10 chunks reach :data:`MIN_AUDIO_FRAMES` without padding: 1.75 s."""


class RefThinkerProcessor:
    """Prompt, frames and audio -> ``RefThinkerBatch``; generated ids -> text."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        image_processor: CLIPImageProcessorPil,
        *,
        num_audio_chunks: int = 10,
        prompt_variant: PromptVariant = "inference",
    ) -> None:
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.num_audio_chunks = num_audio_chunks
        self.prompt_variant = prompt_variant

    @classmethod
    def from_pretrained(cls, path: str | Path, *, prompt_variant: PromptVariant = "inference") -> RefThinkerProcessor:
        """Tokenizer and CLIP preprocessing settings saved in a Ref-Thinker directory."""
        from transformers import CLIPImageProcessorPil

        path = Path(path)
        if not (path / "preprocessor_config.json").is_file():
            raise DataError(
                f"{path} has no preprocessor_config.json (the CLIP image settings)",
                path=path,
                fix="use a directory written by `tgs models convert-ref-thinker`",
            )
        image_processor = CLIPImageProcessorPil.from_pretrained(str(path))
        return cls(load_tokenizer(path), image_processor, prompt_variant=prompt_variant)

    # ------------------------------------------------------------------ inputs
    def prompt(self, expression: str) -> str:
        return build_prompt(expression, self.prompt_variant)

    def prompt_ids(self, expression: str) -> list[int]:
        """The prompt's token ids, unpadded, as ``collate`` tokenizes them."""
        return list(self.tokenizer(self.prompt(expression), add_special_tokens=False)["input_ids"])

    def preprocess_frames(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 [T, H, W, 3] -> float32 [T, 3, 224, 224]: PIL resize, then CLIP normalisation."""
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise DataError(f"frames: expected uint8 [T, H, W, 3], got {frames.dtype} {tuple(frames.shape)}")
        images = [Image.fromarray(frame).resize((IMAGE_SIZE, IMAGE_SIZE)) for frame in frames]
        pixels = self.image_processor.preprocess(images, return_tensors="pt")["pixel_values"]
        return pixels.to(torch.float32)

    def preprocess_audio(self, audio: np.ndarray | None, sample_rate: int | None, num_frames: int) -> torch.Tensor:
        """Mono audio -> float32 [10, F, 128]; None -> the fbank of ``num_frames`` seconds of silence."""
        if audio is None:
            warnings.warn(
                f"a clip has no audio; Ref-Thinker gets {num_frames} s of silence instead", NoAudioWarning, stacklevel=3
            )
            audio = np.zeros(num_frames * REF_AVS_SAMPLE_RATE, np.float32)
            sample_rate = REF_AVS_SAMPLE_RATE
        if sample_rate is None or sample_rate <= 0:
            raise DataError(f"audio without a valid sample rate ({sample_rate})")
        if sample_rate != REF_AVS_SAMPLE_RATE:
            audio = resample_like_librosa(audio, sample_rate, REF_AVS_SAMPLE_RATE)
        seconds = len(audio) / REF_AVS_SAMPLE_RATE
        if len(audio) < self.num_audio_chunks * samples_for_frames(MIN_AUDIO_FRAMES):
            warnings.warn(
                f"the clip has {seconds:.2f} s of audio, shorter than the {MIN_AUDIO_SECONDS:.2f} s the audio "
                "encoder needs: each of its 10 audio pieces is padded with silence to the minimum",
                ShortAudioWarning,
                stacklevel=3,
            )
        return ref_thinker_fbank(audio, self.num_audio_chunks, min_chunk_frames=MIN_AUDIO_FRAMES)

    def __call__(self, items: Sequence[ProcessorItem]) -> RefThinkerBatch:
        """Preprocess and collate a batch."""
        if not items:
            raise ValueError("no items to process")
        return self.collate(
            [item.expression for item in items],
            [self.preprocess_frames(item.frames) for item in items],
            [self.preprocess_audio(item.audio, item.sample_rate, item.frames.shape[0]) for item in items],
        )

    def collate(
        self, expressions: Sequence[str], pixels: Sequence[torch.Tensor], fbanks: Sequence[torch.Tensor]
    ) -> RefThinkerBatch:
        """Tokenize the prompts (left padded) and stack the preprocessed frames and fbanks."""
        for name, tensors in (("frames", pixels), ("audio fbank", fbanks)):
            shapes = {tuple(t.shape) for t in tensors}
            if len(shapes) > 1:
                raise DataError(
                    f"the {name} of one batch must have equal shapes, got {sorted(shapes)}",
                    fix="batch clips of equal length together, or use a batch size of 1",
                )
        encoded = self.tokenizer(
            [self.prompt(e) for e in expressions], add_special_tokens=False, padding=True, return_tensors="pt"
        )
        return RefThinkerBatch(
            input_ids=encoded["input_ids"],
            attention_mask=encoded["attention_mask"],
            pixel_values=torch.stack(list(pixels)),
            audio_fbank=torch.stack(list(fbanks)),
        )

    # ------------------------------------------------------------------ output
    def decode(self, sequences: Sequence[Sequence[int]] | torch.Tensor) -> list[str]:
        """Generated ids -> text with special tokens kept, cut after the first ``</s>``.

        The original decodes the whole padded row, so a short answer in a batch ends in
        repeated ``</s>``; cutting at the first one makes the text independent of the batch.
        """
        eos = self.tokenizer.eos_token_id
        texts = []
        for row in sequences:
            ids = [int(t) for t in row]
            if eos in ids:
                ids = ids[: ids.index(eos) + 1]
            texts.append(self.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False))
        return texts
