"""The BLIP-2 Q-Former as Ref-Thinker uses it, with the original parameter names.

The original projectors hold a LAVIS ``BertLMHeadModel`` (``bert`` + ``cls`` MLM head) built
from the bert-base config with 2 layers and a cross-attention block in every layer. Its
state-dict keys are part of the released checkpoint, so this module reproduces the same
tree::

    bert.embeddings.{word_embeddings, position_embeddings, LayerNorm, position_ids}
    bert.encoder.layer.N.attention.{self.{query,key,value}, output.{dense,LayerNorm}}
    bert.encoder.layer.N.crossattention.{self.{query,key,value}, output.{dense,LayerNorm}}
    bert.encoder.layer.N.{intermediate, output}                 (text feed-forward)
    bert.encoder.layer.N.{intermediate_query, output_query}     (query feed-forward)
    cls.predictions.{bias, transform.{dense,LayerNorm}, decoder}

Ref-Thinker only runs the query path (no question text): the query embeddings go through
the embeddings LayerNorm, then per layer self-attention, cross-attention to the encoder
features and the query feed-forward. The word/position embeddings, the text feed-forward
and the MLM head are never used at inference but are kept so that checkpoints map 1:1.
As in the original (transformers ties BertLMHeadModel's output embeddings), the MLM
decoder shares its weight with ``word_embeddings`` and its bias with ``predictions.bias``.

transformers' ``Blip2QFormerModel`` computes the same query path (tested against it with
an explicit key map), but it has no word/position embeddings or MLM head and names its
blocks differently, so the original state dicts would not load into it strictly.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from transformers.activations import ACT2FN

from tgs.think.ref_thinker.configuration import QFormerConfig

__all__ = ["QFormer", "tied_parameter_aliases"]


class QFormerSelfAttention(nn.Module):
    """Multi-head attention; keys/values come from the encoder when ``is_cross_attention``."""

    def __init__(self, config: QFormerConfig, is_cross_attention: bool) -> None:
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.head_size = config.hidden_size // config.num_attention_heads
        kv_width = config.encoder_width if is_cross_attention else config.hidden_size
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(kv_width, config.hidden_size)
        self.value = nn.Linear(kv_width, config.hidden_size)
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.num_heads, self.head_size).transpose(1, 2)

    def forward(self, hidden_states: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """hidden_states [B, Q, H] attend to context [B, N, W] -> [B, Q, H] (no masking)."""
        q = self._heads(self.query(hidden_states))
        k = self._heads(self.key(context))
        v = self._heads(self.value(context))
        # The original's op order (scores / sqrt(d), softmax, weighted sum), so fp32 outputs
        # agree to float rounding; the Q-Former is tiny, a fused kernel would gain nothing.
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_size)
        out = torch.matmul(self.dropout(scores.softmax(dim=-1)), v)
        b, _, n, _ = out.shape
        return out.transpose(1, 2).reshape(b, n, self.num_heads * self.head_size)


class QFormerSelfOutput(nn.Module):
    """Dense projection, then LayerNorm over the residual sum (post-norm)."""

    def __init__(self, config: QFormerConfig, in_width: int) -> None:
        super().__init__()
        self.dense = nn.Linear(in_width, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(hidden_states)) + residual)


class QFormerAttention(nn.Module):
    def __init__(self, config: QFormerConfig, is_cross_attention: bool = False) -> None:
        super().__init__()
        self.self = QFormerSelfAttention(config, is_cross_attention)
        self.output = QFormerSelfOutput(config, config.hidden_size)

    def forward(self, hidden_states: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        attended = self.self(hidden_states, hidden_states if context is None else context)
        return self.output(attended, hidden_states)


class QFormerIntermediate(nn.Module):
    def __init__(self, config: QFormerConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.intermediate_act_fn = ACT2FN[config.hidden_act]

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.intermediate_act_fn(self.dense(hidden_states))


class QFormerLayer(nn.Module):
    """Self-attention, cross-attention (every ``cross_attention_freq`` layers), feed-forward."""

    def __init__(self, config: QFormerConfig, layer_index: int) -> None:
        super().__init__()
        self.attention = QFormerAttention(config)
        self.has_cross_attention = layer_index % config.cross_attention_freq == 0
        if self.has_cross_attention:
            self.crossattention = QFormerAttention(config, is_cross_attention=True)
        # Text feed-forward: part of the checkpoint, unused on the query-only path.
        self.intermediate = QFormerIntermediate(config)
        self.output = QFormerSelfOutput(config, config.intermediate_size)
        self.intermediate_query = QFormerIntermediate(config)
        self.output_query = QFormerSelfOutput(config, config.intermediate_size)

    def forward(self, queries: torch.Tensor, encoder_states: torch.Tensor) -> torch.Tensor:
        hidden = self.attention(queries)
        if self.has_cross_attention:
            hidden = self.crossattention(hidden, encoder_states)
        return self.output_query(self.intermediate_query(hidden), hidden)


class QFormerEncoder(nn.Module):
    def __init__(self, config: QFormerConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(QFormerLayer(config, i) for i in range(config.num_hidden_layers))

    def forward(self, queries: torch.Tensor, encoder_states: torch.Tensor) -> torch.Tensor:
        for layer in self.layer:
            queries = layer(queries, encoder_states)
        return queries


class QFormerEmbeddings(nn.Module):
    """Word/position embeddings (text path only) and the LayerNorm the queries pass through."""

    def __init__(self, config: QFormerConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        # A persistent buffer in the original, hence part of its state dict.
        self.register_buffer("position_ids", torch.arange(config.max_position_embeddings).expand((1, -1)))
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, query_embeds: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.LayerNorm(query_embeds))


class QFormerBert(nn.Module):
    def __init__(self, config: QFormerConfig) -> None:
        super().__init__()
        self.embeddings = QFormerEmbeddings(config)
        self.encoder = QFormerEncoder(config)

    def forward(self, query_embeds: torch.Tensor, encoder_states: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.embeddings(query_embeds), encoder_states)


class QFormerPredictionHeadTransform(nn.Module):
    def __init__(self, config: QFormerConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.transform_act_fn = ACT2FN[config.hidden_act]
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)


class QFormerLMPredictionHead(nn.Module):
    """The MLM head of the original; its decoder is tied to the word embeddings."""

    def __init__(self, config: QFormerConfig) -> None:
        super().__init__()
        self.transform = QFormerPredictionHeadTransform(config)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))
        self.decoder.bias = self.bias


class QFormerOnlyMLMHead(nn.Module):
    def __init__(self, config: QFormerConfig) -> None:
        super().__init__()
        self.predictions = QFormerLMPredictionHead(config)


class QFormer(nn.Module):
    """``bert`` + ``cls`` like LAVIS' BertLMHeadModel; ``forward`` runs the query path."""

    def __init__(self, config: QFormerConfig) -> None:
        super().__init__()
        self.config = config
        self.bert = QFormerBert(config)
        self.cls = QFormerOnlyMLMHead(config)
        self.tie_weights()
        self.reset_parameters()

    def tie_weights(self) -> None:
        """Share the MLM decoder weight/bias with the word embeddings / prediction bias."""
        predictions = self.cls.predictions
        predictions.decoder.weight = self.bert.embeddings.word_embeddings.weight
        predictions.decoder.bias = predictions.bias

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """BERT initialisation: N(0, initializer_range) weights, zero biases, unit LayerNorms."""
        std = self.config.initializer_range
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                module.weight.normal_(0.0, std)
            if isinstance(module, nn.Linear) and module.bias is not None:
                module.bias.zero_()
            elif isinstance(module, nn.LayerNorm):
                module.weight.fill_(1.0)
                module.bias.zero_()
        self.cls.predictions.bias.zero_()

    def forward(self, query_embeds: torch.Tensor, encoder_states: torch.Tensor) -> torch.Tensor:
        """query_embeds [B, Q, H] cross-attend to encoder_states [B, N, encoder_width] -> [B, Q, H]."""
        return self.bert(query_embeds, encoder_states)


def tied_parameter_aliases(module: nn.Module) -> dict[str, str]:
    """{alias key: owner key} for every state-dict entry that shares a tensor with an earlier one.

    These entries are stored once on disk and restored by ``tie_weights`` after loading.
    """
    seen: dict[int, str] = {}
    aliases: dict[str, str] = {}
    for name, tensor in module.state_dict(keep_vars=True).items():
        key = id(tensor)
        if key in seen:
            aliases[name] = seen[key]
        else:
            seen[key] = name
    return aliases
