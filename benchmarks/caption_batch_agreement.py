"""Batched captions vs one caption per forward in Grounding DINO: how far apart are they?

``GroundingDinoGrounder.ground_many`` can put all of a frame's captions through one forward,
right-padded to the longest (preset switch ``batch_captions``; ``expression_batch_size=None``)
or run one caption per forward (``expression_batch_size=1``, the default, bit-identical to
``ground``). Padding is masked, so the two agree in exact arithmetic; in float32 the padded
shapes change the order of the sums. This script measures the difference on a random-weight
Grounding DINO (``tiny``: the test model; ``full``: Grounding DINO-T's architecture from the
real config, Swin-T + bert-base, at 800 x 1333) on synthetic 1280 x 720 frames, for captions of
different lengths (Ref-AVS-like object texts):

* every one of the 900 queries is scored both ways (box threshold 0). Grounding DINO orders
  its queries by a top-k over encoder scores, so a rounding difference can swap two proposals
  of nearly equal score: query q is then a different box in the two runs. The report counts
  such swapped queries (box moved by more than ``--same-px`` = 1 px) and gives the largest
  score and box (pixel) difference over the queries that are the same proposal in both;
* then, at the preset's box threshold (0.1), per caption-frame: the kept box count both ways,
  and whether the first query above the threshold (``box_rule=first``) and the best-scoring
  one (``box_rule=best``) are the same.

Random checkpoints zero the last layer of transformers' box head (every box would be an
encoder proposal); the script draws it small random weights (seeded) so box agreement means
something. One torch thread, fp32, CPU.

Example (the numbers in docs/performance.md, "Batched captions")::

    python benchmarks/caption_batch_agreement.py --model full --frames 2 --captions 8 --out agreement_full.json
    python benchmarks/caption_batch_agreement.py --model tiny --frames 10 --captions 8
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

LOG = logging.getLogger("caption_batch_agreement")
CAPTIONS = (
    "guitar", "the man on the left playing the acoustic guitar", "a dog", "piano",
    "the woman in the red dress who is singing loudly", "drum", "a black car", "the violin on the right side",
    "the baby", "a bird", "the person in red", "cello",
)  # fmt: skip


def build_model(kind: str, models_dir: Path) -> Path:
    from tgs.testing.tiny_vision import build_full_size, build_tiny_grounding_dino

    path = models_dir / f"grounding-dino-{kind}"
    if (path / "config.json").is_file():
        return path
    LOG.info("building the %s random Grounding DINO in %s", kind, path)
    return build_full_size("grounding-dino-tiny", path) if kind == "full" else build_tiny_grounding_dino(path)


def random_box_head(model, seed: int) -> None:
    """Small random weights for the last layer of every box head (transformers zero-initialises it)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for head in model.bbox_embed:
            last = head.layers[-1]
            last.weight.copy_(torch.randn(last.weight.shape, generator=generator) * 0.05)
            last.bias.copy_(torch.randn(last.bias.shape, generator=generator) * 0.5)


def by_query(frame, num_queries: int) -> tuple[np.ndarray, np.ndarray]:
    """(scores [Q], xyxy [Q, 4]) of a FrameBoxes holding every query (threshold 0); NaN where absent."""
    scores = np.full(num_queries, np.nan, np.float64)
    boxes = np.full((num_queries, 4), np.nan, np.float64)
    scores[frame.query_index] = frame.scores
    boxes[frame.query_index] = frame.xyxy
    return scores, boxes


def first_and_best(scores: np.ndarray, threshold: float) -> tuple[int | None, int | None]:
    kept = np.flatnonzero(np.nan_to_num(scores, nan=-1.0) > threshold)
    if kept.size == 0:
        return None, None
    return int(kept[0]), int(kept[np.argmax(scores[kept])])


