"""BEATs, the frozen audio encoder of Ref-Thinker, and its official checkpoint format.

Ref-Thinker (Crab-based) encodes each 1 s audio chunk with BEATs
``BEATs_iter3_plus_AS2M_finetuned_on_AS2M_cpt2.pt`` and feeds the *encoder features*
(not the AudioSet classifier output) to its audio Q-Former projector. Facts taken from
TGS-Agent (``models/multimodal_encoder.py``: ``AudioEncoder``; ``dataset/unified_dataset.py``):

- The input is a precomputed Kaldi fbank, ``[T, 128]`` per chunk, normalised as
  ``(fbank - 15.41663) / (2 * 6.55582)``; BEATs' own waveform preprocessing is bypassed.
  A 1 s chunk at 16 kHz gives T = 98 frames (25 ms window, 10 ms hop).
- ``extract_features(fbank, padding_mask=all False, feature_only=True)``: the 16x16
  patch embedding turns ``[T, 128]`` into ``floor(T / 16) x 8`` patches, time-major, so a
  98-frame chunk becomes 6 x 8 = **48 tokens of 768 channels**.
- The model is in eval mode and frozen; the checkpoint loads with ``strict=False`` in the
  original (we load strictly).

The official file is ``{"cfg": dict, "model": state_dict, ...}`` (fine-tuned files also
carry ``"label_dict"``: AudioSet class index -> label id). ``load_beats_checkpoint`` reads it
with ``torch.load(weights_only=True)`` and refuses files that pickle anything else.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from tgs.errors import CheckpointKeyError, WeightsError
from tgs.safety import safe_torch_load
from tgs.think.ref_thinker.beats_layers import ACTIVATIONS, BEATsEncoder, BEATsSelfAttention

__all__ = [
    "BEATS_CHECKPOINT_NAME",
    "BEATS_FBANK_MEAN",
    "BEATS_FBANK_STD",
    "TINY_BEATS_CONFIG",
    "BEATs",
    "BEATsConfig",
    "build_tiny_beats",
    "load_beats_checkpoint",
    "load_beats_state_dict",
    "save_beats_checkpoint",
    "write_tiny_beats_checkpoint",
]

logger = logging.getLogger(__name__)

BEATS_CHECKPOINT_NAME = "BEATs_iter3_plus_AS2M_finetuned_on_AS2M_cpt2.pt"
"""File name of the released checkpoint that Ref-Thinker uses."""
BEATS_FBANK_MEAN = 15.41663
"""Fbank normalisation of BEATs: ``(fbank - MEAN) / (2 * STD)``."""
BEATS_FBANK_STD = 6.55582

# Where torch's parametrization-based weight norm keeps the two tensors that the old
# ``weight_norm`` called weight_g (magnitude) and weight_v (direction).
_PARAMETRIZED_WEIGHT_NORM = {
    "parametrizations.weight.original0": "weight_g",
    "parametrizations.weight.original1": "weight_v",
}


def _meta(help_text: str) -> dict[str, str]:
    return {"help": help_text}


@dataclass(frozen=True)
class BEATsConfig:
    """The ``cfg`` block of an official BEATs checkpoint; same field names and meaning.

    Defaults are the values of ``BEATs_iter3_plus_AS2M_finetuned_on_AS2M_cpt2.pt`` where they
    differ from the official code's defaults (those are noted as "official default: ...").
    The checkpoint file itself could not be inspected here (no weights can be downloaded):
    its values come from several independent public copies of the iter3 / iter3+ AS2M cfg
    block, and TGS-Agent's override of ``encoder_layerdrop`` (so the file's value is not 0).
    A loaded checkpoint always uses the values in its own cfg; defaults only fill keys that
    a cfg block omits.
    """

    input_patch_size: int = field(default=16, metadata=_meta("patch side of the fbank patch embedding (official default: -1)"))
    embed_dim: int = field(default=512, metadata=_meta("patch embedding channels"))
    conv_bias: bool = field(default=False, metadata=_meta("bias in the patch embedding conv"))
    encoder_layers: int = field(default=12, metadata=_meta("transformer layers"))
    encoder_embed_dim: int = field(default=768, metadata=_meta("transformer width = output channels"))
    encoder_ffn_embed_dim: int = field(default=3072, metadata=_meta("feed-forward hidden width"))
    encoder_attention_heads: int = field(default=12, metadata=_meta("attention heads"))
    activation_fn: str = field(default="gelu", metadata=_meta("feed-forward activation"))
    layer_wise_gradient_decay_ratio: float = field(
        default=0.6, metadata=_meta("gradient scale applied before each layer (official default: 1.0)")
    )
    layer_norm_first: bool = field(default=False, metadata=_meta("pre-norm layers (False: post-norm)"))
    deep_norm: bool = field(default=True, metadata=_meta("DeepNorm residual scaling (official default: False)"))
    dropout: float = field(default=0.0, metadata=_meta("transformer dropout (official default: 0.1)"))
    attention_dropout: float = field(default=0.0, metadata=_meta("attention-probability dropout (official default: 0.1)"))
    activation_dropout: float = field(default=0.0, metadata=_meta("dropout after the FFN activation"))
    encoder_layerdrop: float = field(
        default=0.05,
        metadata=_meta("probability of skipping a layer in training (official default: 0.0; TGS-Agent sets 0)"),
    )
    dropout_input: float = field(default=0.0, metadata=_meta("dropout on the patch features"))
    conv_pos: int = field(default=128, metadata=_meta("kernel size of the convolutional position embedding"))
    conv_pos_groups: int = field(default=16, metadata=_meta("groups of the convolutional position embedding"))
    relative_position_embedding: bool = field(
        default=True, metadata=_meta("add a relative position bias (official default: False)")
    )
    num_buckets: int = field(default=320, metadata=_meta("relative position buckets"))
    max_distance: int = field(default=800, metadata=_meta("largest distinguished offset (official default: 1280)"))
    gru_rel_pos: bool = field(default=True, metadata=_meta("gate the bias by the query (official default: False)"))
    finetuned_model: bool = field(default=True, metadata=_meta("has the AudioSet classifier (official default: False)"))
    predictor_dropout: float = field(default=0.0, metadata=_meta("dropout before the classifier (official default: 0.1)"))
    predictor_class: int = field(default=527, metadata=_meta("classifier outputs (AudioSet classes)"))

    def __post_init__(self) -> None:
        for item in dataclasses.fields(self):
            _check_type(item.name, item.type, getattr(self, item.name))
        positive = ("input_patch_size", "embed_dim", "encoder_layers", "encoder_embed_dim",
                    "encoder_ffn_embed_dim", "encoder_attention_heads", "conv_pos", "conv_pos_groups",
                    "predictor_class")  # fmt: skip
        problems = [f"{name} must be >= 1, got {getattr(self, name)}" for name in positive if getattr(self, name) < 1]
        probabilities = ("dropout", "attention_dropout", "activation_dropout", "encoder_layerdrop",
                         "dropout_input", "predictor_dropout")  # fmt: skip
        problems += [f"{name} must be in [0, 1], got {getattr(self, name)}" for name in probabilities
                     if not 0.0 <= getattr(self, name) <= 1.0]  # fmt: skip
        if self.encoder_embed_dim % max(self.encoder_attention_heads, 1):
            problems.append(
                f"encoder_embed_dim {self.encoder_embed_dim} is not divisible by "
                f"encoder_attention_heads {self.encoder_attention_heads}"
            )
        if self.encoder_embed_dim % max(self.conv_pos_groups, 1):
            problems.append(
                f"encoder_embed_dim {self.encoder_embed_dim} is not divisible by conv_pos_groups {self.conv_pos_groups}"
            )
        if self.deep_norm and self.layer_norm_first:
            problems.append("deep_norm and layer_norm_first cannot both be true")
        if self.activation_fn not in ACTIVATIONS:
            problems.append(f"activation_fn {self.activation_fn!r} is not supported; choose from {sorted(ACTIVATIONS)}")
        if self.relative_position_embedding and not (
            self.num_buckets >= 4 and self.max_distance > self.num_buckets // 4
        ):
            problems.append(
                f"relative position buckets need num_buckets >= 4 and max_distance > num_buckets // 4, "
                f"got num_buckets={self.num_buckets}, max_distance={self.max_distance}"
            )
        if problems:
            raise ValueError("invalid BEATsConfig: " + "; ".join(problems))

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any], *, source: str = "cfg") -> BEATsConfig:
        """Builds a config from a checkpoint's cfg block.

        Unknown keys are an error that names them (they would change nothing silently);
        missing keys take the default, and the keys and defaults used are logged.
        """
        known = {item.name: item for item in dataclasses.fields(cls)}
        unknown = sorted(set(cfg) - set(known))
        if unknown:
            raise ValueError(f"{source}: unknown BEATs config key(s) {unknown}; known keys are {sorted(known)}")
        missing = [name for name in known if name not in cfg]
        if missing:
            logger.warning(
                "%s: BEATs config key(s) missing, using defaults: %s",
                source,
                ", ".join(f"{name}={known[name].default!r}" for name in missing),
            )
        return cls(**dict(cfg))

    def to_dict(self) -> dict[str, Any]:
        """The cfg block as the official checkpoint stores it (plain Python values)."""
        return dataclasses.asdict(self)


def _check_type(name: str, annotation: Any, value: Any) -> None:
    """Config values must have their field's type (ints may stand for floats, bools may not)."""
    expected = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,)}[str(annotation)]
    if not isinstance(value, expected) or (annotation != "bool" and isinstance(value, bool)):
        raise ValueError(f"BEATs config {name}: expected {annotation}, got {type(value).__name__} {value!r}")


