"""``ModelCache``: models kept between ``segment_video`` calls (the web demo's), LRU-evicted.

Loads are counted with spies on ``segment_video``'s two loaders; the cached calls must
give exactly the outputs of uncached ones (same thought, boxes, scores, mask PNGs).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from demo_fakes import write_clip

import tgs.core.segment as sv
from tgs.app.backend import DemoBackend
from tgs.app.workspace import DemoWorkspace
from tgs.core.settings import Settings
from tgs.model_cache import ModelCache, freeze
from tgs.presets import get_preset

FAST_THINK = {"max_new_tokens": 4}


# --------------------------------------------------------------------------- the LRU itself


class _Loader:
    """load(name) -> a callable that records the load and returns a fresh object."""

    def __init__(self) -> None:
        self.loaded: list[str] = []

    def __call__(self, name: str):
        def load() -> dict[str, str]:
            self.loaded.append(name)
            return {"model": name}

        return load


def test_a_hit_returns_the_same_object_without_loading() -> None:
    cache, load = ModelCache(), _Loader()
    first = cache.thinker("a", load("a"))
    assert cache.thinker("a", load("a")) is first
    assert load.loaded == ["a"]
    assert cache.stats["thinkers"] == {"loads": 1, "hits": 1, "held": 1}
    assert cache.stats["stages"] == {"loads": 0, "hits": 0, "held": 0}


def test_least_recently_used_entry_is_evicted() -> None:
    cache, load = ModelCache(max_stage_pairs=2), _Loader()
    a = cache.stages("a", load("a"))
    cache.stages("b", load("b"))
    assert cache.stages("a", load("a")) is a  # a is now the most recent: b goes next
    cache.stages("c", load("c"))
    assert load.loaded == ["a", "b", "c"]
    assert cache.stages("a", load("a")) is a
    cache.stages("b", load("b"))  # evicted: loaded again, which evicts c (a was used last)
    assert load.loaded == ["a", "b", "c", "b"]
    cache.stages("a", load("a"))
    assert load.loaded == ["a", "b", "c", "b"]
    assert cache.stats["stages"] == {"loads": 4, "hits": 3, "held": 2}


def test_kinds_have_their_own_slots_and_size_zero_keeps_nothing() -> None:
    cache, load = ModelCache(max_thinkers=0, max_stage_pairs=1), _Loader()
    cache.thinker("t", load("t"))
    cache.thinker("t", load("t"))
    cache.stages("t", load("s"))  # same key, other kind: its own slot
    cache.stages("t", load("s"))
    assert load.loaded == ["t", "t", "s"]
    assert len(cache) == 1
    cache.clear()
    assert len(cache) == 0
    cache.stages("t", load("s"))
    assert load.loaded == ["t", "t", "s", "s"]


@pytest.mark.parametrize("size", [-1, 1.5, "1"])
def test_bad_sizes_are_refused(size) -> None:
    with pytest.raises(ValueError, match="expected an integer >= 0"):
        ModelCache(max_thinkers=size)


def test_freeze_makes_equal_data_equal_keys() -> None:
    assert freeze({"b": [1, 2], "a": {"x": None}}) == freeze({"a": {"x": None}, "b": (1, 2)})
    assert freeze({"b": [1, 2]}) != freeze({"b": [2, 1]})
    hash(freeze({"k": [{"deep": [1]}], "s": {3, 1}}))


# --------------------------------------------------------------------------- the keys


def test_stage_key_follows_the_loading_fields_only() -> None:
    """The cache's key is the call's load spec: equal exactly when the same models would load."""
    best, paper = get_preset("best"), get_preset("paper")

    def key(preset, settings=None, direct=False, dense=False):
        spec = sv.segment_load_spec("direct" if direct else "ref-thinker", preset, settings or Settings.tiny(),
                                    dense=dense)
        return spec.stages_key

    assert key(best) == key(get_preset("best"))
    assert key(best) != key(paper)  # another SAM2 mode among others
    assert key(best) != key(replace(best, box_threshold=0.3))
    assert key(best) != key(best, Settings(device="cpu", sources={"sam2": "/elsewhere"}))
    assert key(best) != key(best, Settings(device="cpu"))
    assert key(best) != key(best, Settings.tiny(dtype="bf16"))
    assert key(best) == key(replace(best, box_rule=paper.box_rule, null_policy=paper.null_policy))
    assert key(best) != key(best, dense=True)  # dense output propagates with another model
    assert key(best, dense=True) == key(replace(best, video_seeds="first"), dense=True)  # dense seeds by its policy
    assert key(best) != key(replace(best, video_seeds="first"))
    assert key(paper) != key(paper, direct=True)  # paper's caption period depends on direct


def test_thinker_key_follows_name_options_and_placement() -> None:
    def key(name="ref-thinker", options=None, device="cpu", share=True):
        preset = replace(get_preset("best"), share_across_expressions=share)
        spec = sv.segment_load_spec(name, preset, Settings.tiny(device=device), dense=True, thinker_options=options)
        return spec.thinker_key

    assert key(options={"max_new_tokens": 4}) == key(options={"max_new_tokens": 4})
    assert key(options={"max_new_tokens": 4}) != key(options={"max_new_tokens": 8})
    assert key() != key("omni") and key() != key(device="cuda")
    assert key() != key(share=False)
    # omni is told 1 fps for the digest of a long video: an option, so another key
    assert key("omni", {"fps": 1.0}) != key("omni")


# --------------------------------------------------------------------------- segment_video


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_clip(tmp_path_factory.mktemp("cache") / "clip.mp4", seconds=2.0, fps=5.0)


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> dict[str, list]:
    """Spies on segment_video's loaders: every real load is recorded (the thinker's name, the segmenter's key)."""
    seen: dict[str, list] = {"thinker": [], "stages": []}
    load_model, load_stages_from = sv.load_model, sv.load_stages_from

    def thinker_spy(load):
        seen["thinker"].append(load.loader)
        return load_model(load)

    def stages_spy(spec):
        seen["stages"].append(spec.segmenter.key)
        return load_stages_from(spec)

    monkeypatch.setattr(sv, "load_model", thinker_spy)
    monkeypatch.setattr(sv, "load_stages_from", stages_spy)
    return seen


