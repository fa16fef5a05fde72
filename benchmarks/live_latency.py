"""Latency of the live mode on a 720p25 stream served in real time: p50 / p95, skipped frames, rate.

A synthetic 1280x720 25 fps stream with sound (``ffmpeg -re -f lavfi -i testsrc2 ... -i sine``,
MPEG-2 video + MP2 audio in MPEG-TS) is served in real time by the FFmpeg command line on a
local TCP port; the live run (``tgs.core.live_run.segment_live``: the real-time policy by
default, Grounding DINO on the frame where an object text is decided, the online tracker on
every emitted frame, masks.jsonl and the fragmented overlay written as it goes) reads it with
full-size random models built from the real configs (Grounding DINO-T and EdgeTAM,
``tgs.testing.tiny_vision.build_full_size``, saved once under ``--models-dir``) and the
``direct`` thinker (no reasoning model: the expression is the object text from the first frame),
for 1 and 3 expressions.

Reported per expression count (from the run's result.json, so the figures are the ones a user
gets): latency p50 / p95 / max (arrival of a frame, i.e. its decode, to its masks), the
skipped-frame ratio (frames the real-time policy dropped / frames decoded), the emitted rate
(frames with masks per second of wall time), the CPU seconds of this process during the stream
(process time: on a shared machine wall time alone says little) and the groundings. Random
weights: the costs are real, the masks are not (a random tracker loses its object, which is
grounded again each second: more Grounding DINO than a trained model would run).

Example (what ``docs/performance.md`` records)::

    OMP_NUM_THREADS=1 python benchmarks/live_latency.py --models-dir /tmp/tgs-live-models \\
        --seconds 30 --expressions 1,3 --out benchmarks/results/live_latency_cpu.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

LOG = logging.getLogger("live_latency")
EXPRESSIONS = ("the person speaking", "the red ball", "the clock")


def ensure_models(models_dir: Path) -> dict[str, str]:
    """Full-size random Grounding DINO-T and EdgeTAM (video), built once (~0.75 GB)."""
    from tgs.testing.tiny_vision import build_full_size

    wanted = {"grounding_dino": ("grounding-dino-tiny", False), "sam2": ("edgetam", True)}
    sources = {}
    for role, (name, video) in wanted.items():
        path = models_dir / (name + ("-video" if video else ""))
        if not (path / "config.json").is_file():
            LOG.info("building random %s in %s", name, path)
            build_full_size(name, path, video=video, seed=0)
        sources[role] = str(path)
    return sources


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(port: int, args: argparse.Namespace) -> subprocess.Popen:
    """``ffmpeg -re`` serving the synthetic stream to the first client of ``tcp://127.0.0.1:port``."""
    return subprocess.Popen(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-re",
         "-f", "lavfi", "-i", f"testsrc2=size={args.width}x{args.height}:rate={args.fps}",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100", "-t", str(args.seconds),
         "-c:v", "mpeg2video", "-q:v", "5", "-g", str(int(args.fps)), "-c:a", "mp2",
         "-f", "mpegts", f"tcp://127.0.0.1:{port}?listen=1"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
    )


def run_once(count: int, sources: dict[str, str], args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from tgs.core.live_run import LiveSettings, segment_live
    from tgs.core.settings import Settings

    port = free_port()
    sender = serve(port, args)
    marks: dict[str, float] = {}

    def started(_session: Any) -> None:  # the stream starts: models loaded, source open
        marks["cpu"], marks["wall"] = time.process_time(), time.perf_counter()

    try:
        result = segment_live(
            f"tcp://127.0.0.1:{port}", list(EXPRESSIONS[:count]), thinker="direct",
            settings=Settings(device=args.device, dtype=args.dtype, sources=sources), out=work / f"out_{count}",
            live=LiveSettings(every_frame=args.every_frame), on_start=started,
        )
    finally:
        sender.kill()
        sender.wait()
    cpu, wall = time.process_time() - marks["cpu"], time.perf_counter() - marks["wall"]
    live = result.live
    latency = live["latency_s"]
    out = {
        "expressions": count,
        "frames_decoded": live["frames_decoded"],
        "frames_emitted": live["frames_emitted"],
        "frames_skipped": live["frames_skipped"],
        "skipped_ratio": live["skipped_ratio"],
        "emitted_fps": live["emitted_fps"],
        "latency_ms": {k: None if latency[k] is None else round(1000 * latency[k], 1) for k in ("p50", "p95", "mean", "max")},
        "groundings": live["groundings"],
        "seeds": live["seeds"],
        "cpu_s": round(cpu, 2),
        "wall_s": round(wall, 2),
        "cpu_per_stream_second": round(cpu / args.seconds, 3),
        "load_s": round(result.record["timings"].get("load_models", 0.0), 2),
        # wall seconds of the steps over the emitted frames (a loaded machine stretches them)
        "ground_s": round(result.record["timings"].get("ground", 0.0), 2),
        "track_s_per_frame": round(result.record["timings"].get("track", 0.0) / max(1, live["frames_emitted"]), 3),
        "write_s_per_frame": round(result.record["timings"].get("write", 0.0) / max(1, live["frames_emitted"]), 3),
        "end": live["end"],
    }
    LOG.info("%d expression(s): p50 %s ms, p95 %s ms, skipped %.1f %%, %.2f fps emitted, CPU %.0f s", count,
             out["latency_ms"]["p50"], out["latency_ms"]["p95"], 100 * out["skipped_ratio"],
             out["emitted_fps"] or 0.0, cpu)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models-dir", type=Path, default=Path(tempfile.gettempdir()) / "tgs-live-models")
    p.add_argument("--seconds", type=float, default=30.0, help="length of the served stream")
    p.add_argument("--expressions", default="1,3", type=lambda s: [int(x) for x in s.split(",") if x])
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=720)
    p.add_argument("--fps", type=float, default=25.0)
    p.add_argument("--every-frame", action="store_true", help="the every-frame policy instead of real time")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="fp32")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    import torch

    torch.set_num_threads(args.threads)
    sources = ensure_models(args.models_dir)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="tgs-live-latency-") as tmp:
        runs = [run_once(n, sources, args, Path(tmp)) for n in args.expressions]
    result = {
        "benchmark": "live_latency",
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "load_avg_before": load_before, "load_avg_after": os.getloadavg(),
                    "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
        "stream": {"size": [args.height, args.width], "fps": args.fps, "seconds": args.seconds,
                   "served": "ffmpeg -re, testsrc2 + sine, mpeg2video + mp2 in MPEG-TS over local TCP"},
        "models": "full-size random Grounding DINO-T + EdgeTAM (real configs), thinker direct",
        "policy": "every-frame" if args.every_frame else "realtime",
        "device": args.device, "dtype": args.dtype, "threads": args.threads,
        "runs": runs,
    }
    text = json.dumps(result, indent=2)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    sys.stdout.write(text + "\n")
    for r in runs:
        lat = r["latency_ms"]
        sys.stdout.write(
            f"| live {args.width}x{args.height}@{args.fps:g}, {r['expressions']} expr., {args.device} "
            f"{args.threads} thread(s) | p50 {lat['p50']} ms, p95 {lat['p95']} ms | skipped "
            f"{100 * r['skipped_ratio']:.1f} % | {r['emitted_fps']} fps emitted | {r['cpu_per_stream_second']} CPU s "
            f"per stream s |\n")
    return result


if __name__ == "__main__":
    main()
