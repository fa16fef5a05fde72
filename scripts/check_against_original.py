"""Check tgs's Ref-Thinker against the original TGS-Agent code, with the same random weights.

    python scripts/check_against_original.py --original /path/to/TGS-Agent [--beats]

``--original`` is YOUR checkout of https://github.com/jasongief/TGS-Agent; nothing of it is
shipped with tgs. The script imports the original's own modules (``models/Qformer.py``,
``models/multimodal_encoder.py`` with ``VLProjector``/``ALProjector``, ``models/beats/``,
``models/unified_arch.py``, ``models/unified_llama.py``, ``dataset/unified_dataset.py``,
``dataset/audio_processor.py``), builds tiny random models (LLaMA 32 wide, CLIP with 24
layers, tiny BEATs, 2-layer Q-Formers), sets every parameter of the original model to random
values, loads that state dict strictly into ours and ours strictly back into a fresh original,
and compares in fp32, reporting max |diff| per item:

- frame preprocessing: the original ``UnifiedTestDataset.__getitem__`` (PIL open, resize to
  224, the CLIP vision tower's ``CLIPImageProcessor``) vs ``RefThinkerProcessor.preprocess_frames``;
- fbank chunking and normalisation: the original ``__getitem__`` audio path (10 chunks,
  ``dataset.audio_processor.preprocess``) vs ``RefThinkerProcessor.preprocess_audio``. torchaudio
  cannot be installed beside recent torch, so the Kaldi fbank kernel inside the original path is
  ours (shim 3); the kernel itself is compared with the torchaudio outputs committed in
  ``tests/fixtures/fbank`` (``scripts/make_fbank_reference.py``);
- prompt token ids: the original ``DataCollatorForUnifiedTestDataset`` vs ``RefThinkerProcessor``;
- BEATs features, video and audio projector outputs, and the full model's LLM logits (real
  tokens of a left-padded batch of two) on the same inputs;
- with ``--beats``: a tiny BEATs checkpoint written by tgs, loaded strictly into the original
  ``models.beats.BEATs.BEATs``, and features (with a padding mask) compared.

Exit status 1 when any item exceeds ``--tolerance`` (1e-5) or any state dict fails to load
strictly; 2 for a bad ``--original``.

Shims (installed only in this process; the checkout is never modified):

1. Import stubs for modules the inference path never calls: ``ipdb`` (a debugger import),
   ``models.taming_transformer.vqgan`` and ``models.loss`` (segmentation training code imported
   by ``multimodal_encoder``), ``decord`` (video decoding, unused by the Ref-AVS test dataset,
   which reads JPEG frames) and ``einops`` if it is not installed.
2. ``librosa.load``: librosa is not a tgs dependency. The stub reads the file with soundfile and
   averages channels; it refuses a file whose rate differs from ``sr`` (no resampling), so the
   samples are exactly what librosa returns for a float 16 kHz WAV.
3. ``torchaudio.compliance.kaldi.fbank`` -> ``tgs.data.fbank.kaldi_fbank`` (see above).
4. transformers 5 removed ``apply_chunking_to_forward``, ``prune_linear_layer`` and
   ``find_pruneable_heads_and_indices`` from ``transformers.modeling_utils`` (``Qformer.py``
   imports them): the first two are re-exported from ``transformers.pytorch_utils``; the third
   (head pruning, never used) raises. ``PreTrainedModel.invert_attention_mask`` and
   ``get_head_mask``, which ``Qformer.BertModel.forward`` calls, are gone too: they are added
   back to ``BertModel`` with transformers 4's behaviour (``(1 - mask) * finfo.min``; no head mask).
   ``Qformer.py`` calls ``self.init_weights()`` in ``__init__``; transformers 5's ``init_weights``
   needs the attributes ``post_init`` sets, so there it runs ``post_init`` (which calls
   ``init_weights`` back). Initial values do not matter: every parameter is randomised after.
5. ``BertTokenizer.from_pretrained`` / ``BertConfig.from_pretrained``: the original loads
   bert-base-uncased from a local path for the Q-Formers; the tokenizer is unused, the config is
   replaced by a tiny one (the Q-Former structure is unchanged).
6. The original hard-codes the projector input widths (CLIP-L 1024, BEATs 768); after
   ``init_multimodal_modules`` the projectors are rebuilt with the original classes at the tiny
   encoders' width (32).
7. Key names of the CLIP tower: transformers 5 flattened ``CLIPVisionModel`` (no ``vision_model.``
   level), so the original, run under transformers 5, names its CLIP weights
   ``model.visual_encoder.vision_tower.embeddings...``. tgs keeps transformers 4's names
   (``...vision_tower.vision_model.embeddings...``), which are those of the released checkpoint and
   of the original under the transformers 4 it was written for, and also accepts the flat names
   on load. Loading ours into the original therefore renames that one prefix first; every other
   key must match as is.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import sys
import tempfile
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

logger = logging.getLogger("check_against_original")

REPO_ROOT = Path(__file__).resolve().parents[1]
FBANK_FIXTURES = REPO_ROOT / "tests" / "fixtures" / "fbank"
FBANK_CASES = ("sine_mix", "noise_dc", "one_frame", "two_frames", "silence", "other_params")
REQUIRED_FILES = (
    "models/Qformer.py",
    "models/multimodal_encoder.py",
    "models/unified_arch.py",
    "models/unified_llama.py",
    "models/beats/BEATs.py",
    "dataset/unified_dataset.py",
    "dataset/audio_processor.py",
)
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "down_proj", "up_proj"]
TINY_CLIP_VISION = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 24,  # the original selects layers 14, 22, 23 of CLIP-L
    "num_attention_heads": 4,
    "patch_size": 14,
    "image_size": 224,
    "projection_dim": 16,
}
TINY_BERT = {
    "vocab_size": 64,
    "hidden_size": 32,
    "num_attention_heads": 4,
    "intermediate_size": 64,
    "max_position_embeddings": 32,
}
TF4_CLIP_PREFIX = (
    "model.visual_encoder.vision_tower.vision_model."  # the release's (and transformers 4's) names
)
TF5_CLIP_PREFIX = "model.visual_encoder.vision_tower."  # transformers 5's flat CLIPVisionModel
EXPRESSIONS = ("The dog barking loudly.", "A cat.")


class OriginalCheckoutError(ValueError):
    """``--original`` is not a usable TGS-Agent checkout."""


@dataclass(frozen=True)
class Item:
    """One compared quantity: max |ours - original| (``nan`` when shapes differ)."""

    name: str
    max_abs_diff: float
    note: str = ""


# ----------------------------------------------------------------------------- arguments
def validate_original(path: Path) -> Path:
    """The checkout root, or OriginalCheckoutError naming what is missing and the fix."""
    if not path.exists():
        raise OriginalCheckoutError(
            f"--original {path} does not exist; fix: pass the root of a checkout of "
            "https://github.com/jasongief/TGS-Agent (git clone it first)"
        )
    if not path.is_dir():
        raise OriginalCheckoutError(
            f"--original {path} is not a directory; fix: pass the checkout's root folder"
        )
    missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
    if missing:
        raise OriginalCheckoutError(
            f"--original {path} is not a TGS-Agent checkout: missing {', '.join(missing)}; "
            "fix: pass the root folder of https://github.com/jasongief/TGS-Agent (the one holding models/ and dataset/)"
        )
    return path.resolve()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--original", type=Path, required=True, help="root of your TGS-Agent checkout")
    parser.add_argument(
        "--beats", action="store_true", help="also check a standalone BEATs checkpoint round trip"
    )
    parser.add_argument(
        "--tolerance", type=float, default=1e-5, help="largest allowed max |diff| (default 1e-5)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights and inputs")
    args = parser.parse_args(argv)
    if not args.tolerance > 0:
        parser.error(f"--tolerance must be positive, got {args.tolerance}")
    try:
        args.original = validate_original(args.original)
    except OriginalCheckoutError as err:
        parser.error(str(err))
    return args


# ----------------------------------------------------------------------------- shims
def _stub_module(name: str, **attrs: Any) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    sys.modules[name] = module
    return module


def _unused(name: str) -> Callable[..., Any]:
    def fail(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError(f"{name} is stubbed by check_against_original.py and must not be called")

    return fail


def _librosa_load(path: str, sr: int = 22050, mono: bool = True, **kwargs: Any) -> tuple[np.ndarray, int]:
    import soundfile

    if kwargs.get("duration") is not None or kwargs.get("offset"):
        raise RuntimeError("the librosa.load stub supports neither duration nor offset")
    data, rate = soundfile.read(path, dtype="float32", always_2d=True)
    if rate != sr:
        raise RuntimeError(f"the librosa.load stub does not resample ({path}: {rate} Hz, asked {sr} Hz)")
    samples = data.mean(axis=1) if mono else data.T
    return np.ascontiguousarray(samples, dtype=np.float32), rate


def install_shims(original: Path) -> None:
    """Shims 1-5 of the module docstring; then the checkout is importable as ``models``/``dataset``."""
    import transformers
    import transformers.modeling_utils as modeling_utils
    import transformers.pytorch_utils as pytorch_utils
    from transformers import PreTrainedModel

    from tgs.data.fbank import kaldi_fbank

    _stub_module("ipdb", set_trace=_unused("ipdb.set_trace"))
    if importlib.util.find_spec("einops") is None:
        _stub_module("einops", rearrange=_unused("einops.rearrange"))
    _stub_module("models.taming_transformer")
    _stub_module("models.taming_transformer.vqgan", VQModel=_unused("VQModel"))
    _stub_module(
        "models.loss",
        **{n: _unused(n) for n in ("dice_loss", "overlap_loss", "sigmoid_ce_loss", "F10_IoU_BCELoss")},
    )
    _stub_module(
        "decord",
        VideoReader=_unused("decord.VideoReader"),
        bridge=types.SimpleNamespace(set_bridge=lambda *_: None),
    )
    _stub_module("librosa", load=_librosa_load)
    kaldi = _stub_module("torchaudio.compliance.kaldi", fbank=kaldi_fbank)
    _stub_module("torchaudio.compliance", kaldi=kaldi)
    _stub_module("torchaudio", compliance=sys.modules["torchaudio.compliance"])

    modeling_utils.apply_chunking_to_forward = pytorch_utils.apply_chunking_to_forward
    modeling_utils.prune_linear_layer = pytorch_utils.prune_linear_layer
    modeling_utils.find_pruneable_heads_and_indices = _unused("find_pruneable_heads_and_indices")
    transformers.BertTokenizer.from_pretrained = classmethod(lambda cls, *a, **k: None)

    sys.path.insert(0, str(original))
    import models.Qformer as qformer

    qformer.BertConfig.from_pretrained = classmethod(lambda cls, *a, **k: qformer.BertConfig(**TINY_BERT))

    def invert_attention_mask(self: torch.nn.Module, mask: torch.Tensor) -> torch.Tensor:
        extended = mask[:, None, None, :].to(self.dtype)
        return (1.0 - extended) * torch.finfo(self.dtype).min

    def init_weights(self: torch.nn.Module) -> None:
        if "all_tied_weights_keys" in self.__dict__:  # called back from post_init
            PreTrainedModel.init_weights(self)
        else:  # called from the original __init__, where transformers 5 needs post_init first
            self.post_init()

    qformer.BertPreTrainedModel.init_weights = init_weights
    qformer.BertModel.invert_attention_mask = invert_attention_mask
    qformer.BertModel.get_head_mask = lambda self, head_mask, num_layers: [None] * num_layers


# ----------------------------------------------------------------------------- helpers
def max_abs_diff(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    if ours.shape != theirs.shape:
        logger.error("shape mismatch: ours %s, original %s", tuple(ours.shape), tuple(theirs.shape))
        return float("nan")
    return (ours.double() - theirs.double()).abs().max().item()


def tie_qformer_heads(model: torch.nn.Module) -> None:
    """The original's BertLMHeadModel ties its decoder to the word embeddings (transformers 4 did this in init)."""
    for module in model.modules():
        if type(module).__name__ == "BertLMHeadModel":
            module.cls.predictions.decoder.weight = module.bert.embeddings.word_embeddings.weight


