"""``tgs segment --batch`` throughput: videos per minute, local vs Ray with 1 and 2 workers.

Makes N synthetic clips (``tgs.data.synth.write_video``), then runs the CLI once per
executor in a subprocess and reports, per run: wall seconds, CPU seconds of the run's
process tree (user + sys of the CLI and every descendant it waited for, from
``getrusage(RUSAGE_CHILDREN)``; a Ray instance's workers are children of its raylet,
which the CLI starts and which waits for them), videos per minute, the ratio to local,
and whether every output equals the local run's (masks.json and mask PNGs byte for byte).

    python benchmarks/segment_batch_bench.py --videos 12 --out /tmp/segment_batch_bench.json
    python benchmarks/segment_batch_bench.py --videos 2 --seconds 1 --full-size MODELS_DIR   # real architectures

``--full-size DIR``: full-size random Grounding DINO (tiny) and SAM2.1-hiera-tiny video
models (``tgs.testing.tiny_vision.build_full_size``, built once under DIR) instead of the
tiny ones: the real per-frame cost on this machine's CPU.
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
from typing import Any

LOG = logging.getLogger("segment_batch_bench")


def make_clips(root: Path, count: int, seconds: float, fps: float, size: tuple[int, int]) -> Path:
    from tgs.data.synth import write_video

    rows = ["video,expression"]
    for i in range(count):
        path = root / "clips" / f"clip{i:03d}.mp4"
        if not path.is_file():
            write_video(path, seconds, fps, size, seed=i)
        rows.append(f"{path},the red object")
    listing = root / "list.csv"
    listing.write_text("\n".join(rows) + "\n")
    return listing


def full_size_models(models_dir: Path) -> list[str]:
    from tgs.testing.tiny_vision import build_full_size

    wanted = {"--gdino": ("grounding-dino-tiny", False), "--sam2": ("sam2.1-hiera-tiny", True)}
    options = []
    for flag, (name, video) in wanted.items():
        path = models_dir / (name + ("-video" if video else ""))
        if not (path / "config.json").is_file():
            LOG.info("building random %s in %s", name, path)
            build_full_size(name, path, video=video, seed=0)
        options += [flag, str(path)]
    return options


def run_once(listing: Path, out: Path, models: list[str], extra: list[str]) -> dict[str, Any]:
    command = [sys.executable, "-m", "tgs.cli.main", "segment", "--batch", str(listing), "--out", str(out),
               "--thinker", "direct", "--device", "cpu", *models, *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2)}


def outputs(out: Path) -> dict[str, bytes]:
    paths = sorted(out.glob("*/masks/*/*.png")) + sorted(out.glob("*/masks.json"))
    return {str(p.relative_to(out)): p.read_bytes() for p in paths}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each clip")
    parser.add_argument("--fps", type=float, default=10.0)
    parser.add_argument("--size", default="64x48")
    parser.add_argument("--work", type=Path, default=Path("/tmp/segment_batch_bench"))
    parser.add_argument("--full-size", type=Path, default=None, help="folder for the full-size random models")
    parser.add_argument("--ray-workers", default="1,2")
    parser.add_argument("--out", type=Path, default=None, help="write the results here (JSON)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    width, height = (int(v) for v in args.size.split("x"))
    args.work.mkdir(parents=True, exist_ok=True)
    listing = make_clips(args.work, args.videos, args.seconds, args.fps, (width, height))
    models = ["--models", "tiny"] if args.full_size is None else full_size_models(args.full_size)
    runs: dict[str, list[str]] = {"local": []}
    for count in (int(v) for v in args.ray_workers.split(",") if v):
        runs[f"ray_{count}"] = ["--executor", "ray", "--workers", str(count)]
    results: dict[str, Any] = {}
    reference: dict[str, bytes] | None = None
    for name, extra in runs.items():
        out = args.work / f"{'full' if args.full_size else 'tiny'}_{name}"
        if out.exists():
            import shutil

            shutil.rmtree(out)
        LOG.info("%s ...", name)
        result = run_once(listing, out, models, extra)
        result["videos_per_min"] = round(60 * args.videos / result["wall_s"], 2)
        got = outputs(out)
        reference = got if reference is None else reference
        result["same_as_local"] = got == reference and bool(got)
        results[name] = result
        LOG.info("%s: %s", name, result)
    base = results["local"]
    for result in results.values():
        result["speed_vs_local"] = round(result["videos_per_min"] / base["videos_per_min"], 2)
        result["cpu_vs_local"] = round(result["cpu_s"] / base["cpu_s"], 2)
    report = {
        "videos": args.videos, "seconds": args.seconds, "fps": args.fps, "size": args.size,
        "models": "tiny" if args.full_size is None else "full-size random (grounding-dino-tiny, sam2.1-hiera-tiny)",
        "cpus": os.cpu_count(), "load_avg_before": os.getloadavg(), "results": results,
    }
    text = json.dumps(report, indent=2)
    sys.stdout.write(text + "\n")
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
