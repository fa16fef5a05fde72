"""Projected wall time of the whole Ref-AVSBench test set on the card ``gpu_all.sh`` measured.

Reads the reports of ``benchmarks/gpu_all.sh OUT`` (``video_sharing.json``: Ground + Segment
frames/s of one 10-frame video with 8 expressions, today's path vs the new one;
``think_decode.json``: Ref-Thinker samples/s at 256-token answers per batch size and decode
mode) and projects Think + Ground + Segment over the 4,972 test expressions (test_s 2,288,
test_u 1,656, test_n 1,028; 10 frames each), for today's path (dynamic decode at the paper's
batch 8, one expression at a time) and the new one (the best measured decode mode and batch,
frames shared across a video's expressions)::

    python benchmarks/project_testset.py bench-gpu

A projection, not a measurement: it leaves out decoding the media (overlapped with compute in
a run) and model loading; the Think rate is that of synthetic prompts of the paper's length.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

TEST_EXPRESSIONS = 2288 + 1656 + 1028
FRAMES_PER_EXPRESSION = 10


def ground_segment_rates(report: dict[str, Any]) -> tuple[float, float]:
    """(today's, new) frames x expressions per second of the bf16 video_sharing report."""
    rows = [r for r in report["reports"] if r.get("dtype") == "bf16"] or report["reports"]
    row = rows[0]
    return float(row["frames_per_s_unshared"]), float(row["frames_per_s_shared"])


def think_rates(report: dict[str, Any]) -> tuple[float, float, str]:
    """(today's samples/s at 256 tokens: dynamic decode at batch 8, the best row's, its label)."""
    rows = [r for r in report["results"] if r.get("same_answers", True)]
    today = [r for r in rows if r["decode"] == "dynamic" and r["batch"] == 8]
    if not today:
        raise SystemExit("think_decode.json has no dynamic batch-8 row (run gpu_all.sh's think_decode step)")
    best = max(rows, key=lambda r: r["samples_per_s_at_256"])
    return today[0]["samples_per_s_at_256"], best["samples_per_s_at_256"], f"{best['decode']}, batch {best['batch']}"


def project(out: Path) -> dict[str, Any]:
    gs_today, gs_new = ground_segment_rates(json.loads((out / "video_sharing.json").read_text()))
    th_today, th_new, best = think_rates(json.loads((out / "think_decode.json").read_text()))
    frames = TEST_EXPRESSIONS * FRAMES_PER_EXPRESSION
    today = TEST_EXPRESSIONS / th_today + frames / gs_today
    new = TEST_EXPRESSIONS / th_new + frames / gs_new
    return {
        "expressions": TEST_EXPRESSIONS,
        "think_samples_per_s": {"today": th_today, "new": th_new, "new_mode": best},
        "ground_segment_frames_per_s": {"today": gs_today, "new": gs_new},
        "projected_minutes": {"today": today / 60, "new": new / 60},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="the OUT_DIR of benchmarks/gpu_all.sh")
    args = parser.parse_args(argv)
    result = project(args.out)
    (args.out / "projection.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))  # noqa: T201 - a benchmark script's report


if __name__ == "__main__":
    main()