def load_strict(model: torch.nn.Module, state_dict: dict[str, torch.Tensor], what: str) -> None:
    result = model.load_state_dict(state_dict, strict=True)
    logger.info("%s: strict load ok (%s)", what, result)


def write_inputs(
    directory: Path, generator: torch.Generator
) -> tuple[list[Path], Path, np.ndarray, np.ndarray]:
    """10 PNG frames (lossless, odd size) and a 10.3 s float 16 kHz WAV; returns paths and the arrays."""
    import soundfile
    from PIL import Image

    frames = torch.randint(0, 256, (10, 180, 320, 3), generator=generator, dtype=torch.uint8).numpy()
    paths = []
    for i, frame in enumerate(frames):
        paths.append(directory / f"{i}.png")
        Image.fromarray(frame).save(paths[-1])
    audio = (torch.randn(164800, generator=generator) * 0.1).numpy().astype(np.float32)
    wav = directory / "audio.wav"
    soundfile.write(wav, audio, 16000, subtype="FLOAT")
    return paths, wav, frames, audio


# ----------------------------------------------------------------------------- checks
def check_fbank_kernel() -> list[Item]:
    """tgs.data.fbank.kaldi_fbank vs torchaudio 2.9 outputs committed as fixtures."""
    from tgs.data.fbank import kaldi_fbank

    items = []
    for name in FBANK_CASES:
        case = np.load(FBANK_FIXTURES / f"{name}.npz")
        kwargs = json.loads(str(case["kwargs"]))
        ours = kaldi_fbank(torch.from_numpy(case["waveform"]).unsqueeze(0), **kwargs)
        items.append(
            Item(
                f"fbank kernel: {name}",
                max_abs_diff(ours, torch.from_numpy(case["fbank"])),
                "vs torchaudio fixture",
            )
        )
    return items


