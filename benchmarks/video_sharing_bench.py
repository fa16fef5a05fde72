"""Ground + Segment per expression when the expressions of one video share the frame work.

One synthetic 1280 x 720 video, full-size random-weight Grounding DINO-T (Swin-T + bert-base)
and SAM2.1-L built from the real configs (``tgs.testing.tiny_vision.build_full_size``), the
``paper`` preset (image mode: first-query box, 224 squash, per-frame SAM2 image predictor),
through ``load_stages`` + ``GroundSegmentStage`` as runs take it:

* **unshared**: ``share_across_expressions=false`` (``run_many`` loops ``run``): every
  expression runs Grounding DINO's image backbone and SAM2's image encoder again;
* **shared**: ``run_many`` with ``ground_many`` / ``segment_many``: backbone and image
  embeddings once per frame, text, fusion, decoder and box decoding per expression.

Per dtype (one worker process each, run side by side, one thread each): process CPU time of
the unshared and the shared call on the same N expressions, so the ratio comes from one run
however loaded the machine is; the agreement of the two (chosen query per frame, box
coordinates, masks, probabilities); and optionally the shared cost curve over
``--curve`` expression counts (the unshared cost is linear: N x its per-expression cost).

``--device cuda`` measures wall-clock frames/s instead (synchronised), today's path (unshared,
host preprocessing, eager) against the new one (shared, ``--device-preprocess``,
``--compile``, ``--frame-batch-size``, all of a video's expressions per forward):
``benchmarks/gpu_all.sh`` runs it.

Examples::

    nice -n 10 python benchmarks/video_sharing_bench.py --frames 1 --expressions 8 --curve 1,2,4,16 \
        --dtypes bf16,fp32 --curve-dtypes bf16 --out sharing.json
    python benchmarks/video_sharing_bench.py --device cuda --frames 10 --expressions 8 --dtypes bf16 \
        --device-preprocess --compile --frame-batch-size 10 --curve 1,2,4,16
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

LOG = logging.getLogger("video_sharing_bench")
PROTOCOL = "@@sharing "
OBJECTS = (
    "guitar", "the man on the left", "a dog", "piano", "the woman singing", "drum", "a black car", "violin",
    "the baby", "a bird", "the person in red", "cello", "a white cat", "trumpet", "the boy", "accordion",
)  # fmt: skip


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def synthetic_clip(num_frames: int, height: int = 720, width: int = 1280, seed: int = 0):
    """Smooth colour fields with a few flat rectangles (JPEG-like content, not white noise)."""
    from tgs.types import Clip

    rng = np.random.default_rng(seed)
    xx = np.mgrid[0:height, 0:width][1].astype(np.float32)
    frames = []
    for t in range(num_frames):
        base = np.stack([128 + 60 * np.sin(xx / (90 + 10 * c) + t * 0.3 + c) for c in range(3)], axis=-1)
        frame = base.astype(np.uint8)
        for _ in range(4):
            y0, x0 = rng.integers(0, height - 200), rng.integers(0, width - 300)
            frame[y0 : y0 + rng.integers(80, 200), x0 : x0 + rng.integers(100, 300)] = rng.integers(0, 256, 3)
        frames.append(frame)
    return Clip(np.stack(frames), None, None, np.arange(num_frames, dtype=np.float64))


def pairs_for(n: int):
    from tgs.think.parser import parse_answer
    from tgs.types import Query

    out = []
    for k in range(n):
        name = OBJECTS[k % len(OBJECTS)] + ("" if k < len(OBJECTS) else f" {k}")
        query = Query(uid=f"bench_{k}", expression=f"the {name} making the loudest sound", split="test_s")
        answer = f"<think>x</think><answer><f_object> {name} </f_object><s_object> {name} </s_object></answer>"
        out.append((parse_answer(query.uid, answer), query))
    return out


# --------------------------------------------------------------------------- worker


def _stages(args: argparse.Namespace, dtype: str, *, new_path: bool):
    """(grounder, segmenter) of the paper preset; the new path's GPU options only for ``new_path``."""
    from tgs.core.loading import load_stages
    from tgs.core.settings import Settings
    from tgs.presets import PAPER

    gpu_new = new_path and args.device != "cpu"
    settings = Settings(
        device=args.device,
        dtype=dtype,
        sources={
            "grounding_dino": str(Path(args.models_dir) / "grounding-dino-tiny"),
            "sam2": str(Path(args.models_dir) / f"sam2.1-hiera-{args.sam2}"),
        },
    )
    grounder, segmenter = load_stages(
        PAPER,
        settings,
        frame_batch_size=args.frame_batch_size if new_path else 1,
        device_preprocess=gpu_new and args.device_preprocess,
        compile=gpu_new and args.compile,
    )
    if gpu_new:
        grounder.expression_batch_size = None  # every expression of the video in one forward
    return grounder, segmenter


