"""Ground + Segment speed and memory on full-size random models (the real architectures).

Modes (each runs in its own subprocess so that peak RSS is its own):

* ``naive``: the original loop, per frame: the GroundingDINO load_image transform, tokenise,
  one fp32 forward under ``no_grad``, first box scaled to 224, frame squashed to 224 with
  R/B swapped, SAM2 image encoder + box decode in fp32 — transformers models called one frame
  at a time, as the original scripts call theirs.
* ``fp32`` / ``bf16``: the same paper path through the tgs stages
  (GroundingDinoGrounder + Sam2ImageSegmenter with preprocess="original") in that dtype,
  with the grounder's default deformable sampling (the fused gather on CPU);
  ``fp32-grid`` / ``bf16-grid`` force transformers' grid_sample sampling and
  ``fp32-gather`` / ``bf16-gather`` the gather kernel (what ``auto`` picks differs by device).
* ``video``: Sam2VideoSegmenter (bf16, box on the first frame) on clips of --video-lengths.
* ``--presets paper,best``: each preset end to end through ``load_stages`` +
  ``GroundSegmentStage.run`` (the path ``segment_video`` and benchmark runs take), one
  process per preset and dtype (--preset-dtypes), the same clip and SAM2.1 size for both:
  paper = image mode per frame on the 224 squash, best = video propagation at full size.

Reported per mode: seconds per sample (wall and process CPU), peak RSS, load time; and the
ratios naive / fp32 / bf16, plus the accuracy of bf16 against fp32 (same first-query box,
mask IoU). Random weights: timings and agreement are meaningful, masks are not.

``--device cuda`` runs every mode on the GPU (the naive loop too); timings then synchronise
through the outputs each frame returns to the host, and peak GPU memory is reported.

Examples::

    python benchmarks/ground_segment_bench.py --frames 2 --sam2 tiny --video-lengths 10
    nice -n 10 python benchmarks/ground_segment_bench.py --frames 10 --out bench.json
    nice -n 10 python benchmarks/ground_segment_bench.py --modes "" --memory-frames 0 \
        --video-lengths "" --presets paper,best --preset-dtypes bf16 --frames 4 --threads 1
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

LOG = logging.getLogger("ground_segment_bench")
CAPTION = "the man playing the guitar"
PAPER_SIZE = 224


# --------------------------------------------------------------------------- helpers


def synthetic_clip(num_frames: int, height: int, width: int, seed: int = 0):
    """A deterministic clip: smooth gradients, a moving coloured rectangle and mild noise."""
    from tgs.types import Clip

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    for t in range(num_frames):
        base = np.stack([xx / width * 200, yy / height * 180, (xx + yy) / (width + height) * 160], -1)
        x0 = int((0.1 + 0.6 * t / max(num_frames - 1, 1)) * width)
        base[height // 3 : height // 3 + height // 4, x0 : x0 + width // 5] = (230, 60, 40)
        frames[t] = np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)
    return Clip(frames, None, None, np.arange(num_frames, dtype=np.float64))


def squash_and_swap(frames: np.ndarray, size: int = PAPER_SIZE) -> np.ndarray:
    """The paper's SAM2 input: each frame resized to size x size (bilinear), R and B swapped."""
    from PIL import Image

    out = np.stack([np.asarray(Image.fromarray(f).resize((size, size), Image.BILINEAR)) for f in frames])
    return np.ascontiguousarray(out[..., ::-1])


def rss_now_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def machine() -> dict:
    import torch

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        flags = Path("/proc/cpuinfo").read_text()
        bf16 = "avx512_bf16" in flags or "amx_bf16" in flags
    except OSError:
        bf16 = False
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "bf16_instructions": bf16,
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "torch": torch.__version__,
        "load_average": os.getloadavg(),
    }


