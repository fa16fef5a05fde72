"""Clips shorter than BEATs' minimum (1.75 s of audio): each audio chunk is padded with silence
to the 16 fbank frames of one patch (warned); longer clips get exactly the original features."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ref_thinker_helpers import random_clip, tiny_model_dir

from tgs.data.fbank import ref_thinker_fbank, samples_for_frames
from tgs.errors import ShortAudioWarning
from tgs.think.ref_thinker.processing import MIN_AUDIO_FRAMES, MIN_AUDIO_SECONDS, RefThinkerProcessor
from tgs.types import Query


def test_minimum_is_one_beats_patch_per_chunk():
    assert samples_for_frames(MIN_AUDIO_FRAMES) == 2800
    assert pytest.approx(1.75) == MIN_AUDIO_SECONDS


@pytest.mark.parametrize("seconds", [0.3, 1.0, 1.7])
def test_short_audio_is_padded_per_chunk_to_the_minimum(seconds):
    audio = np.random.default_rng(0).standard_normal(int(seconds * 16000)).astype(np.float32) * 0.1
    processor = RefThinkerProcessor(None, None)  # audio needs neither tokenizer nor image settings
    with pytest.warns(ShortAudioWarning, match="padded with silence"):
        fbank = processor.preprocess_audio(audio, 16000, 10)
    assert fbank.shape == (10, MIN_AUDIO_FRAMES, 128)
    # the signal is kept at the start of each chunk: the first frames equal the unpadded chunk's
    n = len(audio) // 10
    if n >= 400:
        unpadded = ref_thinker_fbank(audio[: 10 * n])
        torch.testing.assert_close(fbank[:, : unpadded.shape[1] - 1], unpadded[:, :-1])


def test_long_enough_audio_is_untouched():
    audio = np.random.default_rng(1).standard_normal(10 * 16000).astype(np.float32) * 0.1
    processor = RefThinkerProcessor(None, None)
    torch.testing.assert_close(processor.preprocess_audio(audio, 16000, 10), ref_thinker_fbank(audio), rtol=0, atol=0)


def test_ref_thinker_answers_on_a_one_second_clip():
    from tgs.think.registry import build_thinker, think_each

    thinker = build_thinker("ref-thinker", source=str(tiny_model_dir()), device="cpu", max_new_tokens=4)
    clip = random_clip(0, seconds=1.0)
    with pytest.warns(ShortAudioWarning):
        outcome = think_each(thinker, [(Query(uid="short", expression="the dog"), clip)])[0]
    assert not isinstance(outcome, Exception), outcome
