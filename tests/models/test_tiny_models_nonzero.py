"""Every layer of every tiny test model acts: no saved tensor is all zero or one repeated value.

Initialisers start many tensors at zero (box-head output layers, biases, sampling offsets,
LoRA B, batch-norm means) or at one constant (LayerNorm weights); a test comparing two paths
through such a model cannot see a bug in what those tensors feed (issue 18: an all-zero box
head made "same boxes" mean "same query"). Checked on the files the builders write, i.e.
what every test loads, for each registry tiny model and for the fake TGS-Agent release.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tgs.models.registry import MODEL_SPECS, resolve_source
from tgs.testing.tiny_thinker import write_fake_release
from tgs.testing.weights import fill_every_tensor, idle_tensors


def _idle(state: dict[str, torch.Tensor]) -> list[str]:
    """Names of floating tensors that are all zero or all equal (integer counters excluded)."""
    out = []
    for name, tensor in state.items():
        if not tensor.is_floating_point() or tensor.numel() == 0:
            continue
        flat = tensor.reshape(-1)
        if not flat.any() or (flat.numel() > 1 and bool((flat == flat[0]).all())):
            out.append(name)
    return out


def _safetensors(folder: Path) -> dict[str, torch.Tensor]:
    files = sorted(folder.glob("*.safetensors"))
    assert files, f"no weights in {folder}"
    state: dict[str, torch.Tensor] = {}
    for file in files:
        state.update(load_file(file))
    return state


TINY_KEYS = sorted({key for key, spec in MODEL_SPECS.items() if spec.tiny_builder})


@pytest.mark.parametrize("key", TINY_KEYS)
def test_no_tiny_model_tensor_is_zero_or_constant(key: str) -> None:
    state = _safetensors(Path(resolve_source(key, "tiny")))
    assert len(state) > 50
    assert _idle(state) == []


def test_fake_release_files_have_no_zero_or_constant_tensor(tmp_path: Path) -> None:
    release = write_fake_release(tmp_path)
    for folder in (release.llama_dir, release.clip_dir):
        assert _idle(_safetensors(folder)) == [], folder
    for path in (release.non_lora_trainables, release.finetune_weights):
        state = torch.load(path, map_location="cpu", weights_only=True)
        assert state and _idle(state) == [], path
    assert idle_tensors(release.model) == []


def test_fill_every_tensor_changes_only_idle_tensors() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4), torch.nn.BatchNorm1d(4))
    with torch.no_grad():
        model[0].bias.zero_()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    changed = fill_every_tensor(model, seed=1)
    assert sorted(changed) == ["0.bias", "1.bias", "1.weight", "2.bias", "2.running_mean", "2.running_var",
                               "2.weight"]
    after = model.state_dict()
    torch.testing.assert_close(after["0.weight"], before["0.weight"], rtol=0, atol=0)  # random already: kept
    assert after["2.num_batches_tracked"].item() == 0  # an integer counter, not a weight
    assert (after["2.running_var"] > 0).all()
    assert idle_tensors(model) == []
    again = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4), torch.nn.BatchNorm1d(4))
    again.load_state_dict(before)
    fill_every_tensor(again, seed=1)
    for name, tensor in again.state_dict().items():  # same seed, same values
        torch.testing.assert_close(tensor, after[name], rtol=0, atol=0)
