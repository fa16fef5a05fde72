"""Sharing a video's work among its expressions changes no result.

On ``tgs data synth`` data (one video with 7 expressions, and its null clip with 2), tiny
models in fp32: Think with ``share_across_expressions`` on and off gives the same thoughts
(token for token), and Ground + Segment with it on and off the same boxes and scores (to
1e-5), masks and metrics, under ``paper`` and ``best``. Each comparison first checks, from the
run manifests' fast-path counts (``tgs.fast_paths``), that the shared path really ran with
sharing on (and never with it off), so "on == off" cannot compare the plain path with itself.
(The Ray executor's side of the check is in ``tests/scale/test_ray_executor.py``.)
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from float32_error import SAM2_PROB_TOL, TINY_GDINO_CHAIN, float32_bound

from tgs.core.settings import Settings
from tgs.data.synth import generate
from tgs.presets import BEST, PAPER, get_preset
from tgs.run_store import RunStore
from tgs.runners.ground_segment import GroundSegmentConfig, load_stages, run_ground_segment
from tgs.runners.think import ThinkConfig, run_think

pytestmark = pytest.mark.slow

SPLITS = ("test_s", "test_n")
SHARED_VIDEOS = 2  # clips with 2+ expressions in SPLITS: syn0-0002 (test_s, 7) and its null clip (test_n, 2)


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sharing")
    generate(root, videos=3, seed=0, size=(64, 48))
    return root


def _fast_paths(run_dir: Path) -> dict:
    return RunStore(run_dir).manifest()["fast_paths"]


def _think(bench: Path, out: Path, share: bool):
    config = ThinkConfig(
        data=bench, meta=bench / "metadata.csv", out=out, splits=SPLITS, thinker="ref-thinker",
        thinker_options={"max_new_tokens": 12}, settings=Settings.tiny(), batch_size=4,
        preset=get_preset("best", {"share_across_expressions": str(share)}),
    )
    return run_think(config)


@pytest.fixture(scope="module")
def thoughts(bench: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Think with sharing on and off: the same thoughts.jsonl records; the shared run's file."""
    root = tmp_path_factory.mktemp("think")
    on, off = _think(bench, root / "on", True), _think(bench, root / "off", False)
    assert on.summary.succeeded == off.summary.succeeded == 9
    # one encoding + prefix prefill per clip: the video and its null clip
    assert _fast_paths(on.run_dir) == {"ran": {"think.shared_prefix": SHARED_VIDEOS}, "fallbacks": []}
    assert _fast_paths(off.run_dir) == {"ran": {}, "fallbacks": []}
    records = {name: RunStore(run.run_dir).records("thoughts") for name, run in (("on", on), ("off", off))}
    assert records["on"] == records["off"]  # raw answers token for token, parsed fields, order
    assert len({r["predict"] for r in records["on"]}) > 1  # the answers say something
    return on.thoughts_path


def _records(run: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "timings"} for r in RunStore(run).records("samples")]


def _assert_close(a, b, path: str = "") -> None:
    """Equal JSON values; floats (scores in [0, 1], box coordinates in pixels of the 64 x 48 frames)
    within twice the tiny Grounding DINO's float32 bound for the largest of them."""
    if isinstance(a, float) or isinstance(b, float):
        assert a == pytest.approx(b, abs=float32_bound(TINY_GDINO_CHAIN, 64.0, paths=2)), path
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            _assert_close(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_close(x, y, f"{path}[{i}]")
    else:
        assert a == b, path


@pytest.mark.parametrize("preset", [PAPER, BEST], ids=["paper", "best"])
def test_ground_segment_sharing_on_equals_off(bench: Path, thoughts: Path, tmp_path: Path, preset) -> None:
    def config(out: Path, share: bool) -> GroundSegmentConfig:
        return GroundSegmentConfig(
            data=bench, meta=bench / "metadata.csv", out=out, thoughts=thoughts, splits=SPLITS,
            preset=replace(preset, share_across_expressions=share), settings=Settings.tiny(),
        )

    stages = load_stages(config(tmp_path / "unused", True))
    on = run_ground_segment(config(tmp_path / "on", True), stages=stages)
    off = run_ground_segment(config(tmp_path / "off", False), stages=stages)
    assert on.summary.succeeded == off.summary.succeeded == 9
    shared = _fast_paths(on.run_dir)
    assert shared["fallbacks"] == [] and _fast_paths(off.run_dir) == {"ran": {}, "fallbacks": []}
    # the shared path ran for both clips; each shared call with a text to ground used both shared stage methods
    assert shared["ran"]["ground_segment.shared"] == SHARED_VIDEOS
    assert 1 <= shared["ran"]["ground.many"] == shared["ran"]["segment.many"] <= SHARED_VIDEOS
    _assert_close(_records(on.run_dir), _records(off.run_dir))  # boxes, scores, chosen boxes, object texts
    boxes = [RunStore(run.run_dir).records("boxes") for run in (on, off)]
    _assert_close(*boxes)  # every candidate of every frame
    store_on, store_off = RunStore(on.run_dir), RunStore(off.run_dir)
    for uid in store_on.done_uids("samples"):
        a, b = store_on.load_masks(uid), store_off.load_masks(uid)
        assert np.array_equal(a.masks, b.masks)
        np.testing.assert_allclose(a.probs, b.probs, rtol=0, atol=SAM2_PROB_TOL)
    assert on.metrics is not None and on.metrics["protocols"] == off.metrics["protocols"]
