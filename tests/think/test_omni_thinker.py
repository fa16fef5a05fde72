"""OmniThinker on a tiny random Qwen2.5-Omni thinker with the real processor classes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from tgs.errors import MissingWeightsError, ThinkerError
from tgs.think.base import Thinker
from tgs.think.omni import OmniThinker
from tgs.think.prompting import QWEN_OMNI_SYSTEM_PROMPT
from tgs.types import Clip, ParseStatus, Query, Thought

pytestmark = [
    pytest.mark.slow,  # builds and loads a tiny model (a few seconds per module)
    # transformers' Qwen2.5-Omni processor calls np.arange on tensors (numpy 2 copy-keyword notice)
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
]

PIXELS = {"video_min_pixels": 28 * 28, "video_max_pixels": 56 * 56}


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tgs.testing.tiny_omni import build_tiny_omni

    return build_tiny_omni(tmp_path_factory.mktemp("tiny_omni") / "model")


@pytest.fixture(scope="module")
def thinker(tiny_dir: Path) -> OmniThinker:
    return OmniThinker.from_pretrained(str(tiny_dir), device="cpu", max_new_tokens=6, batch_size=4, **PIXELS)


def make_clip(seed: int, frames: int, seconds: float | None, sample_rate: int = 16000, fps: float = 1.0) -> Clip:
    rng = np.random.default_rng(seed)
    video = rng.integers(0, 256, size=(frames, 40, 60, 3), dtype=np.uint8)
    if seconds is None:
        return Clip(video, None, None, np.arange(frames) / fps)
    audio = (0.1 * rng.standard_normal(int(seconds * sample_rate))).astype(np.float32)
    return Clip(video, audio, sample_rate, np.arange(frames) / fps)


def test_tiny_model_loads_with_matching_token_ids(thinker: OmniThinker) -> None:
    assert isinstance(thinker, Thinker) and thinker.name == "omni"
    config, tok = thinker.model.config, thinker.processor.tokenizer
    assert type(thinker.model).__name__ == "Qwen2_5OmniThinkerForConditionalGeneration"
    assert type(thinker.processor).__name__ == "Qwen2_5OmniProcessor"
    assert (config.video_token_id, config.audio_token_id, config.image_token_id) == (
        tok.video_token_id,
        tok.audio_token_id,
        tok.image_token_id,
    )
    assert config.vision_start_token_id == tok.convert_tokens_to_ids("<|vision_bos|>")
    assert config.audio_start_token_id == tok.convert_tokens_to_ids("<|audio_bos|>")
    assert thinker.model.config.text_config.hidden_size == 32


def test_prompt_follows_the_chat_template(thinker: OmniThinker) -> None:
    text = thinker.prompt_text(Query("u", "the barking dog"), has_audio=True)
    assert text.startswith(f"<|im_start|>system\n{QWEN_OMNI_SYSTEM_PROMPT}<|im_end|>\n<|im_start|>user\n")
    user = text.split("<|im_start|>user\n", 1)[1]
    assert user.startswith("<|vision_bos|><|VIDEO|><|vision_eos|>You are given a video.\n")
    assert 'Referring expression: "the barking dog"' in user and "listen to its sound" in user
    assert "<f_object> null </f_object> and <s_object> null </s_object>" in user
    assert text.endswith("<|im_end|>\n<|im_start|>assistant\n")
    silent = thinker.prompt_text(Query("u", "the barking dog"), has_audio=False)
    assert "no audio track" in silent and "listen" not in silent


def test_processor_inputs_interleave_audio_with_the_video(thinker: OmniThinker) -> None:
    tok = thinker.processor.tokenizer
    clip = make_clip(0, frames=4, seconds=4.0, sample_rate=48000, fps=2.0)
    inputs = thinker.processor_inputs([thinker.prepare(Query("u", "the dog"), clip)])
    ids = inputs["input_ids"][0].tolist()
    start = ids.index(tok.convert_tokens_to_ids("<|vision_bos|>"))
    assert ids[start + 1] == tok.convert_tokens_to_ids("<|audio_bos|>")  # audio-in-video layout
    t, h, w = inputs["video_grid_thw"][0].tolist()
    assert t == 2  # 4 frames, 2 per temporal patch
    assert ids.count(tok.video_token_id) == t * h * w // 4  # 2x2 patch merge
    # 4 s at 16 kHz -> 400 mel frames -> conv stride 2 -> 200 -> pooling 2 -> 100 audio tokens
    assert ids.count(tok.audio_token_id) == 100
    assert inputs["video_second_per_grid"].tolist() == [1.0]  # 2 frames per grid at 2 fps
    assert int(inputs["feature_attention_mask"].sum()) == 400

    silent = thinker.processor_inputs([thinker.prepare(Query("u", "the dog"), make_clip(1, 3, None))])
    silent_ids = silent["input_ids"][0].tolist()
    assert tok.audio_token_id not in silent_ids and "input_features" not in silent
    assert silent["video_second_per_grid"].tolist() == [2.0]


def test_pixel_bounds(thinker: OmniThinker) -> None:
    big, small = 128 * 28 * 28, 768 * 28 * 28  # Qwen2.5-Omni's processor defaults (min, max)
    assert OmniThinker(thinker.model, thinker.processor).default_video_pixels() == (big, small)
    only_max = OmniThinker(thinker.model, thinker.processor, video_max_pixels=56 * 56)
    assert only_max.video_pixels() == (28 * 28, 56 * 56)  # the default min is dropped below the max
    only_min = OmniThinker(thinker.model, thinker.processor, video_min_pixels=28 * 28)
    assert only_min.video_pixels() == (28 * 28, small)
    inputs = only_max.processor_inputs([only_max.prepare(Query("u", "x"), make_clip(0, 2, None))])
    t, h, w = inputs["video_grid_thw"][0].tolist()
    assert t == 1 and h * w * 14 * 14 <= 56 * 56
    with pytest.raises(ValueError, match="above video_max_pixels"):
        OmniThinker(thinker.model, thinker.processor, video_min_pixels=4000, video_max_pixels=3000)


def test_batched_equals_one_by_one(thinker: OmniThinker) -> None:
    items = [
        (Query("a", "the dog"), make_clip(0, 4, 4.0)),
        (Query("b", "the man on the left who is singing"), make_clip(1, 6, 6.0, sample_rate=48000)),
        (Query("c", "a cat"), make_clip(2, 3, None)),
        (Query("d", "the car"), make_clip(3, 10, 10.0)),
    ]
    batched = thinker.think_each(items)
    single = [thinker.think_each([item])[0] for item in items]
    assert [t.uid for t in batched] == ["a", "b", "c", "d"]
    assert all(isinstance(t, Thought) for t in batched)
    assert [t.raw for t in batched] == [t.raw for t in single]
    assert len({t.raw for t in batched}) > 1  # different inputs, different (random) answers


def test_answer_is_cut_decoded_and_parsed(thinker: OmniThinker, monkeypatch: pytest.MonkeyPatch) -> None:
    tok = thinker.processor.tokenizer
    answer = "<think>\nThe dog barks.\n</think>\n<answer>\n<f_object> the brown dog </f_object>\n<s_object> dog </s_object>\n</answer>"
    answer_ids = torch.tensor([*tok(answer).input_ids, tok.convert_tokens_to_ids("<|im_end|>")])
    seen: dict[str, Any] = {}

    def scripted_generate(**kwargs: Any) -> torch.Tensor:
        seen.update(kwargs)
        prompt = kwargs["input_ids"]
        return torch.cat([prompt, answer_ids.expand(prompt.shape[0], -1)], dim=1)

    monkeypatch.setattr(thinker.model, "generate", scripted_generate)
    [thought] = thinker.think([(Query("u1", "the dog"), make_clip(0, 2, 2.0))])
    assert thought == Thought(
        uid="u1",
        raw=answer,
        reasoning="The dog barks.",
        f_object="the brown dog",
        s_object="dog",
        status=ParseStatus.OK,
    )
    assert seen["use_audio_in_video"] is True and seen["do_sample"] is False and seen["max_new_tokens"] == 6


def test_a_failing_sample_does_not_fail_its_batch(thinker: OmniThinker, monkeypatch: pytest.MonkeyPatch) -> None:
    real_generate = thinker.generate

    def generate(samples: Any) -> list[str]:
        if any(s.query.uid == "bad" for s in samples):
            raise RuntimeError("CUDA out of memory (simulated)")
        return real_generate(samples)

    monkeypatch.setattr(thinker, "generate", generate)
    items = [
        (Query("ok1", "the dog"), make_clip(0, 2, 2.0)),
        (Query("bad", "the cat"), make_clip(1, 2, 2.0)),
        (Query("noclip", "the cat"), None),
        (Query("ok2", "the car"), make_clip(2, 2, 2.0)),
    ]
    ok1, bad, noclip, ok2 = thinker.think_each(items)
    assert isinstance(ok1, Thought) and isinstance(ok2, Thought)
    assert isinstance(bad, ThinkerError) and "out of memory" in str(bad) and bad.kind == "thinker"
    assert isinstance(noclip, ThinkerError) and "decoded clip" in str(noclip)
    with pytest.raises(ThinkerError):
        thinker.think(items[:2])


def test_full_checkpoint_layout_loads_the_thinker(tiny_dir: Path, tmp_path: Path) -> None:
    """Hub checkpoints hold thinker.*, talker.* and token2wav.* weights under a qwen2_5_omni config."""
    from transformers import Qwen2_5OmniConfig

    full = tmp_path / "full"
    full.mkdir()
    for name in tiny_dir.iterdir():
        if name.name not in ("config.json", "model.safetensors"):
            shutil.copy(name, full / name.name)
    thinker_config = json.loads((tiny_dir / "config.json").read_text())
    Qwen2_5OmniConfig(thinker_config=thinker_config).save_pretrained(full)
    weights = {f"thinker.{k}": v for k, v in load_file(tiny_dir / "model.safetensors").items()}
    weights["talker.codec_head.weight"] = torch.zeros(4, 4)
    save_file(weights, full / "model.safetensors", metadata={"format": "pt"})

    loaded = OmniThinker.from_pretrained(str(full), device="cpu", max_new_tokens=4, **PIXELS)
    reference = OmniThinker.from_pretrained(str(tiny_dir), device="cpu", max_new_tokens=4, **PIXELS)
    ref_state = reference.model.state_dict()
    assert loaded.model.state_dict().keys() == ref_state.keys()
    assert all(torch.equal(v, ref_state[k]) for k, v in loaded.model.state_dict().items())


def test_missing_weights_fail_fast(tmp_path: Path) -> None:
    with pytest.raises(MissingWeightsError, match=r"Qwen2\.5-Omni thinker"):
        OmniThinker.from_pretrained(str(tmp_path / "nowhere"), device="cpu")