def check_full_model(args: argparse.Namespace, work: Path) -> list[Item]:
    import models.multimodal_encoder as original_encoders
    from dataset.unified_dataset import DataCollatorForUnifiedTestDataset, UnifiedTestDataset
    from models.unified_llama import UnifiedConfig, UnifiedForCausalLM
    from peft import LoraConfig, get_peft_model
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel

    from tgs.testing.tiny_thinker import (
        _TINY_LLAMA,
        TINY_LORA,
        build_tiny_llama_tokenizer,
        tiny_ref_thinker_config,
    )
    from tgs.think.ref_thinker.beats import write_tiny_beats_checkpoint
    from tgs.think.ref_thinker.checkpoint import inject_lora
    from tgs.think.ref_thinker.configuration import SPECIAL_TOKENS
    from tgs.think.ref_thinker.modeling import RefThinkerForCausalLM
    from tgs.think.ref_thinker.processing import RefThinkerProcessor

    torch.manual_seed(args.seed)
    clip_dir = work / "clip"
    text = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 4,
        "vocab_size": 100,
        "max_position_embeddings": 16,
        "projection_dim": 16,
    }
    CLIPModel(
        CLIPConfig(text_config=text, vision_config=TINY_CLIP_VISION, projection_dim=16)
    ).save_pretrained(clip_dir)
    CLIPImageProcessorPil().save_pretrained(clip_dir)
    beats_path = write_tiny_beats_checkpoint(work / "beats.pt", args.seed)

    tokenizer = build_tiny_llama_tokenizer()
    tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    base_vocab = len(tokenizer)

    # ---- the original, built as scripts/finetune/inference_hyper_lora.py builds it
    def build_original() -> torch.nn.Module:
        model = UnifiedForCausalLM(UnifiedConfig(vocab_size=base_vocab, **_TINY_LLAMA))
        model = get_peft_model(
            model,
            LoraConfig(
                r=TINY_LORA["r"],
                lora_alpha=TINY_LORA["lora_alpha"],
                lora_dropout=TINY_LORA["lora_dropout"],
                target_modules=LORA_TARGETS,
                task_type="CAUSAL_LM",
            ),
        )
        model.get_model().pad_token_id = tokenizer.pad_token_id
        model.get_model().init_multimodal_modules(
            visual_branch=True,
            audio_branch=True,
            d_model=_TINY_LLAMA["hidden_size"],
            vit_ckpt_path=str(clip_dir),
            select_layer_list=[14, 22, 23],
            BEATs_ckpt_path=str(beats_path),
            visual_query_token_nums=8,
            audio_query_token_nums=8,
        )
        width = TINY_CLIP_VISION["hidden_size"]
        model.get_model().vl_projector = original_encoders.VLProjector(
            hidden_size=width,
            d_model=_TINY_LLAMA["hidden_size"],
            depth=2,
            image_token_nums=256,
            num_query_token=8,
            num_hidden_layers=2,
        )
        model.get_model().al_projector = original_encoders.ALProjector(
            hidden_size=width,
            d_model=_TINY_LLAMA["hidden_size"],
            depth=2,
            num_query_token=8,
            num_hidden_layers=2,
        )
        tie_qformer_heads(model)
        return model

    original = build_original()
    original.initialize_MM_tokenizer(tokenizer)
    added = tokenizer.convert_tokens_to_ids(list(SPECIAL_TOKENS))
    if added != list(range(base_vocab, base_vocab + len(SPECIAL_TOKENS))):
        raise RuntimeError(f"the original's added tokens differ from tgs's SPECIAL_TOKENS: ids {added}")
    with torch.no_grad():
        for name, param in original.named_parameters():
            if "vision_tower" in name or "audio_encoder" in name:
                param.add_(torch.randn_like(param) * 0.02)  # keep the encoders' LayerNorms near 1
            else:
                param.normal_(0.0, 1.0 if "lm_head" in name else 0.3)
    original.eval()
    original_sd = {k.removeprefix("base_model.model."): v for k, v in original.state_dict().items()}

    # ---- ours, loaded strictly from the original's weights, and back
    config = tiny_ref_thinker_config(base_vocab, dict(TINY_LORA))
    config.vision_config = dict(TINY_CLIP_VISION)
    config.vision_feature_layer = 23
    config.audio_config = torch.load(beats_path, weights_only=True)["cfg"]
    ours = RefThinkerForCausalLM(config)
    inject_lora(ours, config.lora)
    ours.eval()
    load_strict(ours, original_sd, "original state dict -> tgs RefThinkerForCausalLM")
    roundtrip = build_original()
    roundtrip.initialize_MM_tokenizer(
        build_tiny_llama_tokenizer()
    )  # a fresh base tokenizer: ids from its length
    flat_clip = {
        f"base_model.model.{k.replace(TF4_CLIP_PREFIX, TF5_CLIP_PREFIX)}": v
        for k, v in ours.state_dict().items()
    }
    load_strict(
        roundtrip,
        flat_clip,
        "tgs state dict (CLIP keys flattened, shim 7) -> original UnifiedForCausalLM (peft)",
    )

    # ---- preprocessing: the original's test dataset and collator vs RefThinkerProcessor
    frame_paths, wav, frames, _ = write_inputs(work, torch.Generator().manual_seed(args.seed + 1))
    image_processor = original.get_model().visual_encoder.image_processor
    dataset = UnifiedTestDataset(mode="test", video_processor=image_processor, tokenizer=tokenizer)
    instances = []
    for expression in EXPRESSIONS:
        sample = _ref_avs_sample(expression, frame_paths, wav)
        dataset.samples = [sample]
        instances.append(dataset[0])
    collated = DataCollatorForUnifiedTestDataset(tokenizer=tokenizer)(instances)

    from tgs.data.media import load_audio

    processor = RefThinkerProcessor(tokenizer, CLIPImageProcessorPil.from_pretrained(clip_dir))
    our_pixels = processor.preprocess_frames(frames)
    audio = load_audio(wav)
    our_fbank = processor.preprocess_audio(audio, 16000, len(frames))
    batch = processor.collate(EXPRESSIONS, [our_pixels] * 2, [our_fbank] * 2)
    items = [
        Item("frame preprocessing", max_abs_diff(our_pixels, instances[0]["video"])),
        Item(
            "fbank chunking + normalisation",
            max_abs_diff(our_fbank, instances[0]["audio"]),
            "kernel shimmed (see fbank kernel rows)",
        ),
    ]
    id_mismatches = sum(
        not torch.equal(row[mask.bool()], theirs)
        for row, mask, theirs in zip(
            batch.input_ids, batch.attention_mask, collated["batch_input_ids"], strict=True
        )
    )
    items.append(Item("prompt token ids", float(id_mismatches), "prompts whose ids differ"))

    # ---- encoders, projectors, logits
    with torch.no_grad():
        fbank = instances[0]["audio"]
        items.append(
            Item(
                "BEATs features",
                max_abs_diff(
                    ours.get_submodule("model.audio_encoder.audio_encoder").extract_features(fbank),
                    original.get_model().audio_encoder.audio_encoder.extract_features(
                        fbank, feature_only=True
                    )[0],
                ),
            )
        )
        video = instances[0]["video"]
        items.append(
            Item(
                "video projector output",
                max_abs_diff(
                    ours.encode_video(video[None])[0], original.encode_video(video, batch_first=False)[1][-1]
                ),
            )
        )
        items.append(
            Item(
                "audio projector output",
                max_abs_diff(
                    ours.encode_audio(fbank[None])[0], original.encode_audio(fbank, batch_first=False)
                ),
            )
        )
        theirs = original(
            **{
                k: collated[k]
                for k in ("batch_input_ids", "batch_labels", "batch_X_modals", "batch_task_names")
            }
        )
        mine = ours(
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask,
            pixel_values=batch.pixel_values,
            audio_fbank=batch.audio_fbank,
        )
        spliced = ours.prepare_multimodal_inputs(
            batch.input_ids, batch.attention_mask, batch.pixel_values, batch.audio_fbank
        )
        real = spliced.attention_mask.bool()
        if mine.logits.shape != theirs.logits.shape:
            items.append(
                Item(
                    "LLM logits",
                    float("nan"),
                    f"shapes {tuple(mine.logits.shape)} vs {tuple(theirs.logits.shape)}",
                )
            )
        else:
            items.append(
                Item(
                    "LLM logits, each side's own preprocessing",
                    max_abs_diff(mine.logits[real], theirs.logits[real]),
                    f"{int(real.sum())} real positions, mean |logit| {theirs.logits[real].abs().mean():.2f}",
                )
            )
        same_inputs = ours(
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask,
            pixel_values=torch.stack([instance["video"] for instance in instances]),
            audio_fbank=torch.stack([instance["audio"] for instance in instances]),
        )
        items.append(
            Item(
                "LLM logits, the original's input tensors",
                max_abs_diff(same_inputs.logits[real], theirs.logits[real]),
                "isolates the model from frame preprocessing",
            )
        )
        roundtrip.eval()
        again = roundtrip(
            **{
                k: collated[k]
                for k in ("batch_input_ids", "batch_labels", "batch_X_modals", "batch_task_names")
            }
        )
        items.append(
            Item(
                "LLM logits (original reloaded from ours)",
                max_abs_diff(again.logits[real], theirs.logits[real]),
            )
        )
    return items


