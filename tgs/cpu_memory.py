"""Keep freed memory inside the process for CPU inference (glibc only).

glibc serves every allocation above its mmap threshold (at most 32 MB) with a fresh
``mmap`` and unmaps it on free. A Grounding DINO + SAM2 frame allocates gigabytes of such
temporaries (800 x 1333 feature maps, 4096-token attention), so each frame page-faults them
in again: measured on the shared 2-core VM, 1.0-1.2 million minor faults and 1.5-1.8 s of
kernel time in a 12 s bf16 frame. With mmap off and a high trim threshold, freed blocks stay
in the heap and the next frame reuses them: 0 faults, ~10.1 s. The same holds for thinking:
a batch of 8 through the small CPU benchmark Ref-Thinker (bf16, 8 new tokens) took 10.0 s of
CPU with 1.1 million faults, 7.9 s with none. The cost is that the process keeps its peak
memory until it exits, which a batch run reaches anyway.

``TGS_KEEP_FREED_MEMORY=0`` turns this off. On other C libraries it does nothing.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys

import torch

__all__ = ["keep_freed_memory"]

logger = logging.getLogger(__name__)

# mallopt parameters from glibc's malloc.h
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_TRIM_THRESHOLD = 2**31 - 1  # the largest value mallopt's int argument takes (2 GiB)


def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        os.confstr("CS_GNU_LIBC_VERSION")  # raises on musl and other C libraries
        libc = ctypes.CDLL(None)
        return libc if hasattr(libc, "mallopt") else None
    except (OSError, ValueError, AttributeError):
        return None


def keep_freed_memory(device: torch.device | str | None = None) -> bool:
    """Serve large allocations from the heap and keep freed blocks for reuse; True if applied.

    ``device``: the device the caller's models run on; nothing is changed unless it is the
    CPU (None: apply regardless).

    Process-wide and idempotent, so it is a decision of the program, not of a library call:
    the ``tgs`` commands and the demo make it once at their entry point
    (``tgs.cli.common.prepare_process``), before loading models; a library user who runs
    models on a CPU calls it once, e.g. ``keep_freed_memory("cpu")``.
    """
    if device is not None and torch.device(device).type != "cpu":
        return False
    if os.environ.get("TGS_KEEP_FREED_MEMORY", "1").strip() == "0":
        return False
    libc = _glibc()
    if libc is None:
        return False
    applied = libc.mallopt(_M_MMAP_MAX, 0) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD) == 1
    if applied:
        logger.debug("glibc malloc: mmap off, trim threshold %d bytes", _TRIM_THRESHOLD)
    return applied