def ensure_models(
    models_dir: Path, sam2: str, video_sam2: str | None, preset_video: bool = False
) -> dict[str, Path]:
    """Full-size random models saved once under models_dir (hundreds of MB each).

    preset_video: also the video variant of the image-mode SAM2.1 size (``best``'s model),
    so that ``paper`` and ``best`` run the same Hiera trunk.
    """
    from tgs.testing.tiny_vision import build_full_size

    wanted = {"gdino": ("grounding-dino-tiny", False), "sam2": (f"sam2.1-hiera-{sam2}", False)}
    if video_sam2:
        wanted["video"] = (f"sam2.1-hiera-{video_sam2}", True)
    if preset_video:
        wanted["sam2_video"] = (f"sam2.1-hiera-{sam2}", True)
    paths = {}
    for key, (name, video) in wanted.items():
        path = models_dir / (name + ("-video" if video else ""))
        if not (path / "config.json").is_file():
            LOG.info("building random %s in %s", name, path)
            build_full_size(name, path, video=video, seed=0)
        paths[key] = path
    return paths


# --------------------------------------------------------------------------- pipelines (child side)


class NaivePipeline:
    """The original per-frame loop on transformers models: fp32, no_grad, batch 1."""

    name = "naive"
    allocator_tuned = False  # the C library's defaults, as the original's process

    def __init__(self, paths: dict[str, Path], device: str) -> None:
        from transformers import (
            GroundingDinoForObjectDetection,
            GroundingDinoProcessor,
            Sam2Model,
            Sam2Processor,
        )

        self.gd_proc = GroundingDinoProcessor.from_pretrained(paths["gdino"])
        self.gd = GroundingDinoForObjectDetection.from_pretrained(paths["gdino"]).eval().to(device)
        self.sam_proc = Sam2Processor.from_pretrained(paths["sam2"])
        self.sam = Sam2Model.from_pretrained(paths["sam2"]).eval().to(device)
        self.device = device

    def run(self, clip) -> dict:
        import torch
        from torchvision.ops import box_convert

        from tgs.ground.grounding_dino import original_transform, prepare_caption
        from tgs.segment._sam2_common import boxes_to_input_coords, low_res_to_masks_and_probs, pixel_values

        ip = self.gd_proc.image_processor
        out: dict[str, list] = {"first_query": [], "boxes224": [], "masks": [], "probs": []}
        for frame in clip.frames:
            pixels = original_transform(frame, 800, 1333, mean=ip.image_mean, std=ip.image_std)
            tokens = self.gd_proc.tokenizer(prepare_caption(CAPTION), return_tensors="pt").to(self.device)
            with torch.no_grad():
                det = self.gd(pixel_values=pixels[None].to(self.device), **tokens)
            scores = det.logits.sigmoid()[0].max(dim=1).values.cpu()
            keep = torch.nonzero(scores > 0.1).flatten()
            frame224 = squash_and_swap(frame[None])
            if keep.numel() == 0:
                _append(
                    out, -1, None, np.zeros((PAPER_SIZE,) * 2, bool), np.zeros((PAPER_SIZE,) * 2, np.float32)
                )
                continue
            scale = torch.tensor([PAPER_SIZE] * 4, dtype=torch.float32)
            box = box_convert(det.pred_boxes[0, keep[:1]].cpu() * scale, in_fmt="cxcywh", out_fmt="xyxy").numpy()
            with torch.no_grad():
                emb = self.sam.get_image_embeddings(
                    pixel_values(frame224, self.sam_proc.image_processor, "original").to(self.device)
                )
                coords = boxes_to_input_coords(box, (PAPER_SIZE, PAPER_SIZE), (1024, 1024))[:, None]
                coords = coords.to(self.device)
                low = self.sam(image_embeddings=emb, input_boxes=coords, multimask_output=False).pred_masks[
                    :, 0
                ]
            m, p = low_res_to_masks_and_probs(low.float().cpu(), (PAPER_SIZE, PAPER_SIZE))
            _append(out, int(keep[0]), box[0], m[0], p[0])
        return out


