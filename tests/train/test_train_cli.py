"""`tgs train`, `tgs think --model <training output>` and `tgs models export` end to end on synthetic data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from tgs.cli.main import build_app
from tgs.data.synth_instructions import INSTRUCTION_SET_NAME

runner = CliRunner()
FAST = ["--set", "bf16=false", "--set", "dataloader_num_workers=0", "--set", "per_device_train_batch_size=2",
        "--set", "gradient_accumulation_steps=1", "--device", "cpu"]  # fmt: skip


def _train_args(bench: Path, out: Path) -> list[str]:
    return ["train", "--data", str(bench), "--meta", str(bench / "metadata.csv"),
            "--targets", str(bench / INSTRUCTION_SET_NAME), "--out", str(out)]  # fmt: skip


@pytest.mark.slow
def test_train_then_think_with_the_output_folder_then_export(train_bench: Path, tmp_path: Path) -> None:
    app = build_app()
    out = tmp_path / "run"
    result = runner.invoke(app, [*_train_args(train_bench, out), "--models", "tiny", "--max-steps", "3", *FAST])
    assert result.exit_code == 0, result.output
    assert "checkpoint-3" in result.output and (out / "checkpoint-3" / "trainable.safetensors").is_file()
    manifest = json.loads((out / "train_manifest.json").read_text())
    assert manifest["recipe"]["max_steps"] == 3 and manifest["recipe"]["lora_r"] == 8 and manifest["world_size"] == 1

    think_out = tmp_path / "think"
    result = runner.invoke(app, ["think", "--data", str(train_bench), "--meta", str(train_bench / "metadata.csv"),
                                 "--split", "val", "--model", str(out), "--out", str(think_out),
                                 "--max-new-tokens", "4", "--device", "cpu"])  # fmt: skip
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (think_out / "thoughts.jsonl").read_text().splitlines()]
    assert records and all(r["status"] != "failed" for r in records)
    assert json.loads((think_out / "manifest.json").read_text())["models"]["ref_thinker"] == str(out / "checkpoint-3" / "model")

    exported = tmp_path / "exported"
    result = runner.invoke(app, ["models", "export", str(out / "checkpoint-3"), str(exported)])
    assert result.exit_code == 0, result.output
    assert json.loads((exported / "export.json").read_text())["global_step"] == 3
    a, b = load_file(str(exported / "model.safetensors")), load_file(str(out / "checkpoint-3" / "model" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    result = runner.invoke(app, ["models", "export", str(out), str(exported)])
    assert result.exit_code == 1 and "not empty" in result.output


def test_cli_refusals_and_the_recipe_listing(train_bench: Path, tmp_path: Path) -> None:
    app = build_app()
    result = runner.invoke(app, ["train", "--show-recipe"])
    assert result.exit_code == 0 and "lora_r" in result.output and "deepspeed_warmup_decay" in result.output
    result = runner.invoke(app, _train_args(train_bench, tmp_path / "r"))
    assert result.exit_code != 0 and "--init" in result.output
    result = runner.invoke(app, [*_train_args(train_bench, tmp_path / "r"), "--models", "tiny", "--set", "learning_rat=1"])
    assert result.exit_code != 0 and "learning_rate" in result.output
    bench = tmp_path / "bench"
    shutil.copytree(train_bench, bench)
    targets = json.loads((bench / INSTRUCTION_SET_NAME).read_text())
    (bench / INSTRUCTION_SET_NAME).write_text(json.dumps(dict(list(targets.items())[1:])))
    result = runner.invoke(app, [*_train_args(bench, tmp_path / "r"), "--models", "tiny", *FAST])
    assert result.exit_code == 1 and "1 of" in result.output and "have no target" in result.output
    assert not (tmp_path / "r").exists()  # refused before anything was written


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour without a GPU")
def test_train_without_gpu_runs_with_cpu_settings_and_says_what_changed(train_bench: Path, tmp_path: Path) -> None:
    """The README's command, no extra flags: on a CPU bf16 becomes fp32 (said aloud), no traceback."""
    out = tmp_path / "run"
    result = runner.invoke(build_app(), [*_train_args(train_bench, out), "--models", "tiny", "--max-steps", "2",
                                         "--set", "per_device_train_batch_size=2",
                                         "--set", "gradient_accumulation_steps=1"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "no GPU" in result.output and "bf16: true -> false" in result.output
    manifest = json.loads((out / "train_manifest.json").read_text())
    assert manifest["recipe"]["bf16"] is False and manifest["device"] == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour without a GPU")
def test_train_explicit_bf16_without_gpu_is_one_line_naming_the_flag(train_bench: Path, tmp_path: Path) -> None:
    result = runner.invoke(build_app(), [*_train_args(train_bench, tmp_path / "run"), "--models", "tiny",
                                         "--set", "bf16=true"])  # fmt: skip
    assert result.exit_code == 2
    assert "Traceback" not in result.output and "bf16=false" in result.output
