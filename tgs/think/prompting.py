"""Zero-shot prompts and media encoding shared by the general-purpose thinkers (``api``, ``omni``).

Ref-Thinker was fine-tuned on one prompt (``tgs.think.ref_thinker.prompts``); general
audio-visual LLMs were not, so they get an explicit instruction that asks for the same
answer layout Ref-Thinker writes::

    <think> reasoning </think>
    <answer>
    <f_object> fine-grained description </f_object>
    <s_object> simplified object name </s_object>
    </answer>

so that the one shared parser (:func:`tgs.think.parser.parse_answer`) reads every
thinker's answer the same way, ``null`` included. The bbox line of Ref-Thinker's format is
left out: nothing downstream reads it, and untrained models only invent numbers for it.

The media helpers turn a :class:`~tgs.types.Clip` into what chat endpoints accept: frames
as base64 image data URLs, audio as a base64 16-bit PCM WAV.
"""

from __future__ import annotations

import base64
import io
import wave
from collections.abc import Sequence
from typing import Literal

import numpy as np

from tgs.types import Clip

__all__ = [
    "ANSWER_TEMPLATE",
    "AUDIO_SAMPLE_RATE",
    "QWEN_OMNI_SYSTEM_PROMPT",
    "SYSTEM_PROMPT",
    "ImageFormat",
    "audio_for_model",
    "build_instruction",
    "encode_image_data_url",
    "encode_wav",
    "select_frame_indices",
    "wav_base64",
]

ImageFormat = Literal["jpeg", "png"]

AUDIO_SAMPLE_RATE = 16000
"""Rate (Hz) audio is resampled to before it is sent to a model: what Whisper-style audio
encoders (Qwen2.5-Omni, most hosted audio models) are trained on."""

SYSTEM_PROMPT = (
    "You are an expert in audio-visual scene understanding. Given a video, its sound and a "
    "referring expression, you work out which object the expression is about and answer in "
    "exactly the tag format you are asked for."
)

QWEN_OMNI_SYSTEM_PROMPT = (
    "You are Qwen, a virtual human developed by the Qwen Team, Alibaba Group, capable of "
    "perceiving auditory and visual inputs, as well as generating text and speech."
)
"""The system prompt Qwen2.5-Omni was trained with (its model card asks for it verbatim);
the task instruction goes in the user turn."""

ANSWER_TEMPLATE = (
    "<think>\n(your reasoning)\n</think>\n"
    "<answer>\n"
    "<f_object> (the object, described precisely) </f_object>\n"
    "<s_object> (the object's short name) </s_object>\n"
    "</answer>"
)


def _times_sentence(frame_times: Sequence[float]) -> str:
    times = ", ".join(f"{float(t):.1f}" for t in frame_times)
    n = len(frame_times)
    return f"The {n} image{'s' if n != 1 else ''} are frames of one video, in time order, taken at {times} seconds."


def build_instruction(expression: str, *, has_audio: bool, frame_times: Sequence[float] | None = None) -> str:
    """The user-turn instruction for one referring expression.

    has_audio: whether the model also receives the clip's audio; without it the
        instruction says so, so the model does not pretend to hear.
    frame_times: seconds of each frame when the video is sent as separate images (chat
        endpoints); None when the model receives it as one video input.
    """
    if frame_times is not None:
        media = _times_sentence(frame_times)
        sound = (
            " The audio track of the same video is attached."
            if has_audio
            else " The audio track is not available: judge from the frames alone."
        )
        look = "Look at the frames and listen to the audio" if has_audio else "Look at the frames"
    else:
        media = "You are given a video."
        sound = "" if has_audio else " It has no audio track: judge from the pictures alone."
        look = "Watch the video and listen to its sound" if has_audio else "Watch the video"
    return (
        f"{media}{sound}\n"
        f'Referring expression: "{expression}"\n'
        f"{look}, and find the one object the expression refers to. First reason step by step about "
        "what is visible and what is making which sound, then name the object.\n"
        "Answer in exactly this format:\n"
        f"{ANSWER_TEMPLATE}\n"
        "In <f_object> describe the object with the attributes that single it out (for example "
        '"the man playing the guitar on the left"). In <s_object> give only a short noun phrase for '
        'its kind (for example "man" or "guitar"), as you would type it into an object detector.\n'
        "If nothing in the video matches the expression, write null in both tags: "
        "<f_object> null </f_object> and <s_object> null </s_object>."
    )


def select_frame_indices(num_frames: int, max_frames: int | None) -> list[int]:
    """Up to ``max_frames`` frame positions spread evenly over the clip, first and last included."""
    if num_frames < 1:
        raise ValueError(f"num_frames: expected at least 1, got {num_frames}")
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames: expected a positive integer or None, got {max_frames}")
    if max_frames is None or num_frames <= max_frames:
        return list(range(num_frames))
    if max_frames == 1:
        return [0]
    picks = np.linspace(0, num_frames - 1, max_frames).round().astype(int)
    return sorted(set(int(i) for i in picks))


def encode_image_data_url(
    frame: np.ndarray, image_format: ImageFormat = "jpeg", *, quality: int = 90, max_side: int | None = None
) -> str:
    """A ``data:image/...;base64,...`` URL of one RGB frame (uint8 [H, W, 3]).

    max_side: downscale (aspect kept, Lanczos) so that the longer side is at most this many
        pixels; None sends the frame at its original size.
    """
    from PIL import Image

    if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"frame: expected uint8 [H, W, 3], got {frame.dtype} {tuple(frame.shape)}")
    image = Image.fromarray(frame)
    if max_side is not None and max(image.size) > max_side:
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    if image_format == "jpeg":
        image.save(buffer, format="JPEG", quality=quality)
    elif image_format == "png":
        image.save(buffer, format="PNG")
    else:
        raise ValueError(f"image_format: expected 'jpeg' or 'png', got {image_format!r}")
    return f"data:image/{image_format};base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def encode_wav(audio: np.ndarray, sample_rate: int) -> bytes:
    """Mono float32 audio in [-1, 1] as a 16-bit PCM WAV file (values outside are clipped)."""
    if audio.ndim != 1:
        raise ValueError(f"audio: expected mono [N], got shape {tuple(audio.shape)}")
    pcm = np.clip(np.round(audio.astype(np.float64) * 32767.0), -32768, 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(int(sample_rate))
        wav.writeframes(pcm.tobytes())
    return buffer.getvalue()


def wav_base64(audio: np.ndarray, sample_rate: int) -> str:
    """:func:`encode_wav` as base64 text, the form chat endpoints take for ``input_audio``."""
    return base64.b64encode(encode_wav(audio, sample_rate)).decode("ascii")


def audio_for_model(clip: Clip, sample_rate: int = AUDIO_SAMPLE_RATE) -> np.ndarray | None:
    """The clip's audio as float32 [N] at ``sample_rate`` Hz (soxr HQ resampling), or None."""
    if clip.audio is None or clip.sample_rate is None:
        return None
    if clip.sample_rate == sample_rate:
        return clip.audio
    from tgs.data.media import resample_like_librosa

    return resample_like_librosa(clip.audio, clip.sample_rate, sample_rate)
