"""Projectors from encoder features to LLM embeddings: LayerNorm -> Q-Former -> MLP.

One projector call maps the features of one frame (or one audio chunk) to a fixed number
of query tokens in the LLM's embedding space, so 10 frames give 10 x 32 = 320 tokens.
The attribute names (``visual_ln``, ``visual_Qformer``, ``visual_query_tokens``,
``visual_proj`` and their ``audio_`` twins) are those of the original ``VLProjector`` /
``ALProjector``, so ``model.vl_projector.*`` / ``model.al_projector.*`` keys of the
released checkpoint load unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

from tgs.think.ref_thinker.configuration import QFormerConfig
from tgs.think.ref_thinker.qformer import QFormer

__all__ = ["AudioProjector", "VisualProjector", "build_mlp"]


def build_mlp(depth: int, in_width: int, out_width: int) -> nn.Sequential:
    """Linear(in, out) followed by (GELU, Linear(out, out)) x (depth - 1); indices 0, 2, ..."""
    modules: list[nn.Module] = [nn.Linear(in_width, out_width)]
    for _ in range(1, depth):
        modules += [nn.GELU(), nn.Linear(out_width, out_width)]
    return nn.Sequential(*modules)


def _project(
    features: torch.Tensor, norm: nn.LayerNorm, qformer: QFormer, queries: nn.Parameter, mlp: nn.Sequential
) -> torch.Tensor:
    """features [N, P, W] (N frames or chunks) -> [N, Q, D]."""
    if features.ndim != 3:
        raise ValueError(f"projector input: expected [N, tokens, width], got shape {tuple(features.shape)}")
    normed = norm(features)
    query_states = qformer(queries.expand(normed.shape[0], -1, -1), normed)
    return mlp(query_states)


class VisualProjector(nn.Module):
    """Per-frame CLIP patch features [N, P, vision_width] -> [N, num_queries, llm_width]."""

    def __init__(self, qformer_config: QFormerConfig, num_queries: int, llm_width: int, depth: int = 2) -> None:
        super().__init__()
        width = qformer_config.hidden_size
        self.visual_ln = nn.LayerNorm(qformer_config.encoder_width)
        self.visual_Qformer = QFormer(qformer_config)
        self.visual_query_tokens = nn.Parameter(torch.zeros(1, num_queries, width))
        self.visual_proj = build_mlp(depth, width, llm_width)
        nn.init.normal_(self.visual_query_tokens, std=qformer_config.initializer_range)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return _project(features, self.visual_ln, self.visual_Qformer, self.visual_query_tokens, self.visual_proj)


class AudioProjector(nn.Module):
    """Per-chunk BEATs features [N, P, audio_width] -> [N, num_queries, llm_width]."""

    def __init__(self, qformer_config: QFormerConfig, num_queries: int, llm_width: int, depth: int = 2) -> None:
        super().__init__()
        width = qformer_config.hidden_size
        self.audio_ln = nn.LayerNorm(qformer_config.encoder_width)
        self.audio_Qformer = QFormer(qformer_config)
        self.audio_query_tokens = nn.Parameter(torch.zeros(1, num_queries, width))
        self.audio_proj = build_mlp(depth, width, llm_width)
        nn.init.normal_(self.audio_query_tokens, std=qformer_config.initializer_range)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return _project(features, self.audio_ln, self.audio_Qformer, self.audio_query_tokens, self.audio_proj)
