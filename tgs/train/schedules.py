"""Learning-rate schedules of the fine-tuning recipe.

``deepspeed_warmup_decay`` is the schedule the paper's run actually used: DeepSpeed's
``WarmupDecayLR`` from ``deepspeed/stage2-offload.json`` (which overrides the script's
``--lr_scheduler_type cosine``), with HF Trainer's "auto" values: warm-up steps
``W = max(2, ceil(warmup_ratio * T))``, minimum 0, maximum the peak learning rate, total
``T`` optimizer steps, log-rate warm-up.

DeepSpeed sets the rate at construction to its minimum (0) and steps the scheduler after
every optimizer step, starting from iteration 0, so optimizer step ``k`` (1-based) runs at::

    k = 1:               0
    k >= 2, i = k - 2:   peak * ln(i + 1) / ln(W)                 while i < W
                         peak * max(0, (T - i) / (T - W))         after

(the first two steps at rate 0). ``warmup_decay_factor`` gives this as a multiplier of the
peak for ``torch.optim.lr_scheduler.LambdaLR``, whose step ``s`` (0-based) is ``k - 1``.
"""

from __future__ import annotations

import math
from functools import partial

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

__all__ = ["deepspeed_warmup_steps", "warmup_decay_factor", "warmup_decay_scheduler"]


def deepspeed_warmup_steps(total_steps: int, warmup_ratio: float) -> int:
    """Warm-up length DeepSpeed uses: HF's ``ceil(ratio * T)``, raised to at least 2 by WarmupLR."""
    return max(2, math.ceil(total_steps * warmup_ratio))


def warmup_decay_factor(step: int, *, total_steps: int, warmup_steps: int) -> float:
    """Learning-rate multiplier of LambdaLR step ``step`` (0-based) under DeepSpeed's WarmupDecayLR."""
    if step <= 0:
        return 0.0
    iteration = step - 1
    if iteration < warmup_steps:
        return math.log(iteration + 1) / math.log(warmup_steps)
    return max(0.0, (total_steps - iteration) / max(1.0, float(total_steps - warmup_steps)))


def warmup_decay_scheduler(optimizer: Optimizer, total_steps: int, warmup_ratio: float) -> LambdaLR:
    """LambdaLR reproducing DeepSpeed WarmupDecayLR (log warm-up, linear decay) step for step."""
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    factor = partial(
        warmup_decay_factor, total_steps=total_steps, warmup_steps=deepspeed_warmup_steps(total_steps, warmup_ratio)
    )
    return LambdaLR(optimizer, factor)
