"""keep_freed_memory: big freed tensors are reused instead of page-faulted in again."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from tgs.cpu_memory import _glibc

# Allocates and frees a 64 MB tensor 22 times; prints the minor page faults of the last 12 rounds
# (with freed memory kept, the first 2-6 rounds were seen to fault, then none ever again).
PROBE = """
import json, resource, sys, torch
from tgs.cpu_memory import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "tuned" else False
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    torch.ones(16 * 2**20).sum()
before = faults()
for _ in range(12):
    torch.ones(16 * 2**20).sum()
print(json.dumps({"applied": applied, "faults": faults() - before}))
"""


def probe(mode: str, **env: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", **env},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(_glibc() is None, reason="needs glibc")
def test_freed_blocks_are_reused_without_page_faults() -> None:
    default = probe("default")
    tuned = probe("tuned")
    assert tuned["applied"] and not default["applied"]
    pages = 12 * 64 * 2**20 // os.sysconf("SC_PAGE_SIZE")
    assert default["faults"] > pages // 2  # every round maps its 64 MB afresh
    assert tuned["faults"] < pages // 4  # freed blocks are reused


def test_environment_switch_turns_it_off() -> None:
    assert probe("tuned", TGS_KEEP_FREED_MEMORY="0")["applied"] is False


def test_other_devices_are_left_alone() -> None:
    from tgs.cpu_memory import keep_freed_memory

    assert keep_freed_memory("cuda") is False
    assert keep_freed_memory(torch.device("meta")) is False
