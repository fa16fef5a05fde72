"""Building blocks of the BEATs audio transformer (Chen et al., 2022, arXiv 2212.09058).

Our own implementation of the blocks of Microsoft's BEATs code (a fairseq-style
post-norm transformer with gated relative position bias and a weight-normalised
convolutional position embedding). Module and parameter names are those of the official
code, so the released ``BEATs_*.pt`` state dicts load with strict key checking:

    encoder.pos_conv.0.{weight_g, weight_v, bias}        weight-normalised Conv1d
    encoder.layers.N.self_attn.{q,k,v,out}_proj.{weight,bias}
    encoder.layers.N.self_attn.relative_attention_bias.weight   (one table, shared)
    encoder.layers.N.self_attn.grep_linear.{weight,bias}, ...grep_a
    encoder.layers.N.{self_attn_layer_norm, fc1, fc2, final_layer_norm}.{weight,bias}
    encoder.layer_norm.{weight,bias}

The attention keeps the official order of floating-point operations (queries scaled by
``head_dim**-0.5 / 32``, row maximum subtracted, times 32, then the gated bias) so that
results stay close to the original in half precision, not only in float32.

Tensors are batch-first throughout: ``[B, T, C]`` with T tokens and C channels.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "ACTIVATIONS",
    "BEATsEncoder",
    "BEATsEncoderLayer",
    "BEATsSelfAttention",
    "WeightNormConv1d",
    "relative_position_bucket",
]

# The official code divides queries by this constant before the dot product and multiplies
# the max-subtracted scores by it afterwards: a guard against half-precision overflow.
_SCORE_ALPHA = 32.0
# Width of the gate projection of the gated relative position bias (two gates of 4 units).
_GATE_UNITS = 8


def _gelu_in_float(x: Tensor) -> Tensor:
    """Exact (erf) GELU computed in float32 and cast back, as the official "gelu"."""
    return F.gelu(x.float()).type_as(x)


def _gelu_tanh(x: Tensor) -> Tensor:
    return F.gelu(x, approximate="tanh")


ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "gelu": _gelu_in_float,
    "gelu_accurate": _gelu_tanh,
    "relu": F.relu,
    "tanh": torch.tanh,
    "linear": lambda x: x,
}
"""Feed-forward activations of the official config's ``activation_fn``. ("glu", which
changes fc1's structure, is used by no released checkpoint and is not supported.)"""


class _ScaleGradient(torch.autograd.Function):
    """Identity forward, gradient times ``scale`` backward (layer-wise gradient decay)."""

    @staticmethod
    def forward(ctx, x: Tensor, scale: float) -> Tensor:  # type: ignore[override]
        ctx.scale = scale
        return x.clone()

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        return grad * ctx.scale, None


def relative_position_bucket(relative_positions: Tensor, num_buckets: int, max_distance: int) -> Tensor:
    """Bidirectional T5-style bucket of each relative position ``key - query``.

    Half of the ``num_buckets`` buckets hold positive offsets (key after query), half the
    rest. Within a half, offsets below ``num_buckets // 4`` get one bucket each; larger
    ones share logarithmically wider buckets up to ``max_distance``, beyond which all fall
    in the last bucket of their half.

    relative_positions: long [...]; returns long [...] in ``[0, num_buckets)``.
    """
    half = num_buckets // 2
    exact = half // 2
    direction = (relative_positions > 0).long() * half
    distance = relative_positions.abs()
    # Offsets of 0 fall in the exact range; clamping keeps log() finite there.
    log_ratio = torch.log(distance.clamp(min=1).float() / exact) / math.log(max_distance / exact)
    log_bucket = exact + (log_ratio * (half - exact)).long()
    log_bucket = log_bucket.clamp(max=half - 1)
    return direction + torch.where(distance < exact, distance, log_bucket)


