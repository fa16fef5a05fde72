"""DeepSpeed on CPU (gloo): ZeRO-2 with the paper's CPU optimizer offload gives the plain HF run's
losses and weights and resumes exactly; ZeRO-3 gives them too and saves the gathered tensors.

Needs DeepSpeed (in the ``dev`` and ``train`` extras) and about a minute (DeepSpeed compiles
a communication op on first use, then each run starts an engine); marked slow, run in CI.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from tgs.data.synth_instructions import INSTRUCTION_SET_NAME

pytestmark = [pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _train(bench: Path, out: Path, steps: int, *extra: str) -> list[float]:
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "1", "--master_addr", "127.0.0.1",
        "--master_port", str(_free_port()), "-m", "tgs.cli.main", "train", "--data", str(bench),
        "--meta", str(bench / "metadata.csv"), "--targets", str(bench / INSTRUCTION_SET_NAME), "--out", str(out),
        "--models", "tiny", "--device", "cpu", "--max-steps", str(steps), "--set", "bf16=false",
        "--set", "dataloader_num_workers=0", "--set", "per_device_train_batch_size=2",
        "--set", "gradient_accumulation_steps=1", "--set", "lr_scheduler=constant_with_warmup",
        "--set", "warmup_ratio=0", "--set", "learning_rate=0.001", "--set", "save_strategy=steps",
        "--set", "save_steps=2", *extra,
    ]  # fmt: skip
    done = subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    return [entry["loss"] for entry in log if "loss" in entry]


def test_zero2_offload_matches_plain_training_and_resumes(train_bench: Path, tmp_path: Path) -> None:
    pytest.importorskip("deepspeed")
    plain = _train(train_bench, tmp_path / "plain", 4)
    whole = _train(train_bench, tmp_path / "ds", 4, "--deepspeed", "zero2_offload")
    # One process: the same forward and backward; DeepSpeed's CPU Adam orders Adam's few operations
    # otherwise (<= 5u relative on the direction, <= 1e-3 x 5u ~ 3e-10 per parameter and step), and the
    # losses of later steps see that through the model (a factor < 1e3): rel. 1e-5 of a loss ~ 6 and
    # 1e-5 on the parameters after 4 steps leave a wide margin.
    assert whole == pytest.approx(plain, rel=1e-5)
    a = load_file(str(tmp_path / "plain" / "checkpoint-4" / "trainable.safetensors"))
    b = load_file(str(tmp_path / "ds" / "checkpoint-4" / "trainable.safetensors"))
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-5
    # Interrupted after 2 steps, resumed to 4 (a constant rate, so the schedule does not depend on the length).
    _train(train_bench, tmp_path / "split", 2, "--deepspeed", "zero2_offload")
    assert (tmp_path / "split" / "checkpoint-2" / "global_step2").is_dir()  # DeepSpeed's optimizer partitions
    resumed = _train(train_bench, tmp_path / "split", 4, "--deepspeed", "zero2_offload", "--resume")
    assert resumed == whole
    c = load_file(str(tmp_path / "split" / "checkpoint-4" / "trainable.safetensors"))
    assert all((b[k] == c[k]).all() for k in b)


def test_zero3_matches_plain_training_and_saves_the_gathered_tensors(train_bench: Path, tmp_path: Path) -> None:
    pytest.importorskip("deepspeed")
    plain = _train(train_bench, tmp_path / "plain", 4)
    sharded = _train(train_bench, tmp_path / "z3", 4, "--deepspeed", "zero3")
    assert sharded == pytest.approx(plain, rel=1e-5)
    a = load_file(str(tmp_path / "plain" / "checkpoint-4" / "trainable.safetensors"))
    b = load_file(str(tmp_path / "z3" / "checkpoint-4" / "trainable.safetensors"))
    assert a.keys() == b.keys() and all(a[k].shape == b[k].shape for k in a)  # gathered, not ZeRO-3 shards
    # as for ZeRO-2 above; ZeRO-3 also gathers each parameter for the forward (exact copies), so the
    # same analysis gives ~ 1e-9; 1e-4 is loose but far below a training step's size (lr 1e-3)
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-4
