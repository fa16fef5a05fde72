"""Training runs on the tiny Ref-Thinker and synthetic instruction data (CPU): loss, weights,
resume, the run folder, and thinking with the result."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from float32_error import TINY_REF_THINKER_CHAIN, float32_bound
from safetensors.torch import load_file
from train_helpers import fast_recipe, write_crab
from transformers import TrainerCallback

from tgs.data.synth_instructions import INSTRUCTION_SET_NAME
from tgs.errors import RunError
from tgs.think.ref_thinker.checkpoint import shared_tensor_aliases
from tgs.think.ref_thinker.modeling import RefThinkerForCausalLM
from tgs.train.checkpoints import TRAINABLE_WEIGHTS, latest_checkpoint
from tgs.train.config import TrainRecipe
from tgs.train.export import export_checkpoint, resolve_think_model
from tgs.train.model import is_lora_parameter
from tgs.train.run import TrainJob, run_training

pytestmark = pytest.mark.slow


def _job(bench: Path, init: Path, out: Path, recipe: TrainRecipe, **kw: object) -> TrainJob:
    return TrainJob(data=bench, meta=bench / "metadata.csv", targets=bench / INSTRUCTION_SET_NAME, init=init, out=out,
                    recipe=recipe, device="cpu", show_progress=False, **kw)  # fmt: skip


class StopAt(TrainerCallback):
    """Ends training after ``step`` optimizer steps, as a crash right after a checkpoint would."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        if state.global_step >= self.step:
            control.should_training_stop = True