class WeightNormConv1d(nn.Module):
    """Conv1d whose weight is ``weight_g * weight_v / ||weight_v||``, norm over all dims but 2.

    Parameters are named as the old ``torch.nn.utils.weight_norm(conv, dim=2)`` names them
    (``weight_g`` [1, 1, K], ``weight_v`` [C_out, C_in / groups, K], ``bias`` [C_out]),
    which is how the released BEATs checkpoints store them. The weight is recomputed with
    the same kernel (``torch._weight_norm``) on each call.
    """

    def __init__(self, channels: int, kernel_size: int, groups: int) -> None:
        super().__init__()
        self.padding = kernel_size // 2
        self.groups = groups
        # Registered in the order the released state dicts list them.
        self.bias = nn.Parameter(torch.empty(channels))
        self.weight_g = nn.Parameter(torch.empty(1, 1, kernel_size))
        self.weight_v = nn.Parameter(torch.empty(channels, channels // groups, kernel_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The official start: normal weight, zero bias, g = the norm of that weight."""
        channels, _, kernel_size = self.weight_v.shape
        nn.init.normal_(self.weight_v, mean=0.0, std=math.sqrt(4.0 / (kernel_size * channels)))
        nn.init.zeros_(self.bias)
        with torch.no_grad():
            self.weight_g.copy_(self.weight_v.norm(dim=(0, 1), keepdim=True))

    def weight(self) -> Tensor:
        """The effective convolution weight [C_out, C_in / groups, K]."""
        return torch._weight_norm(self.weight_v, self.weight_g, 2)

    def forward(self, x: Tensor) -> Tensor:
        """x: [B, C, T] -> [B, C, T + 1 - K % 2] (same padding on both sides)."""
        return F.conv1d(x, self.weight(), self.bias, padding=self.padding, groups=self.groups)


class _DropLastFrame(nn.Module):
    """Removes the extra frame an even-sized, symmetrically padded convolution adds."""

    def forward(self, x: Tensor) -> Tensor:
        return x[:, :, :-1]


def _conv_position_embedding(channels: int, kernel_size: int, groups: int) -> nn.Sequential:
    """The official ``pos_conv``: Sequential(weight-norm conv, trim, GELU), keys ``pos_conv.0.*``."""
    trim: nn.Module = _DropLastFrame() if kernel_size % 2 == 0 else nn.Identity()
    return nn.Sequential(WeightNormConv1d(channels, kernel_size, groups), trim, nn.GELU())


class BEATsSelfAttention(nn.Module):
    """Multi-head self-attention with an optional gated relative position bias.

    Score of query i and key j in head h::

        q_i . k_j / sqrt(d)  +  gate_h(q_i) * bias[bucket(j - i), h]

    with ``gate_h(q) = a * (b * grep_a[h] - 1) + 2``, where a and b are sigmoids of the sums
    of the two halves of ``grep_linear(q)`` (q before scaling, per head). Without
    ``gru_rel_pos`` the gate is 1.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        *,
        attention_dropout: float,
        has_relative_attention_bias: bool,
        num_buckets: int,
        max_distance: int,
        gru_rel_pos: bool,
    ) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.scaling = self.head_dim**-0.5
        self.num_buckets = num_buckets
        self.max_distance = max_distance
        self.gru_rel_pos = gru_rel_pos
        self.dropout_module = nn.Dropout(attention_dropout)
        if has_relative_attention_bias:
            self.relative_attention_bias = nn.Embedding(num_buckets, num_heads)
        self.k_proj = nn.Linear(embed_dim, embed_dim)
        self.v_proj = nn.Linear(embed_dim, embed_dim)
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.out_proj = nn.Linear(embed_dim, embed_dim)
        if gru_rel_pos:
            self.grep_linear = nn.Linear(self.head_dim, _GATE_UNITS)
            self.grep_a = nn.Parameter(torch.ones(1, num_heads, 1, 1))

    def position_bias(self, num_queries: int, num_keys: int) -> Tensor:
        """Ungated relative position bias [H, num_queries, num_keys] from this layer's table."""
        table: nn.Embedding = self.relative_attention_bias
        device = table.weight.device
        offsets = torch.arange(num_keys, device=device)[None, :] - torch.arange(num_queries, device=device)[:, None]
        buckets = relative_position_bucket(offsets, self.num_buckets, self.max_distance)
        return table(buckets).permute(2, 0, 1)

    def _gate(self, q_raw: Tensor) -> Tensor:
        """Per-query gate [B, H, T, 1] from the unscaled per-head queries [B, H, T, d]."""
        batch, heads, length, _ = q_raw.shape
        halves = self.grep_linear(q_raw).view(batch, heads, length, 2, _GATE_UNITS // 2).sum(-1)
        gate_a, gate_b = torch.sigmoid(halves).chunk(2, dim=-1)
        return gate_a * (gate_b * self.grep_a - 1.0) + 2.0

    def forward(
        self, x: Tensor, *, key_padding_mask: Tensor | None = None, position_bias: Tensor | None = None
    ) -> Tensor:
        """x: [B, T, C]; key_padding_mask: bool [B, T], True = padding; position_bias: [H, T, T].

        Returns [B, T, C].
        """
        batch, length, _ = x.shape
        heads, head_dim = self.num_heads, self.head_dim

        def split_heads(t: Tensor) -> Tensor:
            return t.view(batch, length, heads, head_dim).transpose(1, 2)

        q = split_heads(self.q_proj(x) * self.scaling * (1.0 / _SCORE_ALPHA))
        k = split_heads(self.k_proj(x))
        v = split_heads(self.v_proj(x))

        scores = q @ k.transpose(-1, -2)  # [B, H, T, T]
        scores = (scores - scores.amax(dim=-1, keepdim=True)) * _SCORE_ALPHA
        if key_padding_mask is not None:
            scores = scores.masked_fill(key_padding_mask[:, None, None, :], float("-inf"))
        if position_bias is not None:
            bias = position_bias.unsqueeze(0)
            if self.gru_rel_pos:
                q_raw = q * _SCORE_ALPHA / self.scaling
                bias = self._gate(q_raw) * bias
            scores = scores + bias
        probs = self.dropout_module(F.softmax(scores, dim=-1))
        context = (probs @ v).transpose(1, 2).reshape(batch, length, self.embed_dim)
        return self.out_proj(context)


class BEATsEncoderLayer(nn.Module):
    """One transformer layer: self-attention and feed-forward, each with a residual.

    Post-norm (``layer_norm_first=False``, the released models) computes
    ``LN(alpha * x + f(x))`` for each block, with ``alpha = (2 * num_layers) ** 0.25`` under
    DeepNorm and 1 otherwise; pre-norm computes ``x + f(LN(x))``.
    """

    def __init__(
        self,
        *,
        embed_dim: int,
        ffn_embed_dim: int,
        num_heads: int,
        dropout: float,
        attention_dropout: float,
        activation_dropout: float,
        activation_fn: str,
        layer_norm_first: bool,
        deep_norm: bool,
        num_layers: int,
        has_relative_attention_bias: bool,
        num_buckets: int,
        max_distance: int,
        gru_rel_pos: bool,
    ) -> None:
        super().__init__()
        if activation_fn not in ACTIVATIONS:
            raise ValueError(f"activation_fn {activation_fn!r} is not supported; choose from {sorted(ACTIVATIONS)}")
        self.activation = ACTIVATIONS[activation_fn]
        self.layer_norm_first = layer_norm_first
        self.deep_norm_alpha = math.pow(2 * num_layers, 0.25) if deep_norm else 1.0
        self.self_attn = BEATsSelfAttention(
            embed_dim,
            num_heads,
            attention_dropout=attention_dropout,
            has_relative_attention_bias=has_relative_attention_bias,
            num_buckets=num_buckets,
            max_distance=max_distance,
            gru_rel_pos=gru_rel_pos,
        )
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(activation_dropout)
        self.dropout3 = nn.Dropout(dropout)
        self.self_attn_layer_norm = nn.LayerNorm(embed_dim)
        self.fc1 = nn.Linear(embed_dim, ffn_embed_dim)
        self.fc2 = nn.Linear(ffn_embed_dim, embed_dim)
        self.final_layer_norm = nn.LayerNorm(embed_dim)

    def _feed_forward(self, x: Tensor) -> Tensor:
        return self.dropout3(self.fc2(self.dropout2(self.activation(self.fc1(x)))))

    def forward(
        self, x: Tensor, *, key_padding_mask: Tensor | None = None, position_bias: Tensor | None = None
    ) -> Tensor:
        """x: [B, T, C] -> [B, T, C]."""
        attend = self.self_attn
        if self.layer_norm_first:
            x = x + self.dropout1(
                attend(self.self_attn_layer_norm(x), key_padding_mask=key_padding_mask, position_bias=position_bias)
            )
            return x + self._feed_forward(self.final_layer_norm(x))
        attended = self.dropout1(attend(x, key_padding_mask=key_padding_mask, position_bias=position_bias))
        x = self.self_attn_layer_norm(x * self.deep_norm_alpha + attended)
        return self.final_layer_norm(x * self.deep_norm_alpha + self._feed_forward(x))


class BEATsEncoder(nn.Module):
    """Convolutional position embedding, then the stack of transformer layers.

    With a relative position bias, the table lives in layer 0 and every other layer holds
    a reference to the same module (as in the official code), so each layer's state-dict
    entry names the one shared tensor.
    """

    def __init__(
        self,
        *,
        embed_dim: int,
        ffn_embed_dim: int,
        num_layers: int,
        num_heads: int,
        dropout: float,
        attention_dropout: float,
        activation_dropout: float,
        activation_fn: str,
        layer_norm_first: bool,
        deep_norm: bool,
        layerdrop: float,
        gradient_decay_ratio: float,
        conv_pos: int,
        conv_pos_groups: int,
        relative_position_embedding: bool,
        num_buckets: int,
        max_distance: int,
        gru_rel_pos: bool,
    ) -> None:
        super().__init__()
        self.dropout = dropout
        self.layer_norm_first = layer_norm_first
        self.layerdrop = layerdrop
        self.gradient_decay_ratio = gradient_decay_ratio
        self.relative_position_embedding = relative_position_embedding
        self.pos_conv = _conv_position_embedding(embed_dim, conv_pos, conv_pos_groups)
        self.layers = nn.ModuleList(
            BEATsEncoderLayer(
                embed_dim=embed_dim,
                ffn_embed_dim=ffn_embed_dim,
                num_heads=num_heads,
                dropout=dropout,
                attention_dropout=attention_dropout,
                activation_dropout=activation_dropout,
                activation_fn=activation_fn,
                layer_norm_first=layer_norm_first,
                deep_norm=deep_norm,
                num_layers=num_layers,
                has_relative_attention_bias=relative_position_embedding and index == 0,
                num_buckets=num_buckets,
                max_distance=max_distance,
                gru_rel_pos=gru_rel_pos,
            )
            for index in range(num_layers)
        )
        if relative_position_embedding:
            shared = self.layers[0].self_attn.relative_attention_bias
            for layer in self.layers[1:]:
                layer.self_attn.relative_attention_bias = shared
        self.layer_norm = nn.LayerNorm(embed_dim)

    def forward(self, x: Tensor, padding_mask: Tensor | None = None) -> Tensor:
        """x: [B, T, C] token embeddings; padding_mask: bool [B, T], True = padding.

        Returns [B, T, C]: the last layer's output (after the final LayerNorm in pre-norm mode).
        """
        if padding_mask is not None:
            x = x.masked_fill(padding_mask.unsqueeze(-1), 0.0)
        x = x + self.pos_conv(x.transpose(1, 2)).transpose(1, 2)
        if not self.layer_norm_first:
            x = self.layer_norm(x)
        x = F.dropout(x, p=self.dropout, training=self.training)

        position_bias = None
        if self.relative_position_embedding:
            position_bias = self.layers[0].self_attn.position_bias(x.shape[1], x.shape[1]).to(x.dtype)
        scale_gradient = self.gradient_decay_ratio != 1.0 and torch.is_grad_enabled() and x.requires_grad
        for layer in self.layers:
            if scale_gradient:
                x = _ScaleGradient.apply(x, self.gradient_decay_ratio)
            if self.training and self.layerdrop > 0 and torch.rand(()) < self.layerdrop:
                continue
            x = layer(x, key_padding_mask=padding_mask, position_bias=position_bias)

        if self.layer_norm_first:
            x = self.layer_norm(x)
        return x
