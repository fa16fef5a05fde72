"""Random Grounding DINO and SAM2 models: tiny ones for tests, full-size ones for benchmarks.

Everything is built offline from configs, seeded, and saved with ``save_pretrained`` (weights
as safetensors, processor and tokenizer files beside them), so tests and benchmarks load them
back through exactly the ``from_pretrained`` path that real checkpoints take.

Tiny models keep the real architectures and processors but shrink widths, depths and the
input resolution (SAM2 at 128 px instead of 1024, Grounding DINO at 80/133 px instead of
800/1333), so a 10-frame clip is grounded and segmented in about a second on one core.
Every tensor the initialisers leave at zero or at one constant gets seeded random values
(:func:`tgs.testing.weights.fill_every_tensor`), so tests comparing two paths compare every
layer (tests/models/test_tiny_models_nonzero.py).

Grounding DINO needs a BERT tokenizer. The real one (bert-base-uncased) cannot be downloaded
here, so :func:`tiny_bert_vocab` makes a small WordPiece vocabulary that keeps the ids
the model hard-codes (transformers' ``SPECIAL_TOKENS = [101, 102, 1012, 1029]``:
[CLS], [SEP], "." and "?"; [PAD] = 0 is the delimiter added by ``build_label_maps``) at
their bert-base-uncased positions, followed by single characters and a few hundred common
words so that captions tokenize into real words, and unknown words into ``##`` pieces.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from pathlib import Path

import torch

from tgs.testing.weights import fill_every_tensor

__all__ = [
    "FULL_SIZE_NAMES",
    "TINY_WORDS",
    "build_full_size",
    "build_tiny_edgetam_video",
    "build_tiny_grounding_dino",
    "build_tiny_sam2",
    "build_tiny_sam2_video",
    "edgetam_video_config",
    "full_size_config",
    "tiny_bert_vocab",
    "tiny_edgetam_video_config",
    "tiny_grounding_dino_config",
    "tiny_sam2_config",
    "tiny_sam2_video_config",
]

# Common English words, Ref-AVS object classes and referring-expression vocabulary.
_TINY_WORDS_TEXT = """
    the a an of and or in on at to with without by for from as is are was be being been it its
    this that these those there here which who whom what when where why how not no yes all any
    some one two three four five six seven eight nine ten first second third last left right
    top bottom middle center front back behind above below near far next between inside outside
    over under up down big small large little long short tall old young new loud quiet louder
    quieter loudest quietest sound sounds sounding making makes made playing plays played sing
    sings singing speaking speaks talking talks barking bark meowing crying laughing moving
    moves moved running walking standing sitting holding held using wearing red blue green
    yellow black white brown gray grey orange pink purple dark light bright same other another
    each every only also more most less least very object objects thing things instrument
    instruments person people man men woman women boy girl child children baby kid kids player
    players singer singers guitar guitars piano pianos violin violins cello drum drums flute
    trumpet saxophone accordion harp ukulele banjo bass keyboard tuba trombone clarinet organ
    bell bells dog dogs cat cats bird birds horse horses cow cows sheep lion tiger elephant
    monkey duck chicken goose pig mouse car cars truck bus train motorcycle bicycle plane
    helicopter boat ship vehicle engine machine lawn mower tractor phone radio tv television
    computer speaker microphone clock gun hammer saw drill fire water wind rain wave waves
    baby toy ball tree trees table chair door window room stage street road field sky ground
    hand hands head face mouth voice music song noise sounding null error none nothing
    background foreground side edge corner group pair both either neither than then while
    after before during since until because if so but his her their our my your him
    them they he she we you i me us can could will would should may might must do does did
    has have had get got make play hear heard see seen look looks appear appears visible
    camera video frame frames audio image picture scene
