"""Ref-Thinker speed: samples/s and generated tokens/s, batch 1 vs 8, fp32 vs bf16, encoder cost.

A random model is built from a config preset (weights do not change the compute):

* ``full``: the paper's sizes (LLaMA-2-7B + 21 tokens, CLIP ViT-L/14 at 224 px with
  ``hidden_states[23]``, BEATs iter3+, 2-layer bert-base Q-Formers with 32 queries, LoRA r=8
  unmerged), about 7.3 B parameters: needs a GPU (14.6 GB in bf16, 29 GB in fp32).
* ``cpu-small``: what a laptop CPU can run. Same structure and the same sequence lengths
  (256 CLIP patches per frame through 24 layers, 48 BEATs tokens per chunk through 12
  layers, 2 x 320 projected tokens, the real prompt), narrower: LLaMA 1024 wide x 4 layers,
  CLIP and BEATs 256 wide; the Q-Formers keep bert-base width.

Per dtype and batch size, after one warm-up call, the fastest of ``--repeats`` calls of:

* ``encode``: both encoders + projectors (``encode_video`` + ``encode_audio``) on the batch;
* ``prefill``: the full generate path with 1 new token (preprocessed inputs, splice,
  prompt forward);
* ``generate``: the same with exactly ``--new-tokens`` new tokens (``</s>`` suppressed).

From these: per-sample encoder cost, decode time per step, samples/s and generated
tokens/s at ``--new-tokens``, and samples/s projected to the paper's 256-token answers
(prefill + 256 decode steps). Preprocessing (PIL resize of 1280x720 frames, CLIP
normalisation, fbank of 10 s of audio) is timed once per sample, on the CPU.

The prompt is tokenized with the tests' small BPE tokenizer (the LLaMA tokenizer cannot be
downloaded here); it gives a prompt of similar length.

``--video-sharing``: one video with 1, 2, 4, ... expressions (``--expression-counts``),
each dtype; per count, the encoders + prefill of all its expressions (generate with 1 new
token, preprocessed inputs) the plain way (every expression alone, batches of
``--batch``) and shared (``RefThinker``'s per-video path: encoders once, the common prompt
prefix prefilled once, each expression's suffix from its cache), as CPU seconds per
expression and their ratio; then, at ``--answer-expressions``, whole answers of
``--answer-tokens`` tokens (``</s>`` suppressed) both ways: samples/s and whether the
tokens are identical.

``--decode-modes dynamic static``: decode step (ms) and samples/s at ``--new-tokens`` per
batch size with the dynamic and the static KV cache (``--compile``: also the static cache
with a compiled decoding step), and whether the answers are identical.

Examples::

    nice -n 10 python benchmarks/think_bench.py --preset cpu-small --threads 1 --clock cpu --out think_cpu.json
    python benchmarks/think_bench.py --preset full --device cuda --new-tokens 64 --out think_h100.json
    nice -n 10 python benchmarks/think_bench.py --preset cpu-small --threads 1 --clock cpu --video-sharing
    python benchmarks/think_bench.py --preset full --device cuda --dtypes bf16 --batch-sizes 1 8 32 \
        --decode-modes dynamic static --compile --new-tokens 64
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

LOG = logging.getLogger("think_bench")
PAPER_NEW_TOKENS = 256
EXPRESSIONS = ("The object making the loudest sound.", "A man playing the guitar on the left.")
# Ref-AVSBench-like expressions of one video (different lengths), for --video-sharing.
VIDEO_EXPRESSIONS = (
    "The object making the loudest sound.",
    "A man playing the guitar on the left.",
    "The dog.",
    "The instrument being played after the drum stops.",
    "Who is singing?",
    "The person sitting next to the piano player.",
    "The object that makes a sound first.",
    "The child on the right who is laughing.",
    "The guitar.",
    "The woman in the red dress playing the violin in the middle of the stage.",
    "The vehicle making the engine noise.",
    "The animal that barks.",
    "The musician without an instrument.",
    "The largest drum.",
    "The thing producing the high-pitched sound during the whole video.",
    "The cat.",
)


def preset_config(name: str, first_added_token_id: int) -> Any:
    """RefThinkerConfig of a preset (vocab 32021 either way; special tokens after the test BPE)."""
    from tgs.think.ref_thinker.checkpoint import LLM_LORA_TARGETS
    from tgs.think.ref_thinker.configuration import DEFAULT_AUDIO_CONFIG, RefThinkerConfig

    lora = {"r": 8, "lora_alpha": 16, "lora_dropout": 0.05, "target_modules": LLM_LORA_TARGETS}
    common = {"first_added_token_id": first_added_token_id, "lora": lora}
    if name == "full":
        return RefThinkerConfig(**common)
    if name == "cpu-small":
        return RefThinkerConfig(
            hidden_size=1024, intermediate_size=2816, num_hidden_layers=4, num_attention_heads=16,
            vision_config={"hidden_size": 256, "intermediate_size": 1024, "num_hidden_layers": 24,
                           "num_attention_heads": 4, "patch_size": 14, "image_size": 224, "projection_dim": 256,
                           "hidden_act": "quick_gelu"},
            audio_config={**DEFAULT_AUDIO_CONFIG, "encoder_embed_dim": 256, "encoder_ffn_embed_dim": 1024,
                          "encoder_attention_heads": 4},
            **common,
        )  # fmt: skip
    raise ValueError(f"preset: expected full or cpu-small, got {name!r}")


def build(preset: str, device: torch.device, seed: int = 0, merge: bool = False) -> tuple[Any, Any]:
    """(random RefThinker thinker in fp32 on ``device``, its config); ``merge`` folds the LoRA
    adapter into the projections as ``RefThinker.from_pretrained`` does by default."""
    from transformers import CLIPImageProcessorPil

    from tgs.testing.tiny_thinker import _with_added_tokens, build_tiny_llama_tokenizer
    from tgs.think.ref_thinker.checkpoint import inject_lora, merge_lora
    from tgs.think.ref_thinker.modeling import RefThinkerForCausalLM
    from tgs.think.ref_thinker.processing import RefThinkerProcessor
    from tgs.think.ref_thinker.thinker import RefThinker

    tokenizer = _with_added_tokens(build_tiny_llama_tokenizer())
    config = preset_config(preset, len(tokenizer) - 21)
    torch.manual_seed(seed)
    with device:
        model = RefThinkerForCausalLM(config)
        inject_lora(model, config.lora)
    if merge:
        merge_lora(model)
    model.eval()
    processor = RefThinkerProcessor(tokenizer, CLIPImageProcessorPil())
    return RefThinker(model, processor, batch_size=8), config


def synthetic_items(n: int) -> list[tuple[Any, Any]]:
    from tgs.types import Clip, Query

    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        frames = rng.integers(0, 256, (10, 720, 1280, 3), dtype=np.uint8)
        audio = (rng.standard_normal(160000) * 0.1).astype(np.float32)
        clip = Clip(frames, audio, 16000, np.arange(10, dtype=np.float64))
        out.append((Query(uid=f"s{i}", expression=EXPRESSIONS[i % len(EXPRESSIONS)]), clip))
    return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device, repeats: int, clock: str) -> float:
    """Fastest of ``repeats`` calls, in seconds of ``clock``.

    "wall": elapsed time. "cpu": CPU time of this process (all its threads); with one
    thread it equals the elapsed time of an idle machine and, unlike wall time, does not
    grow when other jobs share the cores. The minimum is the estimate least disturbed by
    those jobs.
    """
    now = time.perf_counter if clock == "wall" else time.process_time
    times = []
    for _ in range(repeats):
        start = now()
        fn()
        _sync(device)
        times.append(now() - start)
    return min(times)


def measure(
    thinker: Any, samples: list[Any], batch: int, new_tokens: int, repeats: int, clock: str, **decode: Any
) -> dict[str, Any]:
    """Encoders, prefill and generate timings of one batch; ``decode``: GenerationSettings' decode/compile."""
    from tgs.think.ref_thinker.generation import GenerationSettings

    device, dtype = thinker.device, thinker.dtype
    chunk = samples[:batch]
    inputs = thinker.processor.collate(
        [s.query.expression for s in chunk], [s.pixel_values for s in chunk], [s.audio_fbank for s in chunk]
    ).to(device, dtype)

    def encode() -> None:
        with torch.inference_mode(), _autocast(device, dtype):
            thinker.model.encode_video(inputs.pixel_values)
            thinker.model.encode_audio(inputs.audio_fbank)

    answers: list[str] = []

    def generate(n: int) -> Callable[[], None]:
        def run() -> None:
            thinker.settings = GenerationSettings(max_new_tokens=n, min_new_tokens=n, **decode)
            texts = thinker.answer_texts(chunk)
            assert len(texts) == batch
            answers[:] = texts

        return run

    generate(3 if decode.get("compile") else 1)()  # warm-up (allocations, kernel selection; compiles a decode step)
    t_encode = timed(encode, device, repeats, clock)
    t_prefill = timed(generate(1), device, repeats, clock)
    t_generate = timed(generate(new_tokens), device, repeats, clock)
    step = (t_generate - t_prefill) / max(new_tokens - 1, 1)
    paper_time = t_prefill + (PAPER_NEW_TOKENS - 1) * step
    return {
        "batch": batch,
        "encode_s_per_sample": t_encode / batch,
        "prefill_s": t_prefill,
        "generate_s": t_generate,
        "decode_step_s": step,
        "samples_per_s": batch / t_generate,
        "tokens_per_s": batch * new_tokens / t_generate,
        "samples_per_s_at_256": batch / paper_time,
        "encode_share_at_256": t_encode / paper_time,
        "answers": list(answers),
    }