def _ref_avs_sample(expression: str, frame_paths: list[Path], wav: Path) -> dict[str, Any]:
    """A sample as the original's ``UnifiedTestDataset.add_ref_avs_samples`` builds it (prompt text via tgs)."""
    from tgs.think.ref_thinker.prompts import build_prompt

    instruction = build_prompt(expression).removeprefix("<s>")
    return {
        "instruction": instruction,
        "output": "",
        "image_path": None,
        "mask_path": None,
        "audio_path": str(wav),
        "image_path_list": [str(p) for p in frame_paths],
        "mask_path_list": [],
        "uid": "check",
        "ref": expression,
        "fid": 0,
        "task_name": "ref-avs",
    }


def check_beats_checkpoint(args: argparse.Namespace, work: Path) -> list[Item]:
    """A tgs-written tiny BEATs checkpoint in the original BEATs class, strictly, and features."""
    from models.beats.BEATs import BEATs, BEATsConfig

    from tgs.think.ref_thinker.beats import load_beats_checkpoint, write_tiny_beats_checkpoint

    path = write_tiny_beats_checkpoint(work / "beats_standalone.pt", args.seed + 7)
    checkpoint = torch.load(path, weights_only=True)
    original = BEATs(BEATsConfig(checkpoint["cfg"]))
    load_strict(original, checkpoint["model"], "tgs BEATs checkpoint -> original BEATs")
    original.eval()
    ours = load_beats_checkpoint(path).eval()
    load_strict(
        BEATs(BEATsConfig(checkpoint["cfg"])), ours.state_dict(), "tgs BEATs state dict -> original BEATs"
    )
    generator = torch.Generator().manual_seed(args.seed + 8)
    fbank = torch.randn(3, 98, 128, generator=generator)
    padding = torch.zeros(3, 98, dtype=torch.bool)
    padding[1, 70:] = True
    with torch.no_grad():
        return [
            Item(
                "BEATs checkpoint features",
                max_abs_diff(
                    ours.extract_features(fbank), original.extract_features(fbank, feature_only=True)[0]
                ),
            ),
            Item(
                "BEATs checkpoint features, padding mask",
                max_abs_diff(
                    ours.extract_features(fbank, padding),
                    original.extract_features(fbank, padding, feature_only=True)[0],
                ),
            ),
        ]


def report(items: list[Item], tolerance: float) -> bool:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"tgs vs original TGS-Agent (fp32, tolerance {tolerance:g})")
    for column in ("item", "max |diff|", "ok", "note"):
        table.add_column(column)
    ok_all = True
    for item in items:
        ok = item.max_abs_diff <= tolerance  # False for nan
        ok_all &= ok
        table.add_row(item.name, f"{item.max_abs_diff:.3g}", "yes" if ok else "NO", item.note)
    Console().print(table)
    return ok_all


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    torch.set_default_dtype(torch.float32)
    install_shims(args.original)
    with tempfile.TemporaryDirectory(prefix="tgs-check-original-") as tmp:
        work = Path(tmp)
        try:
            items = check_fbank_kernel() + check_full_model(args, work)
            if args.beats:
                items += check_beats_checkpoint(args, work)
        except RuntimeError as err:  # includes strict-load key mismatches
            logger.error("the check could not complete: %s", err)
            return 1
    if report(items, args.tolerance):
        logger.info("all %d items agree within %g", len(items), args.tolerance)
        return 0
    logger.error("some items exceed %g (rows marked NO)", args.tolerance)
    return 1


if __name__ == "__main__":
    sys.exit(main())