class StagePipeline:
    """The paper path through the tgs stages, in one dtype (mode ``dtype`` or ``dtype-grid``),
    with freed memory kept in the process on CPU as the ``tgs`` commands do."""

    def __init__(self, paths: dict[str, Path], mode: str, device: str) -> None:
        from tgs.cpu_memory import keep_freed_memory
        from tgs.ground import GroundingDinoGrounder
        from tgs.segment import Sam2ImageSegmenter

        self.name = mode
        dtype, _, kernel = mode.partition("-")
        self.grounder = GroundingDinoGrounder.from_pretrained(
            paths["gdino"],
            device=device,
            dtype=dtype,
            preprocess="original",
            deformable_sampling={"": "auto", "grid": "grid_sample", "gather": "gather"}[kernel],
        )
        self.segmenter = Sam2ImageSegmenter.from_pretrained(
            paths["sam2"], device=device, dtype=dtype, preprocess="original"
        )
        self.allocator_tuned = keep_freed_memory(device)

    def run(self, clip) -> dict:
        from tgs.types import Clip

        boxes = self.grounder.ground(clip, CAPTION)
        height, width = clip.size
        to224 = np.array([PAPER_SIZE / width, PAPER_SIZE / height] * 2, np.float32)
        first = boxes.select("first")
        boxes224 = [None if k is None else f.xyxy[k] * to224 for f, k in zip(boxes.frames, first)]
        masks = self.segmenter.segment(
            Clip(squash_and_swap(clip.frames), None, None, clip.frame_times), boxes224
        )
        out: dict[str, list] = {"first_query": [], "boxes224": [], "masks": [], "probs": []}
        for i, (f, k) in enumerate(zip(boxes.frames, first)):
            _append(
                out, -1 if k is None else int(f.query_index[k]), boxes224[i], masks.masks[i], masks.probs[i]
            )
        return out


def _append(out: dict[str, list], query: int, box, mask: np.ndarray, prob: np.ndarray) -> None:
    out["first_query"].append(query)
    out["boxes224"].append(np.full(4, np.nan, np.float32) if box is None else np.asarray(box, np.float32))
    out["masks"].append(mask)
    out["probs"].append(prob)


def make_pipeline(mode: str, paths: dict[str, Path], device: str):
    return NaivePipeline(paths, device) if mode == "naive" else StagePipeline(paths, mode, device)


PROTOCOL = "@@bench "  # prefix of the worker's reply lines on stdout (other output is passed through)


def child_worker(args: argparse.Namespace, paths: dict[str, Path]) -> dict:
    """One mode in its own process, driven frame by frame by the parent (see time_modes).

    Commands on stdin, one JSON object per line: {"op": "warm"} runs a one-frame warm-up,
    {"op": "frame", "index": i} times frame i of the synthetic clip, {"op": "finish"} saves the
    outputs and ends. The tgs modes keep freed memory in the process as the ``tgs`` commands do
    (tgs.cpu_memory); the naive loop keeps the C library's defaults, as the original's process.
    """
    from tgs.types import Clip

    pipeline = make_pipeline(args.mode, paths, args.device)
    allocator_tuned = pipeline.allocator_tuned
    clip = synthetic_clip(args.frames, args.height, args.width)
    outputs: dict[str, list] = {"first_query": [], "boxes224": [], "masks": [], "probs": []}

    def reply(message: dict) -> None:
        sys.stdout.write(PROTOCOL + json.dumps(message) + "\n")
        sys.stdout.flush()

    reply({"ready": True, "allocator_tuned": allocator_tuned})
    for line in sys.stdin:
        command = json.loads(line)
        if command["op"] == "finish":
            break
        i = 0 if command["op"] == "warm" else int(command["index"])
        one = Clip(clip.frames[i : i + 1], None, None, clip.frame_times[i : i + 1])
        t0, c0 = time.perf_counter(), cpu_seconds()
        result = pipeline.run(one)
        wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
        if command["op"] == "frame":
            for key, values in result.items():
                outputs[key].extend(values)
        reply({"wall": wall, "cpu": cpu})
    np.savez(f"{args.result}.npz", **{k: np.stack(v) for k, v in outputs.items()})
    return {"allocator_tuned": allocator_tuned}


