"""``tgs segment`` records which fast paths it took, and which it could not, in result.json."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from tgs import fast_paths
from tgs.core.segment import segment_video
from tgs.core.settings import Settings
from tgs.data.synth import write_video
from tgs.presets import BEST


def _timings(video: Path, out: Path, expressions: list[str], **kwargs) -> dict:
    result = segment_video(video, expressions, thinker="direct", settings=Settings.tiny(), out=out, **kwargs)
    return json.loads(result.result_json.read_text())["timings"]["fast_paths"]


def test_result_json_counts_the_shared_grounding_and_a_fallback(tmp_path: Path, monkeypatch) -> None:
    video = write_video(tmp_path / "clip.mp4", 3, 10, (64, 48), seed=2, with_audio=False)
    texts = ["the red object", "the blue object"]
    # dense (default): 3 keyframes at 1 per second, one 10-second window: Grounding DINO's backbone
    # shared by both expressions once; the propagation is one engine for both objects by construction
    assert _timings(video, tmp_path / "dense", texts) == {"ran": {"ground.many": 1}, "fallbacks": []}
    # sampled output, paper preset (SAM2 image mode): the whole shared Ground + Segment per window
    sampled = _timings(video, tmp_path / "sampled", texts, fps=1.0, preset="paper")
    assert sampled == {"ran": {"ground.many": 1, "ground_segment.shared": 1, "segment.many": 1}, "fallbacks": []}
    # sharing off: nothing shared, nothing fell back (the user's choice is no fallback)
    off = _timings(video, tmp_path / "off", texts, preset=replace(BEST, share_across_expressions=False))
    assert off == {"ran": {}, "fallbacks": []}
    # a grounder without ground_many: the fallback is in result.json with its reason
    from tgs.ground.grounding_dino import GroundingDinoGrounder

    monkeypatch.delattr(GroundingDinoGrounder, "ground_many")
    with fast_paths.counting():  # this test's own ledger: the call's counts are its own anyway
        fallback = _timings(video, tmp_path / "fallback", texts)
    assert fallback == {"ran": {}, "fallbacks": [
        {"path": "ground.many", "reason": "GroundingDinoGrounder has no ground_many(); one text at a time",
         "count": 1}]}
