"""A zero-shot thinker on Qwen2.5-Omni (thinker part only) through transformers.

``Qwen/Qwen2.5-Omni-3B`` or ``-7B`` (or a local copy) hears and sees the clip the way the
model was trained to take a video with its soundtrack: the frames as one video input and
the audio, at 16 kHz, interleaved with it in 2-second chunks (``use_audio_in_video``; the
processor's ``load_audio_from_video`` with our decoded audio, so nothing is re-read from
disk). The system prompt is the one the model card asks for; the user turn holds the video
and the instruction of :mod:`tgs.think.prompting`, which asks for Ref-Thinker's
``<think>``/``<f_object>``/``<s_object>`` layout, so the shared parser reads the answer.
Only the thinker (text output) is loaded: the talker and token2wav weights of a full
checkpoint are skipped.

Decoding is greedy. Samples are batched with left padding and an attention mask (the
processor pads on the left; the model's 3D rotary positions skip padded tokens), so a
batched answer equals the one-by-one answer up to floating-point noise. One batch holds
samples of one kind only (with or without audio, same frame rate), because the processor
and the model take those as per-call settings.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from tgs.devices import resolve_device, resolve_dtype
from tgs.errors import ThinkerError, WeightsError
from tgs.think.base import PerItemThinker, batch_failed
from tgs.think.parser import parse_answer
from tgs.think.prompting import (
    AUDIO_SAMPLE_RATE,
    QWEN_OMNI_SYSTEM_PROMPT,
    audio_for_model,
    build_instruction,
    select_frame_indices,
)
from tgs.types import Clip, Query, Thought

__all__ = ["DEFAULT_OMNI_SOURCE", "OmniSample", "OmniThinker"]

logger = logging.getLogger(__name__)

DEFAULT_OMNI_SOURCE = "Qwen/Qwen2.5-Omni-3B"
HOW_TO_GET = (
    "huggingface-cli download Qwen/Qwen2.5-Omni-3B (or Qwen/Qwen2.5-Omni-7B), or pass a local directory "
    "holding a Qwen2.5-Omni checkpoint"
)
# Whisper-style feature extraction keeps the first 30 s of audio.
MAX_AUDIO_SECONDS = 30.0


@dataclass(frozen=True)
class OmniSample:
    """One item made ready for the processor: frames kept, audio at 16 kHz, frame rate."""

    position: int
    query: Query
    frames: np.ndarray  # uint8 [T, H, W, 3]
    audio: np.ndarray | None  # float32 [N] at 16 kHz
    fps: float

    @property
    def group(self) -> tuple[bool, float]:
        return self.audio is not None, self.fps


def _frame_rate(times: np.ndarray, default: float) -> float:
    """Frames per second from frame times (median spacing), rounded to 1e-3; ``default`` for one frame."""
    if times.shape[0] < 2:
        return default
    step = float(np.median(np.diff(times.astype(np.float64))))
    return round(1.0 / step, 3) if step > 0 else default


class OmniThinker(PerItemThinker):
    """Qwen2.5-Omni, prompted zero-shot for Ref-Thinker's answer format.

    model / processor: a loaded ``Qwen2_5OmniThinkerForConditionalGeneration`` and
        ``Qwen2_5OmniProcessor`` (see :meth:`from_pretrained`).
    max_new_tokens: generation length limit (greedy decoding).
    batch_size: samples per ``generate`` call.
    fps: frame rate told to the model (it sets the time positions of video tokens and how
        audio is interleaved); None derives it from each clip's frame times (1.0 for
        Ref-AVS, one frame per second).
    use_audio: give the model the clip's audio (clips without audio are seen silent).
    max_frames: at most this many frames per clip, spread evenly; None keeps all.
    video_min_pixels / video_max_pixels: per-frame pixel bounds for the video processor;
        None keeps the processor's defaults (128 to 768 tokens' worth for Qwen2.5-Omni).
    """

    name = "omni"

    def __init__(
        self,
        model: Any,
        processor: Any,
        *,
        max_new_tokens: int = 256,
        batch_size: int = 4,
        fps: float | None = None,
        use_audio: bool = True,
        max_frames: int | None = None,
        video_min_pixels: int | None = None,
        video_max_pixels: int | None = None,
        system_prompt: str = QWEN_OMNI_SYSTEM_PROMPT,
    ) -> None:
        if max_new_tokens < 1 or batch_size < 1:
            raise ValueError(f"expected max_new_tokens >= 1 and batch_size >= 1, got {max_new_tokens}, {batch_size}")
        if fps is not None and fps <= 0:
            raise ValueError(f"fps: expected a positive frame rate or None, got {fps}")
        if video_min_pixels is not None and video_max_pixels is not None and video_min_pixels > video_max_pixels:
            raise ValueError(f"video_min_pixels {video_min_pixels} is above video_max_pixels {video_max_pixels}")
        if getattr(processor, "chat_template", None) is None:
            raise WeightsError(
                "the Qwen2.5-Omni processor has no chat template",
                fix="use a checkpoint directory that holds chat_template.json / chat_template.jinja",
            )
        self.model = model
        self.processor = processor
        self.max_new_tokens = int(max_new_tokens)
        self.batch_size = int(batch_size)
        self.fps = fps
        self.use_audio = use_audio
        self.max_frames = max_frames
        self.video_min_pixels = video_min_pixels
        self.video_max_pixels = video_max_pixels
        self.system_prompt = system_prompt

    @classmethod
    def from_pretrained(
        cls,
        source: str = DEFAULT_OMNI_SOURCE,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        *,
        max_new_tokens: int = 256,
        batch_size: int = 4,
        fps: float | None = None,
        use_audio: bool = True,
        max_frames: int | None = None,
        video_min_pixels: int | None = None,
        video_max_pixels: int | None = None,
    ) -> OmniThinker:
        """Load the thinker and processor from a hub id or a directory, strictly.

        A full Qwen2.5-Omni checkpoint (``thinker.*``, ``talker.*``, ``token2wav.*``
        weights) and a thinker-only one both load; a missing or mismatched thinker weight
        is an error listing the keys. device/dtype: "auto" (default) is CUDA in bf16 when
        present, else CPU in fp32.
        """
        from transformers import Qwen2_5OmniProcessor, Qwen2_5OmniThinkerForConditionalGeneration

        from tgs.models.hf_loading import load_model, load_processor

        device = resolve_device(device)
        dtype = resolve_dtype(dtype, device)
        model = load_model(
            Qwen2_5OmniThinkerForConditionalGeneration,
            source,
            what="Qwen2.5-Omni thinker",
            how_to_get=HOW_TO_GET,
            device=device,
            dtype=dtype,
            allowed_unexpected=("talker.", "token2wav."),
        )
        processor = load_processor(Qwen2_5OmniProcessor, source, what="Qwen2.5-Omni processor", how_to_get=HOW_TO_GET)
        return cls(
            model,
            processor,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            fps=fps,
            use_audio=use_audio,
            max_frames=max_frames,
            video_min_pixels=video_min_pixels,
            video_max_pixels=video_max_pixels,
        )

    # ------------------------------------------------------------------ prompt

    def conversation(self, query: Query, *, has_audio: bool) -> list[dict[str, Any]]:
        """The chat messages of one sample: system prompt, then the video and the instruction."""
        return [
            {"role": "system", "content": [{"type": "text", "text": self.system_prompt}]},
            {
                "role": "user",
                "content": [
                    {"type": "video"},
                    {"type": "text", "text": build_instruction(query.expression, has_audio=has_audio)},
                ],
            },
        ]

    def prompt_text(self, query: Query, *, has_audio: bool) -> str:
        """The templated prompt (with the assistant turn opened), before media tokens are expanded."""
        return self.processor.apply_chat_template(
            self.conversation(query, has_audio=has_audio), add_generation_prompt=True, tokenize=False
        )

    # ------------------------------------------------------------------ thinking

    def think_each(self, items: Sequence[tuple[Query, Clip | None]]) -> list[Thought | Exception]:
        """One Thought or one exception per item, in order.

        A batch that fails (out of memory, a bad clip) is retried one sample at a time, so
        only the samples that fail alone are reported failed.
        """
        outcomes: list[Thought | Exception | None] = [None] * len(items)
        groups: dict[tuple[bool, float], list[OmniSample]] = {}
        for position, (query, clip) in enumerate(items):
            try:
                sample = self.prepare(query, clip, position)
            except Exception as exc:  # recorded for this sample only
                outcomes[position] = exc
                continue
            groups.setdefault(sample.group, []).append(sample)
        for samples in groups.values():
            for start in range(0, len(samples), self.batch_size):
                for position, outcome in self._run_batch(samples[start : start + self.batch_size]):
                    outcomes[position] = outcome
        assert all(o is not None for o in outcomes)
        return outcomes  # type: ignore[return-value]

    def prepare(self, query: Query, clip: Clip | None = None, position: int = 0) -> OmniSample:
        """Select frames, resample audio and find the frame rate of one item (``position``: its index)."""
        clip = clip if clip is not None else query.clip
        if clip is None:
            raise ThinkerError(
                f"{query.uid}: the omni thinker needs the decoded clip", fix="pass (query, clip) pairs with clips loaded"
            )
        indices = select_frame_indices(clip.num_frames, self.max_frames)
        times = clip.frame_times[indices]
        fps = self.fps if self.fps is not None else _frame_rate(times, default=1.0)
        audio = audio_for_model(clip, AUDIO_SAMPLE_RATE) if self.use_audio else None
        if audio is not None and audio.shape[0] > MAX_AUDIO_SECONDS * AUDIO_SAMPLE_RATE:
            logger.warning(
                "%s: audio of %.1f s; the Qwen2.5-Omni feature extractor keeps the first %.0f s",
                query.uid,
                audio.shape[0] / AUDIO_SAMPLE_RATE,
                MAX_AUDIO_SECONDS,
            )
        return OmniSample(position, query, clip.frames[indices], audio, fps)

    def _run_batch(self, samples: list[OmniSample]) -> list[tuple[int, Thought | Exception]]:
        try:
            texts = self.generate(samples)
        except Exception as exc:
            if len(samples) == 1:
                sample = samples[0]
                error = ThinkerError(f"{sample.query.uid}: Qwen2.5-Omni failed: {type(exc).__name__}: {exc}")
                error.__cause__ = exc
                return [(sample.position, error)]
            batch_failed(exc)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()  # after an out-of-memory batch, single samples may fit
            return [pair for sample in samples for pair in self._run_batch([sample])]
        return [(s.position, parse_answer(s.query.uid, text)) for s, text in zip(samples, texts)]

    def default_video_pixels(self) -> tuple[int, int]:
        """(min, max) pixels per frame the processor uses when not told otherwise.

        Qwen2.5-Omni's processor passes its own defaults to the video processor on every
        call, over the video processor's saved ones; those win here too.
        """
        size = dict(getattr(self.processor, "videos_kwargs", {}).get("size") or {})
        saved = self.processor.video_processor.size
        low = size.get("shortest_edge", saved["shortest_edge"])
        high = size.get("longest_edge", saved["longest_edge"])
        return int(low), int(high)

    def video_pixels(self) -> tuple[int, int]:
        """(min, max) pixels per frame used: the given bounds, the processor's for the others.

        A single given bound that crosses the other default moves it: a max below the
        default min drops the min to one merged patch (28x28 px), so frames are only shrunk;
        a min above the default max raises the max to it.
        """
        low, high = self.default_video_pixels()
        if self.video_min_pixels is not None:
            low = self.video_min_pixels
            high = high if self.video_max_pixels is not None or high >= low else low
        if self.video_max_pixels is not None:
            high = self.video_max_pixels
            video = self.processor.video_processor
            smallest = (video.patch_size * video.merge_size) ** 2
            low = low if self.video_min_pixels is not None or low <= high else min(smallest, high)
        return low, high

    def processor_inputs(self, samples: Sequence[OmniSample]) -> Any:
        """The processor's BatchFeature for samples of one group (same audio presence and fps)."""
        has_audio, fps = samples[0].group
        videos_kwargs: dict[str, Any] = {"fps": fps, "cap_pixels_per_frame": True}
        if self.video_min_pixels is not None or self.video_max_pixels is not None:
            videos_kwargs["size"] = dict(zip(("shortest_edge", "longest_edge"), self.video_pixels()))
        kwargs: dict[str, Any] = {
            "text": [self.prompt_text(s.query, has_audio=has_audio) for s in samples],
            "videos": [s.frames for s in samples],
            "videos_kwargs": videos_kwargs,
            "padding": True,
            "return_tensors": "pt",
        }
        if has_audio:
            kwargs["audio"] = [s.audio for s in samples]
            kwargs["audio_from_video_indices"] = list(range(len(samples)))
            kwargs["load_audio_from_video"] = True
        return self.processor(**kwargs)

    @torch.inference_mode()
    def generate(self, samples: Sequence[OmniSample]) -> list[str]:
        """Greedy answers (special tokens dropped) for samples of one group."""
        has_audio = samples[0].audio is not None
        inputs = self.processor_inputs(samples)
        device = self.model.device
        dtype = self.model.dtype
        model_inputs = {}
        for key, value in inputs.items():
            if isinstance(value, torch.Tensor):
                cast = dtype if key in ("pixel_values_videos", "input_features") else None
                value = value.to(device=device, dtype=cast)
            model_inputs[key] = value
        output = self.model.generate(
            **model_inputs,
            use_audio_in_video=has_audio,
            max_new_tokens=self.max_new_tokens,
            do_sample=False,
            pad_token_id=self.processor.tokenizer.pad_token_id,
        )
        new_tokens = output[:, model_inputs["input_ids"].shape[1] :]
        return self.processor.batch_decode(new_tokens, skip_special_tokens=True)