@pytest.fixture(scope="module")
def trained(train_bench: Path, fresh_init: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 steps from a LoRA-free init (fresh adapter, as the paper), checkpoints at 10 and 20."""
    out = tmp_path_factory.mktemp("run") / "out"
    recipe = fast_recipe(max_steps=20, save_steps=10, learning_rate=2e-3, lr_scheduler="constant_with_warmup",
                         warmup_ratio=0.0, checkpoint_model="full")  # fmt: skip
    crab = tmp_path_factory.mktemp("crab")
    write_crab(crab, RefThinkerForCausalLM.from_pretrained(fresh_init))  # Crab-style projector files
    outcome = run_training(_job(train_bench, fresh_init, out, recipe, crab=crab))
    assert outcome.global_step == 20 and outcome.last_checkpoint == out / "checkpoint-20"
    counts = json.loads((out / "trainable_parameters.json").read_text())
    assert counts["crab"]["lm_head_from"] == "visual_pretrain.bin" and counts["crab"]["loaded"]["audio_pretrain.bin"] > 0
    assert all((out / f"checkpoint-{s}" / "model" / "export.json").is_file() for s in (10, 20))  # "full" checkpoints
    return out


def test_loss_falls(trained: Path) -> None:
    log = [json.loads(line) for line in (trained / "train_log.jsonl").read_text().splitlines()]
    losses = [entry["loss"] for entry in log if "loss" in entry]
    assert len(losses) == 20
    first, last = sum(losses[:4]) / 4, sum(losses[-4:]) / 4
    assert last < 0.7 * first, losses


def _base_key(key: str) -> str:
    return key.replace(".base_layer.", ".")


def test_frozen_weights_do_not_change_and_trained_ones_do(trained: Path, fresh_init: Path) -> None:
    init = RefThinkerForCausalLM.from_pretrained(fresh_init).state_dict()
    model = RefThinkerForCausalLM.from_pretrained(resolve_think_model(trained))
    aliases = shared_tensor_aliases(model)  # the Q-Former's tied MLM decoder: checked through its owner
    final = {k: v for k, v in model.state_dict().items() if k not in aliases}
    trained_tensors = load_file(str(trained / "checkpoint-20" / TRAINABLE_WEIGHTS))
    moved = dict.fromkeys(("lora", "model.vl_projector.", "model.al_projector.", "model.embed_tokens.", "lm_head."), False)
    for key, value in final.items():
        if key in trained_tensors:
            assert torch.equal(value, trained_tensors[key]), key
            if ".lora_B." in key:  # a fresh adapter's B starts at zero
                moved["lora"] |= bool(value.abs().sum() > 0)
            elif not is_lora_parameter(key):
                moved[next(g for g in moved if key.startswith(g))] |= not torch.equal(value, init[key])
        elif not is_lora_parameter(key):
            assert torch.equal(value, init[_base_key(key)]), f"frozen {key} changed"
    assert all(moved.values()), moved  # every trained group moved
    frozen = [k for k in final if k not in trained_tensors and not is_lora_parameter(k)]
    assert any(k.startswith("model.visual_encoder.") for k in frozen) and any(k.startswith("model.audio_encoder.") for k in frozen)


def test_the_trained_checkpoint_thinks(trained: Path, train_bench: Path) -> None:
    from tgs.data.benchmark import Benchmark
    from tgs.think.ref_thinker.generation import GenerationSettings
    from tgs.think.ref_thinker.thinker import RefThinker

    assert resolve_think_model(trained) == trained / "checkpoint-20" / "model"
    older = resolve_think_model(trained / "checkpoint-10")
    assert older == trained / "checkpoint-10" / "model" and (older / "export.json").is_file()
    thinker = RefThinker.from_pretrained(older, device="cpu", dtype="fp32", settings=GenerationSettings(max_new_tokens=12))
    sample = next(iter(Benchmark(train_bench, train_bench / "metadata.csv", ["val"])))
    thoughts = thinker.think([(sample.query(), sample.load_clip())])
    assert thoughts[0].uid == sample.uid and thoughts[0].raw


def test_merged_export_gives_the_same_logits(trained: Path, tmp_path: Path) -> None:
    unmerged = RefThinkerForCausalLM.from_pretrained(resolve_think_model(trained))
    merged = RefThinkerForCausalLM.from_pretrained(export_checkpoint(trained, tmp_path / "merged", merge_lora=True))
    assert merged.config.lora is None and unmerged.config.lora is not None
    ids = torch.tensor([[1, 30, 31, 32, 33, 34]])
    with torch.no_grad():
        merged_logits, unmerged_logits = merged(input_ids=ids).logits, unmerged(input_ids=ids).logits
    # W x + s B (A x) against (W + s B A) x: twice the model's float32 bound (tests/float32_error.py)
    tolerance = float32_bound(TINY_REF_THINKER_CHAIN + 16, float(unmerged_logits.abs().max()), paths=2)
    assert torch.allclose(merged_logits, unmerged_logits, rtol=0, atol=tolerance)


def test_an_existing_run_is_only_continued_with_resume_and_the_same_recipe(
    trained: Path, train_bench: Path, fresh_init: Path
) -> None:
    recipe = fast_recipe(max_steps=20, save_steps=10, learning_rate=2e-3, lr_scheduler="constant_with_warmup",
                         warmup_ratio=0.0, checkpoint_model="full")  # fmt: skip
    with pytest.raises(RunError, match="--resume"):
        run_training(_job(train_bench, fresh_init, trained, recipe))
    with pytest.raises(RunError, match=r"recipe\.learning_rate: 0\.002 -> 0\.001"):
        run_training(_job(train_bench, fresh_init, trained, recipe.replace(learning_rate=1e-3), resume=True))


def test_an_interrupted_run_resumes_to_the_same_parameters_and_losses(
    train_bench: Path, tmp_path: Path
) -> None:
    """Stop after 3 of 8 steps (mid-epoch: 6 steps per epoch), resume, compare with one go.

    The paper's recipe otherwise (LoRA dropout 0.05, encoders in train mode, its schedule), so the
    data position, the RNG, the optimizer and the scheduler must all be restored. Tolerance: exact
    equality (the same computations run in the same order on the CPU).
    """
    from tgs.models.registry import resolve_source

    init = Path(resolve_source("ref_thinker", "tiny"))  # an init with an adapter: training continues it
    recipe = fast_recipe(max_steps=8, save_steps=3)
    whole = run_training(_job(train_bench, init, tmp_path / "whole", recipe))
    first = run_training(_job(train_bench, init, tmp_path / "split", recipe), callbacks=[StopAt(3)])
    assert first.global_step == 3 and latest_checkpoint(tmp_path / "split") == tmp_path / "split" / "checkpoint-3"
    second = run_training(_job(train_bench, init, tmp_path / "split", recipe, resume=True))
    assert second.global_step == 8
    assert second.losses == whole.losses and len(whole.losses) == 8
    a = load_file(str(tmp_path / "whole" / "checkpoint-8" / TRAINABLE_WEIGHTS))
    b = load_file(str(tmp_path / "split" / "checkpoint-8" / TRAINABLE_WEIGHTS))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    log = [json.loads(line) for line in (tmp_path / "split" / "train_log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in log if "loss" in entry] == list(range(1, 9))
