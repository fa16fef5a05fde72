"""Random SAM 3 models: a tiny one for tests, a full-size one (real config) for benchmarks.

``facebook/sam3`` is one repository holding the whole video model (``sam3_video`` config:
detector + tracker) and its processor; transformers loads each part from it:
``Sam3Model`` (image: the detector, tracker keys ignored), ``Sam3VideoModel`` (detector +
tracker) and ``Sam3TrackerVideoModel`` (the tracker alone, detector keys ignored). The tiny
model is saved the same way, so the three registry keys (``sam3``, ``sam3_video``,
``sam3_tracker_video``) load their part through exactly the path real weights take.

SAM 3 reads text with CLIP's BPE tokenizer (49,408 tokens). It cannot be downloaded here,
so :func:`tiny_clip_tokenizer` writes a character-level BPE vocabulary (printable ASCII,
each with and without CLIP's end-of-word mark ``</w>``, plus CLIP's start/end tokens) and
no merges: a caption tokenizes into its characters, which is all a random model needs.

Tiny sizes are bounded by two constraints of transformers' tracker: the memory features
are 64 wide (``kv_in_dim=64`` is fixed in its memory attention) and the tracker's hidden
size must be a multiple larger than that (object pointers are split into
``hidden / 64`` tokens, and ``hidden == 64`` is not handled), so widths are 128 with one or
two layers each and the input is 112 px (an 8 x 8 patch grid) instead of 1008.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import torch

from tgs.testing.weights import fill_every_tensor

__all__ = [
    "TINY_SAM3_IMAGE_SIZE",
    "build_full_size_sam3",
    "build_tiny_sam3",
    "sam3_video_config",
    "tiny_clip_tokenizer",
    "tiny_sam3_video_config",
]

TINY_SAM3_IMAGE_SIZE = 112
_PATCH = 14
_HIDDEN = 128
_START, _END = "<|startoftext|>", "<|endoftext|>"


def tiny_clip_tokenizer(folder: Path) -> Any:
    """A CLIP tokenizer over single printable characters, its files written in ``folder``."""
    from transformers import CLIPTokenizer

    chars = [chr(c) for c in range(33, 127)]
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab[_START], vocab[_END] = len(vocab), len(vocab) + 1
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(vocab=str(folder / "vocab.json"), merges=str(folder / "merges.txt"), model_max_length=32)


def _tiny_parts(vocab_size: int, start_id: int, end_id: int) -> tuple[dict, dict]:
    """(detector config kwargs, tracker config kwargs) at 112 px, width 128."""
    grid = TINY_SAM3_IMAGE_SIZE // _PATCH
    vit = {
        "model_type": "sam3_vit_model", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 2, "image_size": TINY_SAM3_IMAGE_SIZE, "patch_size": _PATCH, "window_size": 4,
        "global_attn_indexes": [1], "pretrain_image_size": 56,
    }
    vision = {
        "backbone_config": vit, "fpn_hidden_size": _HIDDEN,
        "backbone_feature_sizes": [[grid * 4] * 2, [grid * 2] * 2, [grid] * 2],
    }
    text = {
        "vocab_size": vocab_size, "hidden_size": 32, "intermediate_size": 64, "projection_dim": 32,
        "num_hidden_layers": 2, "num_attention_heads": 2, "max_position_embeddings": 32,
        "bos_token_id": start_id, "eos_token_id": end_id, "pad_token_id": end_id,
    }
    small = {"hidden_size": _HIDDEN, "num_attention_heads": 2, "intermediate_size": 64}
    detector = {
        "vision_config": vision, "text_config": text,
        "geometry_encoder_config": {"num_layers": 1, **small},
        "detr_encoder_config": {"num_layers": 1, **small},
        "detr_decoder_config": {"num_layers": 2, "num_queries": 20, **small},
        "mask_decoder_config": {"hidden_size": _HIDDEN, "num_attention_heads": 2},
    }
    tracker = {
        "vision_config": vision, "image_size": TINY_SAM3_IMAGE_SIZE,
        "prompt_encoder_config": {"hidden_size": _HIDDEN, "image_size": TINY_SAM3_IMAGE_SIZE},
        "mask_decoder_config": {"hidden_size": _HIDDEN, "mlp_dim": 64, "num_attention_heads": 2,
                                "iou_head_hidden_dim": 32},
        "memory_attention_hidden_size": _HIDDEN, "memory_attention_num_layers": 1,
        "memory_attention_feed_forward_hidden_size": 64, "memory_attention_rope_feat_sizes": [grid, grid],
        "memory_encoder_hidden_size": _HIDDEN, "memory_encoder_output_channels": 64,
        "mask_downsampler_embed_dim": _HIDDEN, "memory_fuser_embed_dim": _HIDDEN,
        "memory_fuser_intermediate_dim": 64, "memory_fuser_num_layers": 1, "num_maskmem": 3,
        "max_object_pointers_in_encoder": 4,
    }
    return detector, tracker


def tiny_sam3_video_config(vocab_size: int, start_id: int, end_id: int) -> Any:
    """The tiny ``sam3_video`` config: the real structure and heuristics, small widths, a short
    hot start (2 frames) and detection thresholds set inside the random scores' narrow range
    (0.24-0.26): a few queries start masklets (all of them would at 0.2, none at the real 0.7)."""
    from transformers import Sam3VideoConfig

    detector, tracker = _tiny_parts(vocab_size, start_id, end_id)
    grid = TINY_SAM3_IMAGE_SIZE // _PATCH
    return Sam3VideoConfig(
        detector_config=detector, tracker_config=tracker, low_res_mask_size=grid * 4,
        hotstart_delay=2, hotstart_unmatch_thresh=1, hotstart_dup_thresh=1,
        score_threshold_detection=0.2, new_det_thresh=0.25,
    )


def sam3_video_config() -> Any:
    """The real ``facebook/sam3`` architecture (transformers' defaults are that checkpoint's)."""
    from transformers import Sam3VideoConfig

    return Sam3VideoConfig()


def _save(model: torch.nn.Module, tokenizer: Any, out_dir: Path, image_size: int, mask_size: int) -> None:
    """Model weights + the video processor (image processor, video processor, tokenizer)."""
    from transformers import Sam2VideoVideoProcessor, Sam3ImageProcessor, Sam3VideoProcessor

    model.save_pretrained(out_dir)
    size = {"height": image_size, "width": image_size}
    Sam3VideoProcessor(
        image_processor=Sam3ImageProcessor(size=size, mask_size={"height": mask_size, "width": mask_size}),
        video_processor=Sam2VideoVideoProcessor(size=size),
        tokenizer=tokenizer,
    ).save_pretrained(out_dir)


def build_tiny_sam3(out_dir: Path, seed: int = 0) -> Path:
    """Save a tiny random ``Sam3VideoModel`` (detector + tracker) and its processor into ``out_dir``.

    Every tensor its initialisers leave at zero or at one constant gets seeded random values
    (:func:`tgs.testing.weights.fill_every_tensor`), so tests comparing two paths compare every
    layer. The tracker's object-presence head gets a +4 output bias, as the tiny SAM2 video model
    (``tgs.testing.tiny_vision.build_tiny_sam2_video``): with random weights its logit hovers
    around 0 and a negative one blanks the masklet, so tests would depend on the draw.
    """
    from transformers import Sam3VideoModel

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tgs-clip-vocab-") as tmp:
        tokenizer = tiny_clip_tokenizer(Path(tmp))
    vocab = tokenizer.get_vocab()
    config = tiny_sam3_video_config(len(vocab), vocab[_START], vocab[_END])
    torch.manual_seed(seed)
    model = Sam3VideoModel(config).eval()
    fill_every_tensor(model, seed + 2)
    with torch.no_grad():
        model.tracker_model.mask_decoder.pred_obj_score_head.proj_out.bias.fill_(4.0)
    grid = TINY_SAM3_IMAGE_SIZE // _PATCH
    _save(model, tokenizer, out_dir, TINY_SAM3_IMAGE_SIZE, grid * 4)
    return out_dir


def build_full_size_sam3(out_dir: Path, seed: int = 0) -> Path:
    """Save a full-size random ``Sam3VideoModel`` (the real config, 860 M parameters) for benchmarks.

    The tokenizer is the tiny character-level one: its ids are below CLIP's 49,408, so they
    index the same embedding table; only the token count per caption differs (characters
    instead of words), which the fixed 32-token text input hides.
    """
    from transformers import Sam3VideoModel

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tgs-clip-vocab-") as tmp:
        tokenizer = tiny_clip_tokenizer(Path(tmp))
    torch.manual_seed(seed)
    model = Sam3VideoModel(sam3_video_config()).eval()
    _save(model, tokenizer, out_dir, 1008, 288)
    return out_dir
