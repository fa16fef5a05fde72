"""No file tgs reads can make it run code: weights load with weights_only=True or as safetensors.

Two layers of checks:
- a static one over the package source (the AST, not the formatting): every ``torch.load``
  passes ``weights_only=True``; nothing calls ``pickle.load``/``loads``/``Unpickler``,
  ``np.load(allow_pickle=True)`` or ``trust_remote_code=True``;
- a dynamic one: a crafted pickle whose unpickling creates a marker file (``__reduce__`` to
  ``pathlib.Path.touch``; no shell involved) is handed to every loader that reads pickled
  files -- the BEATs loader, the Ref-Thinker converter's release files, the transformers
  loader (``pytorch_model.bin``), the Ref-Thinker directory loader, run-store masks and
  predictions ``probs.npy`` -- and each must refuse it with a tgs error while the marker
  stays absent. A control load with ``weights_only=False`` proves the payload is live.
Damaged checkpoints (truncated or with flipped bytes) must give WeightsError, never a raw
exception from the unpickler.
"""

from __future__ import annotations

import ast
import os
import pathlib
import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import tgs
from tgs.errors import MissingWeightsError, RunError, TGSError, WeightsError

PACKAGE = Path(tgs.__file__).resolve().parent


# ------------------------------------------------------------------------- static checks


def _torch_aliases(tree: ast.AST) -> tuple[set[str], set[str]]:
    """(names bound to the torch module, names bound to torch.load) in one module."""
    modules, loads = {"torch"}, set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "torch":
                    modules.add(alias.asname or "torch")
        elif isinstance(node, ast.ImportFrom) and node.module in ("torch", "torch.serialization"):
            for alias in node.names:
                if alias.name == "load":
                    loads.add(alias.asname or "load")
    return modules, loads


def _is_torch_load(func: ast.expr, modules: set[str], loads: set[str]) -> bool:
    if isinstance(func, ast.Name):
        return func.id in loads
    if isinstance(func, ast.Attribute) and func.attr == "load":
        base = func.value
        if isinstance(base, ast.Name):
            return base.id in modules
        # torch.serialization.load
        return isinstance(base, ast.Attribute) and base.attr == "serialization" and (
            isinstance(base.value, ast.Name) and base.value.id in modules
        )
    return False


def _keyword_is(call: ast.Call, name: str, value: object) -> bool:
    return any(k.arg == name and isinstance(k.value, ast.Constant) and k.value.value is value for k in call.keywords)


def unsafe_calls(source: str | ast.AST, filename: str = "<src>") -> list[str]:
    """Every unsafe deserialisation call in ``source`` (text or parsed), as 'file:line: reason'."""
    tree = ast.parse(source, filename) if isinstance(source, str) else source
    modules, loads = _torch_aliases(tree)
    problems = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        where = f"{filename}:{node.lineno}"
        func = node.func
        if _is_torch_load(func, modules, loads) and not _keyword_is(node, "weights_only", True):
            problems.append(f"{where}: torch.load without weights_only=True")
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        owner = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else ""
        if owner in ("pickle", "cPickle", "dill", "joblib") and name in ("load", "loads", "Unpickler"):
            problems.append(f"{where}: {owner}.{name}")
        if owner in ("np", "numpy") and name == "load":
            allow = [k for k in node.keywords if k.arg == "allow_pickle"]
            if allow and not _keyword_is(node, "allow_pickle", False):
                problems.append(f"{where}: np.load with allow_pickle other than False")
        if any(k.arg == "trust_remote_code" and not _keyword_is(node, "trust_remote_code", False)
               for k in node.keywords):
            problems.append(f"{where}: trust_remote_code")
    return problems


@pytest.mark.parametrize(
    ("source", "flagged"),
    [
        ("import torch\ntorch.load(p, map_location='cpu', weights_only=True)", False),
        ("import torch\ntorch.load(\n    p,\n    weights_only=True,\n)", False),
        ("import torch\ntorch.load(p)", True),
        ("import torch\ntorch.load(p, weights_only=False)", True),
        ("import torch\nkw = {'weights_only': True}\ntorch.load(p, **kw)", True),
        ("import torch as th\nth.load(p)", True),
        ("from torch import load as tl\ntl(p)", True),
        ("import torch\ntorch.serialization.load(p)", True),
        ("import pickle\npickle.loads(b)", True),
        ("import numpy as np\nnp.load(p, allow_pickle=True)", True),
        ("import numpy as np\nnp.load(p, allow_pickle=False)", False),
        ("m = Auto.from_pretrained(p, trust_remote_code=True)", True),
        ("import json\njson.load(f)", False),
        ("state = model.load_state_dict(s)", False),
    ],
)
def test_the_source_checker_itself(source: str, flagged: bool) -> None:
    assert bool(unsafe_calls(source)) is flagged


def test_package_source_has_no_unsafe_deserialisation() -> None:
    problems, torch_loads = [], 0
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        problems += unsafe_calls(tree, str(path.relative_to(PACKAGE.parent)))
        modules, loads = _torch_aliases(tree)
        torch_loads += sum(
            isinstance(n, ast.Call) and _is_torch_load(n.func, modules, loads) for n in ast.walk(tree)
        )
    assert not problems, "\n".join(problems)
    assert torch_loads >= 1  # the scan saw the loaders (BEATs, release files), so it checked something


