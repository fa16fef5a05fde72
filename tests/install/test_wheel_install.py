"""``pip install`` of the wheel into a fresh venv (no Makefile, no editable checkout) runs the tiny pipeline.

Slow (minutes: a venv and every dependency), so it carries the ``install`` marker, which the
default run leaves out; CI runs it once with ``make test-install`` (pip's cache makes reruns
fast). torch is installed first, as the README says, from whatever index pip is configured with.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TORCH_SPEC = os.environ.get("TGS_TORCH_SPEC", "torch==2.14.1 torchvision==0.29.1").split()

pytestmark = [pytest.mark.install, pytest.mark.timeout(1800)]


def _run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    assert result.returncode == 0, f"{' '.join(cmd)}\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


def test_wheel_in_a_fresh_venv_segments_a_clip(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    # Build the wheel from a copy of the sources only (not the checkout's caches or build dirs).
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(dist), str(ROOT)])
    (wheel,) = dist.glob("tgs-*.whl")

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    py = venv / "bin" / "python"
    _run([str(py), "-m", "pip", "install", "--quiet", *TORCH_SPEC])
    _run([str(py), "-m", "pip", "install", "--quiet", str(wheel)])

    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")
    } | {"TGS_HOME": str(tmp_path / "tgs_home"), "HF_HUB_OFFLINE": "1", "PATH": f"{venv / 'bin'}:{os.environ['PATH']}"}
    work = tmp_path / "work"
    work.mkdir()  # run outside the checkout, so only the installed package can be imported
    _run([str(py), "-c", "from pathlib import Path; from tgs.cli.quickstart import make_clip; make_clip(Path('data'), 0)"],
         cwd=work, env=env)  # fmt: skip
    result = _run([str(venv / "bin" / "tgs"), "segment", "data/clip.mp4", "the object making the loudest sound",
                   "--models", "tiny", "--thinker", "direct", "--out", "seg", "--device", "cpu"], cwd=work, env=env)  # fmt: skip
    assert (work / "seg" / "result.json").is_file(), result.stdout + result.stderr
    assert any((work / "seg").rglob("*.png"))
    imported = _run([str(py), "-c", "import tgs; print(tgs.__file__)"], cwd=work, env=env).stdout
    assert str(venv) in imported  # the installed copy, not the checkout
