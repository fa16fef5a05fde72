"""Per-video sharing: one encoding and one prefix prefill per clip, answers equal to each expression alone."""

from __future__ import annotations

import copy

import pytest
import torch
from ref_thinker_helpers import random_clip, tiny_model_dir

from tgs import fast_paths
from tgs.errors import DataError, ThinkerError
from tgs.think import registry
from tgs.think.ref_thinker import thinker as thinker_module
from tgs.think.ref_thinker.generation import GenerationSettings, prefill_clip, prefixed_inputs
from tgs.think.ref_thinker.sharing import common_prefix_length
from tgs.think.ref_thinker.thinker import RefThinker
from tgs.types import Clip, Query, Thought

MAX_NEW = 6
# Different lengths; "do"/"dog"/"dogs" and "a"/"an" share text but not tokens at the boundary
# (the tiny BPE has "▁do", "▁dog", "▁a", "▁an"); "the dog" twice: a prefix covering a whole prompt.
CLIP_A_EXPRESSIONS = ("do", "The dog", "dogs", "The man on the left who is playing the guitar.", "the dog", "dog")
CLIP_B_EXPRESSIONS = ("a", "an", "The guitarist making the loudest sound")


@pytest.fixture(scope="module")
def base() -> RefThinker:
    return RefThinker.from_pretrained(tiny_model_dir(), device="cpu", dtype="fp32", batch_size=4,
                                      settings=GenerationSettings(max_new_tokens=MAX_NEW))  # fmt: skip


def _variant(base: RefThinker, *, share: bool = True, batch_size: int = 4, **settings) -> RefThinker:
    return RefThinker(base.model, base.processor, batch_size=batch_size, share_across_expressions=share,
                      settings=GenerationSettings(max_new_tokens=MAX_NEW, **settings))  # fmt: skip


def _video_items() -> list[tuple[Query, Clip]]:
    """Two clips interleaved, plus a clip with one expression."""
    a, b, c = random_clip(11), random_clip(12), random_clip(13)
    first = [(Query(uid=f"a{i}", expression=e), a) for i, e in enumerate(CLIP_A_EXPRESSIONS)]
    second = [(Query(uid=f"b{i}", expression=e), b) for i, e in enumerate(CLIP_B_EXPRESSIONS)]
    mixed = [x for pair in zip(first, second) for x in pair] + first[len(second) :]
    return [*mixed[:5], (Query(uid="c0", expression="A cat"), c), *mixed[5:]]


def _raw(outcomes: list) -> list[str]:
    assert all(isinstance(o, Thought) for o in outcomes), outcomes
    return [o.raw for o in outcomes]


def _count_encoders(monkeypatch: pytest.MonkeyPatch, model) -> dict[str, list[int]]:
    calls: dict[str, list[int]] = {"video": [], "audio": []}
    for name, method in (("video", model.encode_video), ("audio", model.encode_audio)):

        def counted(tensor, _method=method, _name=name):
            calls[_name].append(tensor.shape[0])
            return _method(tensor)

        monkeypatch.setattr(model, f"encode_{name}", counted)
    return calls


def test_common_prefix_of_token_ids() -> None:
    assert common_prefix_length([[1, 2, 3, 4], [1, 2, 5], [1, 2, 3]]) == 2
    assert common_prefix_length([[1, 2, 3], [1, 2, 3]]) == 2  # whole prompt: one token left to feed
    assert common_prefix_length([[1, 2, 3, 4]]) == 3
    assert common_prefix_length([[7, 2], [8, 2]]) == 0
    with pytest.raises(ValueError):
        common_prefix_length([[1]])


def test_prefix_stops_before_a_token_that_merges_across_the_boundary(base: RefThinker) -> None:
    processor = base.processor
    a, an = processor.prompt_ids("a"), processor.prompt_ids("an")
    text_common = len(processor.prompt("a")) - len(processor.prompt("a").split("expression a", 1)[1])
    assert processor.prompt("an")[:text_common] == processor.prompt("a")[:text_common]  # text shares "... a"
    k = common_prefix_length([a, an])
    assert a[:k] == an[:k] and a[k] != an[k]
    assert processor.tokenizer.decode(a[k:k + 1]).strip() == "a"  # fmt: skip