# ------------------------------------------------------------------------- a live payload


class TouchOnUnpickle:
    """Unpickling this calls ``pathlib.Path.touch(marker)``: a visible side effect, no shell."""

    def __init__(self, marker: Path) -> None:
        self.marker = pathlib.Path(marker)

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def _poisoned_state(marker: Path, prefix: str = "") -> dict:
    return {f"{prefix}weight": torch.zeros(2, 2), f"{prefix}payload": TouchOnUnpickle(marker)}


def _save(obj: object, path: Path, legacy: bool) -> Path:
    if legacy:
        torch.save(obj, path, _use_new_zipfile_serialization=False)
    else:
        torch.save(obj, path)
    return path


def _assert_payload_is_live(path: Path, marker: Path) -> None:
    """Control: the file does run code when fully unpickled (so refusing it meant something)."""
    assert not marker.exists()
    torch.load(path, weights_only=False)
    assert marker.exists()
    marker.unlink()


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy-pickle"])
def test_beats_loader_refuses_a_poisoned_checkpoint(tmp_path: Path, legacy: bool) -> None:
    from tgs.think.ref_thinker.beats import TINY_BEATS_CONFIG, load_beats_checkpoint

    marker = tmp_path / "marker"
    path = _save({"cfg": TINY_BEATS_CONFIG.to_dict(), "model": _poisoned_state(marker)}, tmp_path / "b.pt", legacy)
    with pytest.raises(WeightsError, match="refusing") as info:
        load_beats_checkpoint(path)
    assert info.value.path == str(path)
    assert not marker.exists()
    _assert_payload_is_live(path, marker)


@pytest.mark.parametrize("which", ["non_lora", "finetune"])
def test_converter_refuses_poisoned_release_files(tmp_path: Path, which: str) -> None:
    from tgs.think.ref_thinker.convert import ReleaseFiles, convert_ref_thinker, read_release_file

    marker = tmp_path / "marker"
    clean = _save({"base_model.model.lm_head.weight": torch.zeros(2, 2)}, tmp_path / "clean.bin", False)
    poisoned = _save(_poisoned_state(marker, "base_model.model."), tmp_path / "poisoned.bin", False)
    with pytest.raises(WeightsError, match="refusing"):
        read_release_file(poisoned)
    files = ReleaseFiles(poisoned, clean) if which == "non_lora" else ReleaseFiles(clean, poisoned)
    # The base model folders need not exist: the released files are read (and refused) first.
    with pytest.raises(WeightsError, match="refusing") as info:
        convert_ref_thinker(files, tmp_path / "llama", tmp_path / "clip", tmp_path / "beats.pt", tmp_path / "out")
    assert info.value.path == str(poisoned)
    assert not marker.exists()
    assert not (tmp_path / "out" / "model.safetensors").exists()
    _assert_payload_is_live(poisoned, marker)


@pytest.fixture(scope="module")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import BertConfig, BertModel

    out = tmp_path_factory.mktemp("bert")
    config = BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                        vocab_size=40, max_position_embeddings=16)
    BertModel(config).save_pretrained(out)
    return out


def test_transformers_loader_refuses_a_poisoned_pytorch_model_bin(tiny_bert_dir: Path, tmp_path: Path) -> None:
    """A model directory with pickled weights only (no safetensors), as old hub repos have."""
    from safetensors.torch import load_file
    from transformers import BertModel

    from tgs.models.hf_loading import load_model

    marker = tmp_path / "marker"
    model_dir = tmp_path / "bert"
    model_dir.mkdir()
    (model_dir / "config.json").write_bytes((tiny_bert_dir / "config.json").read_bytes())
    state: dict = load_file(str(tiny_bert_dir / "model.safetensors"))
    state["payload"] = TouchOnUnpickle(marker)
    weights = _save(state, model_dir / "pytorch_model.bin", False)
    with pytest.raises(WeightsError, match="refusing to load") as info:
        load_model(BertModel, model_dir, what="tiny BERT", how_to_get="-", device=torch.device("cpu"),
                   dtype=torch.float32)
    assert "safetensors" in str(info.value)
    assert not marker.exists()
    _assert_payload_is_live(weights, marker)


def test_ref_thinker_directories_load_safetensors_only(tmp_path: Path) -> None:
    """A Ref-Thinker directory holding pickled weights instead of model.safetensors is not read."""
    from tgs.think.ref_thinker.modeling import load_ref_thinker_model

    marker = tmp_path / "marker"
    (tmp_path / "config.json").write_text("{}")
    _save(_poisoned_state(marker), tmp_path / "pytorch_model.bin", False)
    with pytest.raises(MissingWeightsError, match=r"model\.safetensors"):
        load_ref_thinker_model(tmp_path)
    assert not marker.exists()


