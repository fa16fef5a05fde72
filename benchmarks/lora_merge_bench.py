"""Decode step of Ref-Thinker with the LoRA adapter kept vs merged into the weights.

Both models are built from the same random weights (``think_bench.build``) and loaded at
once; their decode steps are timed in alternating order so that other load on the machine
hits both alike. Decode step = (generate N+1 tokens - generate 1 token) / N, the fastest of
``--repeats`` rounds. Also checks that both give the same answers.

Examples::

    nice -n 10 python benchmarks/lora_merge_bench.py --preset cpu-small --threads 1 --dtypes bf16 fp32
    python benchmarks/lora_merge_bench.py --preset full --device cuda --dtypes bf16
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import think_bench  # benchmarks/ is not a package

LOG = logging.getLogger("lora_merge_bench")


def answer_seconds(thinker, samples, new_tokens: int, clock) -> tuple[float, list[str]]:
    from tgs.think.ref_thinker.generation import GenerationSettings

    thinker.settings = GenerationSettings(max_new_tokens=new_tokens, min_new_tokens=new_tokens)
    start = clock()
    texts = thinker.answer_texts(samples)
    think_bench._sync(thinker.device)
    return clock() - start, texts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="cpu-small", choices=("cpu-small", "full"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtypes", nargs="+", default=["bf16", "fp32"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1])
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)

    from tgs.devices import resolve_device, resolve_dtype
    from tgs.think.ref_thinker.checkpoint import merge_lora

    device = resolve_device(args.device)
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    adapter, _ = think_bench.build(args.preset, device)
    merged = copy.deepcopy(adapter)
    folded = merge_lora(merged.model)
    items = think_bench.synthetic_items(max(args.batch_sizes))
    samples = [adapter.prepare(q, c) for q, c in items]
    rows = []
    for dtype_name in args.dtypes:
        dtype = resolve_dtype(dtype_name, device)
        for thinker in (adapter, merged):
            thinker.model.to(dtype)
        for batch in args.batch_sizes:
            chunk = samples[:batch]
            steps: dict[str, list[float]] = {"adapter": [], "merged": []}
            answers = {}
            for thinker in (adapter, merged):  # warm-up
                answer_seconds(thinker, chunk, 1, clock)
            for _ in range(args.repeats):
                for name, thinker in (("adapter", adapter), ("merged", merged)):
                    one, _ = answer_seconds(thinker, chunk, 1, clock)
                    many, texts = answer_seconds(thinker, chunk, args.new_tokens + 1, clock)
                    steps[name].append((many - one) / args.new_tokens)
                    answers[name] = texts
            row = {
                "dtype": dtype_name,
                "batch": batch,
                "decode_step_s_adapter": min(steps["adapter"]),
                "decode_step_s_merged": min(steps["merged"]),
                "speedup": min(steps["adapter"]) / min(steps["merged"]),
                "same_answers": answers["adapter"] == answers["merged"],
            }
            LOG.info("%s", json.dumps(row))
            rows.append(row)
    report = {"preset": args.preset, "device": str(device), "threads": torch.get_num_threads(),
              "clock": args.clock, "new_tokens": args.new_tokens, "lora_layers_merged": folded,
              "torch": torch.__version__, "results": rows}  # fmt: skip
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    lines = ["| dtype | batch | decode step, adapter | decode step, merged | merged speed-up | same answers |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    lines += [
        f"| {r['dtype']} | {r['batch']} | {r['decode_step_s_adapter']:.4f} s | {r['decode_step_s_merged']:.4f} s "
        f"| {r['speedup']:.2f}x | {r['same_answers']} |"
        for r in rows
    ]
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
