"""F-measure speed: histogram implementation vs the 255-threshold loop, in one run.

Scores ``--samples`` samples of ``--frames`` frames at ``--size`` x ``--size`` with both
``tgs.eval.measures.f_curves`` (bucket + bincount + reverse cumsum) and
``tgs.eval.measures.f_curve_loop`` (one pass per threshold, as the original scripts),
checks the sample F values agree to 1e-6, and reports the speed ratio. Only the metric
calls are timed; the random data of each sample is generated outside the timers.

    nice -n 10 python benchmarks/metrics_bench.py --samples 1000 --frames 10 --size 224
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console

from tgs.eval.measures import f_curve_loop, f_curves


def make_sample(rng: np.random.Generator, frames: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A blob ground truth per frame (some frames empty) and a noisy probability map of it."""
    yy, xx = np.mgrid[0:size, 0:size]
    gt = np.zeros((frames, size, size), bool)
    for t in range(frames):
        if rng.random() < 0.15:
            continue  # an empty-GT frame, left out of F like in the originals
        cy, cx = rng.uniform(0.2, 0.8, 2) * size
        r = rng.uniform(0.05, 0.3) * size
        gt[t] = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
    noise = rng.normal(0.0, 0.25, gt.shape).astype(np.float32)
    probs = np.clip(gt.astype(np.float32) * 0.7 + 0.15 + noise, 0.0, 1.0)
    probs[rng.random(gt.shape) < 0.01] = 1.0  # some values exactly on the last threshold
    return probs, gt


def sample_f(curves: np.ndarray, has_gt: np.ndarray) -> float:
    return float(curves[has_gt].mean(axis=0).max()) if has_gt.any() else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads for the loop (numpy path is serial)")
    parser.add_argument("--out", type=Path, default=None, help="also write the result as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    console = Console()

    rng = np.random.default_rng(args.seed)
    fast_s = loop_s = 0.0
    max_diff = 0.0
    for i in range(args.samples):
        probs, gt = make_sample(rng, args.frames, args.size)
        start = time.perf_counter()
        fast = sample_f(*f_curves(probs, gt))
        fast_s += time.perf_counter() - start
        start = time.perf_counter()
        slow = sample_f(*f_curve_loop(probs, gt))
        loop_s += time.perf_counter() - start
        max_diff = max(max_diff, abs(fast - slow))
        if (i + 1) % 100 == 0:
            console.log(f"{i + 1}/{args.samples} samples: ratio so far {loop_s / fast_s:.1f}x")

    result = {
        "samples": args.samples,
        "frames": args.frames,
        "size": args.size,
        "fast_seconds": round(fast_s, 3),
        "loop_seconds": round(loop_s, 3),
        "ratio": round(loop_s / fast_s, 1),
        "max_abs_diff": max_diff,
        "identical_to_1e-6": max_diff <= 1e-6,
        "torch_threads": args.threads,
        "cpu": platform.processor() or platform.machine(),
        "numpy": np.__version__,
        "torch": torch.__version__,
    }
    console.print_json(json.dumps(result))
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    if max_diff > 1e-6:
        raise SystemExit(f"fast and loop F differ by {max_diff:.3g} (> 1e-6)")


if __name__ == "__main__":
    main()
