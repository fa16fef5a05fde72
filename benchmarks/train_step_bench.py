"""Ref-Thinker fine-tuning: memory per GPU (computed) and time per epoch (from measured step times).

Memory (``--memory``): the parameter counts of the paper's model come from the full-size
config built on the meta device (no weights, no GPU): 7.30 B parameters, 428.6 M trained
(LoRA r=8, both projectors, embed_tokens, lm_head). Bytes per rank under DeepSpeed ZeRO-2 with
CPU optimizer offload (``tgs/train/deepspeed/zero2_offload.json``, the paper's):

* parameters: bf16, replicated (ZeRO-2 does not partition them): 2 B x all parameters, GPU;
* gradients: bf16 reduce buckets on the GPU (``reduce_bucket_size`` elements, two with
  ``overlap_comm``); the rank's averaged fp32 partition (4 B x trained / N) on the CPU;
* optimizer: fp32 master weights + Adam m and v, 12 B x trained / N, on the CPU.

Activations depend on the sequence and are estimated (not measured here) for gradient
checkpointing: one bf16 hidden state per LLaMA layer and token, one layer recomputed, the
logits (bf16, their fp32 copy in the loss and its gradient), CLIP's kept hidden states.

Time (default): the training step (encoders, projectors, splice, LLaMA with gradient
checkpointing, loss, backward, AdamW on the trained tensors) of random models that keep every
width of the paper's model but only ``--layers`` LLaMA layers (default 1 and 2). The step
time is linear in the layer count, so two measurements give the fixed part (encoders,
projectors, embeddings, head, optimizer) and the per-layer part, extrapolated to 32 layers.
Time per epoch = micro-batches per process x step time (+ the optimizer step per accumulation).

Examples::

    python benchmarks/train_step_bench.py --memory
    nice -n 10 python benchmarks/train_step_bench.py --device cpu --batch 1 --threads 2 --out train_cpu.json
    python benchmarks/train_step_bench.py --device cuda --batch 4 --dtype bf16 --out train_h100.json
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import torch

LOG = logging.getLogger("train_step_bench")
PAPER_ROWS = 14113  # train rows of the Ref-AVSBench metadata CSV
GiB = 1024**3


def full_config(num_layers: int | None = None) -> Any:
    """The paper's RefThinkerConfig (its defaults) with the recipe's LoRA; optionally fewer LLaMA layers."""
    from tgs.think.ref_thinker.configuration import RefThinkerConfig
    from tgs.train.config import TrainRecipe

    extra = {} if num_layers is None else {"num_hidden_layers": num_layers}
    return RefThinkerConfig(lora=TrainRecipe().lora, **extra)


def parameter_counts() -> dict[str, int]:
    """Parameters of the full model by group, and the trained ones (meta device: no memory)."""
    from tgs.think.ref_thinker.modeling import build_empty_model
    from tgs.train.config import TrainRecipe
    from tgs.train.model import freeze_for_training

    model = build_empty_model(full_config())
    summary = freeze_for_training(model, TrainRecipe())
    return {"total": summary.total, "trainable": summary.trainable, **{f"trainable.{k}": v for k, v in summary.groups.items()}}


def zero2_offload_memory(counts: dict[str, int], world_size: int, *, tokens: int, batch: int) -> dict[str, float]:
    """GiB per rank under ZeRO-2 + CPU optimizer offload (computed) and activations (estimated)."""
    cfg = full_config()
    reduce_bucket = 1e8  # zero2_offload.json reduce_bucket_size (elements)
    n_tok = tokens * batch
    h, inter, layers, vocab = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers, cfg.vocab_size
    clip = cfg.vision_config
    clip_states = (clip["num_hidden_layers"] + 1) * cfg.num_frames * batch * (cfg.patches_per_frame + 1) * clip["hidden_size"]
    activations = {
        "layer checkpoints (bf16)": layers * n_tok * h * 2,
        "one recomputed layer (bf16)": n_tok * (6 * h + 3 * inter) * 2,
        "logits bf16 + fp32 loss copy + grad": n_tok * vocab * (2 + 4 + 4),
        "CLIP hidden states kept (bf16)": clip_states * 2,
    }
    out = {
        "gpu.parameters (bf16, all)": counts["total"] * 2 / GiB,
        "gpu.gradient buckets (bf16, 2 x reduce_bucket_size)": 2 * reduce_bucket * 2 / GiB,
        "cpu.gradient partition (fp32, trained / N)": counts["trainable"] * 4 / world_size / GiB,
        "cpu.optimizer (fp32 master + Adam m, v: 12 B x trained / N)": counts["trainable"] * 12 / world_size / GiB,
    }
    out.update({f"gpu.activations est. {k}": v / GiB for k, v in activations.items()})
    out["gpu.total (parameters + buckets + activations est.)"] = sum(v for k, v in out.items() if k.startswith("gpu."))
    out["cpu.total per rank"] = sum(v for k, v in out.items() if k.startswith("cpu.") and "total" not in k)
    out["without offload: gpu.optimizer + gradient partition (12 + 2 B x trained / N)"] = counts["trainable"] * 14 / world_size / GiB
    out["plain DDP, no ZeRO: gpu weights+grads+Adam (frozen bf16, trained fp32 x4)"] = (
        (counts["total"] - counts["trainable"]) * 2 + counts["trainable"] * 16
    ) / GiB
    return out


def flops_per_sample(tokens: int) -> dict[str, float]:
    """Model FLOPs of one training sample of the full model (gradient checkpointing, frozen LLaMA).

    LLaMA projections: forward, recomputed forward and the input-gradient pass: 3 x 2 FLOPs
    per weight and token (the frozen weights get no weight gradient); attention scores the
    same three passes, the backward counted twice; LoRA: four passes (weight gradients too);
    lm_head: forward + input and weight gradients; CLIP and BEATs: forward only (no_grad).
    The Q-Formers and MLP projectors add < 0.5 % and are left out.
    """
    cfg = full_config()
    h, inter, layers, vocab = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers, cfg.vocab_size
    per_layer = 4 * h * h + 3 * h * inter
    clip, frames = cfg.vision_config, cfg.num_frames
    clip_tokens = cfg.patches_per_frame + 1
    clip_params = clip["num_hidden_layers"] * (4 * clip["hidden_size"] ** 2 + 2 * clip["hidden_size"] * clip["intermediate_size"])
    beats = cfg.audio_config
    beats_params = beats["encoder_layers"] * (4 * beats["encoder_embed_dim"] ** 2 + 2 * beats["encoder_embed_dim"] * beats["encoder_ffn_embed_dim"])
    beats_tokens = (98 // 16) * (128 // 16)
    lora = layers * cfg.lora["r"] * (4 * 2 * h + 3 * (h + inter))
    return {
        "llama_projections": 3 * 2 * layers * per_layer * tokens,
        "llama_attention": 4 * 4 * layers * tokens * tokens * h,
        "lora": 4 * 2 * lora * tokens,
        "lm_head": 3 * 2 * vocab * h * tokens,
        "clip_forward": frames * (2 * clip_params * clip_tokens + 4 * clip["num_hidden_layers"] * clip_tokens**2 * clip["hidden_size"]),
        "beats_forward": frames * 2 * beats_params * beats_tokens,
    }


def _random_batch(config: Any, batch: int, prompt_tokens: int, answer_tokens: int, generator: torch.Generator) -> dict:
    """Token ids of a prompt with one <video> and one <audio>, an answer, labels on the answer."""
    length = prompt_tokens + answer_tokens
    ids = torch.randint(3, config.first_added_token_id, (batch, length), generator=generator)
    ids[:, 0] = 1
    ids[:, 5] = config.video_token_index
    ids[:, 9] = config.audio_token_index
    labels = torch.full_like(ids, -100)
    labels[:, prompt_tokens:] = ids[:, prompt_tokens:]
    size = config.vision_config["image_size"]
    return {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "labels": labels,
        "pixel_values": torch.randn(batch, config.num_frames, 3, size, size, generator=generator),
        "audio_fbank": torch.randn(batch, config.num_frames, 98, 128, generator=generator),
    }


def measure_step(num_layers: int, args: argparse.Namespace) -> dict[str, float]:
    """Median seconds of (forward + backward) and of the AdamW step, for one micro-batch."""
    from tgs.think.ref_thinker.checkpoint import inject_lora
    from tgs.think.ref_thinker.modeling import RefThinkerForCausalLM
    from tgs.train.config import TrainRecipe
    from tgs.train.model import RefThinkerTrainingModel, freeze_for_training

    device = torch.device(args.device)
    torch.manual_seed(0)
    config = full_config(num_layers)
    thinker = RefThinkerForCausalLM(config)
    inject_lora(thinker, config.lora)
    recipe = TrainRecipe()
    freeze_for_training(thinker, recipe)
    frozen_dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    for param in thinker.parameters():
        if not param.requires_grad:
            param.data = param.data.to(frozen_dtype)
    thinker.config.use_cache = False
    thinker.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    model = RefThinkerTrainingModel(thinker).to(device).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, weight_decay=0.0)
    batch = _random_batch(config, args.batch, args.prompt_tokens, args.answer_tokens, torch.Generator().manual_seed(0))
    batch = {k: v.to(device) for k, v in batch.items()}
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.dtype == "bf16")

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    fwd_bwd, opt = [], []
    for repeat in range(args.repeats + 1):
        sync()
        start = time.perf_counter()
        with autocast:
            loss = model(**batch).loss
        loss.backward()
        sync()
        middle = time.perf_counter()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync()
        end = time.perf_counter()
        if repeat > 0:  # the first call warms up
            fwd_bwd.append(middle - start)
            opt.append(end - middle)
        LOG.info("layers %d repeat %d: forward+backward %.2f s, optimizer %.2f s", num_layers, repeat, middle - start, end - middle)
    peak = torch.cuda.max_memory_allocated(device) / GiB if device.type == "cuda" else float("nan")
    del model, optimizer, thinker
    return {"forward_backward_s": statistics.median(fwd_bwd), "optimizer_s": statistics.median(opt), "cuda_peak_gib": peak}


def extrapolate(measured: dict[int, dict[str, float]], target_layers: int) -> dict[str, float]:
    """Linear fit of the step time in the LLaMA layer count, evaluated at ``target_layers``."""
    (k1, a), (k2, b) = sorted(measured.items())[:2]
    per_layer = (b["forward_backward_s"] - a["forward_backward_s"]) / (k2 - k1)
    fixed = a["forward_backward_s"] - k1 * per_layer
    return {
        "per_layer_s": per_layer,
        "fixed_s": fixed,
        "micro_batch_s": fixed + target_layers * per_layer,
        "optimizer_s": a["optimizer_s"],  # the trained tensors do not depend on the layer count (LoRA aside)
    }


def epoch_seconds(micro_batch_s: float, optimizer_s: float, *, rows: int, batch: int, accumulation: int, processes: int) -> float:
    micro_batches = math.ceil(rows / (batch * processes))
    return micro_batches * micro_batch_s + (micro_batches // accumulation) * optimizer_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--memory", action="store_true", help="Only print the memory computation.")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--batch", type=int, default=1, help="Micro-batch per process (paper: 4).")
    parser.add_argument("--layers", type=int, nargs=2, default=(1, 2), help="Two LLaMA depths to measure.")
    parser.add_argument("--prompt-tokens", type=int, default=140, help="Prompt length in tokens, placeholders included.")
    parser.add_argument("--answer-tokens", type=int, default=120, help="Target chain + </s> in tokens.")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--processes", type=int, default=4, help="GPUs of the run the epoch time is given for.")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--assume-tflops", type=float, default=None, help="Achieved TFLOP/s per GPU for a FLOP-based epoch estimate.")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)

    counts = parameter_counts()
    tokens = args.prompt_tokens - 2 + 2 * 320 + args.answer_tokens  # each placeholder becomes 320 embeddings
    memory = zero2_offload_memory(counts, 4, tokens=tokens, batch=4)
    result: dict[str, Any] = {"parameters": counts, "sequence_tokens": tokens, "zero2_offload_memory_gib_4_gpus_batch_4": memory}
    for key, value in memory.items():
        LOG.info("%-80s %7.2f GiB", key, value)
    flops = flops_per_sample(tokens)
    total = sum(flops.values())
    result["flops_per_sample"] = {**flops, "total": total}
    LOG.info("model FLOPs per training sample (%d tokens): %.1f TFLOP (%s)", tokens, total / 1e12,
             ", ".join(f"{k} {v / 1e12:.2f}" for k, v in flops.items()))  # fmt: skip
    if args.assume_tflops:
        epoch = PAPER_ROWS * total / (args.processes * args.assume_tflops * 1e12)
        result["epoch_seconds_at_assumed_tflops"] = epoch
        LOG.info("epoch at an assumed %.0f achieved TFLOP/s per GPU on %d GPUs: %.0f s (%.1f min), compute only",
                 args.assume_tflops, args.processes, epoch, epoch / 60)  # fmt: skip
    if not args.memory:
        measured = {k: measure_step(k, args) for k in args.layers}
        full_layers = full_config().num_hidden_layers
        fit = extrapolate(measured, full_layers)
        epoch = epoch_seconds(fit["micro_batch_s"], fit["optimizer_s"], rows=PAPER_ROWS, batch=args.batch,
                              accumulation=max(1, 128 // (args.batch * args.processes)), processes=args.processes)  # fmt: skip
        result.update({
            "device": args.device, "dtype": args.dtype, "batch": args.batch, "threads": torch.get_num_threads(),
            "processor": platform.processor() or platform.machine(), "measured": measured, "fit": fit,
            "epoch_seconds": epoch, "processes": args.processes,
        })  # fmt: skip
        LOG.info("per LLaMA layer %.2f s, fixed %.2f s -> %d layers: %.2f s per micro-batch of %d", fit["per_layer_s"],
                 fit["fixed_s"], full_layers, fit["micro_batch_s"], args.batch)  # fmt: skip
        achieved = total * args.batch / fit["micro_batch_s"] / 1e12
        result["achieved_tflops_extrapolated"] = achieved
        LOG.info("epoch of %d rows on %d such processes: %.0f s (%.2f h); %.3f TFLOP/s achieved per process",
                 PAPER_ROWS, args.processes, epoch, epoch / 3600, achieved)  # fmt: skip
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
