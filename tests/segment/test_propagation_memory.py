"""Dense propagation keeps bounded memory: peak RSS of a long video ~ that of a short one.

Each run is a fresh subprocess (peak RSS is per process); frames are generated on the fly
and streamed, the object is seeded in the middle so both the backward pass (chunks read
again, logits kept on disk) and the forward pass run, with keyframes at 1 fps that re-seed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tgs.models.registry import resolve_source
from tgs.segment.propagation import PropagationPolicy

CHILD = r"""
import json, resource, sys
import torch
torch.set_num_threads(1)
from tgs.segment import Sam2VideoSegmenter
from tgs.segment.propagation import ObjectPrompts, PropagationPolicy, PropagationStats
from tgs.testing.synthetic_video import MovingSquareSource

model, length = sys.argv[1], int(sys.argv[2])
segmenter = Sam2VideoSegmenter.from_pretrained(model, dtype="float32")
source = MovingSquareSource(length, (36, 48), period=40)
seed = next(i for i in range(length // 2, length) if source.box(i) is not None)
keys = [seed, *range(seed + 25, length, 25)]
prompts = [ObjectPrompts.from_lists(keys, [source.box(i) for i in keys], [0.9] * len(keys))]
stats = PropagationStats()
count = 0
for result in segmenter.engine.run(source, prompts, PropagationPolicy(seed_frames="first"), stats=stats):
    count += 1
print(json.dumps({"frames": count, "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "peak_stored_frames": stats.peak_stored_frames}))
"""


def _run(model: str, length: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run([sys.executable, "-c", CHILD, model, str(length)], capture_output=True, text=True,
                          env=env, timeout=1800)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_long_propagation_peak_rss_stays_near_a_short_one() -> None:
    model = resolve_source("sam2_video", models="tiny")
    short = _run(model, 200)
    long = _run(model, 2000)
    assert short["frames"] == 200 and long["frames"] == 2000
    # a fixed window of outputs, plus at most the capped number of seeds
    cap = PropagationPolicy().max_conditioning_frames
    assert long["peak_stored_frames"] <= short["peak_stored_frames"] + cap, "the session keeps a fixed window"
    growth_mb = (long["peak_rss_kb"] - short["peak_rss_kb"]) / 1024
    assert growth_mb < 40, f"peak RSS grew by {growth_mb:.0f} MB from 200 to 2000 frames"