def _sharing_pair(args: argparse.Namespace, dtype: str):
    """(today's Ground + Segment: share off; the new one: share on). On a CPU both use the same stages
    (the options that differ are GPU ones), so the comparison isolates the sharing."""
    from tgs.ground_segment import GroundSegmentStage
    from tgs.presets import PAPER

    new_stages = _stages(args, dtype, new_path=True)
    same = args.device == "cpu" and args.frame_batch_size == 1
    today_stages = new_stages if same else _stages(args, dtype, new_path=False)
    off = PAPER.with_overrides({"share_across_expressions": "false"})
    return GroundSegmentStage(*today_stages, off), GroundSegmentStage(*new_stages, PAPER)


def _clock(device: str):
    """Seconds on the clock that measures this device: process CPU time on CPU, wall time (synchronised) on CUDA."""
    if device == "cpu":
        return cpu_seconds
    import torch

    def wall() -> float:
        torch.cuda.synchronize()
        return time.perf_counter()

    return wall


def agreement(reference: list, other: list) -> dict:
    same_query, box_diff, mask_same, mask_iou, prob_diff = [], 0.0, [], [], 0.0
    for a, b in zip(reference, other):
        for fa, ca, fb, cb in zip(a.boxes.frames, a.chosen, b.boxes.frames, b.chosen):
            qa = None if ca is None else int(fa.query_index[ca])
            qb = None if cb is None else int(fb.query_index[cb])
            same_query.append(qa == qb)
            if qa is not None and qa == qb:
                box_diff = max(box_diff, float(np.abs(fa.xyxy[ca] - fb.xyxy[cb]).max()))
        for ma, mb in zip(a.masks.masks, b.masks.masks):
            mask_same.append(bool(np.array_equal(ma, mb)))
            union = np.logical_or(ma, mb).sum()
            mask_iou.append(1.0 if union == 0 else float(np.logical_and(ma, mb).sum() / union))
        prob_diff = max(prob_diff, float(np.abs(a.masks.probs - b.masks.probs).max()))
    return {
        "same_chosen_query": f"{sum(same_query)}/{len(same_query)}",
        "max_box_diff_px": box_diff,
        "identical_masks": f"{sum(mask_same)}/{len(mask_same)}",
        "mean_mask_iou": float(np.mean(mask_iou)),
        "max_prob_diff": prob_diff,
        "boxes_kept": int(sum(len(f) for r in reference for f in r.boxes.frames)),
    }