def test_run_store_masks_and_prediction_probs_refuse_pickled_arrays(tmp_path: Path) -> None:
    from tgs.eval.predictions import FolderPredictions
    from tgs.run_store import RunStore

    marker = tmp_path / "marker"
    payload = np.array([TouchOnUnpickle(marker)], dtype=object)
    store = RunStore(tmp_path / "run")
    store.mask_path("v_cat_1").parent.mkdir(parents=True)
    np.savez(store.mask_path("v_cat_1"), packed=payload, shape=np.array([1, 1, 1]))
    with pytest.raises(RunError, match="v_cat_1"):
        store.load_masks("v_cat_1")
    sample_dir = tmp_path / "preds" / "v_cat_1"
    sample_dir.mkdir(parents=True)
    from PIL import Image

    Image.fromarray(np.zeros((2, 2), np.uint8)).save(sample_dir / "00000.png")
    np.save(sample_dir / "probs.npy", payload, allow_pickle=True)
    with pytest.raises(TGSError, match=r"probs\.npy"):
        FolderPredictions(tmp_path / "preds").load("v_cat_1")
    assert not marker.exists()
    np.load(sample_dir / "probs.npy", allow_pickle=True)  # control: the payload is live
    assert marker.exists()


# ------------------------------------------------------------------------- damaged files


def _damaged(blob: bytes, cut: int, flips: list[tuple[int, int]]) -> bytes:
    data = bytearray(blob[: max(0, min(cut, len(blob)))])
    for at, value in flips:
        if data:
            data[at % len(data)] = value
    return bytes(data)


def _checkpoint_bytes(obj: object, legacy: bool) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        return _save(obj, Path(tmp) / "f", legacy).read_bytes()


@pytest.fixture(scope="module")
def clean_files() -> dict[str, bytes]:
    from tgs.think.ref_thinker.beats import build_tiny_beats, save_beats_checkpoint

    release = {"base_model.model.a.weight": torch.ones(3, 4), "base_model.model.b": torch.arange(5)}
    with tempfile.TemporaryDirectory() as tmp:
        beats = save_beats_checkpoint(build_tiny_beats(0), Path(tmp) / "beats.pt").read_bytes()
    return {
        "release-zip": _checkpoint_bytes(release, False),
        "release-legacy": _checkpoint_bytes(release, True),
        "beats-zip": beats,
    }


def _loader(kind: str) -> Callable[[Path], object]:
    if kind.startswith("beats"):
        from tgs.think.ref_thinker.beats import load_beats_checkpoint

        return load_beats_checkpoint
    from tgs.think.ref_thinker.convert import read_release_file

    return read_release_file


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
@settings(max_examples=120, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    kind=st.sampled_from(["release-zip", "release-legacy", "beats-zip"]),
    cut=st.integers(0, 300_000),
    flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=4),
)
# Raw errors that escaped read_release_file / load_beats_checkpoint before the fix:
@example(kind="release-legacy", cut=120, flips=[])  # IndexError
@example(kind="release-legacy", cut=480, flips=[])  # struct.error
@example(kind="release-legacy", cut=10**6, flips=[(481, 243)])  # UnicodeDecodeError
@example(kind="release-legacy", cut=10**6, flips=[(492, 61)])  # AssertionError
@example(kind="release-zip", cut=10**6, flips=[(1367, 55)])  # UnicodeDecodeError
@example(kind="release-zip", cut=10**6, flips=[(152, 91)])  # KeyError
def test_damaged_checkpoints_give_weights_errors(
    clean_files: dict[str, bytes], kind: str, cut: int, flips: list[tuple[int, int]]
) -> None:
    """A torn download or a flipped byte: a tgs error naming the file, never a raw unpickler error."""
    data = _damaged(clean_files[kind], cut, flips)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "damaged.bin"
        path.write_bytes(data)
        try:
            _loader(kind)(path)
        except TGSError as exc:  # WeightsError, or CheckpointKeyError when a key name was hit
            assert isinstance(exc, WeightsError)
            assert exc.path == str(path)
    # surviving the damage (a flip inside tensor data) is fine: safetensors and zip keep no checksum


def test_refusal_message_explains_and_offers_a_fix(tmp_path: Path) -> None:
    from tgs.think.ref_thinker.convert import read_release_file

    path = _save(_poisoned_state(tmp_path / "m", "base_model.model."), tmp_path / "x.bin", False)
    with pytest.raises(WeightsError) as info:
        read_release_file(path)
    text = str(info.value)
    assert str(path) in text
    assert "Fix:" in text and "trusted" in text
    assert os.fspath(path) == info.value.path
    assert not (tmp_path / "m").exists()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
def test_plain_pickle_files_are_refused_too(tmp_path: Path) -> None:
    """Not written by torch.save at all: a bare pickle stream with the payload."""
    from tgs.think.ref_thinker.convert import read_release_file

    marker = tmp_path / "marker"
    path = tmp_path / "bare.bin"
    path.write_bytes(pickle.dumps({"base_model.model.x": TouchOnUnpickle(marker)}))
    with pytest.raises(WeightsError):
        read_release_file(path)
    assert not marker.exists()