def test_sharing_gives_the_answers_of_the_plain_path(base: RefThinker, monkeypatch: pytest.MonkeyPatch) -> None:
    items = _video_items()
    plain = _raw(_variant(base, share=False).think_each(items))
    alone = _raw(_variant(base, share=False, batch_size=1).think_each(items))
    calls = _count_encoders(monkeypatch, base.model)
    with fast_paths.counting() as ledger:
        shared = _raw(_variant(base, batch_size=4).think_each(items))  # clip A (6 expressions) > batch size
    assert shared == plain == alone
    assert calls == {"video": [1, 1, 1], "audio": [1, 1, 1]}  # once per clip, not per expression
    # the prefix cache really ran: clips A and B prefilled once each (clip C, one expression, has nothing to share)
    assert ledger.ran["think.shared_prefix"] == 2 and ledger.fallback_count() == 0
    assert len(set(shared)) > 3  # the expressions do get different answers


def test_answer_does_not_depend_on_batch_or_company(base: RefThinker) -> None:
    items = _video_items()
    full = dict(zip([q.uid for q, _ in items], _raw(_variant(base, batch_size=4).think_each(items))))
    for batch_size in (1, 3, 16):
        got = _raw(_variant(base, batch_size=batch_size).think_each(items))
        assert got == [full[q.uid] for q, _ in items]
    subset = items[3:6] + items[:1]
    assert _raw(_variant(base, batch_size=2).think_each(subset)) == [full[q.uid] for q, _ in subset]


@pytest.mark.numeric
def test_first_step_logits_equal_each_prompt_alone(base: RefThinker) -> None:
    """Rows of two clips with different prefix and suffix lengths in one batch: logits of the
    first generated token equal each expression's own unpadded run (positions and masks right),
    computed in float64 (the tiny model cast to double), up to float32 rounding."""
    model, processor = base.model, base.processor
    model64 = copy.deepcopy(model).double()
    settings = GenerationSettings(max_new_tokens=2)
    clips = {"A": random_clip(21), "B": random_clip(22)}
    exprs = {"A": ("the dog", "The man on the left who is playing the guitar."), "B": ("a", "an", "a cat")}
    rows, expected, magnitude, longest = [], [], [], 0
    for key, clip in clips.items():
        sample = base.prepare(Query(uid=key, expression=""), clip)
        prompts = [processor.prompt_ids(e) for e in exprs[key]]
        rows += prefill_clip(model, sample.pixel_values, sample.audio_fbank, prompts, settings)
        for expression in exprs[key]:
            batch = processor.collate([expression], [sample.pixel_values], [sample.audio_fbank])
            with torch.inference_mode():
                spliced = model64.prepare_multimodal_inputs(batch.input_ids, batch.attention_mask,
                                                            batch.pixel_values.double(), batch.audio_fbank.double())  # fmt: skip
                # the final hidden state from the decoder itself: a call with output_hidden_states=True
                # would change later CLIP hidden_states (transformers 5 output recording; see report)
                hidden = model64.model(inputs_embeds=spliced.inputs_embeds).last_hidden_state[0, -1]
            expected.append(model64.lm_head(hidden))
            magnitude.append(hidden.abs() @ model64.lm_head.weight.abs().T)
            longest = max(longest, spliced.inputs_embeds.shape[1])
    assert len({row.prefix.length for row in rows}) == 2 and len({row.suffix_embeds.shape[0] for row in rows}) > 2
    with torch.inference_mode():
        out = model.generate(**prefixed_inputs(model, rows, settings), max_new_tokens=1, do_sample=False,
                             pad_token_id=2, output_logits=True, return_dict_in_generate=True)  # fmt: skip
    # float32 against float64 (whose own error, ~1e-16 relative, is negligible). To first order a
    # float32 inner product of length K errs by <= K u sum|w||x| (u = 2**-24), and the norms keep
    # each stage's error relative to its stream, so a logit's error is <= u K_chain (|W_head| |h|),
    # |h| the final hidden state, K_chain the accumulation lengths along its longest chain: vision
    # 3 x (257 patches + 4 x 32 + 64) ~ 1,350; audio 2 x (48 patches + 4 x 32 + 64 + conv 128) ~ 740;
    # the two Q-formers' cross-attention over <= 257 tokens and projections ~ 1,000; the decoder
    # 2 x (n positions + 4 x 32 + 64) and the head (32). Different batch shapes, padding and the
    # prefix cache only change summation orders, so the batched run obeys the same bound. A wrong
    # position or an unmasked pad moves logits by ~10 (they are ~20 here), far beyond it.
    k_chain = 1350 + 740 + 1000 + 2 * (longest + 4 * 32 + 64) + 32
    tolerance = 2.0**-24 * k_chain * torch.stack(magnitude)
    error = (out.logits[0].double() - torch.stack(expected)).abs()
    assert torch.all(error <= tolerance), f"max error {error.max():.3g}, tolerance there {tolerance[error.argmax() // error.shape[1]].min():.3g}"
    assert (expected[0] - expected[2]).abs().max() > 100 * tolerance.max()  # the clips and expressions do matter


