"""Executors and run-store cost: the synthetic benchmark with the tiny models, on this machine.

1. Throughput of ``run_ground_segment`` (no evaluation) with the local executor and with
   the Ray executor at 1 and 2 workers (one local Ray instance, one CPU and one torch
   thread per worker; the local executor also runs one thread), as samples per second
   end to end (model loading and Ray actor start-up included) and in steady state (from
   the first committed sample to the last). Every Ray run's samples, boxes and masks are
   checked to equal the local run's.
2. The run store's cost per sample: the same samples processed once in this process,
   then their outputs committed (bit-packed masks + probabilities written atomically,
   the boxes line and the record appended, each fsynced) into a run directory, versus
   keeping them in memory; once as the local executor commits (encoding the masks in
   the driver), once as the Ray executor does (masks encoded by the worker).

    nice -n 10 python benchmarks/scale_bench.py --videos 4 --out /tmp/scale_bench.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

SPLITS = ("test_s", "test_n", "test_u")


def _config(root: Path, out: Path, preset_name: str):
    from tgs.core.settings import Settings
    from tgs.presets import get_preset
    from tgs.runners.ground_segment import GroundSegmentConfig

    return GroundSegmentConfig(data=root, meta=root / "metadata.csv", out=out, preset=get_preset(preset_name),
                               direct=True, splits=SPLITS, settings=Settings.tiny(), evaluate=False)


class CommitClock:
    """A progress factory that stamps the time of every committed batch."""

    def __init__(self) -> None:
        self.stamps: list[tuple[float, int]] = []

    @contextlib.contextmanager
    def __call__(self, total: int) -> Iterator[Callable[[int], None]]:
        def advance(n: int = 1) -> None:
            self.stamps.append((time.perf_counter(), n))

        yield advance

    def steady_rate(self) -> float | None:
        """Samples per second from the first commit to the last (start-up excluded)."""
        if len(self.stamps) < 2:
            return None
        (first, _), (last, _) = self.stamps[0], self.stamps[-1]
        done_after_first = sum(n for _, n in self.stamps[1:])
        return done_after_first / (last - first) if last > first else None


def run_once(root: Path, out: Path, preset: str, executor: Any) -> dict[str, Any]:
    from tgs.runners.ground_segment import run_ground_segment

    clock = CommitClock()
    start = time.perf_counter()
    outcome = run_ground_segment(_config(root, out, preset), executor=executor, progress=clock)
    wall = time.perf_counter() - start
    n = outcome.summary.succeeded
    if outcome.summary.failed:
        raise RuntimeError(f"{outcome.summary.failed} samples failed: {outcome.summary.failures[:3]}")
    steady = clock.steady_rate()
    return {"samples": n, "wall_s": round(wall, 3), "end_to_end_per_s": round(n / wall, 3),
            "steady_per_s": round(steady, 3) if steady else None}


def outputs(run: Path) -> tuple[dict, list[bytes], dict]:
    from tgs.run_store import RunStore

    store = RunStore(run)
    records = {r["uid"]: {k: v for k, v in r.items() if k != "timings"} for r in store.records("samples")}
    masks = {}
    for uid in records:
        m = store.load_masks(uid)
        masks[uid] = (m.masks, m.probs)
    return records, sorted((run / "boxes.jsonl").read_bytes().splitlines()), masks


def same_outputs(a: Path, b: Path) -> bool:
    ra, ba, ma = outputs(a)
    rb, bb, mb = outputs(b)
    return ra == rb and ba == bb and ma.keys() == mb.keys() and all(
        np.array_equal(ma[u][0], mb[u][0]) and np.array_equal(ma[u][1], mb[u][1]) for u in ma
    )


def _commit_times(store_dir: Path, outputs_kept: list) -> list[float]:
    from tgs.run_store import RunStore
    from tgs.runners.executor import commit_outcome
    from tgs.runners.local import RunSummary

    store = RunStore.open(store_dir, {"kind": "bench"})
    summary = RunSummary()
    seconds = []
    for uid, output in outputs_kept:
        start = time.perf_counter()
        commit_outcome(store, "samples", uid, output, summary)
        seconds.append(time.perf_counter() - start)
    store.close()
    return seconds


def store_overhead(root: Path, work: Path, preset: str) -> dict[str, Any]:
    """Per-sample seconds: processing only (no persistence), then committing its outputs.

    Two commit paths: the local executor's (the driver encodes the masks, then writes) and
    the Ray executor's (the worker encoded them; the driver only writes bytes and fsyncs).
    """
    from tgs.data.benchmark import Benchmark
    from tgs.runners.ground_segment import GroundSegmentWorkerFactory

    worker = GroundSegmentWorkerFactory(_config(root, work / "unused", preset), None)()
    samples = list(Benchmark(root, root / "metadata.csv", SPLITS))
    process_s, encode_s, outputs_kept, encoded_kept = [], [], [], []
    for sample in samples:
        start = time.perf_counter()
        [output] = worker.process([sample])
        process_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        encoded = output.encoded()
        encode_s.append(time.perf_counter() - start)
        outputs_kept.append((sample.uid, output))
        encoded_kept.append((sample.uid, encoded))
    local_commit = _commit_times(work / "store_local", outputs_kept)
    driver_commit = _commit_times(work / "store_ray", encoded_kept)
    mask_bytes = [p.stat().st_size for p in (work / "store_local" / "masks").glob("*.npz")]
    process = statistics.median(process_s)

    def ms(values: list[float]) -> float:
        return round(1000 * statistics.median(values), 2)

    return {
        "samples": len(samples),
        "process_median_ms": ms(process_s),
        "commit_local_median_ms": ms(local_commit),
        "commit_local_share": round(statistics.median(local_commit) / (process + statistics.median(local_commit)), 4),
        "encode_in_worker_median_ms": ms(encode_s),
        "commit_driver_encoded_median_ms": ms(driver_commit),
        "commit_driver_encoded_share": round(
            statistics.median(driver_commit) / (process + statistics.median(driver_commit)), 4),
        "mask_file_kb_median": round(statistics.median(mask_bytes) / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=4, help="synthetic videos (test splits: ~3 samples each)")
    parser.add_argument("--size", default="64x48", help="frame size WxH")
    parser.add_argument("--preset", default="best")
    parser.add_argument("--workers", default="1,2", help="Ray worker counts to time")
    parser.add_argument("--out", type=Path, default=None, help="also write the result as JSON here")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import ray
    import torch

    from tgs.data.synth import generate, parse_size
    from tgs.models.registry import resolve_source
    from tgs.runners.executor import LocalExecutor
    from tgs.runners.ray_executor import RayExecutor

    torch.set_num_threads(1)
    console = Console()
    work = Path(tempfile.mkdtemp(prefix="tgs-scale-bench-"))
    try:
        root = work / "synth"
        generate(root, videos=args.videos, seed=0, size=parse_size(args.size))
        for key in ("grounding_dino", "sam2", "sam2_video"):
            resolve_source(key, "tiny")  # build the tiny models once, outside the timers
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        results: dict[str, Any] = {"local": run_once(root, work / "local", args.preset, LocalExecutor())}
        console.log(f"local: {results['local']}")
        for workers in (int(w) for w in args.workers.split(",")):
            name = f"ray{workers}"
            results[name] = run_once(root, work / name, args.preset, RayExecutor(workers=workers))
            results[name]["identical_to_local"] = same_outputs(work / "local", work / name)
            console.log(f"{name}: {results[name]}")
        ray.shutdown()
        overhead = store_overhead(root, work, args.preset)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    base = results["local"]
    table = Table(title=f"ground-segment, {args.preset} preset, tiny models, {base['samples']} samples")
    for column in ("executor", "wall s", "samples/s", "vs local", "steady samples/s", "vs local", "identical"):
        table.add_column(column, justify="right")
    for name, r in results.items():
        steady_ratio = (r["steady_per_s"] / base["steady_per_s"]) if r["steady_per_s"] and base["steady_per_s"] else None
        r["ratio_end_to_end"] = round(r["end_to_end_per_s"] / base["end_to_end_per_s"], 2)
        r["ratio_steady"] = round(steady_ratio, 2) if steady_ratio else None
        table.add_row(name, f"{r['wall_s']:.1f}", f"{r['end_to_end_per_s']:.2f}", f"{r['ratio_end_to_end']:.2f}x",
                      f"{r['steady_per_s'] or 0:.2f}", f"{r['ratio_steady'] or 0:.2f}x",
                      str(r.get("identical_to_local", "-")))
    console.print(table)
    console.print(f"run store per sample: {overhead}")
    report = {
        "executors": results,
        "store": overhead,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_avg": os.getloadavg()},
        "versions": {"torch": torch.__version__, "ray": ray.__version__},
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
