"""``tgs segment --batch`` throughput: videos per minute, local vs Ray with 1 and 2 workers.

Makes N synthetic clips (``tgs.data.synth.write_video``), then runs the CLI once per
executor in a subprocess and reports, per run: wall seconds, CPU seconds of the run's
processes (the CLI and, with Ray, every process of its Ray instance: see ``run_once``),
videos per minute, the ratios to local,
and whether every output equals the local run's (masks.json and mask PNGs byte for byte).

    python benchmarks/segment_batch_bench.py --videos 12 --out /tmp/segment_batch_bench.json
    python benchmarks/segment_batch_bench.py --videos 2 --seconds 1 --full-size MODELS_DIR   # real architectures

``--full-size DIR``: full-size random Grounding DINO (tiny) and EdgeTAM video models (``tgs.testing.tiny_vision.build_full_size``, built once under DIR) instead of the
tiny ones: the real per-frame cost on this machine's CPU.
"""

from __future__ import annotations

import argparse
import contextlib
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

    # a folder given to --sam2 is loaded as the device's default propagation model: EdgeTAM on a CPU
    wanted = {"--gdino": ("grounding-dino-tiny", False), "--sam2": ("edgetam", True)}
    options = []
    for flag, (name, video) in wanted.items():
        path = models_dir / (name + ("-video" if video else ""))
        if not (path / "config.json").is_file():
            LOG.info("building random %s in %s", name, path)
            build_full_size(name, path, video=video, seed=0)
        options += [flag, str(path)]
    return options


def run_once(listing: Path, out: Path, models: list[str], extra: list[str]) -> dict[str, Any]:
    """Wall and CPU seconds of one CLI run.

    CPU: user + sys of every process of the run's session (the CLI, and with Ray its
    raylet, workers and agents), sampled every 0.2 s through psutil, the CLI's own from
    getrusage; a process that ends between two samples loses at most its last 0.2 s.
    """
    import psutil

    command = [sys.executable, "-m", "tgs.cli.main", "segment", "--batch", str(listing), "--out", str(out),
               "--thinker", "direct", "--device", "cpu", *models, *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    log = out.with_name(out.name + ".log").open("w+")  # a file, not a pipe: a full pipe would stall the run
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
    seen: dict[tuple[int, float], float] = {}  # (pid, start time) -> CPU seconds last seen
    commits: list[tuple[float, int]] = []  # (seconds since start, videos committed), at each change
    while process.poll() is None:
        done = _committed(out)
        if done and (not commits or commits[-1][1] != done):
            commits.append((time.perf_counter() - start, done))
        for proc in psutil.process_iter(["pid", "create_time"]):
            try:
                if proc.pid != process.pid and os.getsid(proc.pid) == process.pid:
                    times = proc.cpu_times()
                    seen[(proc.pid, proc.info["create_time"])] = times.user + times.system
            except (psutil.Error, ProcessLookupError, PermissionError):
                continue
        time.sleep(0.2)
    log.seek(0)
    stderr = log.read()
    log.close()
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, 9)  # what the run left in its session (a Ray instance's agents)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{stderr[-3000:]}")
    cli = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    done = _committed(out)
    if not commits or commits[-1][1] != done:
        commits.append((wall, done))
    steady = None  # videos per minute from the first commit to the last: start-up left out
    if len(commits) > 1 and commits[-1][0] > commits[0][0]:
        steady = round(60 * (commits[-1][1] - commits[0][1]) / (commits[-1][0] - commits[0][0]), 2)
    return {"wall_s": round(wall, 2), "cpu_s": round(cli + sum(seen.values()), 2), "cpu_cli_s": round(cli, 2),
            "processes": 1 + len(seen), "first_commit_s": round(commits[0][0], 2) if commits else None,
            "steady_videos_per_min": steady}


def _committed(out: Path) -> int:
    try:
        return (out / "videos.jsonl").read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


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
    parser.add_argument("--ray-workers", default="1,2", help="Ray runs in order, by workers (e.g. 1,2,1)")
    parser.add_argument("--out", type=Path, default=None, help="write the results here (JSON)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    width, height = (int(v) for v in args.size.split("x"))
    args.work.mkdir(parents=True, exist_ok=True)
    listing = make_clips(args.work, args.videos, args.seconds, args.fps, (width, height))
    models = ["--models", "tiny"] if args.full_size is None else full_size_models(args.full_size)
    runs: dict[str, list[str]] = {"local": []}
    for index, count in enumerate(int(v) for v in args.ray_workers.split(",") if v):
        name = f"ray_{count}" if f"ray_{count}" not in runs else f"ray_{count}_again{index}"
        runs[name] = ["--executor", "ray", "--workers", str(count)]
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
        "models": "tiny" if args.full_size is None else "full-size random (grounding-dino-tiny, edgetam)",
        "cpus": os.cpu_count(), "load_avg_before": os.getloadavg(), "results": results,
    }
    text = json.dumps(report, indent=2)
    sys.stdout.write(text + "\n")
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
