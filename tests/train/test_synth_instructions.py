"""The synthetic instruction-tuning set written by `tgs data synth`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tgs.data.benchmark import Benchmark
from tgs.data.synth_instructions import INSTRUCTION_SET_NAME, mask_box_224
from tgs.think.parser import parse_answer
from tgs.types import ParseStatus


def test_one_parsable_chain_per_train_row_naming_its_object(train_bench: Path) -> None:
    targets = json.loads((train_bench / INSTRUCTION_SET_NAME).read_text())
    info = json.loads((train_bench / "synth_info.json").read_text())["uids"]
    train = Benchmark(train_bench, train_bench / "metadata.csv", ["train"])
    assert list(targets) == train.uids()
    nulls = 0
    for uid, entry in targets.items():
        truth = info[uid]
        assert entry["exp"] == truth["exp"]
        thought = parse_answer(uid, entry["output"])
        assert thought.reasoning and truth["exp"].lower() in thought.reasoning
        if truth["is_null"]:
            nulls += 1
            assert thought.status is ParseStatus.NULL and thought.is_null
            continue
        assert thought.status is ParseStatus.OK
        assert (thought.f_object, thought.s_object) == (f"{truth['colour']} {truth['shape']}", truth["shape"])
        assert entry["output"].startswith("<think>\n") and entry["output"].endswith("</frame>\n</answer>")
    assert nulls > 0  # every other train video also has null rows


def test_the_box_is_the_masks_extent_in_a_224_frame(train_bench: Path) -> None:
    targets = json.loads((train_bench / INSTRUCTION_SET_NAME).read_text())
    train = Benchmark(train_bench, train_bench / "metadata.csv", ["train"])
    sample = next(s for s in train if not s.is_null)
    x1, y1, x2, y2 = mask_box_224(sample.load_gt()[0])
    assert f"<box> {x1}, {y1}, {x2}, {y2} </box>" in targets[sample.uid]["output"]
    mask = np.zeros((48, 64), bool)
    mask[12:24, 16:32] = True  # rows 12..23, columns 16..31 of a 64x48 frame
    assert mask_box_224(mask) == (56, 56, 111, 111)
    assert mask_box_224(np.zeros((4, 4), bool)) is None
