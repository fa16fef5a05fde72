"""The live mode: latency and skipped frames on a real-time stream, and memory over a long one.

Two parts, each measurement in its own subprocess (its own peak RSS):

* ``latency``: ``ffmpeg -re`` serves a synthetic 1280 x 720, 25 fps clip (testsrc2 + a sine,
  MPEG-TS over local TCP) for ``--seconds``; :class:`tgs.core.live.LiveRun` takes it under
  the ``realtime`` policy with a full-size random-weight propagation model (default EdgeTAM,
  built from the real config) and 1 and 3 expressions; reports latency p50 / p95 (arrival
  at decode to mask) and the skipped-frame ratio.
* ``memory``: a synthetic 25 fps source (FFmpeg's lavfi ``testsrc2``, ``--size``) of each
  ``--lengths`` seconds, read under the ``every-frame`` policy as fast as the loop runs, a
  tiny SAM2.1 and one expression; peak RSS per length and RSS sampled along the run (so
  that a 20-minute source can be compared with a 1-minute one).

Both use the direct thinker (the expression is the object text) and a stand-in grounder
that returns one fixed box (the centre quarter of the frame): an expression is grounded
once when its text is decided, so grounding is not part of the steady-state latency, and
random Grounding DINO weights would only give meaningless boxes. Random weights: timings
and memory are meaningful, masks are not. ``--threads`` sets torch's intra-op threads.

Examples::

    python benchmarks/live_bench.py latency --seconds 30 --out live-latency.json
    python benchmarks/live_bench.py latency --device cuda --dtype bf16 --threads 8 --out live-latency-gpu.json
    python benchmarks/live_bench.py memory --lengths 60,1200 --out live-memory.json
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from propagation_bench import _segmenter_from_config, peak_rss_mb, rss_now_mb

LOG = logging.getLogger("live_bench")
RATE = 25


class CentreGrounder:
    """One box per frame and text: the centre quarter of the frame, score 1."""

    def ground(self, clip, text):
        import numpy as np

        from tgs.types import Boxes, FrameBoxes

        h, w = clip.size
        box = np.array([[w / 4, h / 4, 3 * w / 4, 3 * h / 4]], np.float32)
        frames = tuple(FrameBoxes(box, np.ones(1, np.float32), np.zeros(1, np.int64)) for _ in range(clip.num_frames))
        return Boxes(frames, clip.size, text)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve(seconds: float, size: tuple[int, int], port: int) -> subprocess.Popen:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise SystemExit("live_bench: the ffmpeg command is missing (install it: make ffmpeg)")
    args = [ffmpeg, "-nostdin", "-loglevel", "error", "-re",
            "-f", "lavfi", "-i", f"testsrc2=size={size[1]}x{size[0]}:rate={RATE}",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100", "-t", str(seconds),
            "-c:v", "mpeg2video", "-q:v", "5", "-g", str(RATE), "-c:a", "mp2",
            "-f", "mpegts", f"tcp://127.0.0.1:{port}?listen=1"]
    return subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)


def _connect(url: str, **kwargs):
    from tgs.errors import MediaError
    from tgs.sources import open_source

    deadline = time.monotonic() + 20
    while True:
        try:
            return open_source(url, **kwargs)
        except MediaError as exc:
            if "refused" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _run(source, segmenter, count: int):
    from tgs.core.live import LiveRun
    from tgs.presets import BEST
    from tgs.segment.online import OnlineTracker

    run = LiveRun(source, thinker=None, grounder=CentreGrounder(), tracker=OnlineTracker.from_segmenter(segmenter),
                  expressions=[f"object {k}" for k in range(count)], preset=BEST)
    return run


def child_latency(args: argparse.Namespace) -> dict:
    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    segmenter = _segmenter_from_config(args.model, args.device, args.dtype)
    port = _free_port()
    server = _serve(args.seconds, (720, 1280), port)
    try:
        with _connect(f"tcp://127.0.0.1:{port}") as source:
            run = _run(source, segmenter, args.expressions)
            track = []
            for result in run.frames():
                track.append(result.timings["track"])
            record = run.record()
    finally:
        server.kill()
        server.wait(timeout=10)
    track.sort()
    return {"model": args.model, "device": args.device, "dtype": args.dtype, "expressions": args.expressions,
            "seconds": args.seconds,
            "threads": torch.get_num_threads(), **record,
            "track_s_median": round(track[len(track) // 2], 6) if track else None,
            "peak_rss_mb": round(peak_rss_mb(), 1)}


def child_memory(args: argparse.Namespace) -> dict:
    import torch

    from tgs.segment import Sam2VideoSegmenter
    from tgs.testing.tiny_vision import build_tiny_sam2_video

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="live-bench-") as tmp:
        segmenter = Sam2VideoSegmenter.from_pretrained(build_tiny_sam2_video(Path(tmp), seed=0), dtype="float32")
    height, width = _size(args.size)
    spec = f"lavfi:testsrc2=size={width}x{height}:rate={RATE}:duration={args.seconds}"
    samples = []
    start = time.perf_counter()
    with _connect(spec, policy="every-frame") as source:
        run = _run(source, segmenter, 1)
        for result in run.frames():
            if result.index % args.sample_every == 0:
                samples.append({"frame": result.index, "rss_mb": round(rss_now_mb(), 1)})
        record = run.record()
    settled = [s["rss_mb"] for s in samples[1:]]  # after the first sample: warm-up (allocator, thread pools) done
    return {"seconds_of_source": args.seconds, "size": [height, width], "frames": record["frames_emitted"],
            "frames_skipped": record["frames_skipped"], "wall_s": round(time.perf_counter() - start, 1),
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "rss_at_second_sample_mb": settled[0] if settled else None,
            "rss_max_after_first_sample_mb": max(settled) if settled else None,
            "samples": samples}


def _size(text: str) -> tuple[int, int]:
    width, height = (int(v) for v in text.lower().split("x"))
    return height, width


def _child(args: argparse.Namespace, extra: list[str]) -> dict:
    command = [sys.executable, __file__, "child", args.part, "--threads", str(args.threads), *extra]
    LOG.info("running %s", " ".join(command[2:]))
    out = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="part", required=True)
    latency = sub.add_parser("latency")
    latency.add_argument("--model", default="edgetam")
    latency.add_argument("--device", default="cpu")
    latency.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    latency.add_argument("--seconds", type=float, default=30.0)
    latency.add_argument("--counts", default="1,3", help="expression counts, comma-separated")
    memory = sub.add_parser("memory")
    memory.add_argument("--lengths", default="60,1200", help="seconds of source, comma-separated")
    memory.add_argument("--size", default="320x240")
    memory.add_argument("--sample-every", type=int, default=250)
    child = sub.add_parser("child")
    child.add_argument("which", choices=["latency", "memory"])
    child.add_argument("--model", default="edgetam")
    child.add_argument("--device", default="cpu")
    child.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    child.add_argument("--seconds", type=float, default=30.0)
    child.add_argument("--expressions", type=int, default=1)
    child.add_argument("--size", default="320x240")
    child.add_argument("--sample-every", type=int, default=250)
    for p in (latency, memory, child):
        p.add_argument("--threads", type=int, default=1)
        p.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.part == "child":
        result = child_latency(args) if args.which == "latency" else child_memory(args)
        sys.stdout.write(json.dumps(result) + "\n")
        return
    runs = []
    if args.part == "latency":
        for count in (int(c) for c in args.counts.split(",")):
            runs.append(_child(args, ["--model", args.model, "--device", args.device, "--dtype", args.dtype,
                                      "--seconds", str(args.seconds), "--expressions", str(count)]))
    else:
        for length in (float(v) for v in args.lengths.split(",")):
            runs.append(_child(args, ["--seconds", str(length), "--size", args.size,
                                      "--sample-every", str(args.sample_every)]))
    report = {"part": args.part, "machine": platform.processor() or platform.machine(), "python": platform.python_version(),
              "runs": runs}
    text = json.dumps(report, indent=1)
    if args.out is not None:
        partial = args.out.with_name(args.out.name + ".partial")
        partial.write_text(text + "\n")
        partial.replace(args.out)
    sys.stdout.write(text + "\n")


if __name__ == "__main__":
    main()