def test_switch_off_and_unmasked_batches_take_the_plain_path(base: RefThinker, monkeypatch: pytest.MonkeyPatch) -> None:
    items = _video_items()[:4]
    calls = _count_encoders(monkeypatch, base.model)
    _variant(base, share=False).think_each(items)
    assert calls["video"] == [4]  # one batch of 4 samples, every clip encoded per expression
    calls["video"].clear()
    with fast_paths.counting() as ledger:
        unmasked = _raw(_variant(base, mask_padding=False).think_each(items))
    assert calls["video"] == [4]
    assert ledger.fallback_count("think.shared_prefix") == 1 and not ledger.ran  # said and counted, not silent
    assert unmasked == _raw(_variant(base, share=False, mask_padding=False).think_each(items))


def test_failures_stay_per_sample(base: RefThinker, monkeypatch: pytest.MonkeyPatch) -> None:
    good, bad = random_clip(31), random_clip(32)
    real_frames = base.processor.preprocess_frames

    def unreadable(frames):
        if frames is bad.frames:
            raise DataError("cannot read these frames")
        return real_frames(frames)

    monkeypatch.setattr(base.processor, "preprocess_frames", unreadable)
    items = [(Query("g0", "the dog"), good), (Query("x0", "a"), bad), (Query("n", "x"), None),
             (Query("g1", "a cat"), good), (Query("x1", "an"), bad)]  # fmt: skip
    outcomes = _variant(base).think_each(items)
    assert [type(o).__name__ for o in outcomes] == ["Thought", "DataError", "ThinkerError", "Thought", "DataError"]
    assert "n:" in str(outcomes[2])
    reference = _raw(_variant(base, share=False).think_each([items[0], items[3]]))

    real = thinker_module.generate_after_prefix

    def fails_in_batches(model, rows, *args, **kwargs):
        if len(rows) > 1:
            raise RuntimeError("out of memory")
        return real(model, rows, *args, **kwargs)

    monkeypatch.setattr(thinker_module, "generate_after_prefix", fails_in_batches)
    with fast_paths.counting() as ledger:
        retried = _variant(base).think_each([items[0], items[3]])
    assert _raw(retried) == reference
    assert ledger.fallback_count("think.batch") == 1  # the batch's one-by-one retry is counted

    def always_fails(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(thinker_module, "prefill_clip", always_fails)
    failed = _variant(base).think_each([items[0], items[3]])
    assert all(isinstance(o, ThinkerError) and "boom" in str(o) for o in failed)
    assert [str(o).split(":")[0] for o in failed] == ["g0", "g1"]


@pytest.mark.parametrize("share", [True, False])
def test_static_cache_decode_equals_dynamic(base: RefThinker, share: bool) -> None:
    items = _video_items()
    dynamic = _raw(_variant(base, share=share).think_each(items))
    static = _raw(_variant(base, share=share, decode="static").think_each(items))
    assert static == dynamic


def test_decode_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="decode"):
        GenerationSettings(decode="paged")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="static"):
        GenerationSettings(compile=True)


@pytest.mark.slow
def test_options_through_build_thinker() -> None:
    thinker = registry.build_thinker("ref-thinker", source="tiny", device="cpu", dtype="fp32", max_new_tokens=3,
                                     share_across_expressions=False, decode="static")  # fmt: skip
    assert isinstance(thinker, RefThinker)
    assert thinker.share_across_expressions is False and thinker.settings.decode == "static"
    assert RefThinker.from_pretrained(tiny_model_dir(), device="cpu").share_across_expressions is True


@pytest.mark.slow
@pytest.mark.parametrize("share", [True, False])
def test_compile_switch_compiles_the_decode_step(base: RefThinker, share: bool) -> None:
    """The switch reaches torch.compile through generate; a counting backend keeps CI fast
    (inductor on the tiny model also gives the same answers, but takes minutes on a CPU)."""
    graphs: list[int] = []

    def counting_backend(graph_module: torch.fx.GraphModule, example_inputs: list) -> object:
        graphs.append(len(example_inputs))
        return graph_module.forward

    items = _video_items()[:3]
    eager = _raw(_variant(base, share=share).think_each(items))
    compiled = _raw(_variant(base, share=share, decode="static", compile=True,
                             compile_backend=counting_backend).think_each(items))  # fmt: skip
    assert compiled == eager and graphs
