"""Dense propagation: seconds per frame and peak RSS of the SAM2-family video models.

Two parts, every measurement in its own subprocess (so its peak RSS is its own):

* ``speed``: full-size random-weight models built from the real configs (SAM2.1 tiny, small,
  base-plus, large; EdgeTAM), 1280 x 720 frames, one object seeded on frame 0 and tracked
  over ``--frames`` more; process CPU seconds per tracked frame (and per seed frame), peak
  RSS, for each ``--dtypes``. Ratios are against SAM2.1-L in the same dtype.
* ``memory``: the memory curve over video length with a tiny model (default the tiny
  SAM2.1): 720p 30 fps frames generated on the fly (:class:`MovingSquareSource`, streamed,
  never held), seeded in the middle of the video so both the backward pass (chunks read
  again) and the forward pass run; peak RSS per length, and RSS sampled along the run
  (written to ``<out>.progress.jsonl`` as it goes, so a long run cut short still reports).

Random weights: timings and memory are meaningful, masks are not. ``--threads`` sets torch's
intra-op threads (default 1: on a shared machine extra threads burn CPU time spinning).

Examples::

    python benchmarks/propagation_bench.py speed --frames 3 --out bench-speed.json
    python benchmarks/propagation_bench.py memory --lengths 600,3600,18000 --out bench-mem.json
    python benchmarks/propagation_bench.py speed --device cuda --frames 20 --threads 0
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

LOG = logging.getLogger("propagation_bench")
MODELS = ("sam2.1-hiera-tiny", "sam2.1-hiera-small", "sam2.1-hiera-base-plus", "sam2.1-hiera-large", "edgetam")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def rss_now_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return float(line.split()[1]) / 1024.0
    return float("nan")


def _setup(threads: int) -> None:
    import torch

    if threads > 0:
        torch.set_num_threads(threads)


def _segmenter_from_config(name: str, device: str, dtype: str):
    """Sam2VideoSegmenter over a full-size random model (built in memory, not saved)."""
    import torch
    from transformers import EdgeTamVideoModel, Sam2VideoModel, Sam2VideoProcessor, Sam2VideoVideoProcessor

    from tgs.segment import Sam2VideoSegmenter
    from tgs.testing.tiny_vision import _sam2_image_processor, full_size_config

    torch.manual_seed(0)
    config = full_size_config(name, video=True)
    cls = EdgeTamVideoModel if name == "edgetam" else Sam2VideoModel
    dt = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
    model = cls(config).eval().to(device=device, dtype=dt)
    processor = Sam2VideoProcessor(image_processor=_sam2_image_processor(1024),
                                   video_processor=Sam2VideoVideoProcessor())
    return Sam2VideoSegmenter(model, processor, device=torch.device(device), dtype=dt)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def child_speed(args: argparse.Namespace) -> dict:
    import torch

    from tgs.segment.propagation import ObjectPrompts, PropagationStats
    from tgs.testing.synthetic_video import MovingSquareSource

    _setup(args.threads)
    load_start = time.process_time()
    segmenter = _segmenter_from_config(args.model, args.device, args.dtype)
    load_cpu = time.process_time() - load_start
    params = sum(p.numel() for p in segmenter.model.parameters())
    source = MovingSquareSource(args.frames + 1, (args.height, args.width))
    h, w = args.height, args.width
    box = [w / 4, h / 4, w / 2, h / 2]
    cpu, wall = [], []
    stats = PropagationStats()
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    prompts = [ObjectPrompts.from_lists([0], [box])]
    last_cpu, last_wall = time.process_time(), time.perf_counter()
    for _ in segmenter.engine.run(source, prompts, stats=stats):
        _sync(args.device)
        now_cpu, now_wall = time.process_time(), time.perf_counter()
        cpu.append(now_cpu - last_cpu)
        wall.append(now_wall - last_wall)
        last_cpu, last_wall = now_cpu, now_wall
    tracked = list(range(1, source.num_frames))
    out = {
        "model": args.model,
        "dtype": args.dtype,
        "device": args.device,
        "params_m": params / 1e6,
        "load_cpu_s": load_cpu,
        "seed_frame_cpu_s": cpu[0],
        "cpu_s_per_frame": sum(cpu[i] for i in tracked) / len(tracked),
        "wall_s_per_frame": sum(wall[i] for i in tracked) / len(tracked),
        "frames_tracked": len(tracked),
        "peak_rss_mb": peak_rss_mb(),
        "stage_cpu_s": stats.seconds,
    }
    if args.device.startswith("cuda"):
        out["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def child_memory(args: argparse.Namespace) -> dict:
    from tgs.models.registry import resolve_source
    from tgs.segment import Sam2VideoSegmenter
    from tgs.segment.propagation import ObjectPrompts, PropagationStats
    from tgs.testing.synthetic_video import MovingSquareSource

    _setup(args.threads)
    segmenter = Sam2VideoSegmenter.from_pretrained(resolve_source(args.tiny, "tiny"), device=args.device,
                                                   dtype="float32")
    source = MovingSquareSource(args.length, (args.height, args.width), period=90)
    middle = args.length // 2
    seed = next(i for i in range(middle, args.length) if source.box(i) is not None)
    # keyframes at 1 fps (the Ref-AVS rate) after the seed: re-seeded when the object is lost
    keyframes = [seed, *range(seed + args.fps, args.length, args.fps)]
    prompts = [ObjectPrompts.from_lists(keyframes, [source.box(i) for i in keyframes],
                                        [0.9] * len(keyframes))]
    stats = PropagationStats()
    samples = []
    start_rss = rss_now_mb()
    cpu_start = time.process_time()
    progress = Path(args.progress) if args.progress else None

    def on_frame(s: PropagationStats) -> None:
        if s.frames_done % args.every == 0 or s.frames_done == s.num_frames:
            sample = {"length": args.length, "frames_done": s.frames_done, "rss_mb": rss_now_mb(),
                      "peak_rss_mb": peak_rss_mb(), "cpu_s": time.process_time() - cpu_start}
            samples.append(sample)
            if progress is not None:
                with progress.open("a") as f:
                    f.write(json.dumps(sample) + "\n")

    policy_kwargs = {"seed_frames": "first", "reseed_iou": 0.5}
    from tgs.segment.propagation import PropagationPolicy

    for _ in segmenter.engine.run(source, prompts, PropagationPolicy(**policy_kwargs), stats=stats,
                                  on_frame=on_frame):
        pass
    return {
        "length": args.length,
        "seconds_of_video": args.length / args.fps,
        "seed_frame": seed,
        "rss_before_mb": start_rss,
        "peak_rss_mb": peak_rss_mb(),
        "cpu_s_per_frame": (time.process_time() - cpu_start) / args.length,
        "peak_stored_frames": stats.peak_stored_frames,
        "peak_conditioning_frames": stats.peak_conditioning_frames,
        "reseeds": stats.reseeds,
        "stage_cpu_s": stats.seconds,
        "samples": samples,
    }


def machine() -> dict:
    import torch
    import transformers

    return {"python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "cpu": platform.processor() or platform.machine()}


def run_child(kind: str, args: argparse.Namespace, **extra: object) -> dict | None:
    cmd = [sys.executable, __file__, kind, "--threads", str(args.threads), "--device", args.device,
           "--height", str(args.height), "--width", str(args.width)]
    for key, value in extra.items():
        cmd += [f"--{key.replace('_', '-')}", str(value)]
    LOG.info("running %s", " ".join(cmd[2:]))
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        LOG.error("%s failed: %s", kind, done.stderr[-2000:])
        return {"error": done.stderr[-500:], **{k: str(v) for k, v in extra.items()}}
    return json.loads(done.stdout.strip().splitlines()[-1])


def parent_speed(args: argparse.Namespace) -> dict:
    from concurrent.futures import ThreadPoolExecutor

    jobs = [(model, dtype) for dtype in args.dtypes.split(",") for model in args.models.split(",")]
    progress = Path(f"{args.out}.progress.jsonl") if args.out else None

    def one(job: tuple[str, str]) -> dict:
        row = run_child("_speed", args, model=job[0], dtype=job[1], frames=args.frames)
        LOG.info("%s", row)
        if progress is not None:
            with progress.open("a") as f:
                f.write(json.dumps(row) + "\n")
        return row

    # children in parallel (--jobs): each is timed by its own process CPU time
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        rows = list(pool.map(one, jobs))
    ratios = {}
    for dtype in args.dtypes.split(","):
        base = next((r for r in rows if r.get("model") == "sam2.1-hiera-large" and r.get("dtype") == dtype), None)
        if base is None:
            continue
        ratios[dtype] = {r["model"]: base["cpu_s_per_frame"] / r["cpu_s_per_frame"]
                         for r in rows if r.get("dtype") == dtype and "cpu_s_per_frame" in r}
    fp32 = {r["model"]: r for r in rows if r.get("dtype") == "fp32" and "cpu_s_per_frame" in r}
    bf16 = {r["model"]: r for r in rows if r.get("dtype") == "bf16" and "cpu_s_per_frame" in r}
    bf16_speedup = {m: fp32[m]["cpu_s_per_frame"] / bf16[m]["cpu_s_per_frame"] for m in fp32 if m in bf16}
    return {"rows": rows, "speedup_vs_sam2.1_large": ratios, "bf16_speedup_vs_fp32": bf16_speedup}


def parent_memory(args: argparse.Namespace) -> dict:
    progress = f"{args.out}.progress.jsonl" if args.out else ""
    rows = []
    for length in [int(n) for n in args.lengths.split(",")]:
        rows.append(run_child("_memory", args, length=length, tiny=args.tiny, fps=args.fps, every=args.every,
                              progress=progress))
        LOG.info("%s", {k: v for k, v in rows[-1].items() if k != "samples"})
    peaks = {r["length"]: r["peak_rss_mb"] for r in rows if "peak_rss_mb" in r}
    shortest = min(peaks) if peaks else None
    growth = {n: peaks[n] - peaks[shortest] for n in peaks} if shortest is not None else {}
    return {"rows": rows, "peak_rss_growth_mb_vs_shortest": growth}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("part", choices=["speed", "memory", "_speed", "_memory"])
    p.add_argument("--out", default="", help="JSON report path")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (0: torch's default)")
    p.add_argument("--height", type=int, default=720)
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--model", default="sam2.1-hiera-tiny")
    p.add_argument("--dtypes", default="fp32,bf16")
    p.add_argument("--dtype", default="fp32")
    p.add_argument("--jobs", type=int, default=1, help="speed children run at once (CPU time is per process)")
    p.add_argument("--frames", type=int, default=3, help="tracked frames per model (speed)")
    p.add_argument("--lengths", default="600,3600,18000", help="frames per video (memory; 30 fps: 20 s, 2 min, 10 min)")
    p.add_argument("--length", type=int, default=600)
    p.add_argument("--fps", type=int, default=30)
    p.add_argument("--tiny", default="sam2_video", help="tiny model key for the memory curve")
    p.add_argument("--every", type=int, default=600, help="RSS sample period in frames (memory)")
    p.add_argument("--progress", default="")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args = parse_args(argv)
    if args.part.startswith("_"):
        result = child_speed(args) if args.part == "_speed" else child_memory(args)
        sys.stdout.write(json.dumps(result) + "\n")
        return
    report = {"machine": machine(), "args": vars(args)}
    report.update(parent_speed(args) if args.part == "speed" else parent_memory(args))
    text = json.dumps(report, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
    sys.stdout.write(text + "\n")


if __name__ == "__main__":
    main()
