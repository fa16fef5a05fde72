"""Generation: a sample's answer does not depend on its batch; the original's bug stays reproducible."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from float32_error import TINY_REF_THINKER_CHAIN, float32_bound
from ref_thinker_helpers import EXPRESSIONS, items, random_clip, tiny_model_dir

from tgs.errors import NoAudioWarning, ThinkerError
from tgs.think.base import Thinker
from tgs.think.ref_thinker.generation import GenerationSettings, generate_ids
from tgs.think.ref_thinker.thinker import RefThinker
from tgs.types import Clip, Query, Thought

MAX_NEW = 6


@pytest.fixture(scope="module")
def thinker() -> RefThinker:
    return RefThinker.from_pretrained(
        tiny_model_dir(), device="cpu", dtype="fp32", batch_size=4, settings=GenerationSettings(max_new_tokens=MAX_NEW)
    )


def _with_settings(thinker: RefThinker, batch_size: int, **settings) -> RefThinker:
    return RefThinker(thinker.model, thinker.processor, batch_size=batch_size,
                      settings=GenerationSettings(max_new_tokens=MAX_NEW, **settings))  # fmt: skip


def test_is_a_thinker(thinker: RefThinker) -> None:
    assert isinstance(thinker, Thinker) and thinker.name == "ref-thinker"
    assert thinker.device.type == "cpu" and thinker.dtype == torch.float32


def test_batched_generation_equals_one_by_one(thinker: RefThinker) -> None:
    batch = items(4)
    batched = thinker.think(batch)
    single = _with_settings(thinker, 1).think(batch)
    assert [t.uid for t in batched] == ["u0", "u1", "u2", "u3"]
    assert [t.raw for t in batched] == [t.raw for t in single]
    assert all(isinstance(t, Thought) and t.raw for t in batched)


def test_answers_are_at_most_max_new_tokens(thinker: RefThinker) -> None:
    samples = [thinker.prepare(q, c) for q, c in items(2)]
    batch = thinker.processor.collate(
        [s.query.expression for s in samples], [s.pixel_values for s in samples], [s.audio_fbank for s in samples]
    )
    ids = generate_ids(thinker.model, batch, thinker.settings, eos_token_id=2, pad_token_id=2)
    assert len(ids) == 2 and all(1 <= len(row) <= MAX_NEW for row in ids)


@pytest.mark.numeric
def test_unmasked_batches_reproduce_the_original_dependence_on_padding(thinker: RefThinker) -> None:
    """Without the mask, the padded (shorter) prompt attends to pad embeddings: other logits."""
    model = thinker.model
    samples = [thinker.prepare(q, c) for q, c in items(2)]  # expressions of different lengths
    batch = thinker.processor.collate(
        [s.query.expression for s in samples], [s.pixel_values for s in samples], [s.audio_fbank for s in samples]
    )
    padded_row = int(batch.attention_mask.sum(1).argmin())
    with torch.no_grad():
        spliced = model.prepare_multimodal_inputs(batch.input_ids, batch.attention_mask, batch.pixel_values,
                                                  batch.audio_fbank)  # fmt: skip
        masked = model(inputs_embeds=spliced.inputs_embeds, attention_mask=spliced.attention_mask).logits
        unmasked = model(inputs_embeds=spliced.inputs_embeds).logits
    assert (masked[padded_row, -1] - unmasked[padded_row, -1]).abs().max() > 1e-3
    # the unpadded row: a mask of ones changes only the attention kernel's path, i.e. rounding
    tolerance = float32_bound(TINY_REF_THINKER_CHAIN, float(masked[1 - padded_row, -1].abs().max()), paths=2)
    assert (masked[padded_row, -1] - unmasked[padded_row, -1]).abs().max() > 100 * tolerance
    torch.testing.assert_close(masked[1 - padded_row, -1], unmasked[1 - padded_row, -1], rtol=0, atol=tolerance)
    # and a batch of one has no padding, so both settings agree
    one = items(1)
    assert _with_settings(thinker, 1, mask_padding=False).think(one)[0].raw == thinker.think(one)[0].raw


def test_failures_are_per_sample(thinker: RefThinker) -> None:
    good = items(2)
    outcomes = thinker.think_each([good[0], (Query(uid="nope", expression="x"), None), good[1]])
    assert isinstance(outcomes[1], ThinkerError) and "nope" in str(outcomes[1])
    assert [o.uid for o in (outcomes[0], outcomes[2])] == ["u0", "u1"]
    with pytest.raises(ThinkerError):
        thinker.think([(Query(uid="nope", expression="x"), None)])


def test_a_batch_that_cannot_be_stacked_falls_back_to_single_samples(thinker: RefThinker) -> None:
    short = (Query(uid="short", expression=EXPRESSIONS[0]), random_clip(7, frames=8))
    normal = items(1)[0]
    mixed = thinker.think([short, normal])
    alone = _with_settings(thinker, 1).think([short, normal])
    assert [t.raw for t in mixed] == [t.raw for t in alone]


def test_clip_without_audio_gets_silence(thinker: RefThinker) -> None:
    clip = random_clip(3, audio=False)
    silent = Clip(clip.frames, np.zeros(160000, np.float32), 16000, clip.frame_times)
    with pytest.warns(NoAudioWarning):
        (no_audio,) = thinker.think([(Query(uid="a", expression="the dog"), clip)])
    (with_silence,) = thinker.think([(Query(uid="a", expression="the dog"), silent)])
    assert no_audio.raw == with_silence.raw


def test_bf16_runs_under_autocast(thinker: RefThinker) -> None:
    bf16 = RefThinker.from_pretrained(tiny_model_dir(), device="cpu", dtype="bf16", batch_size=2,
                                      settings=GenerationSettings(max_new_tokens=3))  # fmt: skip
    assert bf16.dtype == torch.bfloat16
    thoughts = bf16.think(items(2))
    assert [t.uid for t in thoughts] == ["u0", "u1"] and all(t.raw for t in thoughts)