def worker(args: argparse.Namespace, dtype: str) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    logging.getLogger("tgs.ground.grounding_dino").setLevel(logging.ERROR)
    clock = _clock(args.device)
    clip = synthetic_clip(args.frames)
    pairs = pairs_for(max(args.expressions, *args.curve))
    start = time.perf_counter()
    unshared_stage, new = _sharing_pair(args, dtype)
    assert not unshared_stage.preset.share_across_expressions and new.preset.share_across_expressions
    load_s = time.perf_counter() - start
    n = args.expressions
    # Warm-up (untimed): one expression (allocator, lazy inits); on a GPU also the new path's compiled shapes.
    unshared_stage.run_many(clip, pairs[:1])
    if args.device != "cpu":
        new.run_many(clip, pairs[:n])
    t0 = clock()
    unshared = unshared_stage.run_many(clip, pairs[:n])
    t1 = clock()
    shared = new.run_many(clip, pairs[:n])
    t2 = clock()
    report = {
        "dtype": dtype,
        "device": args.device,
        "frames": args.frames,
        "expressions": n,
        "load_s": load_s,
        "unshared_s": t1 - t0,
        "shared_s": t2 - t1,
        "per_expression_unshared_s": (t1 - t0) / n,
        "per_expression_shared_s": (t2 - t1) / n,
        "ratio": (t1 - t0) / (t2 - t1),
        "agreement": agreement(unshared, shared),
        "clock": "process CPU time" if args.device == "cpu" else "wall (synchronised)",
    }
    if args.device != "cpu":
        report["frames_per_s_unshared"] = args.frames * n / (t1 - t0)
        report["frames_per_s_shared"] = args.frames * n / (t2 - t1)
    if dtype in args.curve_dtypes:
        curve = {}
        for count in args.curve:
            if count == n:
                curve[count] = t2 - t1
                continue
            c0 = clock()
            new.run_many(clip, pairs[:count])
            curve[count] = clock() - c0
        per_unshared = (t1 - t0) / n
        report["curve"] = {
            str(k): {"shared_s": v, "per_expression_s": v / k, "ratio_vs_unshared": per_unshared * k / v}
            for k, v in curve.items()
        }
    if args.device != "cpu":
        report["gpu"] = torch.cuda.get_device_name(0)
        report["peak_gpu_memory_gb"] = torch.cuda.max_memory_allocated() / 2**30
    report["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return report


# --------------------------------------------------------------------------- parent


def ensure_models(models_dir: Path, sam2: str) -> None:
    from tgs.testing.tiny_vision import build_full_size

    for name in ("grounding-dino-tiny", f"sam2.1-hiera-{sam2}"):
        path = models_dir / name
        if not (path / "config.json").is_file():
            LOG.info("building random %s in %s", name, path)
            build_full_size(name, path, video=False, seed=0)


def run_workers(args: argparse.Namespace, argv: list[str]) -> list[dict]:
    """One worker process per dtype, side by side (each its own allocator and peak RSS)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}
    procs = []
    for dtype in args.dtypes:
        command = [sys.executable, __file__, *argv, "--worker", dtype]
        procs.append(subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env))
        if args.device != "cpu":  # one GPU: one worker at a time
            procs[-1].wait()
    reports = []
    for proc in procs:
        out, _ = proc.communicate()
        lines = [line for line in out.splitlines() if line.startswith(PROTOCOL)]
        if proc.returncode != 0 or not lines:
            raise RuntimeError(f"worker exited with {proc.returncode}:\n{out[-4000:]}")
        reports.append(json.loads(lines[-1][len(PROTOCOL) :]))
    return reports


def table(reports: list[dict]) -> str:
    rows = [
        "| dtype | expressions | unshared s/expr | shared s/expr | ratio | same chosen query | identical masks "
        "| mean mask IoU | max box diff px | max prob diff |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in reports:
        a = r["agreement"]
        rows.append(
            f"| {r['dtype']} | {r['expressions']} | {r['per_expression_unshared_s']:.2f} | "
            f"{r['per_expression_shared_s']:.2f} | **{r['ratio']:.2f}x** | {a['same_chosen_query']} | "
            f"{a['identical_masks']} | {a['mean_mask_iou']:.4f} | {a['max_box_diff_px']:.2g} | {a['max_prob_diff']:.2g} |"
        )
    for r in reports:
        if "curve" in r:
            rows += ["", f"Curve ({r['dtype']}):", "", "| expressions | shared s | s/expr | vs unshared |", "|---|---|---|---|"]
            for k, c in r["curve"].items():
                rows.append(f"| {k} | {c['shared_s']:.1f} | {c['per_expression_s']:.2f} | {c['ratio_vs_unshared']:.2f}x |")
    return "\n".join(rows)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=10, help="frames of the video (1280 x 720)")
    p.add_argument("--expressions", type=int, default=8, help="expressions compared shared vs unshared")
    p.add_argument("--curve", default="1,2,4,8,16", help="expression counts of the shared cost curve ('' = none)")
    p.add_argument("--dtypes", default="bf16,fp32")
    p.add_argument("--curve-dtypes", default="bf16", help="dtypes that also measure the curve")
    p.add_argument("--sam2", default="large", choices=("tiny", "small", "large"))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--device-preprocess", action="store_true", help="GPU new path: preprocess frames on the device")
    p.add_argument("--compile", action="store_true", help="GPU new path: torch.compile the heavy submodules")
    p.add_argument("--frame-batch-size", type=int, default=1, help="new path: frames per forward")
    p.add_argument("--models-dir", default="/tmp/tgs-bench-models")
    p.add_argument("--out", default=None, help="JSON report")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.curve = [int(x) for x in args.curve.split(",") if x.strip()]
    args.dtypes = [x for x in args.dtypes.split(",") if x]
    args.curve_dtypes = [x for x in args.curve_dtypes.split(",") if x]
    return args


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.worker:
        sys.stdout.write(PROTOCOL + json.dumps(worker(args, args.worker)) + "\n")
        sys.stdout.flush()
        return
    ensure_models(Path(args.models_dir), args.sam2)
    reports = run_workers(args, argv)
    result = {"args": {k: v for k, v in vars(args).items() if k != "worker"}, "load_average": os.getloadavg(),
              "reports": reports}  # fmt: skip
    LOG.info("results:\n%s", table(reports))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
