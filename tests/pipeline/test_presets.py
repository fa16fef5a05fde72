"""Presets: the two named configurations, overrides, validation, and the docs table staying true."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from tgs.presets import (
    BEST,
    PAPER,
    PRESETS,
    SAM3,
    Preset,
    default_dtype,
    get_preset,
    parse_overrides,
    switch_choices,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "presets.md"


def test_paper_preset_has_the_original_values() -> None:
    assert PAPER.box_threshold == 0.1 and PAPER.text_threshold == 0.25
    assert PAPER.box_rule == "first"
    assert PAPER.object_tag == "s_object"
    assert (PAPER.sam_input, PAPER.sam_colours, PAPER.segment_mode) == ("squash224", "swap_rb", "image")
    assert (PAPER.null_policy, PAPER.missing_tag, PAPER.caption_period) == ("paper", "error_literal", "script")
    assert PAPER.mask_size == "224"


def test_best_preset_fixes_each_weak_spot() -> None:
    assert BEST.box_rule == "best" and BEST.sam_colours == "rgb" and BEST.segment_mode == "video"
    assert BEST.null_policy == "empty" and BEST.missing_tag == "expression" and BEST.mask_size == "original"
    assert get_preset("best") is BEST and PRESETS["paper"] is PAPER


def test_the_precision_is_a_setting_not_a_switch() -> None:
    """One channel: ``--dtype`` (Settings.dtype). ``--set dtype`` is refused naming it; without
    --dtype, paper runs fp32 as the original does (also after --set, which keeps its name)."""
    assert "dtype" not in switch_choices() and "dtype" not in PAPER.to_dict()
    with pytest.raises(ValueError, match=r"dtype is not a preset switch.*--dtype"):
        get_preset("paper", {"dtype": "bf16"})
    assert default_dtype(PAPER) == default_dtype(get_preset("paper", {"box_rule": "best"})) == "fp32"
    assert default_dtype(BEST) == default_dtype(SAM3) == default_dtype(Preset()) == "auto"


def test_presets_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        PAPER.box_rule = "best"  # type: ignore[misc]


def test_overrides_change_only_the_named_switch() -> None:
    mixed = get_preset("paper", {"box_rule": "best", "box_threshold": "0.3"})
    assert mixed.box_rule == "best" and mixed.box_threshold == pytest.approx(0.3)
    assert set(mixed.differences(PAPER)) == {"box_rule", "box_threshold"}
    assert mixed.name == "paper"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"box_rule": "top"}, "expected one of first, best"),
        ({"sam_colours": "bgr"}, "expected one of swap_rb, rgb"),
        ({"box_rul": "best"}, "Did you mean 'box_rule'"),
        ({"box_threshold": "high"}, r"number in \[0, 1\]"),
        ({"box_threshold": "1.5"}, r"number in \[0, 1\]"),
    ],
)
def test_invalid_overrides_list_the_valid_choices(overrides: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        get_preset("best", overrides)


def test_unknown_preset_lists_the_presets() -> None:
    with pytest.raises(ValueError, match="available: paper, best"):
        get_preset("fast")


def test_parse_overrides() -> None:
    assert parse_overrides(["box_rule=best", " mask_size = 224 "]) == {"box_rule": "best", "mask_size": "224"}
    for bad in (["box_rule"], ["=best"], ["box_rule="]):
        with pytest.raises(ValueError, match="KEY=VALUE"):
            parse_overrides(bad)
    with pytest.raises(ValueError, match="set twice"):
        parse_overrides(["box_rule=best", "box_rule=first"])


def test_dict_round_trip_for_the_manifest() -> None:
    for preset in (PAPER, BEST, get_preset("paper", {"segment_mode": "video"})):
        assert Preset.from_dict(preset.to_dict()) == preset
    with pytest.raises(ValueError, match="unknown preset switch"):
        Preset.from_dict({**PAPER.to_dict(), "colour": "rgb"})


def test_caption_period_rule_follows_the_two_original_scripts() -> None:
    assert PAPER.dedupe_period(direct=False) is False  # thinker script: text + "." always
    assert PAPER.dedupe_period(direct=True) is True  # direct script: predict() appends only if missing
    assert BEST.dedupe_period(direct=False) is True


def _docs_table() -> dict[str, tuple[str, str]]:
    rows = {}
    for line in DOCS.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and re.fullmatch(r"`\w+`", cells[0]):
            rows[cells[0].strip("`")] = (cells[1].strip("`"), cells[2].strip("`"))
    return rows


def test_docs_table_lists_every_switch_with_both_values() -> None:
    table = _docs_table()
    assert set(table) == set(switch_choices())
    def shown(value: object) -> str:
        return str(value).lower() if isinstance(value, bool) else str(value)

    for name, (paper_value, best_value) in table.items():
        assert paper_value == shown(getattr(PAPER, name)), name
        assert best_value == shown(getattr(BEST, name)), name


@pytest.mark.parametrize(
    ("text", "expected"),
    [("false", False), ("FALSE", False), ("0", False), ("no", False), ("true", True), ("1", True), ("Yes", True)],
)
def test_share_across_expressions_parses_true_false_words(text: str, expected: bool) -> None:
    assert PAPER.share_across_expressions is True and BEST.share_across_expressions is True
    preset = get_preset("paper", {"share_across_expressions": text})
    assert preset.share_across_expressions is expected
    assert Preset.from_dict(preset.to_dict()) == preset


def test_share_across_expressions_refuses_other_values() -> None:
    with pytest.raises(ValueError, match="expected one of true, 1, yes, false, 0, no"):
        get_preset("best", {"share_across_expressions": "maybe"})
    with pytest.raises(ValueError, match="expected true or false"):
        Preset(share_across_expressions="no")  # type: ignore[arg-type]