class BEATs(nn.Module):
    """The BEATs audio transformer, with the official module and parameter names.

    fbank [B, T, F] -> patch embedding (conv k = s = input_patch_size) -> [B, N, embed_dim]
    with N = floor(T / p) * floor(F / p) patches in time-major order -> LayerNorm ->
    ``post_extract_proj`` (when embed_dim != encoder_embed_dim) -> transformer encoder ->
    [B, N, encoder_embed_dim]. Fine-tuned models add ``predictor``, a Linear to
    ``predictor_class`` AudioSet logits.
    """

    def __init__(self, config: BEATsConfig) -> None:
        super().__init__()
        self.config = config
        width = config.encoder_embed_dim
        self.post_extract_proj = nn.Linear(config.embed_dim, width) if config.embed_dim != width else None
        self.patch_embedding = nn.Conv2d(
            1,
            config.embed_dim,
            kernel_size=config.input_patch_size,
            stride=config.input_patch_size,
            bias=config.conv_bias,
        )
        self.dropout_input = nn.Dropout(config.dropout_input)
        self.encoder = BEATsEncoder(
            embed_dim=width,
            ffn_embed_dim=config.encoder_ffn_embed_dim,
            num_layers=config.encoder_layers,
            num_heads=config.encoder_attention_heads,
            dropout=config.dropout,
            attention_dropout=config.attention_dropout,
            activation_dropout=config.activation_dropout,
            activation_fn=config.activation_fn,
            layer_norm_first=config.layer_norm_first,
            deep_norm=config.deep_norm,
            layerdrop=config.encoder_layerdrop,
            gradient_decay_ratio=config.layer_wise_gradient_decay_ratio,
            conv_pos=config.conv_pos,
            conv_pos_groups=config.conv_pos_groups,
            relative_position_embedding=config.relative_position_embedding,
            num_buckets=config.num_buckets,
            max_distance=config.max_distance,
            gru_rel_pos=config.gru_rel_pos,
        )
        self.layer_norm = nn.LayerNorm(config.embed_dim)
        if config.finetuned_model:
            self.predictor_dropout = nn.Dropout(config.predictor_dropout)
            self.predictor = nn.Linear(width, config.predictor_class)
        else:
            self.predictor = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """A random start in the spirit of the official initialisation (BERT-style normal
        weights, DeepNorm-scaled Xavier when deep_norm). Loaded checkpoints replace it."""
        for module in self.encoder.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if self.config.deep_norm:
            beta = math.pow(8 * self.config.encoder_layers, -0.25)
            for layer in self.encoder.layers:
                attention: BEATsSelfAttention = layer.self_attn
                for linear, gain in ((attention.k_proj, 1.0), (attention.v_proj, beta), (attention.q_proj, 1.0),
                                     (attention.out_proj, beta), (layer.fc1, beta), (layer.fc2, beta)):  # fmt: skip
                    nn.init.xavier_normal_(linear.weight, gain=gain)

    @staticmethod
    def num_tokens(num_frames: int, num_mel_bins: int = 128, patch_size: int = 16) -> int:
        """Tokens per fbank of ``num_frames`` x ``num_mel_bins``: 98 x 128 -> 6 * 8 = 48."""
        return (num_frames // patch_size) * (num_mel_bins // patch_size)

    def token_padding_mask(self, padding_mask: Tensor, num_tokens: int) -> Tensor:
        """Reduces a frame (or sample) padding mask [B, L] to tokens [B, num_tokens], as the
        official code does: drop the last ``L % num_tokens`` entries, split the rest into
        ``num_tokens`` consecutive groups, and call a token padding when its whole group is.

        Faithful quirk: tokens are time-major 2-D patches (8 per time step for 128 mel
        bins), so this 1-D grouping does not follow patch boundaries. TGS-Agent passes an
        all-False mask, where the mapping makes no difference.
        """
        if padding_mask.shape[1] < num_tokens:
            raise ValueError(f"padding_mask has {padding_mask.shape[1]} entries, fewer than the {num_tokens} tokens")
        extra = padding_mask.shape[1] % num_tokens
        if extra:
            padding_mask = padding_mask[:, :-extra]
        return padding_mask.reshape(padding_mask.shape[0], num_tokens, -1).all(dim=-1)

    def _check_fbank(self, fbank: Tensor) -> None:
        patch = self.config.input_patch_size
        if fbank.ndim != 3:
            raise ValueError(f"fbank: expected [batch, frames, mel_bins], got shape {tuple(fbank.shape)}")
        if fbank.shape[1] < patch or fbank.shape[2] < patch:
            raise ValueError(
                f"fbank: need at least {patch} frames and {patch} mel bins for one {patch}x{patch} patch, "
                f"got shape {tuple(fbank.shape)}"
            )

    def _encode(self, fbank: Tensor, padding_mask: Tensor | None) -> tuple[Tensor, Tensor | None]:
        self._check_fbank(fbank)
        if padding_mask is not None:
            if padding_mask.ndim != 2 or padding_mask.shape[0] != fbank.shape[0]:
                raise ValueError(
                    f"padding_mask: expected bool [batch={fbank.shape[0]}, frames], got shape {tuple(padding_mask.shape)}"
                )
            padding_mask = self.token_padding_mask(padding_mask.bool(), fbank.shape[1])
        patches = self.patch_embedding(fbank.unsqueeze(1))  # [B, D, T / p, F / p]
        features = self.layer_norm(patches.flatten(2).transpose(1, 2))  # [B, N, D], time-major
        if padding_mask is not None:
            padding_mask = self.token_padding_mask(padding_mask, features.shape[1])
            if not padding_mask.any():
                padding_mask = None  # an all-False mask changes nothing; skip the masking work
        if self.post_extract_proj is not None:
            features = self.post_extract_proj(features)
        return self.encoder(self.dropout_input(features), padding_mask), padding_mask

    def extract_features(self, fbank: Tensor, padding_mask: Tensor | None = None) -> Tensor:
        """Encoder features, what Ref-Thinker's audio projector consumes.

        fbank: float [B, T, 128] normalised Kaldi fbank (see module docstring).
        padding_mask: optional bool [B, T], True = padded frame (official semantics, see
            :meth:`token_padding_mask`).
        Returns [B, N, encoder_embed_dim], N = floor(T / 16) * 8 (48 for T = 98).
        """
        features, _ = self._encode(fbank, padding_mask)
        return features

    forward = extract_features

    def classify(self, fbank: Tensor, padding_mask: Tensor | None = None) -> Tensor:
        """AudioSet class probabilities [B, predictor_class] of a fine-tuned model: sigmoid of
        the token logits averaged over non-padded tokens (the official fine-tuned output)."""
        if self.predictor is None:
            raise ValueError("this BEATs model has no classifier (its config has finetuned_model=False)")
        features, token_mask = self._encode(fbank, padding_mask)
        logits = self.predictor(self.predictor_dropout(features))
        if token_mask is None:
            return torch.sigmoid(logits.mean(dim=1))
        keep = (~token_mask).unsqueeze(-1).to(logits.dtype)
        return torch.sigmoid((logits * keep).sum(dim=1) / keep.sum(dim=1))


def _shared_groups(model: nn.Module) -> list[list[str]]:
    """State-dict keys that name one tensor (the shared relative position bias table)."""
    names_by_tensor: dict[int, list[str]] = {}
    for name, tensor in model.state_dict(keep_vars=True).items():
        names_by_tensor.setdefault(id(tensor), []).append(name)
    return [names for names in names_by_tensor.values() if len(names) > 1]


def _canonical_keys(state_dict: Mapping[str, Tensor], *, path: str | Path | None) -> dict[str, Tensor]:
    """Maps torch's parametrization weight-norm names to the official weight_g / weight_v."""
    result: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        target = key
        for new_style, old_style in _PARAMETRIZED_WEIGHT_NORM.items():
            if key.endswith("." + new_style):
                target = key[: -len(new_style)] + old_style
        if target in result:
            raise CheckpointKeyError(
                f"checkpoint holds the weight-norm tensor {target!r} twice (old weight_g/weight_v and "
                f"parametrizations names)",
                unexpected=[key],
                path=path,
                fix="keep one naming scheme for the pos_conv weight norm",
            )
        result[target] = value
    return result


def load_beats_state_dict(model: BEATs, state_dict: Mapping[str, Tensor], *, path: str | Path | None = None) -> None:
    """Loads an official BEATs state dict into ``model`` with strict checks.

    Accepts weight-norm tensors under the old names (``weight_g``/``weight_v``, the released
    files) or torch's parametrization names (``parametrizations.weight.original0/1``).
    Raises CheckpointKeyError listing missing and unexpected keys, WeightsError for shape
    mismatches or for copies of the shared position-bias table that disagree.
    """
    state = _canonical_keys(state_dict, path=path)
    expected = model.state_dict()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    if missing or unexpected:
        raise CheckpointKeyError(
            "BEATs checkpoint keys do not match the model built from its cfg",
            missing=missing,
            unexpected=unexpected,
            path=path,
            fix="use an official BEATs checkpoint whose 'model' matches its 'cfg' block",
        )
    wrong_shapes = [
        f"{key}: checkpoint {tuple(state[key].shape)}, model {tuple(value.shape)}"
        for key, value in expected.items()
        if tuple(state[key].shape) != tuple(value.shape)
    ]
    if wrong_shapes:
        raise WeightsError(
            f"BEATs checkpoint tensor shapes do not match its cfg: {'; '.join(wrong_shapes[:5])}",
            path=path,
            fix="the 'cfg' block and the 'model' weights come from different models",
        )
    for names in _shared_groups(model):
        differing = [name for name in names[1:] if not torch.equal(state[name], state[names[0]])]
        if differing:
            raise WeightsError(
                f"BEATs checkpoint: {differing} must equal {names[0]!r} (one shared table), but differ",
                path=path,
                fix="the relative position bias is shared by all layers; save it from one model",
            )
    model.load_state_dict(state, strict=True)


def _read_checkpoint(path: Path) -> dict[str, Any]:
    checkpoint = safe_torch_load(
        path,
        what="BEATs checkpoint",
        fix_unsafe="re-save it from a trusted environment as {'cfg': dict, 'model': state_dict} "
        "(for example with tgs.think.ref_thinker.beats.save_beats_checkpoint)",
        how_to_get=f"download {BEATS_CHECKPOINT_NAME} from the microsoft/unilm BEATs release and pass its path",
    )
    if not isinstance(checkpoint, dict) or "cfg" not in checkpoint or "model" not in checkpoint:
        found = sorted(checkpoint) if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise WeightsError(
            f"BEATs checkpoint {path}: expected a dict with 'cfg' and 'model', found {found}",
            path=path,
            fix="pass an official BEATs .pt file",
        )
    if not isinstance(checkpoint["cfg"], dict) or not isinstance(checkpoint["model"], dict):
        raise WeightsError(
            f"BEATs checkpoint {path}: 'cfg' and 'model' must be dicts, got "
            f"{type(checkpoint['cfg']).__name__} and {type(checkpoint['model']).__name__}",
            path=path,
        )
    return checkpoint


def load_beats_checkpoint(path: Path | str) -> BEATs:
    """Builds BEATs from an official checkpoint file: config from its cfg, weights strict.

    The model is returned in eval mode on the CPU, in float32 unless the file holds another
    dtype (tensors are copied into a float32 model). Errors: MissingWeightsError (no file),
    WeightsError (unsafe or unreadable file, bad cfg), CheckpointKeyError (key mismatch).
    """
    path = Path(path)
    checkpoint = _read_checkpoint(path)
    extra = sorted(set(checkpoint) - {"cfg", "model"})
    if extra:
        logger.debug("%s: ignoring top-level entries %s", path, extra)
    try:
        config = BEATsConfig.from_dict(checkpoint["cfg"], source=str(path))
    except (TypeError, ValueError) as error:
        raise WeightsError(
            f"BEATs checkpoint {path} has an unusable cfg block: {error}",
            path=path,
            fix="pass an official BEATs checkpoint; its cfg keys are those of BEATsConfig",
        ) from error
    with torch.device("meta"):
        model = BEATs(config)  # no random init of ~90M weights that are overwritten next
    model.to_empty(device="cpu")
    load_beats_state_dict(model, checkpoint["model"], path=path)
    return model.eval()


def save_beats_checkpoint(model: BEATs, path: Path | str, *, label_dict: Mapping[int, str] | None = None) -> Path:
    """Writes ``model`` in the official layout: ``{"cfg": dict, "model": state_dict}``.

    ``label_dict`` (class index -> AudioSet label id), when given, is stored as fine-tuned
    releases store it. The file loads with ``torch.load(weights_only=True)``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    checkpoint: dict[str, Any] = {
        "cfg": model.config.to_dict(),
        "model": {key: value.detach().cpu() for key, value in model.state_dict().items()},
    }
    if label_dict is not None:
        checkpoint["label_dict"] = dict(label_dict)
    torch.save(checkpoint, path)
    return path


TINY_BEATS_CONFIG = BEATsConfig(
    embed_dim=16,
    encoder_layers=2,
    encoder_embed_dim=32,
    encoder_ffn_embed_dim=64,
    encoder_attention_heads=2,
    conv_pos=16,
    conv_pos_groups=4,
    predictor_class=527,
)
"""Same structure as the released model (post-norm DeepNorm, gated relative bias,
weight-norm position conv, post-extract projection, classifier, 16x16 patches, so the
same 48 tokens per 98-frame chunk), with 32 channels and 2 layers."""


def build_tiny_beats(seed: int = 0) -> BEATs:
    """A random tiny BEATs (``TINY_BEATS_CONFIG``), the same for the same seed, in eval mode.

    The global random state is left as it was.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BEATs(TINY_BEATS_CONFIG)
        # Random non-default norms, gates and biases, so that tests see every parameter act.
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                if name.endswith("grep_a") or "layer_norm" in name:
                    parameter.add_(0.1 * torch.randn_like(parameter))
                elif name.endswith(".bias") and parameter.abs().sum() == 0:
                    parameter.normal_(0.0, 0.02)
    return model.eval()


def write_tiny_beats_checkpoint(path: Path | str, seed: int = 0) -> Path:
    """Writes ``build_tiny_beats(seed)`` as an official-layout checkpoint file at ``path``."""
    model = build_tiny_beats(seed)
    labels = {index: f"/m/tiny{index}" for index in range(model.config.predictor_class)}
    return save_beats_checkpoint(model, path, label_dict=labels)