def time_modes(args: argparse.Namespace, paths: dict[str, Path], work: Path) -> dict:
    """Every mode in its own worker process, all loaded at once, run frame by frame in rotating
    order: the load of a shared machine hits every mode alike, and each mode has its own
    process state (allocator, peak RSS), as a user's run would. Returns per-frame times."""
    workers = {}
    for mode in args.modes:
        cmd = _child_command("worker", args, paths, work / f"worker-{mode}.json", mode=mode)
        workers[mode] = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def ask(mode: str, command: dict | None) -> dict:
        proc = workers[mode]
        if command is not None:
            proc.stdin.write(json.dumps(command) + "\n")
            proc.stdin.flush()
        for line in proc.stdout:
            if line.startswith(PROTOCOL):
                return json.loads(line[len(PROTOCOL) :])
            sys.stderr.write(line)
        raise RuntimeError(f"benchmark worker {mode!r} ended without replying (exit {proc.wait()})")

    try:
        ready = {mode: ask(mode, None) for mode in args.modes}
        for mode in args.modes:  # first calls pay one-off allocations / kernel selection
            for _ in range(args.warmup):
                LOG.info("warm-up %s: %.1f s", mode, ask(mode, {"op": "warm"})["wall"])
        times = {mode: {"wall": [], "cpu": []} for mode in args.modes}
        for i in range(args.frames):
            for k in range(len(args.modes)):
                mode = args.modes[(i + k) % len(args.modes)]
                timing = ask(mode, {"op": "frame", "index": i})
                times[mode]["wall"].append(timing["wall"])
                times[mode]["cpu"].append(timing["cpu"])
            LOG.info("frame %d: %s", i, {m: round(t["wall"][-1], 1) for m, t in times.items()})
        for mode, proc in workers.items():
            proc.stdin.write(json.dumps({"op": "finish"}) + "\n")
            proc.stdin.flush()
            proc.stdin.close()
            for line in proc.stdout:
                sys.stderr.write(line)
            if proc.wait() != 0:
                raise RuntimeError(f"benchmark worker {mode!r} failed (exit {proc.returncode})")
    finally:
        for proc in workers.values():
            if proc.poll() is None:
                proc.kill()
    result = {"times": times, "workers": {}}
    for mode in args.modes:
        info = json.loads((work / f"worker-{mode}.json").read_text())
        result["workers"][mode] = {**info, "allocator_tuned": ready[mode]["allocator_tuned"]}
    return result


def child_memory(args: argparse.Namespace, paths: dict[str, Path]) -> dict:
    """One mode alone: load time, RSS after loading, time and peak RSS of one sample."""
    import torch

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    pipeline = make_pipeline(args.mode, paths, args.device)
    load_s = time.perf_counter() - t0
    rss_loaded = rss_now_mb()
    clip = synthetic_clip(args.frames, args.height, args.width)
    t0, c0 = time.perf_counter(), cpu_seconds()
    pipeline.run(clip)
    return {
        "load_s": load_s,
        "wall_s": time.perf_counter() - t0,
        "cpu_s": cpu_seconds() - c0,
        "rss_loaded_mb": rss_loaded,
    }


def child_video(args: argparse.Namespace, paths: dict[str, Path]) -> dict:
    """Sam2VideoSegmenter (bf16) with one box on frame 0, propagated through the clip."""
    from tgs.segment import Sam2VideoSegmenter

    clip = synthetic_clip(args.frames, args.height, args.width, seed=1)
    t0 = time.perf_counter()
    segmenter = Sam2VideoSegmenter.from_pretrained(paths["video"], device=args.device, dtype="bf16")
    load_s = time.perf_counter() - t0
    rss_loaded = rss_now_mb()
    boxes: list = [None] * args.frames
    h, w = args.height, args.width
    boxes[0] = np.array([0.1 * w, 0.33 * h, 0.3 * w, 0.6 * h], np.float32)
    t0, c0 = time.perf_counter(), cpu_seconds()
    masks = segmenter.segment(clip, boxes)
    return {
        "load_s": load_s,
        "wall_s": time.perf_counter() - t0,
        "cpu_s": cpu_seconds() - c0,
        "rss_loaded_mb": rss_loaded,
        "frames_with_mask": int(masks.masks.any(axis=(1, 2)).sum()),
    }


