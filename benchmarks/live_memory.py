"""Memory of a long live run: a 20-minute stream peaks within a few MB of a 1-minute one.

The run is the real live path (``tgs.core.live_run.segment_live``: a :class:`tgs.sources.LiveSource`
reading standard input, the every-frame policy, Grounding DINO, the online tracker, masks.jsonl and
the fragmented overlay), with the tiny random models and the direct thinker, in a child process
per stream length. The stream is ``ffmpeg -f lavfi -i testsrc2 ... -f mpegts -`` (small frames,
a 16 kHz sine, MPEG-2 video) piped into the child as fast as the every-frame policy takes it
(no ``-re``: the source's back-pressure paces ffmpeg), so 20 minutes of source time take what
the machine needs for their frames, not 20 minutes.

Reported per stream: frames, peak RSS of the child (``os.wait4``'s ``ru_maxrss``), RSS sampled
every ``--sample-every`` frames (after the first sample: growth), the tensor bytes the tracker's
sessions hold (every distinct storage reachable from them), the tracker's peak stored and
conditioning frames, the think-window rings (frames kept, audio samples), the latency deque,
CPU seconds (user + sys) and wall seconds. The claim: the long stream's peak RSS is within a few
MB of the short one's.

Example (what ``docs/performance.md`` records)::

    OMP_NUM_THREADS=1 python benchmarks/live_memory.py --fps 5 --minutes 1,20 \\
        --out benchmarks/results/live_memory.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

LOG = logging.getLogger("live_memory")


def held_bytes(root: object) -> int:
    """Bytes of the distinct tensor storages reachable from ``root`` (dicts, sequences and the
    attributes of transformers / tgs objects), each storage counted once."""
    import torch

    storages: dict[int, int] = {}
    seen: set[int] = set()
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, torch.Tensor):
            storage = obj.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
        elif isinstance(obj, dict):
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set)):
            stack.extend(obj)
        elif type(obj).__module__.startswith(("transformers", "tgs")) and hasattr(obj, "__dict__"):
            stack.extend(vars(obj).values())
    return sum(storages.values())


def child(out_dir: Path, report: Path, sample_every: int) -> None:
    """One live run on standard input; writes its samples to ``report``."""
    import psutil

    from tgs.core.live_run import LiveSettings, segment_live
    from tgs.core.settings import Settings

    me = psutil.Process()
    samples: list[dict[str, Any]] = []
    state: dict[str, Any] = {}

    def started(session: Any) -> None:
        state["session"] = session

    def sample(frame: Any) -> None:
        session = state["session"]
        if session.frames_emitted % sample_every:
            return
        run, source = session.run, session.source
        samples.append({
            "frame": session.frames_emitted,
            "time": round(frame.time, 3),
            "rss_mb": round(me.memory_info().rss / 2**20, 2),
            "tracker_tensor_bytes": held_bytes(run.tracker.sessions()),
            "tracker_objects": len(run.tracker.keys),
            # the think window's rings (internals: read for this measurement only)
            "ring_frames": len(source._frames._kept),
            "ring_audio_samples": int(source._audio.capacity),
            "latency_deque": len(run.latency.recent),
        })

    start, cpu = time.perf_counter(), time.process_time()
    result = segment_live("-", ["the red ball"], thinker="direct", settings=Settings.tiny(), out=out_dir,
                          live=LiveSettings(every_frame=True), on_start=started, on_frame=sample)
    live = result.live
    report.write_text(json.dumps({
        "frames": result.frames_emitted, "end": result.end, "samples": samples,
        "tracker": live["tracker"], "latency_s": live["latency_s"], "source_frames": live["source_frames"],
        "wall_s": round(time.perf_counter() - start, 3), "cpu_s_self": round(time.process_time() - cpu, 3),
    }))


def run_stream(minutes: float, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    seconds = minutes * 60
    sender = subprocess.Popen(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i",
         f"testsrc2=size={args.width}x{args.height}:rate={args.fps}", "-f", "lavfi", "-i",
         "sine=frequency=440:sample_rate=16000", "-t", str(seconds), "-c:v", "mpeg2video", "-q:v", "5",
         "-g", str(int(args.fps)), "-c:a", "mp2", "-f", "mpegts", "-"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
    )
    report = work / f"report_{minutes:g}.json"
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    start = time.perf_counter()
    runner = subprocess.Popen([sys.executable, __file__, "--child", str(work / f"out_{minutes:g}"), str(report),
                               str(args.sample_every)], stdin=sender.stdout, env=env)
    assert sender.stdout is not None
    sender.stdout.close()  # the child holds the pipe now
    _, status, usage = os.wait4(runner.pid, 0)
    runner.returncode = os.waitstatus_to_exitcode(status)
    sender.wait()
    if runner.returncode != 0:
        raise SystemExit(f"the {minutes:g}-minute run failed ({runner.returncode})")
    data = json.loads(report.read_text())
    samples = data["samples"]
    rss = [s["rss_mb"] for s in samples]
    out = {
        "minutes": minutes,
        "source_seconds": seconds,
        "frames": data["frames"],
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 2),  # Linux: KiB
        "rss_first_sample_mb": rss[0] if rss else None,
        "rss_last_sample_mb": rss[-1] if rss else None,
        "rss_max_sample_mb": max(rss) if rss else None,
        # the peak is often set while the models load; growth over the frames is what a leak shows
        "rss_growth_mb": round(rss[-1] - rss[0], 2) if rss else None,
        "tracker_tensor_bytes_max": max((s["tracker_tensor_bytes"] for s in samples), default=None),
        "tracker_tensor_bytes_last": samples[-1]["tracker_tensor_bytes"] if samples else None,
        "tracker": data["tracker"],
        "ring_frames_max": max((s["ring_frames"] for s in samples), default=None),
        "ring_audio_samples": samples[-1]["ring_audio_samples"] if samples else None,
        "latency_deque_max": max((s["latency_deque"] for s in samples), default=None),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "wall_s": round(time.perf_counter() - start, 2),
        "end": data["end"],
        "samples": samples,
    }
    LOG.info("%g min: %d frames, peak RSS %.1f MB, tracker %s bytes, CPU %.0f s, wall %.0f s", minutes,
             out["frames"], out["peak_rss_mb"], out["tracker_tensor_bytes_max"], out["cpu_s"], out["wall_s"])
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", default="1,20", type=lambda s: [float(x) for x in s.split(",") if x])
    p.add_argument("--fps", type=float, default=5.0, help="the stream's frame rate")
    p.add_argument("--width", type=int, default=160)
    p.add_argument("--height", type=int, default=120)
    p.add_argument("--sample-every", type=int, default=250, help="frames between two samples")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--work", type=Path, default=None, help="where the runs write (default: a temporary folder)")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    work = args.work or Path(tempfile.mkdtemp(prefix="tgs-live-memory-"))
    runs = [run_stream(m, args, work) for m in args.minutes]
    short, long = min(runs, key=lambda r: r["minutes"]), max(runs, key=lambda r: r["minutes"])
    result = {
        "benchmark": "live_memory",
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "load_avg_at_end": os.getloadavg()},
        "stream": {"fps": args.fps, "size": [args.height, args.width], "codec": "mpeg2video + mp2 in MPEG-TS",
                   "fed": "ffmpeg -f lavfi testsrc2 + sine piped to standard input, as fast as taken"},
        "models": "tiny random (Grounding DINO, EdgeTAM-style SAM2 video), thinker direct, every-frame policy",
        "threads": args.threads,
        "runs": runs,
        "peak_rss_difference_mb": round(long["peak_rss_mb"] - short["peak_rss_mb"], 2),
        "max_sample_rss_difference_mb": round(long["rss_max_sample_mb"] - short["rss_max_sample_mb"], 2),
    }
    text = json.dumps(result, indent=2)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    brief = {k: v for k, v in result.items() if k != "runs"}
    brief["runs"] = [{k: v for k, v in r.items() if k != "samples"} for r in runs]
    sys.stdout.write(json.dumps(brief, indent=2) + "\n")
    sys.stdout.write(f"| live memory (tiny, every frame, {args.width}x{args.height}@{args.fps:g}) | "
                     + " vs ".join(f"{r['minutes']:g} min ({r['frames']} frames): peak RSS {r['peak_rss_mb']:.1f} MB, "
                                   f"steady growth {r['rss_growth_mb']:+.1f} MB" for r in runs)
                     + f" | peak difference {result['peak_rss_difference_mb']:+.1f} MB |\n")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return result


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        child(Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]))
    else:
        main()
