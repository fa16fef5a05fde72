"""Training rows: targets joined to the CSV, tokens, label masking, collation, label splicing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tgs.data.benchmark import Benchmark
from tgs.data.synth_instructions import INSTRUCTION_SET_NAME
from tgs.errors import DataError
from tgs.think.ref_thinker.processing import RefThinkerProcessor
from tgs.think.ref_thinker.prompts import build_prompt
from tgs.train.data import (
    IGNORE_INDEX,
    RefThinkerTrainCollator,
    RefThinkerTrainDataset,
    join_targets,
    load_targets,
    splice_labels,
    tokenize_example,
)


@pytest.fixture(scope="module")
def processor(fresh_init: Path) -> RefThinkerProcessor:
    return RefThinkerProcessor.from_pretrained(fresh_init, prompt_variant="training")


def _placeholders(processor: RefThinkerProcessor) -> tuple[int, int]:
    ids = processor.tokenizer.convert_tokens_to_ids(["<video>", "<audio>"])
    return ids[0], ids[1]


def test_load_targets_checks_the_schema(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"a_b_1": {"output": "<think>x</think>", "exp": "e"}}))
    assert load_targets(good) == {"a_b_1": "<think>x</think>"}
    for content, message in (([1, 2], "keyed by uid"), ({"a_b_1": {"out": "x"}, "c_d_2": "y"}, "2 entries have no")):
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps(content))
        with pytest.raises(DataError, match=message):
            load_targets(bad)
    with pytest.raises(DataError, match="not found"):
        load_targets(tmp_path / "missing.json")


def test_rows_without_a_target_are_reported_then_refused_or_skipped(train_bench: Path) -> None:
    bench = Benchmark(train_bench, train_bench / "metadata.csv", ["train"])
    targets = load_targets(train_bench / INSTRUCTION_SET_NAME)
    assert set(targets) == set(bench.uids())  # synth writes one per train row
    dropped = sorted(targets)[:3]
    partial = {k: v for k, v in targets.items() if k not in dropped}
    with pytest.raises(DataError) as err:
        join_targets(bench, partial, policy="error")
    assert f"3 of {len(bench)} training rows have no target" in str(err.value)
    assert all(uid in str(err.value) for uid in dropped) and "--skip-missing-targets" in str(err.value)
    rows, missing = join_targets(bench, partial, policy="skip")
    assert (missing.count, missing.total, set(missing.examples)) == (3, len(bench), set(dropped))
    assert [r.uid for r in rows] == [u for u in bench.uids() if u not in dropped]
    with pytest.raises(DataError, match="no training rows"):
        join_targets(bench, {}, policy="skip")


def test_only_the_answer_and_eos_are_supervised(processor: RefThinkerProcessor) -> None:
    tokenizer = processor.tokenizer
    target = "<think>\nThe red circle.\n</think>\n<answer>\n<f_object> red circle </f_object>\n</answer>"
    ids, labels = tokenize_example(tokenizer, "The RED circle.", target, "training", _placeholders(processor))
    prompt = tokenizer(build_prompt("The RED circle.", "training"), add_special_tokens=False)["input_ids"]
    answer = tokenizer(target + "</s>", add_special_tokens=False)["input_ids"]
    assert ids == prompt + answer and ids[0] == tokenizer.bos_token_id
    assert labels == [IGNORE_INDEX] * len(prompt) + answer
    assert answer[-1] == tokenizer.eos_token_id
    supervised = [t for t in labels if t != IGNORE_INDEX]
    assert tokenizer.decode(supervised, skip_special_tokens=False) == target + "</s>"


def test_the_prompt_variants_differ_only_around_the_expression(processor: RefThinkerProcessor) -> None:
    tokenizer = processor.tokenizer
    train_ids, _ = tokenize_example(tokenizer, "A dog", "<think>x</think>", "training", _placeholders(processor))
    infer_ids, _ = tokenize_example(tokenizer, "A dog", "<think>x</think>", "inference", _placeholders(processor))
    assert train_ids != infer_ids
    assert "expression: 'a dog'," in tokenizer.decode(train_ids) and "expression a dog," in tokenizer.decode(infer_ids)


def test_a_target_holding_a_media_placeholder_is_refused(processor: RefThinkerProcessor) -> None:
    with pytest.raises(DataError, match="placeholder"):
        tokenize_example(processor.tokenizer, "A dog", "<think><video></think>", "training", _placeholders(processor))


def test_collator_left_pads_ids_labels_and_mask() -> None:
    items = [
        {"input_ids": torch.tensor([1, 5, 6]), "labels": torch.tensor([-100, -100, 6]),
         "pixel_values": torch.zeros(2, 3, 4, 4), "audio_fbank": torch.zeros(2, 5, 8)},
        {"input_ids": torch.tensor([1, 7, 8, 9, 2]), "labels": torch.tensor([-100, -100, 8, 9, 2]),
         "pixel_values": torch.ones(2, 3, 4, 4), "audio_fbank": torch.ones(2, 5, 8)},
    ]  # fmt: skip
    batch = RefThinkerTrainCollator(pad_token_id=2)(items)
    assert batch["input_ids"].tolist() == [[2, 2, 1, 5, 6], [1, 7, 8, 9, 2]]
    assert batch["labels"].tolist() == [[-100, -100, -100, -100, 6], [-100, -100, 8, 9, 2]]
    assert batch["attention_mask"].tolist() == [[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]]
    assert batch["pixel_values"].shape == (2, 2, 3, 4, 4) and batch["audio_fbank"][1].sum() == 80


def test_splice_labels_hand_case() -> None:
    # V (id 90) becomes 3 positions, A (id 91) 2; labels on the answer (7, 8) only; sample 0 left padded.
    ids = torch.tensor([[0, 0, 1, 90, 4, 91, 7, 8], [1, 90, 4, 91, 5, 6, 7, 8]])
    mask = torch.tensor([[0, 0, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1, 1]])
    labels = torch.full_like(ids, IGNORE_INDEX)
    labels[:, 6:] = ids[:, 6:]
    out = splice_labels(ids, mask, labels, {90: 3, 91: 2})
    n = IGNORE_INDEX
    assert out.tolist() == [
        [n, n, n, n, n, n, n, n, n, 7, 8],  # 6 real tokens + 3 + 2 - 2 = 9, left padded to 11
        [n, n, n, n, n, n, n, n, n, 7, 8],
    ]
    labels[0, 3] = 90  # a supervised placeholder is a bug upstream
    with pytest.raises(ValueError, match="supervised"):
        splice_labels(ids, mask, labels, {90: 3, 91: 2})


def test_dataset_items_and_spliced_labels_line_up_with_the_spliced_embeddings(
    train_bench: Path, processor: RefThinkerProcessor, fresh_init: Path
) -> None:
    from tgs.think.ref_thinker.modeling import RefThinkerForCausalLM

    model = RefThinkerForCausalLM.from_pretrained(fresh_init)
    bench = Benchmark(train_bench, train_bench / "metadata.csv", ["train"])
    rows, _ = join_targets(bench, load_targets(train_bench / INSTRUCTION_SET_NAME))
    dataset = RefThinkerTrainDataset(rows[:2], processor, prompt_variant="training", placeholder_ids=_placeholders(processor))
    items = [dataset[0], dataset[1]]
    assert items[0]["pixel_values"].shape == (10, 3, 224, 224) and items[0]["audio_fbank"].shape[0] == 10
    target_ids = processor.tokenizer(rows[0].target + "</s>", add_special_tokens=False)["input_ids"]
    assert [t for t in items[0]["labels"].tolist() if t != IGNORE_INDEX] == target_ids
    batch = RefThinkerTrainCollator(int(model.config.pad_token_id))(items)
    with torch.no_grad():
        spliced = model.prepare_multimodal_inputs(batch["input_ids"], batch["attention_mask"],
                                                  batch["pixel_values"], batch["audio_fbank"])  # fmt: skip
        counts = {model.config.video_token_index: 10 * model.config.num_video_query_tokens,
                  model.config.audio_token_index: 10 * model.config.num_audio_query_tokens}  # fmt: skip
        labels = splice_labels(batch["input_ids"], batch["attention_mask"], batch["labels"], counts)
        assert labels.shape == spliced.attention_mask.shape
        supervised = labels != IGNORE_INDEX
        assert (spliced.attention_mask[supervised] == 1).all()
        # Each supervised position holds the embedding of the very token it labels.
        embedded = model.model.embed_tokens(labels[supervised])
        assert torch.equal(spliced.inputs_embeds[supervised], embedded)
        assert int(supervised.sum()) == sum(int((i["labels"] != IGNORE_INDEX).sum()) for i in items)