def child_preset(args: argparse.Namespace, paths: dict[str, Path]) -> dict:
    """One preset end to end: tgs.core.loading.load_stages + GroundSegmentStage.run on the synthetic clip.

    The thinker answer is fixed (``<s_object>`` = CAPTION), so both presets ground the same
    text (up to the paper's extra trailing period). --warmup untimed one-frame clips first.
    """
    from tgs.core.loading import load_stages
    from tgs.core.settings import Settings
    from tgs.cpu_memory import keep_freed_memory
    from tgs.ground_segment import GroundSegmentStage
    from tgs.presets import get_preset
    from tgs.types import Clip, Query, Thought

    preset = get_preset(args.preset)
    sam2_key = "sam2" if preset.segment_mode == "image" else "sam2_video"
    t0 = time.perf_counter()
    settings = Settings(
        device=args.device, dtype=args.dtype, sources={"grounding_dino": str(paths["gdino"]), "sam2": str(paths[sam2_key])}
    )
    keep_freed_memory(args.device)  # what the tgs commands set at their entry point
    grounder, segmenter = load_stages(preset, settings, frame_batch_size=args.frame_batch_size)
    stage = GroundSegmentStage(grounder, segmenter, preset)
    load_s = time.perf_counter() - t0
    rss_loaded = rss_now_mb()
    query = Query(uid="bench", expression=CAPTION)
    thought = Thought(uid="bench", raw=f"<s_object>{CAPTION}</s_object>", s_object=CAPTION)
    clip = synthetic_clip(args.frames, args.height, args.width)
    for _ in range(args.warmup):
        t0 = time.perf_counter()
        stage.run(Clip(clip.frames[:1], None, None, clip.frame_times[:1]), thought, query)
        LOG.info("warm-up %s/%s: %.1f s", args.preset, args.dtype, time.perf_counter() - t0)
    t0, c0 = time.perf_counter(), cpu_seconds()
    result = stage.run(clip, thought, query)
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    LOG.info("%s/%s: %.1f s for %d frames %s", args.preset, args.dtype, wall, args.frames, result.timings)
    return {
        "load_s": load_s,
        "wall_s": wall,
        "cpu_s": cpu,
        "rss_loaded_mb": rss_loaded,
        "steps_s": dict(result.timings),
        "frames_with_box": sum(c is not None for c in result.chosen),
        "frames_with_mask": int(result.masks.masks.any(axis=(1, 2)).sum()),
        "mask_size": list(result.masks.masks.shape[1:]),
        "sam2_source": str(paths[sam2_key]),
    }