"""
TINY_WORDS: tuple[str, ...] = tuple(_TINY_WORDS_TEXT.split())

# bert-base-uncased places these single characters at ids 999.. (punctuation, digits, a-z).
_BERT_SINGLE_CHARS: str = "!\"#$%&'()*+,-./" + string.digits + ":;<=>?@[\\]^_`" + string.ascii_lowercase


def tiny_bert_vocab() -> dict[str, int]:
    """A WordPiece vocab (token -> id) whose special ids match bert-base-uncased.

    Layout: 0 [PAD]; 1-99 [unused0-98]; 100 [UNK]; 101 [CLS]; 102 [SEP]; 103 [MASK];
    104-998 [unused99-993]; 999-1062 punctuation, digits and a-z (so "." = 1012, "?" = 1029
    as in bert-base-uncased); then "##a".."##z", "##0".."##9", a few suffixes and TINY_WORDS.
    """
    tokens = ["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokens += [f"[unused{i}]" for i in range(99, 99 + 999 - len(tokens))]
    tokens += list(_BERT_SINGLE_CHARS)
    tokens += [f"##{c}" for c in string.ascii_lowercase + string.digits] + ["##ing", "##ed", "##er", "##est"]
    for word in TINY_WORDS:
        if word not in tokens:
            tokens.append(word)
    vocab = {token: i for i, token in enumerate(tokens)}
    assert vocab["."] == 1012 and vocab["?"] == 1029 and vocab["[CLS]"] == 101 and vocab["[SEP]"] == 102
    return vocab


def _tiny_tokenizer():
    from transformers import BertTokenizer

    return BertTokenizer(vocab=tiny_bert_vocab(), do_lower_case=True, model_max_length=256)


# --------------------------------------------------------------------------- Grounding DINO


def tiny_grounding_dino_config(vocab_size: int):
    """Grounding DINO with the real layout (Swin backbone, 4 levels, two-stage) at toy widths."""
    from transformers import BertConfig, GroundingDinoConfig, SwinConfig

    backbone = SwinConfig(
        embed_dim=8,
        depths=[1, 1, 1, 1],
        num_heads=[1, 1, 2, 2],
        window_size=4,
        out_features=["stage2", "stage3", "stage4"],
        out_indices=[2, 3, 4],
    )
    text = BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=256,
    )
    return GroundingDinoConfig(
        backbone_config=backbone,
        text_config=text,
        d_model=32,  # GroupNorm(32, d_model) in the input projections needs a multiple of 32
        num_queries=20,
        encoder_layers=1,
        decoder_layers=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_n_points=2,
        decoder_n_points=2,
        disable_custom_kernels=True,
    )


def build_tiny_grounding_dino(out_dir: Path, seed: int = 0) -> Path:
    """Save a tiny random GroundingDinoForObjectDetection + processor into ``out_dir``.

    The box-regression heads are zero-initialised by transformers (every box would then be
    an encoder proposal of fixed size); like every idle tensor they get random values, and
    the decoder's box head a larger draw (weights 0.05, biases 0.5), so boxes differ in size
    and position from frame to frame. With these weights most queries
    score well above the 0.1 box threshold on natural-ish images, which is what tests of box
    selection need; ``tests`` also build blank frames where scores still vary by query.
    """
    from transformers import (
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
    )

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = _tiny_tokenizer()
    config = tiny_grounding_dino_config(vocab_size=len(tokenizer))
    torch.manual_seed(seed)
    model = GroundingDinoForObjectDetection(config).eval()
    fill_every_tensor(model, seed + 2)
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for head in model.bbox_embed:
            last = head.layers[-1]
            last.weight.copy_(torch.randn(last.weight.shape, generator=generator) * 0.05)
            last.bias.copy_(torch.randn(last.bias.shape, generator=generator) * 0.5)
    image_processor = GroundingDinoImageProcessor(size={"shortest_edge": 80, "longest_edge": 133})
    processor = GroundingDinoProcessor(image_processor=image_processor, tokenizer=tokenizer)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir


# --------------------------------------------------------------------------- SAM2

_TINY_SAM2_IMAGE_SIZE = 128
# transformers' SAM2 memory attention reads 64-channel memories (kv_in_dim=64 is fixed in
# Sam2VideoMemoryAttentionLayer) and only handles object pointers wider than that (it splits
# them into 64-wide tokens), so the tiny video model needs a hidden size of 128 (2 splits, as
# the real 256 gives 4); the image model shares it.
_TINY_SAM2_HIDDEN = 128


def _tiny_sam2_parts(image_size: int = _TINY_SAM2_IMAGE_SIZE) -> dict:
    from transformers import (
        Sam2HieraDetConfig,
        Sam2MaskDecoderConfig,
        Sam2PromptEncoderConfig,
        Sam2VisionConfig,
    )

    strides = [image_size // 4, image_size // 8, image_size // 16]
    backbone = Sam2HieraDetConfig(
        hidden_size=8,
        num_attention_heads=1,
        image_size=[image_size, image_size],
        blocks_per_stage=[1, 1, 2, 1],
        embed_dim_per_stage=[8, 16, 32, 64],
        num_attention_heads_per_stage=[1, 1, 2, 2],
        window_size_per_stage=[4, 4, 4, 2],
        global_attention_blocks=[3],
        window_positional_embedding_background_size=[4, 4],
    )
    vision = Sam2VisionConfig(
        backbone_config=backbone,
        backbone_channel_list=[64, 32, 16, 8],
        backbone_feature_sizes=[[s, s] for s in strides],
        fpn_hidden_size=_TINY_SAM2_HIDDEN,
    )
    prompt = Sam2PromptEncoderConfig(
        hidden_size=_TINY_SAM2_HIDDEN, image_size=image_size, patch_size=16, mask_input_channels=4
    )
    decoder = Sam2MaskDecoderConfig(
        hidden_size=_TINY_SAM2_HIDDEN,
        mlp_dim=64,
        num_attention_heads=2,
        iou_head_hidden_dim=32,
        num_hidden_layers=2,
    )
    return {"vision_config": vision, "prompt_encoder_config": prompt, "mask_decoder_config": decoder}


def tiny_sam2_config():
    """SAM2 (image) with the real structure: Hiera 4 stages, FPN, high-res features, 128 px input."""
    from transformers import Sam2Config

    return Sam2Config(**_tiny_sam2_parts())


def tiny_sam2_video_config():
    """SAM2 video model matching :func:`tiny_sam2_config` plus tiny memory attention / encoder."""
    from transformers import Sam2VideoConfig

    feat = _TINY_SAM2_IMAGE_SIZE // 16
    return Sam2VideoConfig(
        **_tiny_sam2_parts(),
        image_size=_TINY_SAM2_IMAGE_SIZE,
        memory_attention_hidden_size=_TINY_SAM2_HIDDEN,
        memory_attention_num_layers=1,
        memory_attention_feed_forward_hidden_size=64,
        memory_attention_rope_feat_sizes=[feat, feat],
        memory_encoder_hidden_size=_TINY_SAM2_HIDDEN,
        memory_encoder_output_channels=64,
        mask_downsampler_embed_dim=_TINY_SAM2_HIDDEN,
        memory_fuser_embed_dim=_TINY_SAM2_HIDDEN,
        memory_fuser_intermediate_dim=64,
        memory_fuser_num_layers=1,
    )


def _sam2_image_processor(image_size: int):
    from transformers import Sam2ImageProcessor

    return Sam2ImageProcessor(
        size={"height": image_size, "width": image_size},
        mask_size={"height": image_size // 4, "width": image_size // 4},
    )


def build_tiny_sam2(out_dir: Path, seed: int = 0) -> Path:
    """Save a tiny random Sam2Model + Sam2Processor into ``out_dir``."""
    from transformers import Sam2Model, Sam2Processor

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = Sam2Model(tiny_sam2_config()).eval()
    fill_every_tensor(model, seed + 2)
    model.save_pretrained(out_dir)
    Sam2Processor(image_processor=_sam2_image_processor(_TINY_SAM2_IMAGE_SIZE)).save_pretrained(out_dir)
    return out_dir


def build_tiny_sam2_video(out_dir: Path, seed: int = 0) -> Path:
    """Save a tiny random Sam2VideoModel + Sam2VideoProcessor into ``out_dir``.

    The object-presence head gets a +4 output bias: with random weights its logit hovers
    around 0, and a negative one makes SAM2 blank the frame ("object absent"), so without the
    bias propagation tests would depend on the draw rather than on the tracking logic.
    """
    from transformers import Sam2VideoModel

    return _save_tiny_video_model(lambda: Sam2VideoModel(tiny_sam2_video_config()), out_dir, seed)


# --------------------------------------------------------------------------- EdgeTAM


def _repvit_backbone(embed_dim: tuple[int, ...], depth: tuple[int, ...]):
    """RepViT trunk through timm (EdgeTAM's image encoder).

    transformers' EdgeTamVisionConfig default misspells the timm ``architecture`` key, so its
    default backbone is a ResNet-50; the architecture is named here explicitly.
    """
    from transformers import TimmWrapperConfig

    return TimmWrapperConfig(
        architecture="repvit_m1",
        model_args={"in_chans": 3, "features_only": True, "out_indices": [0, 1, 2, 3],
                    "embed_dim": embed_dim, "depth": depth},
    )


def tiny_edgetam_video_config():
    """EdgeTAM with the real structure (RepViT trunk, FPN, 2D spatial perceiver over the
    memories, memory attention) at toy sizes, 128 px input like the tiny SAM2."""
    from transformers import (
        EdgeTamVideoConfig,
        EdgeTamVideoMaskDecoderConfig,
        EdgeTamVideoPromptEncoderConfig,
        EdgeTamVisionConfig,
    )

    size = _TINY_SAM2_IMAGE_SIZE
    vision = EdgeTamVisionConfig(
        backbone_config=_repvit_backbone((8, 16, 32, 64), (1, 1, 1, 1)),
        backbone_channel_list=[64, 32, 16, 8],
        backbone_feature_sizes=[[size // 4] * 2, [size // 8] * 2, [size // 16] * 2],
        fpn_hidden_size=_TINY_SAM2_HIDDEN,
    )
    return EdgeTamVideoConfig(
        vision_config=vision,
        prompt_encoder_config=EdgeTamVideoPromptEncoderConfig(
            hidden_size=_TINY_SAM2_HIDDEN, image_size=size, patch_size=16, mask_input_channels=4
        ),
        mask_decoder_config=EdgeTamVideoMaskDecoderConfig(
            hidden_size=_TINY_SAM2_HIDDEN, mlp_dim=64, num_attention_heads=2, iou_head_hidden_dim=32,
            num_hidden_layers=2,
        ),
        image_size=size,
        memory_attention_hidden_size=_TINY_SAM2_HIDDEN,
        memory_attention_num_layers=1,
        memory_attention_mlp_hidden_size=64,
        memory_attention_rope_feat_sizes=[size // 16] * 2,
        memory_attention_rope_k_sizes=[4, 4],  # the perceiver's 2D latents: 4 x 4
        perceiver_resampler_num_latents=16,
        perceiver_resampler_num_latents_2d=16,
        perceiver_resampler_mlp_intermediate_size=32,
        perceiver_resampler_num_layers=1,
        memory_encoder_hidden_size=_TINY_SAM2_HIDDEN,
        memory_encoder_output_channels=64,
        mask_downsampler_embed_dim=_TINY_SAM2_HIDDEN,
        memory_fuser_embed_dim=_TINY_SAM2_HIDDEN,
        memory_fuser_intermediate_dim=64,
        memory_fuser_num_layers=1,
    )


def edgetam_video_config():
    """The architecture of facebook/EdgeTAM: RepViT-M1 trunk (timm ``repvit_m1``, stages
    48-96-192-384), 256-wide FPN, 2 memory-attention layers over a 2D spatial perceiver
    (256 + 256 latents), SAM2's prompt encoder and mask decoder, 1024 px input: the
    EdgeTamVideoConfig defaults with the RepViT trunk named."""
    from transformers import EdgeTamVideoConfig, EdgeTamVisionConfig

    vision = EdgeTamVisionConfig(backbone_config=_repvit_backbone((48, 96, 192, 384), (2, 2, 14, 2)))
    return EdgeTamVideoConfig(vision_config=vision)


def _save_tiny_video_model(build: Callable[[], torch.nn.Module], out_dir: Path, seed: int) -> Path:
    """Seed, build a tiny video model, give its presence head the +4 bias (see
    :func:`build_tiny_sam2_video`), save it with a Sam2VideoProcessor into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = build().eval()
    fill_every_tensor(model, seed + 2)
    with torch.no_grad():
        model.mask_decoder.pred_obj_score_head.proj_out.bias.fill_(4.0)
    model.save_pretrained(out_dir)
    _save_video_processor(out_dir, _TINY_SAM2_IMAGE_SIZE)
    return out_dir


def _save_video_processor(out_dir: Path, image_size: int) -> None:
    from transformers import Sam2VideoProcessor, Sam2VideoVideoProcessor

    size = {"height": image_size, "width": image_size}
    Sam2VideoProcessor(
        image_processor=_sam2_image_processor(image_size), video_processor=Sam2VideoVideoProcessor(size=size)
    ).save_pretrained(out_dir)


def build_tiny_edgetam_video(out_dir: Path, seed: int = 0) -> Path:
    """Save a tiny random EdgeTamVideoModel + Sam2VideoProcessor (EdgeTAM's processor) into
    ``out_dir``; the presence head gets the same +4 bias as :func:`build_tiny_sam2_video`."""
    from transformers import EdgeTamVideoModel

    return _save_tiny_video_model(lambda: EdgeTamVideoModel(tiny_edgetam_video_config()), out_dir, seed)


# --------------------------------------------------------------------------- full size

# Hiera trunks of the SAM2.1 checkpoints (sam2/configs/sam2.1/sam2.1_hiera_{t,s,l}.yaml):
# embed_dim, num_heads, stages, global_att_blocks, window_spec (default (8, 4, 14, 7)).
_SAM21_TRUNKS: dict[str, dict] = {
    "sam2.1-hiera-tiny": {
        "embed": 96,
        "heads": 1,
        "stages": [1, 2, 7, 2],
        "global": [5, 7, 9],
        "window": [8, 4, 14, 7],
    },
    "sam2.1-hiera-small": {
        "embed": 96,
        "heads": 1,
        "stages": [1, 2, 11, 2],
        "global": [7, 10, 13],
        "window": [8, 4, 14, 7],
    },
    "sam2.1-hiera-base-plus": {  # sam2.1_hiera_b+.yaml: Hiera's defaults with embed 112, 2 heads
        "embed": 112,
        "heads": 2,
        "stages": [2, 3, 16, 3],
        "global": [12, 16, 20],
        "window": [8, 4, 14, 7],
    },
    "sam2.1-hiera-large": {
        "embed": 144,
        "heads": 2,
        "stages": [2, 6, 36, 4],
        "global": [23, 33, 43],
        "window": [8, 4, 16, 8],
    },
}

FULL_SIZE_NAMES: tuple[str, ...] = ("grounding-dino-tiny", *_SAM21_TRUNKS, "edgetam")


def full_size_config(name: str, *, video: bool = False):
    """The architecture config of a real checkpoint, for random-weight benchmarks.

    ``grounding-dino-tiny``: IDEA-Research/grounding-dino-tiny (Swin-T depths 2-2-6-2, heads
    3-6-12-24, window 7; bert-base-uncased text encoder; 900 queries, 6+6 layers, d_model 256),
    which are transformers' GroundingDinoConfig defaults plus the Swin-T backbone.
    ``edgetam``: facebook/EdgeTAM (video only, see :func:`edgetam_video_config`).
    ``sam2.1-hiera-{tiny,small,base-plus,large}``: the Hiera trunk of the matching SAM2.1 yaml
    (transformers' Sam2Config defaults are hiera-tiny); ``video=True`` gives Sam2VideoConfig
    whose memory defaults are the SAM2.1 ones (7 memories, 4 memory-attention layers).
    """
    if name == "grounding-dino-tiny":
        if video:
            raise ValueError("grounding-dino-tiny has no video variant")
        from transformers import BertConfig, GroundingDinoConfig, SwinConfig

        backbone = SwinConfig(
            embed_dim=96,
            depths=[2, 2, 6, 2],
            num_heads=[3, 6, 12, 24],
            window_size=7,
            out_features=["stage2", "stage3", "stage4"],
            out_indices=[2, 3, 4],
        )
        return GroundingDinoConfig(backbone_config=backbone, text_config=BertConfig())
    if name == "edgetam":
        if not video:
            raise ValueError("edgetam: only the video model (EdgeTamVideoModel) is benchmarked")
        return edgetam_video_config()
    if name not in _SAM21_TRUNKS:
        raise ValueError(f"unknown full-size model {name!r}; available: {', '.join(FULL_SIZE_NAMES)}")
    from transformers import Sam2Config, Sam2HieraDetConfig, Sam2VideoConfig, Sam2VisionConfig

    trunk = _SAM21_TRUNKS[name]
    dims = [trunk["embed"] * 2**i for i in range(4)]
    backbone = Sam2HieraDetConfig(
        hidden_size=trunk["embed"],
        num_attention_heads=trunk["heads"],
        blocks_per_stage=trunk["stages"],
        embed_dim_per_stage=dims,
        num_attention_heads_per_stage=[trunk["heads"] * 2**i for i in range(4)],
        window_size_per_stage=trunk["window"],
        global_attention_blocks=trunk["global"],
    )
    vision = Sam2VisionConfig(backbone_config=backbone, backbone_channel_list=dims[::-1])
    return (Sam2VideoConfig if video else Sam2Config)(vision_config=vision)


def build_full_size(name: str, out_dir: Path, *, video: bool = False, seed: int = 0) -> Path:
    """Save a full-size random model with its processor (for benchmarks; hundreds of MB)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = full_size_config(name, video=video)
    torch.manual_seed(seed)
    if name == "grounding-dino-tiny":
        from transformers import (
            GroundingDinoForObjectDetection,
            GroundingDinoImageProcessor,
            GroundingDinoProcessor,
        )

        tokenizer = _tiny_tokenizer()  # ids < bert-base's 30522: same embedding table
        model = GroundingDinoForObjectDetection(config).eval()
        processor = GroundingDinoProcessor(image_processor=GroundingDinoImageProcessor(), tokenizer=tokenizer)
        model.save_pretrained(out_dir)
        processor.save_pretrained(out_dir)
        return out_dir
    if name == "edgetam":
        from transformers import EdgeTamVideoModel

        EdgeTamVideoModel(config).eval().save_pretrained(out_dir)
        _save_video_processor(out_dir, 1024)
        return out_dir
    if video:
        from transformers import Sam2VideoModel, Sam2VideoProcessor, Sam2VideoVideoProcessor

        Sam2VideoModel(config).eval().save_pretrained(out_dir)
        Sam2VideoProcessor(
            image_processor=_sam2_image_processor(1024), video_processor=Sam2VideoVideoProcessor()
        ).save_pretrained(out_dir)
        return out_dir
    from transformers import Sam2Model, Sam2Processor

    Sam2Model(config).eval().save_pretrained(out_dir)
    Sam2Processor(image_processor=_sam2_image_processor(1024)).save_pretrained(out_dir)
    return out_dir
