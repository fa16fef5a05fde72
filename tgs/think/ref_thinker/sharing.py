"""Prefill a clip's common prompt prefix once and continue every expression from its KV cache.

Every expression of a video has the same frames, audio and prompt head (``<s>This is a
video: <video> ... Given the referential expression``), so its first ~660 spliced tokens
have the same keys and values in every layer (attention is causal). They are computed once
(:func:`prefill_prefix`) and copied into the cache of each batch row; each row then
prefills only its own suffix and decodes greedily through ``generate``.

The prefix is the longest common prefix of the prompts' *token ids* (so a tokenizer merge
across the expression boundary cannot break it), cut one token short of the shortest
prompt so that every row has at least one token of its own to predict from.

Batch layout (rows may come from different clips, with different prefix lengths)::

    cache   [pad ... pad | prefix of the row's clip]      length P = longest prefix
    inputs  [pad ... pad | suffix of the row]             length S = longest suffix
    mask     0  ...  0   | 1 ... 1 | 0 ... 0 | 1 ... 1

``generate`` derives the positions from the mask (``cumsum - 1``), so the suffix of a row
whose prefix has ``p`` tokens starts at position ``p`` whatever the padding: the positions
and the visible keys of each real token are those it has when the expression runs alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from transformers.cache_utils import Cache, DynamicCache, StaticCache

from tgs.think.ref_thinker.modeling import RefThinkerForCausalLM, splice_multimodal

__all__ = [
    "PrefixedRow",
    "SharedPrefix",
    "common_prefix_length",
    "prefill_prefix",
    "row_cache",
    "splice_rows",
    "spliced_prefix_length",
]


def common_prefix_length(sequences: Sequence[Sequence[int]]) -> int:
    """Length of the longest common prefix of token id sequences, at most the shortest minus one."""
    if not sequences:
        raise ValueError("no sequences")
    shortest = min(len(s) for s in sequences)
    if shortest < 2:
        raise ValueError("every prompt needs at least 2 tokens to share a prefix")
    first = sequences[0]
    length = 0
    while length < shortest - 1 and all(s[length] == first[length] for s in sequences):
        length += 1
    return length


def spliced_prefix_length(ids: Sequence[int], prefix_tokens: int, features: Mapping[int, torch.Tensor]) -> int:
    """Length after splicing of the first ``prefix_tokens`` ids (each placeholder there becomes n embeddings)."""
    length = prefix_tokens
    head = list(ids[:prefix_tokens])
    for token, values in features.items():
        if token in head:
            length += values.shape[1] - 1
    return length


@dataclass
class SharedPrefix:
    """A clip's prefilled prefix: per layer keys and values [1, heads, length, head_dim]."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    length: int


@dataclass
class PrefixedRow:
    """One batch row: the prefix it continues and its own spliced suffix [S, D] (S >= 1)."""

    prefix: SharedPrefix
    suffix_embeds: torch.Tensor


def splice_rows(
    model: RefThinkerForCausalLM, prompts: Sequence[Sequence[int]], features: Mapping[int, torch.Tensor]
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Splice one clip's prompts; return (common spliced prefix [1, P, D], suffix per prompt [S_i, D]).

    features: placeholder id -> float [1, n, D], computed once for the clip.
    """
    device = model.lm_head.weight.device
    prefix_tokens = common_prefix_length(prompts)
    prefix_len = spliced_prefix_length(prompts[0], prefix_tokens, features)
    embed = model.model.embed_tokens
    pad = int(model.config.pad_token_id)
    prefix: torch.Tensor | None = None
    suffixes = []
    for ids in prompts:
        row = torch.tensor([list(ids)], dtype=torch.long, device=device)
        spliced = splice_multimodal(row, torch.ones_like(row), embed, features, pad).inputs_embeds[0]
        if prefix is None:
            prefix = spliced[None, :prefix_len]
        suffixes.append(spliced[prefix_len:])
    assert prefix is not None
    return prefix, suffixes


def prefill_prefix(model: RefThinkerForCausalLM, prefix_embeds: torch.Tensor) -> SharedPrefix:
    """Run the LLM once over a prefix [1, P, D] (positions 0..P-1) and keep its KV cache."""
    cache = DynamicCache(config=model.config)
    model(inputs_embeds=prefix_embeds, cache=cache, use_cache=True, logits_to_keep=1)
    layers = cache.layers
    return SharedPrefix(
        keys=[layer.keys for layer in layers], values=[layer.values for layer in layers], length=prefix_embeds.shape[1]
    )


def row_cache(
    model: RefThinkerForCausalLM, rows: Sequence[PrefixedRow], *, static: bool, max_len: int
) -> tuple[Cache, torch.Tensor]:
    """A batch cache holding each row's prefix right-aligned, and the prefix part of the mask [B, P].

    static: a ``StaticCache`` of ``max_len`` positions (for compiled decoding), else a ``DynamicCache``.
    """
    width = max(row.prefix.length for row in rows)
    device = rows[0].suffix_embeds.device
    mask = torch.zeros(len(rows), width, dtype=torch.long, device=device)
    for b, row in enumerate(rows):
        mask[b, width - row.prefix.length :] = 1
    cache: Cache = StaticCache(config=model.config, max_cache_len=max_len) if static else DynamicCache(config=model.config)
    for layer in range(len(rows[0].prefix.keys)):
        keys = _right_aligned([row.prefix.keys[layer] for row in rows], width)
        values = _right_aligned([row.prefix.values[layer] for row in rows], width)
        cache.update(keys, values, layer)
    return cache, mask


def _right_aligned(tensors: Sequence[torch.Tensor], width: int) -> torch.Tensor:
    """[1, H, p_b, d] per row -> [B, H, width, d], each row's entries at the end (zeros before, masked)."""
    first = tensors[0]
    out = first.new_zeros(len(tensors), first.shape[1], width, first.shape[3])
    for b, tensor in enumerate(tensors):
        out[b, :, width - tensor.shape[2] :] = tensor[0]
    return out
