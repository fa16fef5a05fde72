"""SAM 3 beside Grounding DINO-T + SAM2.1-L and + EdgeTAM: Ground + Segment cost per frame, 1 and N expressions.

Full-size random models with the real configs (``tgs.testing.tiny_vision.build_full_size``,
``tgs.testing.tiny_sam3.build_full_size_sam3``), saved once under ``--models-dir`` and loaded
through ``tgs.core.loading.load_stages`` (the path every command takes), then
``GroundSegmentStage.run_many`` on one synthetic clip with the expressions of one video
(frame work shared, ``share_across_expressions``):

* ``gdino+sam2.1-l``: preset ``best`` (Grounding DINO-T per frame, SAM2.1-L video propagation);
* ``gdino+edgetam``: preset ``best`` with EdgeTAM as the video model;
* ``sam3-video``: preset ``sam3`` (``Sam3VideoModel`` over the clip, one session per expression,
  each frame's vision features shared);
* ``sam3-image``: preset ``sam3`` with ``segment_mode=image`` (``Sam3Model`` per frame).

Reported per backend and expression count: wall and process-CPU seconds per frame, and the
ratios to ``gdino+sam2.1-l``. Random weights: timings are meaningful, masks are not (and SAM
3's random scores start few masklets, so the tracker's per-object cost is under-represented).
No warm-up run (a CPU run has no compilation to amortise); the first frame pays allocation.

Example (what ``docs/performance.md`` records)::

    OMP_NUM_THREADS=1 nice python benchmarks/sam3_bench.py --threads 1 --frames 2 --sam3-frames 1 \\
        --expressions 1,8 --out benchmarks/results/sam3_cpu.json
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from pathlib import Path

import numpy as np

LOG = logging.getLogger("sam3_bench")
EXPRESSIONS = (
    "the man playing the guitar", "the dog", "the red car", "the woman singing", "the piano",
    "the drum", "the baby crying", "the violin",
)


def synthetic_clip(num_frames: int, height: int, width: int, seed: int = 0):
    """A deterministic clip: smooth gradients, a moving coloured rectangle and mild noise."""
    from tgs.types import Clip

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    for t in range(num_frames):
        base = np.stack([(x * 255 // width), (y * 255 // height), np.full_like(x, 80 + 10 * t)], -1)
        x0 = (width // 8) + t * 12
        base[height // 4 : height // 2, x0 : x0 + width // 5] = (220, 40, 40)
        frames[t] = np.clip(base + rng.integers(-8, 9, base.shape), 0, 255).astype(np.uint8)
    return Clip(frames, None, None, np.arange(num_frames, dtype=np.float64))


def ensure_models(models_dir: Path) -> dict[str, Path]:
    """Full-size random models saved once (GDINO-T ~0.7 GB, SAM2.1-L ~0.9 GB, EdgeTAM, SAM 3 ~3.4 GB)."""
    from tgs.testing.tiny_sam3 import build_full_size_sam3
    from tgs.testing.tiny_vision import build_full_size

    wanted = {
        "gdino": lambda p: build_full_size("grounding-dino-tiny", p),
        "sam2.1-l": lambda p: build_full_size("sam2.1-hiera-large", p, video=True),
        "edgetam": lambda p: build_full_size("edgetam", p, video=True),
        "sam3": lambda p: build_full_size_sam3(p),
    }
    paths = {}
    for key, build in wanted.items():
        path = models_dir / key
        if not (path / "config.json").is_file():
            LOG.info("building random %s in %s", key, path)
            t0 = time.perf_counter()
            build(path)
            LOG.info("built %s in %.0f s", key, time.perf_counter() - t0)
        paths[key] = path
    return paths


BACKENDS = {
    "gdino+sam2.1-l": ("best", {}, {"grounding_dino": "gdino", "sam2": "sam2.1-l"}),
    "gdino+edgetam": ("best", {}, {"grounding_dino": "gdino", "sam2": "edgetam"}),
    "sam3-video": ("sam3", {}, {"sam2": "sam3"}),
    "sam3-image": ("sam3", {"segment_mode": "image"}, {"sam2": "sam3"}),
}


def run_backend(name: str, paths: dict[str, Path], frames: int, counts: list[int], args) -> dict:
    from tgs.core.loading import load_stages
    from tgs.core.settings import Settings
    from tgs.ground_segment import GroundSegmentStage
    from tgs.presets import get_preset
    from tgs.types import Query, Thought

    preset_name, overrides, sources = BACKENDS[name]
    preset = get_preset(preset_name, overrides)
    settings = Settings(device=args.device, dtype=args.dtype, sources={k: str(paths[v]) for k, v in sources.items()})
    t0 = time.perf_counter()
    grounder, segmenter = load_stages(preset, settings)
    stage = GroundSegmentStage(grounder, segmenter, preset)
    out: dict = {"load_s": round(time.perf_counter() - t0, 3), "frames": frames, "per_expressions": {}}
    clip = synthetic_clip(frames, args.height, args.width)
    for n in counts:
        texts = EXPRESSIONS[:n]
        pairs = [(Thought(uid=f"b{k}", raw="", s_object=t), Query(uid=f"b{k}", expression=t))
                 for k, t in enumerate(texts)]
        t0, c0 = time.perf_counter(), time.process_time()
        results = stage.run_many(clip, pairs)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        out["per_expressions"][str(n)] = {
            "wall_s_per_frame": round(wall / frames, 3),
            "cpu_s_per_frame": round(cpu / frames, 3),
            "frames_with_mask": [int(r.masks.masks.any(axis=(1, 2)).sum()) for r in results],
        }
        LOG.info("%s, %d expression(s): %.1f s wall, %.1f s CPU per frame", name, n, wall / frames, cpu / frames)
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models-dir", type=Path, default=Path("/tmp/tgs-sam3-bench-models"))
    p.add_argument("--frames", type=int, default=2, help="frames per clip for Grounding DINO + SAM2 / EdgeTAM")
    p.add_argument("--sam3-frames", type=int, default=1, help="frames per clip for SAM 3 (slow on a CPU)")
    p.add_argument("--expressions", default="1,8", type=lambda s: [int(x) for x in s.split(",") if x])
    p.add_argument("--backends", default=",".join(BACKENDS), type=lambda s: [x for x in s.split(",") if x])
    p.add_argument("--height", type=int, default=720)
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="fp32", help="fp32, bf16 or fp16 for every model")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    import torch

    torch.set_num_threads(args.threads)
    paths = ensure_models(args.models_dir)
    report: dict = {
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": args.threads, "device": args.device,
                    "dtype": args.dtype,
                    "torch": torch.__version__},
        "size": [args.height, args.width],
        "backends": {},
    }
    if args.device.startswith("cuda"):
        report["machine"]["gpu"] = torch.cuda.get_device_name(0)
    for name in args.backends:
        frames = args.sam3_frames if name.startswith("sam3") else args.frames
        report["backends"][name] = run_backend(name, paths, frames, args.expressions, args)
        if args.out is not None:  # each backend kept as it finishes
            args.out.write_text(json.dumps(report, indent=2))
    base = report["backends"].get("gdino+sam2.1-l")
    if base is not None:
        report["ratios_cpu_to_gdino_sam2.1-l"] = {
            name: {n: round(r["per_expressions"][n]["cpu_s_per_frame"] / base["per_expressions"][n]["cpu_s_per_frame"], 2)
                   for n in r["per_expressions"] if n in base["per_expressions"]}
            for name, r in report["backends"].items()
        }
    text = json.dumps(report, indent=2)
    if args.out is not None:
        args.out.write_text(text)
    sys.stdout.write(text + "\n")
    return report


if __name__ == "__main__":
    main()