def compare(args: argparse.Namespace) -> dict:
    import torch
    from video_sharing_bench import synthetic_clip  # this folder is on sys.path when run as a script

    from tgs.ground.grounding_dino import GroundingDinoGrounder

    torch.set_num_threads(args.threads)
    models_dir = Path(args.models_dir) if args.models_dir else Path(tempfile.mkdtemp(prefix="tgs-caption-batch-"))
    path = build_model(args.model, models_dir)
    grounder = GroundingDinoGrounder.from_pretrained(path, device="cpu", dtype="fp32", box_threshold=0.0,
                                                     preprocess="original")  # fmt: skip
    random_box_head(grounder.model, args.seed)
    num_queries = int(grounder.model.config.num_queries)
    clip = synthetic_clip(args.frames, seed=args.seed)
    captions = list(CAPTIONS[: args.captions])
    timings = {}
    results = {}
    for name, size in (("one_per_forward", 1), ("batched", None)):
        grounder.expression_batch_size = size
        start = time.process_time()
        results[name] = grounder.ground_many(clip, captions)
        timings[name] = round(time.process_time() - start, 3)
        LOG.info("%s: %.1f CPU s", name, timings[name])
    rows = []
    max_score = max_box = 0.0
    swapped = 0
    for c, caption in enumerate(captions):
        for t in range(clip.num_frames):
            (sa, ba), (sb, bb) = (by_query(results[k][c].frames[t], num_queries) for k in ("one_per_forward", "batched"))
            both = ~np.isnan(sa) & ~np.isnan(sb)
            moved = np.max(np.abs(np.nan_to_num(ba - bb, nan=np.inf)), axis=1)
            same = both & (moved <= args.same_px)  # the same proposal both ways
            swapped += int(np.sum(both & ~same))
            max_score = max(max_score, float(np.max(np.abs(sa[same] - sb[same]), initial=0.0)))
            max_box = max(max_box, float(np.max(np.abs(ba[same] - bb[same]), initial=0.0)))
            kept_a = int(np.sum(np.nan_to_num(sa, nan=-1.0) > args.threshold))
            kept_b = int(np.sum(np.nan_to_num(sb, nan=-1.0) > args.threshold))
            nearest = float(np.nanmin(np.abs(sa - args.threshold)))
            rows.append({"caption": caption, "frame": t, "kept_one_per_forward": kept_a, "kept_batched": kept_b,
                         "same_first_and_best": first_and_best(sa, args.threshold) == first_and_best(sb, args.threshold),
                         "closest_score_to_threshold": nearest})  # fmt: skip
    differing = [r for r in rows if r["kept_one_per_forward"] != r["kept_batched"]]
    return {
        "model": args.model,
        "frames": args.frames,
        "captions": captions,
        "threshold": args.threshold,
        "caption_frames": len(rows),
        "kept_count_differs": len(differing),
        "first_or_best_query_differs": sum(not r["same_first_and_best"] for r in rows),
        "queries_compared": len(rows) * num_queries,
        "queries_swapped": swapped,
        "max_abs_score_diff_same_query": max_score,
        "max_abs_box_diff_px_same_query": max_box,
        "kept_total": [sum(r["kept_one_per_forward"] for r in rows), sum(r["kept_batched"] for r in rows)],
        "differing_rows": differing,
        "cpu_seconds": timings,
        "torch": torch.__version__,
        "python": sys.version.split()[0],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=("tiny", "full"), default="tiny")
    parser.add_argument("--frames", type=int, default=2)
    parser.add_argument("--captions", type=int, default=8, choices=range(2, len(CAPTIONS) + 1), metavar="N")
    parser.add_argument("--threshold", type=float, default=0.1, help="box threshold (the presets': 0.1)")
    parser.add_argument("--same-px", type=float, default=1.0,
                        help="a query whose box moves more than this (pixels) is counted as a swapped proposal")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models-dir", default=None, help="where the random model is built (reused if present)")
    parser.add_argument("--out", default=None, help="write the report here as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    report = compare(args)
    text = json.dumps(report, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
    summary = {k: v for k, v in report.items() if k not in ("differing_rows", "captions")}
    LOG.info("%s", json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
