"""The live mode: latency and skipped frames on a real-time stream, and memory over a long one.

Three parts, each measurement in its own subprocess (its own peak RSS):

* ``latency``: ``ffmpeg -re`` serves a synthetic 1280 x 720, 25 fps clip (testsrc2 + a sine,
  MPEG-TS over local TCP) for ``--seconds``; :class:`tgs.core.live.LiveRun` takes it under
  the ``realtime`` policy with a full-size random-weight propagation model (default EdgeTAM,
  built from the real config) and 1 and 3 expressions; reports latency p50 / p95 (arrival
  at decode to mask) and the skipped-frame ratio.
* ``memory``: a synthetic 25 fps source (FFmpeg's lavfi ``testsrc2``, ``--size``) of each
  ``--lengths`` seconds, read under the ``every-frame`` policy as fast as the loop runs, a
  tiny SAM2.1 and one expression; peak RSS per length and RSS sampled along the run (so
  that a 20-minute source can be compared with a 1-minute one).

* ``e2e``: the whole live run as ``tgs segment SOURCE`` runs it
  (:func:`tgs.core.live_run.segment_live`: the session's live mode, Grounding DINO on the frame
  where an expression is grounded, masks.jsonl and the fragmented overlay written as it goes)
  on the same 720p25 ``ffmpeg -re`` stream, with full-size random Grounding DINO-T and EdgeTAM
  (real configs, ``tgs.testing.tiny_vision.build_full_size``, saved once under
  ``--models-dir``) and the direct thinker; the figures are the run's own result.json (latency
  p50 / p95 / max, skipped ratio, emitted rate), plus the steps' seconds per frame and the
  process CPU seconds over the stream.

``latency`` and ``memory`` use the direct thinker (the expression is the object text) and a stand-in grounder
that returns one fixed box (the centre quarter of the frame): an expression is grounded
once when its text is decided, so grounding is not part of the steady-state latency, and
random Grounding DINO weights would only give meaningless boxes. Random weights: timings
and memory are meaningful, masks are not. ``--threads`` sets torch's intra-op threads.

Examples::

    python benchmarks/live_bench.py latency --seconds 30 --out live-latency.json
    python benchmarks/live_bench.py latency --device cuda --dtype bf16 --threads 8 --out live-latency-gpu.json
    python benchmarks/live_bench.py memory --lengths 60,1200 --out live-memory.json
    python benchmarks/live_bench.py e2e --models-dir /tmp/tgs-live-models --seconds 120 --counts 1,3 --out e2e.json
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from propagation_bench import _segmenter_from_config, peak_rss_mb, rss_now_mb

from tgs.testing.live_streams import FFMPEG, TcpServer, connect, free_port

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

    def ground_many(self, clip, texts):
        """Several texts on one clip (the Ground + Segment stage's shared path)."""
        return [self.ground(clip, text) for text in texts]


def _run(source, segmenter, count: int):
    from tgs.core.live import LiveRun
    from tgs.ground_segment import GroundSegmentStage
    from tgs.presets import BEST

    run = LiveRun(source, thinker=None, stage=GroundSegmentStage(CentreGrounder(), segmenter, BEST),
                  expressions=[f"object {k}" for k in range(count)])
    return run


def child_latency(args: argparse.Namespace) -> dict:
    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    segmenter = _segmenter_from_config(args.model, args.device, args.dtype)
    if FFMPEG is None:
        raise SystemExit("live_bench: the ffmpeg command is missing (install it: make ffmpeg)")
    server = TcpServer(free_port(), args.seconds, size=(720, 1280), rate=RATE)
    try:
        with connect(server.url) as source:
            run = _run(source, segmenter, args.expressions)
            track = []
            for result in run.frames():
                track.append(result.timings["track"])
            record = run.record()
    finally:
        server.kill()
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
    with connect(spec, policy="every-frame") as source:
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


def _full_size_models(models_dir: Path) -> dict[str, str]:
    """Full-size random Grounding DINO-T and EdgeTAM (video), built once (~0.75 GB): Settings sources."""
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


def child_e2e(args: argparse.Namespace) -> dict:
    import torch

    from tgs.core.live_mode import LiveSettings
    from tgs.core.live_run import segment_live
    from tgs.core.settings import Settings

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    sources = _full_size_models(args.models_dir)
    texts = ["the person speaking", "the red ball", "the clock"][: args.expressions]
    if FFMPEG is None:
        raise SystemExit("live_bench: the ffmpeg command is missing (install it: make ffmpeg)")
    server = TcpServer(free_port(), args.seconds, size=(720, 1280), rate=RATE)
    marks: dict[str, float] = {}

    def started(_session) -> None:  # the stream starts: models loaded, source open
        marks["cpu"], marks["wall"] = time.process_time(), time.perf_counter()

    try:
        with tempfile.TemporaryDirectory(prefix="live-bench-e2e-") as tmp:
            result = segment_live(server.url, texts, thinker="direct",
                                  settings=Settings(device=args.device, dtype=args.dtype, sources=sources),
                                  out=Path(tmp) / "out", live=LiveSettings(), on_start=started)
    finally:
        server.kill()
    cpu, wall = time.process_time() - marks["cpu"], time.perf_counter() - marks["wall"]
    live, timings = result.live, result.record["timings"]
    emitted = max(1, live["frames_emitted"])
    return {"expressions": args.expressions, "seconds": args.seconds, "threads": torch.get_num_threads(),
            "frames_decoded": live["frames_decoded"], "frames_emitted": live["frames_emitted"],
            "frames_skipped": live["frames_skipped"], "skipped_ratio": live["skipped_ratio"],
            "emitted_fps": live["emitted_fps"], "latency_s": live["latency_s"], "groundings": live["groundings"],
            "ground_s": round(timings.get("ground", 0.0), 3),
            "track_s_per_frame": round(timings.get("track", 0.0) / emitted, 3),
            "write_s_per_frame": round(timings.get("write", 0.0) / emitted, 3),
            "cpu_s": round(cpu, 2), "wall_s": round(wall, 2), "cpu_s_per_stream_s": round(cpu / args.seconds, 3),
            "end": live["end"], "peak_rss_mb": round(peak_rss_mb(), 1)}


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
    e2e = sub.add_parser("e2e")
    e2e.add_argument("--models-dir", type=Path, default=Path(tempfile.gettempdir()) / "tgs-live-models")
    e2e.add_argument("--device", default="cpu")
    e2e.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    e2e.add_argument("--seconds", type=float, default=120.0)
    e2e.add_argument("--counts", default="1,3", help="expression counts, comma-separated")
    child = sub.add_parser("child")
    child.add_argument("which", choices=["latency", "memory", "e2e"])
    child.add_argument("--models-dir", type=Path, default=Path(tempfile.gettempdir()) / "tgs-live-models")
    child.add_argument("--model", default="edgetam")
    child.add_argument("--device", default="cpu")
    child.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    child.add_argument("--seconds", type=float, default=30.0)
    child.add_argument("--expressions", type=int, default=1)
    child.add_argument("--size", default="320x240")
    child.add_argument("--sample-every", type=int, default=250)
    for p in (latency, memory, e2e, child):
        p.add_argument("--threads", type=int, default=1)
        p.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.part == "child":
        result = {"latency": child_latency, "memory": child_memory, "e2e": child_e2e}[args.which](args)
        sys.stdout.write(json.dumps(result) + "\n")
        return
    runs = []
    if args.part == "latency":
        for count in (int(c) for c in args.counts.split(",")):
            runs.append(_child(args, ["--model", args.model, "--device", args.device, "--dtype", args.dtype,
                                      "--seconds", str(args.seconds), "--expressions", str(count)]))
    elif args.part == "e2e":
        for count in (int(c) for c in args.counts.split(",")):
            runs.append(_child(args, ["--models-dir", str(args.models_dir), "--device", args.device, "--dtype",
                                      args.dtype, "--seconds", str(args.seconds), "--expressions", str(count)]))
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
