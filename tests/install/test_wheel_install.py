"""``pip install`` of the wheel into a fresh venv (no Makefile, no editable checkout) runs the tiny pipeline.

Slow (minutes: a venv and every dependency), so it carries the ``install`` marker, which the
default run leaves out; CI runs it once with ``make test-install`` (pip's cache makes reruns
fast). torch comes first, as the README says: by default the fresh venv is given the torch and
torchvision this interpreter runs (and the distributions they require, found from their
metadata) through a ``.pth`` file, because unpacking the 4 GB CUDA build again took 15 minutes
of a 20-minute CI budget; every other dependency of the wheel is resolved and installed by pip
from its index. ``TGS_TORCH_SPEC="torch==2.14.1 torchvision==0.29.1"`` installs torch into the
venv from the index instead. What torch itself requires (e.g. jinja2, filelock) is thereby
present; that our own imports are all declared is checked by ``tests/core/test_dependencies.py``.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
TORCH_SPEC = os.environ.get("TGS_TORCH_SPEC", "").split()

pytestmark = [pytest.mark.install, pytest.mark.timeout(1800)]


def _run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    assert result.returncode == 0, f"{' '.join(cmd)}\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


def _requirement_closure(names: list[str]) -> list[importlib.metadata.Distribution]:
    """The installed distributions ``names`` and everything they require (markers evaluated, no extras)."""
    from packaging.requirements import Requirement

    seen: dict[str, importlib.metadata.Distribution] = {}
    todo = list(names)
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        dist = importlib.metadata.distribution(name)
        seen[name] = dist
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return list(seen.values())


def _provide_torch(venv_python: Path, where: Path) -> None:
    """Make this interpreter's torch + torchvision (and their requirements) importable in the venv.

    Their top-level files and folders (and metadata) are symlinked into ``where``, which a
    ``.pth`` file adds to the venv's path: pip then sees them as installed.
    """
    where.mkdir()
    for dist in _requirement_closure(["torch", "torchvision"]):
        tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        base = Path(str(dist.locate_file("")))
        for top in tops:
            if not (where / top).exists() and (base / top).exists():
                (where / top).symlink_to(base / top)
    site = _run([str(venv_python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    (Path(site) / "tgs_test_provided_torch.pth").write_text(f"{where}\n")


def test_wheel_in_a_fresh_venv_segments_a_clip(tmp_path: Path) -> None:
    # Nothing of the checkout may leak in: no PYTHONPATH, no active venv, and every command runs
    # outside the checkout (``python -m pip`` puts its working directory on the path, where a
    # ``tgs.egg-info`` would make pip think tgs is installed already).
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    src = tmp_path / "src"  # build from a copy of the sources only (no caches or build dirs)
    shutil.copytree(ROOT / "tgs", src / "tgs", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(dist), str(src)], cwd=tmp_path, env=clean)
    (wheel,) = dist.glob("tgs-*.whl")

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path, env=clean)
    py = venv / "bin" / "python"
    if TORCH_SPEC:
        _run([str(py), "-m", "pip", "install", "--quiet", *TORCH_SPEC], cwd=tmp_path, env=clean)
    else:
        _provide_torch(py, tmp_path / "provided")
    _run([str(py), "-m", "pip", "install", "--quiet", str(wheel)], cwd=tmp_path, env=clean)

    env = clean | {"TGS_HOME": str(tmp_path / "tgs_home"), "HF_HUB_OFFLINE": "1", "PATH": f"{venv / 'bin'}:{clean['PATH']}"}
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