def _segment(clip: Path, out: Path, **kwargs):
    options = {"thinker": "ref-thinker", "settings": Settings.tiny(), "fps": 2.0, "out": out, **kwargs}
    if options["thinker"] == "ref-thinker":
        options["thinker_options"] = FAST_THINK
    return sv.segment_video(clip, "The red object.", **options)


def _outputs(result) -> tuple:
    masks = tuple(p.read_bytes() for p in sorted(result.expressions[0].masks_dir.glob("*.png")))
    return result.thought.raw, result.object_text, result.boxes, result.scores, result.frame_times, masks


@pytest.mark.slow
def test_one_cache_loads_each_model_once_and_changes_no_output(clip, tmp_path: Path, loads) -> None:
    uncached = _segment(clip, tmp_path / "plain")
    assert loads == {"thinker": ["ref-thinker"], "stages": ["sam2_video"]}
    loads["thinker"].clear()
    loads["stages"].clear()

    cache = ModelCache()
    first = _segment(clip, tmp_path / "one", cache=cache)
    second = _segment(clip, tmp_path / "two", cache=cache)
    assert loads == {"thinker": ["ref-thinker"], "stages": ["sam2_video"]}
    assert cache.stats == {"thinkers": {"loads": 1, "hits": 1, "held": 1},
                           "stages": {"loads": 1, "hits": 1, "held": 1}}
    assert _outputs(first) == _outputs(uncached) == _outputs(second)
    assert len(_outputs(first)[-1]) == first.num_frames > 0

    # the paper preset segments with SAM2's image mode: that pair loads, evicting the video one
    paper = _segment(clip, tmp_path / "paper", cache=cache, preset="paper")
    assert loads == {"thinker": ["ref-thinker"], "stages": ["sam2_video", "sam2"]}
    assert _outputs(paper) == _outputs(_segment(clip, tmp_path / "paper_plain", preset="paper"))
    loads["stages"].clear()
    _segment(clip, tmp_path / "again", cache=cache)  # best again: evicted, so loaded again
    assert loads["stages"] == ["sam2_video"]


def test_uncached_call_still_releases_the_thinker(clip, tmp_path: Path, monkeypatch, loads) -> None:
    released: list[bool] = []
    monkeypatch.setattr(sv, "release_memory", lambda: released.append(True))
    _segment(clip, tmp_path / "plain", thinker="direct")
    assert released == [True]
    _segment(clip, tmp_path / "cached", thinker="direct", cache=ModelCache())
    assert released == [True]  # a cache keeps its models: nothing released after Think


# --------------------------------------------------------------------------- the demo


def test_demo_backend_reuses_its_cache_across_requests(tmp_path: Path, loads) -> None:
    workspace = DemoWorkspace(tmp_path / "work")
    backend = DemoBackend(workspace, models="tiny")
    label = next(name for name, seed in backend.clip_choices.items() if seed is not None)
    session = workspace.new_session()
    for _ in range(2):
        outcome = backend.run(session=session, choice=label, upload=None, expression="the red square",
                              thinker="direct", preset="best", fps=0.5)
        assert outcome.ok, outcome.status
    assert loads == {"thinker": ["direct"], "stages": ["sam2_video_tiny"]}  # the demo's dense output
    assert backend.model_cache.stats["stages"] == {"loads": 1, "hits": 1, "held": 1}
    assert DemoBackend(workspace).model_cache is not backend.model_cache  # one per backend, no global
