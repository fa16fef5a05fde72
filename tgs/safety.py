"""Reading pickled weight files without ever running code from them.

Every ``.bin``/``.pt`` that tgs reads goes through :func:`safe_torch_load`, which uses
``torch.load(weights_only=True)`` and tells the two ways it can fail apart: a file that
pickles arbitrary Python objects (refused: unpickling it could run code) and a file that
is simply damaged (re-download it). Neither is ever retried with full unpickling.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from tgs.errors import MissingWeightsError, WeightsError

__all__ = ["safe_torch_load"]


def safe_torch_load(
    path: str | Path,
    *,
    what: str = "weight file",
    fix_unsafe: str = "re-save it as a plain {name: tensor} dict (or safetensors) from a trusted environment",
    how_to_get: str | None = None,
) -> Any:
    """``torch.load(path, weights_only=True)`` on CPU, with errors a user can act on.

    what: a name for the file in messages ("BEATs checkpoint", "released weight file").
    fix_unsafe: what to do with a file that pickles more than tensors and containers.
    how_to_get: the fix shown when the file does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingWeightsError(f"{what} not found: {path}", path=path, fix=how_to_get)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "Unsupported operand" in str(error):  # not a pickle stream at all: damaged or foreign
            raise WeightsError(
                f"cannot read {what} {path}: not a torch checkpoint ({error})", path=path, fix="re-download the file"
            ) from error
        raise WeightsError(
            f"refusing to load {what} {path}: it pickles Python objects other than tensors and plain "
            f"containers, and unpickling those could run arbitrary code. torch said: {error}",
            path=path,
            fix=fix_unsafe,
        ) from error
    except Exception as error:  # weights-only unpickling runs no code: any other failure is damage
        raise WeightsError(f"cannot read {what} {path}: {error}", path=path, fix="re-download the file") from error
