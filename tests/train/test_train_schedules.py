"""The paper's effective learning-rate schedule (DeepSpeed WarmupDecayLR, log warm-up)."""

from __future__ import annotations

import math

import pytest
import torch

from tgs.train.schedules import deepspeed_warmup_steps, warmup_decay_factor, warmup_decay_scheduler


def _rates(total: int, ratio: float, peak: float = 1e-4) -> list[float]:
    """The learning rate of optimizer steps 1..total as our LambdaLR gives them."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=peak)
    scheduler = warmup_decay_scheduler(optimizer, total, ratio)
    rates = []
    for _ in range(total):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


def test_hand_computed_schedule() -> None:
    # T = 10, ratio 0.3 -> W = ceil(3.0) = 3: steps 1, 2 at 0, then ln(2)/ln(3), 1 (i = 2 < 3: ln 3 / ln 3),
    # then linear decay (T - i) / (T - W) for i = 3..8.
    expected = [0.0, 0.0, math.log(2) / math.log(3), 1.0] + [(10 - i) / 7 for i in range(3, 9)]
    assert _rates(10, 0.3, peak=1.0) == pytest.approx(expected)
    assert deepspeed_warmup_steps(660, 0.03) == 20  # the paper: 6 epochs x 110 steps
    assert deepspeed_warmup_steps(6, 0.03) == 2  # WarmupLR's minimum
    assert warmup_decay_factor(0, total_steps=5, warmup_steps=2) == 0.0


def test_equals_deepspeed_warmup_decay_lr_stepped_like_its_engine() -> None:
    from deepspeed.runtime import lr_schedules
    total, ratio, peak = 40, 0.1, 1e-4
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=peak)
    reference = lr_schedules.WarmupDecayLR(
        optimizer, total_num_steps=total, warmup_min_lr=0.0, warmup_max_lr=peak,
        warmup_num_steps=math.ceil(total * ratio),  # HF's "auto" value
    )  # fmt: skip
    theirs = []
    for _ in range(total):  # the engine reads the rate, steps the optimizer, then the scheduler
        theirs.append(optimizer.param_groups[0]["lr"])
        reference.step()
    assert _rates(total, ratio, peak) == pytest.approx(theirs, rel=1e-12, abs=0.0)
