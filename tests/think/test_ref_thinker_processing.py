"""Ref-Thinker processing: frames, fbank, prompt tokens and decoding, against hand computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from ref_thinker_helpers import random_clip, tiny_model_dir

from tgs.data.fbank import ref_thinker_fbank
from tgs.data.media import resample_like_librosa
from tgs.errors import DataError, NoAudioWarning
from tgs.think.ref_thinker.configuration import SPECIAL_TOKENS
from tgs.think.ref_thinker.processing import ProcessorItem, RefThinkerProcessor, load_tokenizer

CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073], np.float32)
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)


@pytest.fixture(scope="module")
def processor() -> RefThinkerProcessor:
    return RefThinkerProcessor.from_pretrained(tiny_model_dir())


@pytest.mark.numeric
def test_frames_shape_and_constant_colour_values(processor: RefThinkerProcessor) -> None:
    frames = np.zeros((10, 72, 128, 3), np.uint8)
    frames[...] = (255, 0, 128)
    pixels = processor.preprocess_frames(frames)
    assert pixels.shape == (10, 3, 224, 224) and pixels.dtype == torch.float32
    expected = (np.array([255, 0, 128], np.float32) / 255.0 - CLIP_MEAN) / CLIP_STD  # [1.8, -1.75, 0.34]
    # x / 255, - mean, / std: 3 float32 roundings of values <= 1.8 on each side: 2 x 3 u x 1.8 ~ 6e-7
    for channel in range(3):
        torch.testing.assert_close(pixels[:, channel], torch.full((10, 224, 224), float(expected[channel])),
                                   rtol=0, atol=1e-6)  # fmt: skip


@pytest.mark.numeric
def test_frames_are_pil_resized_then_clip_normalised(processor: RefThinkerProcessor) -> None:
    frames = random_clip(3, frames=2, size=(90, 160)).frames
    pixels = processor.preprocess_frames(frames)
    for i, frame in enumerate(frames):
        resized = np.asarray(Image.fromarray(frame).resize((224, 224), Image.Resampling.BICUBIC), np.float32)
        expected = ((resized / 255.0 - CLIP_MEAN) / CLIP_STD).transpose(2, 0, 1)
        # the same uint8 PIL resize; normalisation as above (values <= 2.2: 2 x 3 u x 2.2 ~ 8e-7)
        np.testing.assert_allclose(pixels[i].numpy(), expected, rtol=0, atol=1e-6)


def test_frames_must_be_uint8_rgb(processor: RefThinkerProcessor) -> None:
    with pytest.raises(DataError, match="uint8"):
        processor.preprocess_frames(np.zeros((10, 8, 8, 3), np.float32))


def test_fbank_of_ten_seconds(processor: RefThinkerProcessor) -> None:
    clip = random_clip(1)
    fbank = processor.preprocess_audio(clip.audio, 16000, 10)
    assert fbank.shape == (10, 98, 128) and fbank.dtype == torch.float32
    torch.testing.assert_close(fbank, ref_thinker_fbank(clip.audio), rtol=0, atol=0)  # the same function


def test_other_rates_are_resampled_like_librosa(processor: RefThinkerProcessor) -> None:
    clip = random_clip(2, sample_rate=48000)
    fbank = processor.preprocess_audio(clip.audio, 48000, 10)
    expected = ref_thinker_fbank(resample_like_librosa(clip.audio, 48000, 16000))
    assert fbank.shape == (10, 98, 128)
    torch.testing.assert_close(fbank, expected, rtol=0, atol=0)  # the same resampler and fbank


def test_missing_audio_is_silence_with_a_warning(processor: RefThinkerProcessor) -> None:
    with pytest.warns(NoAudioWarning, match="silence"):
        fbank = processor.preprocess_audio(None, None, 10)
    torch.testing.assert_close(fbank, ref_thinker_fbank(np.zeros(160000, np.float32)), rtol=0, atol=0)


def test_prompt_tokens_are_left_padded(processor: RefThinkerProcessor) -> None:
    tokenizer = processor.tokenizer
    items = [
        ProcessorItem("A cat.", random_clip(0).frames, random_clip(0).audio, 16000),
        ProcessorItem("The loudest instrument on the left of the stage.", random_clip(1).frames, None, None),
    ]
    with pytest.warns(NoAudioWarning):
        batch = processor(items)
    ids, mask = batch.input_ids, batch.attention_mask
    assert batch.pixel_values.shape == (2, 10, 3, 224, 224) and batch.audio_fbank.shape == (2, 10, 98, 128)
    short, long_ = int(mask[0].sum()), int(mask[1].sum())
    assert short < long_ == ids.shape[1]
    assert mask[0, : ids.shape[1] - short].sum() == 0 and (ids[0, : ids.shape[1] - short] == tokenizer.eos_token_id).all()
    video, audio = tokenizer.convert_tokens_to_ids(["<video>", "<audio>"])
    for row, m, item in zip(ids, mask, items):
        real = row[m.bool()].tolist()
        assert real[0] == tokenizer.bos_token_id == 1  # the literal "<s>" is the BOS token
        assert real.count(video) == 1 and real.count(audio) == 1
        assert tokenizer.decode(real) == processor.prompt(item.expression)


def test_batch_with_mixed_durations_is_refused(processor: RefThinkerProcessor) -> None:
    a, b = random_clip(0), random_clip(1, seconds=5.0)
    with pytest.raises(DataError, match="equal shapes"):
        processor([ProcessorItem("x", a.frames, a.audio, 16000), ProcessorItem("y", b.frames, b.audio, 16000)])


def test_decode_keeps_tags_and_stops_at_the_first_eos(processor: RefThinkerProcessor) -> None:
    tokenizer = processor.tokenizer
    answer = "<think> it barks </think>\n<answer>\n<f_object> a black dog </f_object>\n<s_object> dog </s_object>\n</answer>"
    ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    eos = tokenizer.eos_token_id
    (text,) = processor.decode([[*ids, eos, eos, eos]])
    assert text == answer + "</s>"
    (truncated,) = processor.decode([ids[:5]])
    assert "</s>" not in truncated and truncated.startswith("<think>")


def test_load_tokenizer_requires_the_added_tokens(tmp_path) -> None:
    from tgs.testing.tiny_thinker import build_tiny_llama_tokenizer

    build_tiny_llama_tokenizer().save_pretrained(str(tmp_path))
    with pytest.raises(DataError, match="added tokens"):
        load_tokenizer(tmp_path)
    tokenizer = load_tokenizer(tiny_model_dir())
    first = tokenizer.convert_tokens_to_ids("<image>")
    assert tokenizer.convert_tokens_to_ids(list(SPECIAL_TOKENS)) == list(range(first, first + 21))
    assert tokenizer.padding_side == "left" and tokenizer.pad_token_id == tokenizer.eos_token_id
