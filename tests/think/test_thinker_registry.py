"""build_thinker by name, option checking, and the per-item think_each adapter."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from tgs.errors import MissingWeightsError
from tgs.think.api import ApiThinker
from tgs.think.base import DirectThinker
from tgs.think.registry import THINKER_NAMES, build_thinker, think_each
from tgs.types import Clip, ParseStatus, Query, Thought


def test_names_and_did_you_mean() -> None:
    assert THINKER_NAMES == ("direct", "api", "omni", "ref-thinker")
    with pytest.raises(ValueError, match=r"unknown thinker 'omi'; available: direct, api, omni, ref-thinker\. Did you mean 'omni'\?"):
        build_thinker("omi")
    with pytest.raises(ValueError, match="available"):
        build_thinker("gpt")


def test_direct() -> None:
    thinker = build_thinker("Direct")
    assert isinstance(thinker, DirectThinker)
    [thought] = thinker.think([(Query("u", "the dog"), None)])
    assert (thought.s_object, thought.status) == ("the dog", ParseStatus.DIRECT)
    with pytest.raises(ValueError, match=r"thinker 'direct' has no option 'source'; accepted: \(none\)"):
        build_thinker("direct", source="x")


def test_api_options_pass_through_and_typos_fail() -> None:
    thinker = build_thinker("api", base_url="http://localhost:9/v1", model="m", timeout=5, send_audio="never")
    assert isinstance(thinker, ApiThinker)
    assert (thinker.url, thinker.model, thinker.timeout, thinker.send_audio) == (
        "http://localhost:9/v1/chat/completions",
        "m",
        5.0,
        "never",
    )
    with pytest.raises(ValueError, match=r"no option 'timeot'; accepted: .*timeout"):
        build_thinker("api", base_url="http://localhost:9/v1", model="m", timeot=5)


def test_model_thinkers_fail_fast_without_weights(tmp_path: Path) -> None:
    with pytest.raises(MissingWeightsError, match=r"Qwen/Qwen2\.5-Omni-3B"):
        build_thinker("omni")  # the default hub id, not cached, hub access off in tests
    with pytest.raises(MissingWeightsError, match="nowhere"):
        build_thinker("omni", source=str(tmp_path / "nowhere"))
    with pytest.raises(MissingWeightsError, match="ref_thinker"):
        build_thinker("ref_thinker")  # no public ready-made directory: a source is required
    with pytest.raises(ValueError, match="no option 'temperature'"):
        build_thinker("omni", temperature=0.7)
    with pytest.raises(ValueError, match="no option 'models'"):  # the tiny model is a source: source="tiny"
        build_thinker("omni", models="tiny")


@pytest.mark.slow  # imports the Ref-Thinker modules (a few seconds)
def test_ref_thinker_option_check(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")  # a directory that passes the presence check
    with pytest.raises(ValueError, match=r"thinker 'ref-thinker' has no option 'fps'; accepted: .*max_new_tokens"):
        build_thinker("ref-thinker", source=str(tmp_path), fps=2.0)


@pytest.mark.slow
def test_omni_tiny_through_the_model_registry() -> None:
    from tgs.think.omni import OmniThinker

    thinker = build_thinker(
        "omni", source="tiny", device="cpu", max_new_tokens=3, video_min_pixels=784, video_max_pixels=3136
    )
    assert isinstance(thinker, OmniThinker) and thinker.max_new_tokens == 3
    clip = Clip(np.zeros((2, 28, 28, 3), np.uint8), None, None, np.arange(2.0))
    [thought] = thinker.think([(Query("u", "the dog"), clip)])
    assert thought.uid == "u" and isinstance(thought.raw, str)


class _PlainThinker:
    """A thinker with only ``think``; fails when asked about "boom"."""

    name = "plain"

    def think(self, items: Sequence[tuple[Query, Clip | None]]) -> list[Thought]:
        if any(q.expression == "boom" for q, _ in items):
            raise RuntimeError("model crashed")
        return [Thought(uid=q.uid, raw=q.expression) for q, _ in items]


class _EachThinker(_PlainThinker):
    name = "each"

    def think_each(self, items: Sequence[tuple[Query, Clip | None]]) -> list[Thought | Exception]:
        return [RuntimeError("bad") if q.expression == "boom" else Thought(uid=q.uid, raw="x") for q, _ in items]


def test_think_each_adapter() -> None:
    items = [(Query("a", "dog"), None), (Query("b", "boom"), None)]
    outcomes = think_each(_PlainThinker(), items)  # plain think: the batch failure hits every item
    assert len(outcomes) == 2 and all(isinstance(o, RuntimeError) and str(o) == "model crashed" for o in outcomes)
    assert [t.raw for t in think_each(_PlainThinker(), items[:1])] == ["dog"]

    first, second = think_each(_EachThinker(), items)  # own think_each: failures stay per item
    assert isinstance(first, Thought) and isinstance(second, RuntimeError)

    [direct] = think_each(DirectThinker(), items[:1])
    assert direct.status is ParseStatus.DIRECT

    class _Short(_PlainThinker):
        def think(self, items: Sequence[tuple[Query, Clip | None]]) -> list[Thought]:
            return []

    with pytest.raises(RuntimeError, match="returned 0 results for 1 items"):
        think_each(_Short(), items[:1])