def child_main(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    paths = {k: Path(v) for k, v in json.loads(args.paths).items()}
    run = {"worker": child_worker, "memory": child_memory, "video": child_video, "preset": child_preset}[
        args.kind
    ]
    result = run(args, paths)
    result["peak_rss_mb"] = peak_rss_mb()
    if args.device.startswith("cuda"):
        result["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
        result["gpu"] = torch.cuda.get_device_name()
    Path(args.result).write_text(json.dumps(result))


# --------------------------------------------------------------------------- parent side


def _child_command(
    kind: str, args: argparse.Namespace, paths: dict[str, Path], result: Path, **extra: object
) -> list[str]:
    cmd = [sys.executable, __file__, "--child", "--kind", kind, "--result", str(result)]
    settings = {
        "frames": args.frames,
        "height": args.height,
        "width": args.width,
        "threads": args.threads,
        "warmup": args.warmup,
        "modes": ",".join(args.modes),
        "device": args.device,
        "frame_batch_size": args.frame_batch_size,
        **extra,
    }
    for key, value in settings.items():
        cmd += [f"--{key.replace('_', '-')}", str(value)]
    return [*cmd, "--paths", json.dumps({k: str(v) for k, v in paths.items()})]


def run_child(
    kind: str, args: argparse.Namespace, paths: dict[str, Path], result: Path, **extra: object
) -> dict:
    LOG.info("child %s %s", kind, extra or "")
    load_before = os.getloadavg()[0]
    subprocess.run(_child_command(kind, args, paths, result, **extra), check=True)
    out = json.loads(result.read_text())
    out["load_average_1min"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    return out


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 1.0


def agreement(ref: dict, other: dict) -> dict:
    """How far ``other`` is from ``ref`` on the same frames.

    same_first_query_share: frames whose kept (first-query) box comes from the same query;
    mean_box_iou: over frames where both kept a box; mean_mask_iou: over frames (both empty
    counts 1); pixel_agreement: share of pixels with the same mask value;
    confident_pixel_agreement: the same on pixels where ref's probability is < 0.25 or > 0.75
    (random weights leave many logits near 0, where any rounding flips the mask);
    mean_abs_prob_diff: mean |p_ref - p_other|.
    """
    q1, q2 = ref["first_query"], other["first_query"]
    both = [i for i in range(len(q1)) if q1[i] >= 0 and q2[i] >= 0]
    ious = []
    for m1, m2 in zip(ref["masks"], other["masks"]):
        union = np.logical_or(m1, m2).sum()
        ious.append(1.0 if union == 0 else np.logical_and(m1, m2).sum() / union)
    confident = np.abs(ref["probs"] - 0.5) > 0.25
    same_pixels = ref["masks"] == other["masks"]
    return {
        "same_first_query_share": float(np.mean(q1 == q2)),
        "mean_box_iou": float(np.mean([box_iou(ref["boxes224"][i], other["boxes224"][i]) for i in both]))
        if both
        else float("nan"),
        "mean_mask_iou": float(np.mean(ious)),
        "pixel_agreement": float(same_pixels.mean()),
        "confident_pixel_share": float(confident.mean()),
        "confident_pixel_agreement": float(same_pixels[confident].mean())
        if confident.any()
        else float("nan"),
        "mean_abs_prob_diff": float(np.abs(ref["probs"] - other["probs"]).mean()),
    }


def parent_main(args: argparse.Namespace) -> dict:
    paths = ensure_models(
        Path(args.models_dir),
        args.sam2,
        args.video_sam2 if args.video_lengths else None,
        preset_video="best" in args.presets,
    )
    report: dict = {
        "machine": machine(),
        "settings": vars(args).copy(),
        "timing": {},
        "memory": {},
        "video": {},
        "presets": {},
    }
    with tempfile.TemporaryDirectory(prefix="tgs-bench-") as tmp:
        work = Path(tmp)
        if args.modes:
            load_before = os.getloadavg()[0]
            timing = time_modes(args, paths, work)
            report["timing_load_average_1min"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
            report["workers"] = timing["workers"]
            for mode, t in timing["times"].items():
                report["timing"][mode] = {
                    "wall_s_per_sample": sum(t["wall"]) / args.frames * 10,
                    "cpu_s_per_sample": sum(t["cpu"]) / args.frames * 10,
                    "wall_s_per_frame": t["wall"],
                }
            outputs = {}
            for mode in args.modes:
                with np.load(work / f"worker-{mode}.json.npz") as data:
                    outputs[mode] = {k: data[k] for k in data.files}
            report["ratios"] = _ratios(report["timing"], args.modes)
            for mode in args.modes:
                for ref in ("naive", "fp32"):
                    if ref in outputs and mode != ref and mode != "naive":
                        report[f"{mode}_vs_{ref}"] = agreement(outputs[ref], outputs[mode])
        for mode in args.modes if args.memory_frames else ():
            report["memory"][mode] = run_child(
                "memory", args, paths, work / f"memory-{mode}.json", mode=mode, frames=args.memory_frames
            )
        for length in args.video_lengths:
            result = run_child("video", args, paths, work / f"video-{length}.json", frames=length)
            result["wall_s_per_frame"] = result["wall_s"] / length
            report["video"][str(length)] = result
        for dtype in args.preset_dtypes if args.presets else ():
            runs = {}
            for name in args.presets:
                result = run_child(
                    "preset", args, paths, work / f"preset-{name}-{dtype}.json", preset=name, dtype=dtype
                )
                result["wall_s_per_frame"] = result["wall_s"] / args.frames
                result["wall_s_per_sample"] = result["wall_s_per_frame"] * 10
                result["cpu_s_per_sample"] = result["cpu_s"] / args.frames * 10
                runs[name] = result
            if "paper" in runs and "best" in runs:
                runs["best/paper"] = {
                    "wall": runs["best"]["wall_s"] / runs["paper"]["wall_s"],
                    "cpu": runs["best"]["cpu_s"] / runs["paper"]["cpu_s"],
                    "peak_rss": runs["best"]["peak_rss_mb"] / runs["paper"]["peak_rss_mb"],
                }
            report["presets"][dtype] = runs
    return report


def _ratios(timing: dict, modes: list[str]) -> dict:
    """naive / mode on summed times, and the median of per-frame ratios (robust to load spikes)."""
    ratios = {}
    pairs = [("naive", m) for m in modes if m != "naive"]
    pairs += [("fp32", "bf16")]
    pairs += [(f"{d}-grid", f"{d}{k}") for d in ("fp32", "bf16") for k in ("", "-gather")]
    for base, other in pairs:
        if base in modes and other in modes:
            b, o = timing[base], timing[other]
            per_frame = np.array(b["wall_s_per_frame"]) / np.array(o["wall_s_per_frame"])
            ratios[f"{base}/{other}"] = {
                "wall": b["wall_s_per_sample"] / o["wall_s_per_sample"],
                "cpu": b["cpu_s_per_sample"] / o["cpu_s_per_sample"],
                "median_per_frame_wall": float(np.median(per_frame)),
            }
    return ratios


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=10, help="frames in the timing run (a sample is 10)")
    p.add_argument("--warmup", type=int, default=1, help="untimed one-frame runs per mode before timing")
    p.add_argument(
        "--memory-frames", type=int, default=2, help="frames of the per-mode memory runs (0: skip)"
    )
    p.add_argument("--height", type=int, default=720)
    p.add_argument("--width", type=int, default=1280)
    p.add_argument(
        "--sam2", default="large", choices=["large", "small", "tiny"], help="SAM2.1 size, image mode"
    )
    p.add_argument(
        "--modes", default="naive,fp32,bf16", type=lambda s: [m for m in s.split(",") if m], help="'' to skip"
    )
    p.add_argument("--video-lengths", default="10,30,100", type=lambda s: [int(x) for x in s.split(",") if x])
    p.add_argument(
        "--video-sam2", default="tiny", choices=["large", "small", "tiny"], help="SAM2.1 size, video"
    )
    p.add_argument(
        "--presets",
        default="",
        type=lambda s: [m for m in s.split(",") if m],
        help="presets run end to end, one process each (e.g. paper,best; '' to skip)",
    )
    p.add_argument(
        "--preset-dtypes",
        default="bf16",
        type=lambda s: [m for m in s.split(",") if m],
        help="e.g. bf16,fp32",
    )
    p.add_argument("--threads", type=int, default=2, help="torch threads in every mode")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]; every mode runs there")
    p.add_argument(
        "--frame-batch-size", type=int, default=1, help="frames per forward in the --presets runs (GPU: try 10)"
    )
    p.add_argument("--models-dir", default=str(Path(tempfile.gettempdir()) / "tgs-bench-models"))
    p.add_argument("--out", default=None, help="write the JSON report here (default: stdout)")
    # child-process arguments
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--kind", help=argparse.SUPPRESS)
    p.add_argument("--mode", help=argparse.SUPPRESS)
    p.add_argument("--preset", help=argparse.SUPPRESS)
    p.add_argument("--dtype", help=argparse.SUPPRESS)
    p.add_argument("--paths", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    known = ("naive", *(f"{d}{k}" for d in ("fp32", "bf16") for k in ("", "-grid", "-gather")))
    bad = [m for m in args.modes if m not in known]
    if bad:
        p.error(f"unknown mode(s) {bad}; choose from {', '.join(known)}")
    bad = [m for m in args.presets if m not in ("paper", "best")]
    if bad:
        p.error(f"unknown preset(s) {bad}; choose from paper, best")
    bad = [d for d in args.preset_dtypes if d not in ("fp32", "bf16")]
    if bad:
        p.error(f"unknown preset dtype(s) {bad}; choose from fp32, bf16")
    return args


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("transformers").setLevel(logging.ERROR)
    args = parse_args(argv)
    if args.child:
        child_main(args)
        return
    report = parent_main(args)
    text = json.dumps(report, indent=2, default=float)
    if args.out:
        Path(args.out).write_text(text + "\n")
        LOG.info("wrote %s", args.out)
    else:
        sys.stdout.write(text + "\n")


if __name__ == "__main__":
    main()