def measure_sharing(
    thinker: Any, sample: Any, counts: list[int], batch: int, clock: str, answer_expressions: int, answer_tokens: int
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One video: encoders + prefill per expression, plain vs shared, per count; then whole answers.

    plain: every expression alone (its own encoders and whole prompt), batches of ``batch``,
    as ``share_across_expressions=False``; shared: ``prefill_clip`` (encoders once, common
    prefix once) and each batch of rows continued by ``generate_after_prefix``, as
    ``RefThinker.think_each`` does. Both on the same preprocessed frames and audio.
    """
    from tgs.think.ref_thinker.generation import (
        GenerationSettings,
        generate_after_prefix,
        generate_ids,
        prefill_clip,
    )

    model, processor = thinker.model, thinker.processor
    eos, pad = processor.tokenizer.eos_token_id, processor.tokenizer.pad_token_id
    now = time.perf_counter if clock == "wall" else time.process_time

    def plain(expressions: list[str], settings: Any) -> list[list[int]]:
        ids: list[list[int]] = []
        for start in range(0, len(expressions), batch):
            part = expressions[start : start + batch]
            inputs = processor.collate(part, [sample.pixel_values] * len(part), [sample.audio_fbank] * len(part))
            ids += generate_ids(model, inputs, settings, eos_token_id=eos, pad_token_id=pad)
        return ids

    def shared(expressions: list[str], settings: Any) -> list[list[int]]:
        prompts = [processor.prompt_ids(e) for e in expressions]
        rows = prefill_clip(model, sample.pixel_values, sample.audio_fbank, prompts, settings)
        ids: list[list[int]] = []
        for start in range(0, len(rows), batch):
            ids += generate_after_prefix(model, rows[start : start + batch], settings, eos_token_id=eos, pad_token_id=pad)
        return ids

    def run(fn: Callable[[list[str], Any], list[list[int]]], expressions: list[str], tokens: int) -> tuple[float, list]:
        settings = GenerationSettings(max_new_tokens=tokens, min_new_tokens=tokens)
        start = now()
        ids = fn(expressions, settings)
        _sync(thinker.device)
        return now() - start, ids

    expressions = [VIDEO_EXPRESSIONS[i % len(VIDEO_EXPRESSIONS)] for i in range(max([*counts, answer_expressions]))]
    run(plain, expressions[:2], 1)  # warm-up
    run(shared, expressions[:2], 1)
    rows = []
    for n in counts:
        t_plain, ids_plain = run(plain, expressions[:n], 1)
        t_shared, ids_shared = run(shared, expressions[:n], 1)
        rows.append({
            "expressions": n,
            "plain_s_per_expression": t_plain / n,
            "shared_s_per_expression": t_shared / n,
            "ratio": t_plain / t_shared,
            "first_tokens_identical": ids_plain == ids_shared,
        })  # fmt: skip
        LOG.info("%s", json.dumps(rows[-1]))
    n = answer_expressions
    t_plain, ids_plain = run(plain, expressions[:n], answer_tokens)
    t_shared, ids_shared = run(shared, expressions[:n], answer_tokens)
    answers = {
        "expressions": n,
        "tokens": answer_tokens,
        "plain_samples_per_s": n / t_plain,
        "shared_samples_per_s": n / t_shared,
        "ratio": t_plain / t_shared,
        "identical_answers": sum(a == b for a, b in zip(ids_plain, ids_shared)),
        "first_difference": [_first_difference(a, b) for a, b in zip(ids_plain, ids_shared)],
    }
    LOG.info("%s", json.dumps(answers))
    return rows, answers


def _first_difference(a: list[int], b: list[int]) -> int | None:
    """Index of the first differing token (None: identical)."""
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def _autocast(device: torch.device, dtype: torch.dtype) -> Any:
    import contextlib

    if dtype in (torch.bfloat16, torch.float16):
        return torch.autocast(device_type=device.type, dtype=dtype)
    return contextlib.nullcontext()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="cpu-small", choices=("cpu-small", "full"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtypes", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--merge-lora", action="store_true", help="fold LoRA into the weights (the loader's default)")
    parser.add_argument(
        "--default-allocator", action="store_true",
        help="leave glibc's malloc settings alone (tgs keeps freed memory on CPU, see tgs.cpu_memory)",
    )  # fmt: skip
    parser.add_argument(
        "--clock", choices=("wall", "cpu"), default="wall",
        help="cpu: process CPU time (use with --threads 1 on a shared machine)",
    )  # fmt: skip
    parser.add_argument("--video-sharing", action="store_true",
                        help="one video, several expressions: plain vs shared encoders + prefill, and whole answers")
    parser.add_argument("--expression-counts", nargs="+", type=int, default=[1, 2, 4, 8, 16])
    parser.add_argument("--batch", type=int, default=8, help="--video-sharing: rows per generate call")
    parser.add_argument("--answer-expressions", type=int, default=8)
    parser.add_argument("--answer-tokens", type=int, default=PAPER_NEW_TOKENS)
    parser.add_argument("--decode-modes", nargs="+", choices=("dynamic", "static"), default=["dynamic"],
                        help="KV cache of the decoding loop; each is timed and its answers compared with the first")
    parser.add_argument("--compile", action="store_true", help="also time the static cache with a compiled decode step")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)

    from tgs.devices import resolve_device, resolve_dtype

    device = resolve_device(args.device)
    from tgs.cpu_memory import keep_freed_memory

    allocator_tuned = not args.default_allocator and keep_freed_memory(device)  # as the tgs commands do
    start = time.perf_counter()
    thinker, config = build(args.preset, device, merge=args.merge_lora)
    build_s = time.perf_counter() - start
    params = sum(p.numel() for p in thinker.model.parameters())
    LOG.info("built %s: %.3f B parameters in %.1f s", args.preset, params / 1e9, build_s)

    items = synthetic_items(1 if args.video_sharing else max(args.batch_sizes))
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    start = clock()
    samples = [thinker.prepare(q, c) for q, c in items]
    preprocess = (clock() - start) / len(items)
    prompt_tokens = len(thinker.processor.tokenizer(thinker.processor.prompt(EXPRESSIONS[0]), add_special_tokens=False)["input_ids"])

    results, sharing, sharing_answers = [], [], []
    modes: list[dict[str, Any]] = [{"decode": m} for m in args.decode_modes]
    if args.compile:
        modes.append({"decode": "static", "compile": True})
    for dtype_name in args.dtypes:
        dtype = resolve_dtype(dtype_name, device)
        thinker.model.to(dtype)
        if args.video_sharing:
            rows, answers = measure_sharing(thinker, samples[0], args.expression_counts, args.batch, args.clock,
                                            args.answer_expressions, args.answer_tokens)  # fmt: skip
            sharing += [{"dtype": dtype_name, **r} for r in rows]
            sharing_answers.append({"dtype": dtype_name, **answers})
            continue
        for batch in args.batch_sizes:
            reference = None
            for mode in modes:
                measured = measure(thinker, samples, batch, args.new_tokens, args.repeats, args.clock, **mode)
                texts = measured.pop("answers")
                reference = texts if reference is None else reference
                row = {"dtype": dtype_name, "decode": _mode_name(mode), "same_answers": texts == reference, **measured}
                LOG.info("%s", json.dumps(row))
                results.append(row)
    report = {
        "preset": args.preset,
        "lora": "merged" if args.merge_lora else "adapter",
        "freed_memory_kept": allocator_tuned,
        "parameters": params,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
        "threads": torch.get_num_threads(),
        "clock": args.clock,
        "new_tokens": args.new_tokens,
        "prompt_tokens": prompt_tokens,
        "sequence_tokens": prompt_tokens - 2 + 10 * (config.num_video_query_tokens + config.num_audio_query_tokens),
        "preprocess_s_per_sample": preprocess,
        "build_s": build_s,
        "torch": torch.__version__,
        "results": results,
        "video_sharing": sharing,
        "video_sharing_answers": sharing_answers,
    }
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    sys.stdout.write(markdown(report) + "\n")
    return 0


def _mode_name(mode: dict[str, Any]) -> str:
    return mode["decode"] + ("+compile" if mode.get("compile") else "")


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"preset {report['preset']} ({report['parameters'] / 1e9:.2f} B parameters), {report['device']} "
        f"({report['device_name']}, {report['threads']} threads, {report['clock']} clock), {report['new_tokens']} new tokens, "
        f"sequence {report['sequence_tokens']} tokens; preprocessing {report['preprocess_s_per_sample']:.3f} s/sample",
    ]
    if report["results"]:
        lines += [
            "",
            "| dtype | decode | batch | encoders+projectors s/sample | prefill s | decode step ms | samples/s | tokens/s "
            "| samples/s at 256 tokens | same answers |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
    for r in report["results"]:
        lines.append(
            f"| {r['dtype']} | {r['decode']} | {r['batch']} | {r['encode_s_per_sample']:.3f} | {r['prefill_s']:.3f} | "
            f"{r['decode_step_s'] * 1000:.1f} | {r['samples_per_s']:.3f} | {r['tokens_per_s']:.1f} | "
            f"{r['samples_per_s_at_256']:.4f} | {'yes' if r['same_answers'] else 'no'} |"
        )
    if report["video_sharing"]:
        lines += [
            "",
            "| dtype | expressions | encoders + prefill s/expression, plain | shared | plain / shared | same first token |",
            "|---|---|---|---|---|---|",
        ]
    for r in report["video_sharing"]:
        lines.append(
            f"| {r['dtype']} | {r['expressions']} | {r['plain_s_per_expression']:.3f} | "
            f"{r['shared_s_per_expression']:.3f} | {r['ratio']:.2f}x | {'yes' if r['first_tokens_identical'] else 'no'} |"
        )
    if report["video_sharing_answers"]:
        lines += [
            "",
            "| dtype | expressions | tokens | samples/s, plain | shared | shared / plain | identical answers |",
            "|---|---|---|---|---|---|---|",
        ]
    for r in report["video_sharing_answers"]:
        lines.append(
            f"| {r['dtype']} | {r['expressions']} | {r['tokens']} | {r['plain_samples_per_s']:.4f} | "
            f"{r['shared_samples_per_s']:.4f} | {r['ratio']:.2f}x | {r['identical_answers']} of {r['expressions']} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
