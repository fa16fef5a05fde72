"""The report's plots as PNG bytes, drawn with matplotlib's object API (no pyplot state).

Each function takes plain numbers and returns the encoded PNG, so the HTML side only
embeds bytes and the plots can be checked without a browser. The PNG carries no
"Software" text chunk (it would name an URL).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tgs.errors import TGSError

__all__ = ["compare_plot", "j_by_class_plot", "j_histograms"]

_DPI = 100
_BINS = np.linspace(0.0, 1.0, 21)
_COLORS = ("#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b")


def _figure(width: float, height: float) -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise TGSError("the report's plots need matplotlib", fix="pip install 'tgs[report]'") from exc
    return Figure(figsize=(width, height), dpi=_DPI, layout="constrained")


def _plain(text: str) -> str:
    """Text shown verbatim: matplotlib would read ``$...$`` as math."""
    return text.replace("$", r"\$")


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def j_histograms(j_by_split: Mapping[str, Sequence[float]]) -> bytes:
    """One histogram of per-sample J per split (bins of 0.05 on [0, 1]), mean marked."""
    splits = [s for s, values in j_by_split.items() if len(values)]
    if not splits:
        raise ValueError("j_by_split: no split has J values")
    fig = _figure(2.7 * len(splits) + 0.6, 2.6)
    axes = fig.subplots(1, len(splits), sharey=True, squeeze=False)[0]
    for ax, split, color in zip(axes, splits, _COLORS * len(splits)):
        values = np.asarray(j_by_split[split], dtype=np.float64)
        ax.hist(np.clip(values, 0.0, 1.0), bins=_BINS, color=color, alpha=0.85)
        mean = float(values.mean())
        ax.axvline(mean, color="black", linestyle="--", linewidth=1)
        ax.set_title(f"{_plain(split)}: {len(values)} samples, mean J {mean:.3f}", fontsize=9)
        ax.set_xlim(0, 1)
        ax.set_xlabel("J (IoU)")
    axes[0].set_ylabel("samples")
    return _png(fig)


def j_by_class_plot(means: Sequence[tuple[str, float, int]]) -> bytes:
    """Horizontal bars of mean J per object class: (class, mean J, samples), drawn in order."""
    if not means:
        raise ValueError("means: no classes to plot")
    fig = _figure(5.0, 0.24 * len(means) + 1.0)
    ax = fig.subplots()
    positions = np.arange(len(means))
    ax.barh(positions, [m for _, m, _ in means], color=_COLORS[1])
    ax.set_yticks(positions, [f"{_plain(name)} (n={count})" for name, _, count in means], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, max(1e-3, max(m for _, m, _ in means)) * 1.1)
    ax.set_xlabel("mean J")
    return _png(fig)


def compare_plot(
    labels: Sequence[str],
    split_means: Sequence[Mapping[str, float]],
    paired: tuple[Sequence[float], Sequence[float]] | None = None,
) -> bytes:
    """Mean J per split for several runs (grouped bars); with ``paired`` also a per-sample scatter.

    split_means: one mapping split -> mean J per run, in ``labels`` order.
    paired: (J of run 0, J of run 1) on the samples both scored, same order.
    """
    if len(labels) != len(split_means) or len(labels) < 2:
        raise ValueError("compare_plot: expected one split_means mapping per label, at least two runs")
    splits = list(dict.fromkeys(s for means in split_means for s in means))
    fig = _figure(9.5 if paired is not None else 6.0, 3.4)
    axes = fig.subplots(1, 2 if paired is not None else 1, squeeze=False)[0]
    bars = axes[0]
    width = 0.8 / len(labels)
    x = np.arange(len(splits))
    for index, (label, means) in enumerate(zip(labels, split_means)):
        heights = [means.get(s, np.nan) for s in splits]
        bars.bar(x + (index - (len(labels) - 1) / 2) * width, heights, width, label=_plain(label),
                 color=_COLORS[index % len(_COLORS)])
    bars.set_xticks(x, [_plain(s) for s in splits])
    bars.set_ylabel("mean J")
    bars.legend(fontsize=8)
    if paired is not None:
        a, b = (np.asarray(v, dtype=np.float64) for v in paired)
        scatter = axes[1]
        scatter.scatter(a, b, s=10, alpha=0.6, color=_COLORS[1])
        scatter.plot([0, 1], [0, 1], color="grey", linewidth=1, linestyle="--")
        scatter.set_xlim(0, 1)
        scatter.set_ylim(0, 1)
        scatter.set_xlabel(f"J, {_plain(labels[0])}", fontsize=8)
        scatter.set_ylabel(f"J, {_plain(labels[1])}", fontsize=8)
        scatter.set_title(f"{len(a)} samples scored by both", fontsize=9)
    return _png(fig)
