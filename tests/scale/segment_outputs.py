"""What two ``tgs segment`` output folders must share to be the same result, for the batch tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

VOLATILE = ("created", "timings")
"""result.json fields that change from one call to the next whatever the outputs."""


def result_json(folder: Path) -> dict[str, Any]:
    """``folder/result.json`` without what changes from call to call (VOLATILE, the propagation's seconds)."""
    data = json.loads((folder / "result.json").read_text())
    for key in VOLATILE:
        data.pop(key)
    data["propagation"].pop("process_seconds")
    return data


def mask_files(folder: Path) -> dict[str, bytes]:
    """Every mask PNG and masks.json of one output folder, by relative path."""
    paths = [*sorted(folder.glob("masks/*/*.png")), folder / "masks.json"]
    return {str(p.relative_to(folder)): p.read_bytes() for p in paths}
