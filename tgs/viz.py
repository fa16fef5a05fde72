"""Drawing results on frames: mask overlays, boxes, ground-truth outlines, strips, mask PNGs.

Our own small drawing code on numpy + Pillow (no OpenCV, no supervision): what is drawn
is exactly what the docstrings say, so tests can check pixels. Conventions:

- frames are uint8 [H, W, 3] RGB; masks bool [H, W] at the frame's size (use
  :func:`fit_mask` when a run stored masks at another resolution);
- boxes are (x0, y0, x1, y1) in the frame's pixels, as in ``FrameBoxes.xyxy``;
- a mask is alpha-blended: ``round((1 - alpha) * pixel + alpha * colour)`` inside the
  mask, pixels outside it untouched (unless a box, outline or label is drawn there).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tgs.types import Masks

__all__ = [
    "GT_COLOR",
    "PRED_COLOR",
    "Color",
    "expression_color",
    "fit_mask",
    "mask_edges",
    "overlay_frame",
    "overlay_objects",
    "overlay_strip",
    "save_mask_pngs",
]

Color = tuple[int, int, int]

PRED_COLOR: Color = (255, 56, 56)
"""Predicted masks and boxes: red."""

GT_COLOR: Color = (64, 255, 64)
"""Ground-truth outlines: green."""

EXPRESSION_COLORS: tuple[Color, ...] = (
    (255, 56, 56),
    (56, 128, 255),
    (255, 200, 0),
    (200, 56, 255),
    (0, 210, 200),
    (255, 128, 0),
    (140, 255, 56),
    (255, 56, 200),
)
"""One colour per expression of a ``tgs segment`` call (the first is :data:`PRED_COLOR`); cycled after 8."""

_LABEL_TEXT: Color = (255, 255, 255)
_LABEL_BACKGROUND: Color = (0, 0, 0)


# ---------------------------------------------------------------------------- checks


def _check_frame(frame: np.ndarray) -> None:
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        got = f"{frame.dtype} {tuple(frame.shape)}" if isinstance(frame, np.ndarray) else type(frame).__name__
        raise ValueError(f"frame: expected uint8 [H, W, 3] RGB, got {got}")


def _check_mask(mask: np.ndarray, size: tuple[int, int], what: str) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.dtype != np.bool_:
        raise ValueError(f"{what}: expected a bool mask, got {mask.dtype}")
    if mask.shape != size:
        raise ValueError(
            f"{what}: expected shape {size} (the frame's height, width), got {tuple(mask.shape)}; "
            "resize it with tgs.viz.fit_mask"
        )
    return mask


def _check_color(color: Sequence[int]) -> np.ndarray:
    value = np.asarray(color)
    if value.shape != (3,) or value.min() < 0 or value.max() > 255:
        raise ValueError(f"color: expected three values in 0..255 (R, G, B), got {tuple(color)}")
    return value.astype(np.float32)


# ---------------------------------------------------------------------------- masks


def fit_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """bool [h, w] -> bool [H, W] by nearest-neighbour resizing (``size`` is (H, W)).

    Runs may store masks at a model resolution (e.g. 224x224); drawing needs them at the
    frame's size. Nearest keeps the mask binary and the area proportional.
    """
    from PIL import Image

    mask = np.asarray(mask, dtype=bool)
    if mask.shape == tuple(size):
        return mask
    height, width = size
    image = Image.fromarray(mask.astype(np.uint8) * 255).resize((width, height), Image.Resampling.NEAREST)
    return np.asarray(image) > 127


def mask_edges(mask: np.ndarray, width: int = 1) -> np.ndarray:
    """The inner boundary of a mask, ``width`` pixels thick: bool [H, W].

    A pixel is on the boundary when it is inside the mask and a 4-neighbour within
    ``width`` steps is outside it (the frame border counts as outside).
    """
    if width < 1:
        raise ValueError(f"width: expected >= 1, got {width}")
    mask = np.asarray(mask, dtype=bool)
    eroded = mask.copy()
    for _ in range(width):
        padded = np.pad(eroded, 1, constant_values=False)
        eroded = (
            padded[1:-1, 1:-1] & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
        )
    return mask & ~eroded


def _line_width(size: tuple[int, int]) -> int:
    """Box and outline thickness that stays visible on small thumbnails: ~1% of the short side."""
    return max(2, round(min(size) / 100))


# ---------------------------------------------------------------------------- drawing


@functools.lru_cache(maxsize=8)
def _font(size: int):  # -> PIL.ImageFont.FreeTypeFont | ImageFont
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow built without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _draw_label(image, text: str, xy: tuple[float, float], font_size: int) -> None:
    """White text on a black box whose top-left corner is ``xy``, kept inside the image."""
    from PIL import ImageDraw

    draw = ImageDraw.Draw(image)
    font = _font(font_size)
    x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=font)
    pad = max(1, font_size // 6)
    w, h = x1 - x0 + 2 * pad, y1 - y0 + 2 * pad
    x = int(min(max(xy[0], 0), max(image.width - w, 0)))
    y = int(min(max(xy[1], 0), max(image.height - h, 0)))
    draw.rectangle((x, y, x + w - 1, y + h - 1), fill=_LABEL_BACKGROUND)
    draw.text((x + pad - x0, y + pad - y0), text, fill=_LABEL_TEXT, font=font)


def _draw_box(image, box: Sequence[float], color: Color, width: int) -> None:
    from PIL import ImageDraw

    x0, y0, x1, y1 = (float(v) for v in box)
    if not all(np.isfinite([x0, y0, x1, y1])):
        raise ValueError(f"box: expected finite (x0, y0, x1, y1), got {tuple(box)}")
    x0, x1 = sorted((x0, x1))
    y0, y1 = sorted((y0, y1))
    ImageDraw.Draw(image).rectangle((x0, y0, x1, y1), outline=tuple(int(c) for c in color), width=width)


def overlay_frame(
    frame: np.ndarray,
    mask: np.ndarray | None = None,
    box: Sequence[float] | None = None,
    label: str | None = None,
    color: Color = PRED_COLOR,
    *,
    alpha: float = 0.5,
    outline: np.ndarray | None = None,
    outline_color: Color = GT_COLOR,
    line_width: int | None = None,
) -> np.ndarray:
    """Draw a prediction on one frame; returns a new uint8 [H, W, 3] (``frame`` is not modified).

    frame: uint8 [H, W, 3] RGB.
    mask: bool [H, W]; blended with ``color`` at opacity ``alpha``.
    box: (x0, y0, x1, y1) in pixels, drawn as a ``color`` rectangle.
    label: text drawn above the box (or at the top-left corner without a box).
    outline: bool [H, W], e.g. the ground truth, drawn as its boundary in ``outline_color``.
    line_width: box and outline thickness in pixels (default ~1% of the short side, >= 2).
    """
    _check_frame(frame)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha: expected a value in [0, 1], got {alpha}")
    size = (int(frame.shape[0]), int(frame.shape[1]))
    rgb = _check_color(color)
    width = line_width if line_width is not None else _line_width(size)
    out = frame.copy()
    if mask is not None:
        inside = _check_mask(mask, size, "mask")
        blended = (1.0 - alpha) * frame[inside].astype(np.float32) + alpha * rgb
        out[inside] = np.clip(np.round(blended), 0, 255).astype(np.uint8)
    if outline is not None:
        edges = mask_edges(_check_mask(outline, size, "outline"), width)
        out[edges] = _check_color(outline_color).astype(np.uint8)
    if box is None and not label:
        return out
    from PIL import Image

    image = Image.fromarray(out)
    if box is not None:
        _draw_box(image, box, color, width)
    if label:
        font_size = max(10, size[0] // 18)
        anchor = (0.0, 0.0) if box is None else (float(min(box[0], box[2])), float(min(box[1], box[3])) - font_size * 1.5)
        _draw_label(image, label, anchor, font_size)
    return np.asarray(image).copy()


def expression_color(index: int) -> Color:
    """The colour of the ``index``-th expression (0-based): :data:`EXPRESSION_COLORS`, cycled."""
    if index < 0:
        raise ValueError(f"index: expected >= 0, got {index}")
    return EXPRESSION_COLORS[index % len(EXPRESSION_COLORS)]


def overlay_objects(
    frame: np.ndarray,
    masks: Sequence[np.ndarray | None],
    boxes: Sequence[Sequence[float] | None],
    labels: Sequence[str],
    colors: Sequence[Color] | None = None,
    *,
    alpha: float = 0.5,
    legend: bool = True,
    line_width: int | None = None,
) -> np.ndarray:
    """Draw several objects on one frame, each in its own colour, with a legend; returns a new frame.

    masks / boxes / labels: one entry per object, in order (a later mask is blended over an
    earlier one where they overlap); None: nothing of that kind for the object.
    colors: one per object (default :func:`expression_color` of its position).
    legend: a colour swatch and the label of every object, stacked at the top-left corner;
        without it the labels are drawn above the boxes, as :func:`overlay_frame` does.
    """
    if not (len(masks) == len(boxes) == len(labels)):
        raise ValueError(f"expected one mask, box and label per object, got {len(masks)}, {len(boxes)}, {len(labels)}")
    colors = [expression_color(k) for k in range(len(labels))] if colors is None else list(colors)
    if len(colors) != len(labels):
        raise ValueError(f"expected {len(labels)} colours, got {len(colors)}")
    out = np.asarray(frame)
    _check_frame(out)
    for mask, box, label, color in zip(masks, boxes, labels, colors):
        out = overlay_frame(out, mask, box, None if legend else label, color, alpha=alpha, line_width=line_width)
    if legend and labels:
        out = _draw_legend(out, labels, colors)
    return out


def _draw_legend(frame: np.ndarray, labels: Sequence[str], colors: Sequence[Color]) -> np.ndarray:
    """A colour swatch and a label per object, one line each, from the top-left corner."""
    from PIL import Image, ImageDraw

    image = Image.fromarray(frame)
    draw = ImageDraw.Draw(image)
    font_size = max(10, frame.shape[0] // 24)
    font = _font(font_size)
    pad = max(1, font_size // 6)
    y = pad
    for label, color in zip(labels, colors):
        x0, y0, x1, y1 = draw.textbbox((0, 0), label, font=font)
        height = max(y1 - y0, font_size) + 2 * pad
        swatch = height - 2 * pad
        width = swatch + 3 * pad + (x1 - x0) + pad
        draw.rectangle((0, y - pad, width, y - pad + height - 1), fill=_LABEL_BACKGROUND)
        draw.rectangle((pad, y, pad + swatch - 1, y + swatch - 1), fill=tuple(int(c) for c in _check_color(color)))
        draw.text((swatch + 3 * pad - x0, y - y0), label, fill=_LABEL_TEXT, font=font)
        y += height
    return np.asarray(image).copy()


def _pick(count: int, max_frames: int) -> list[int]:
    """At most ``max_frames`` frame indices spread evenly over ``count``, first and last included."""
    if count <= max_frames:
        return list(range(count))
    return sorted(set(np.linspace(0, count - 1, max_frames).round().astype(int).tolist()))


def _nth(items: Sequence | np.ndarray | None, index: int, count: int, what: str):
    if items is None:
        return None
    if len(items) != count:
        raise ValueError(f"{what}: expected one per frame ({count}), got {len(items)}")
    return items[index]


def overlay_strip(
    frames: Sequence[np.ndarray] | np.ndarray,
    masks: Sequence[np.ndarray | None] | np.ndarray | None = None,
    boxes: Sequence[Sequence[float] | None] | None = None,
    labels: Sequence[str | None] | None = None,
    max_frames: int = 10,
    thumb_height: int = 96,
    *,
    outlines: Sequence[np.ndarray | None] | np.ndarray | None = None,
    color: Color = PRED_COLOR,
    alpha: float = 0.5,
    gap: int = 4,
    background: Color = (255, 255, 255),
) -> np.ndarray:
    """Overlays of up to ``max_frames`` frames side by side: uint8 [thumb_height, W, 3].

    frames: T frames uint8 [H, W, 3]; masks / outlines / boxes / labels: None or one
    entry per frame (an entry may be None). When T > max_frames, frames are picked evenly
    (first and last included). Each overlay is drawn at full size, scaled to
    ``thumb_height`` (aspect kept), then labelled, so labels stay readable. The width is
    the sum of the thumbnail widths plus ``gap`` pixels of ``background`` between them.
    """
    count = len(frames)
    if count == 0:
        raise ValueError("frames: expected at least one frame")
    if max_frames < 1 or thumb_height < 8 or gap < 0:
        raise ValueError(f"expected max_frames >= 1, thumb_height >= 8, gap >= 0; got {max_frames}, {thumb_height}, {gap}")
    from PIL import Image

    thumbs = []
    for index in _pick(count, max_frames):
        frame = frames[index]
        drawn = overlay_frame(
            frame,
            _nth(masks, index, count, "masks"),
            _nth(boxes, index, count, "boxes"),
            None,
            color,
            alpha=alpha,
            outline=_nth(outlines, index, count, "outlines"),
        )
        height, width = drawn.shape[:2]
        thumb_width = max(1, round(width * thumb_height / height))
        thumb = Image.fromarray(drawn).resize((thumb_width, thumb_height), Image.Resampling.BILINEAR)
        label = _nth(labels, index, count, "labels")
        if label:
            _draw_label(thumb, label, (0, 0), max(9, thumb_height // 9))
        thumbs.append(np.asarray(thumb))
    total = sum(t.shape[1] for t in thumbs) + gap * (len(thumbs) - 1)
    strip = np.empty((thumb_height, total, 3), np.uint8)
    strip[:] = np.asarray(background, np.uint8)
    x = 0
    for thumb in thumbs:
        strip[:, x : x + thumb.shape[1]] = thumb
        x += thumb.shape[1] + gap
    return strip


# ---------------------------------------------------------------------------- files


def save_mask_pngs(masks: Masks | np.ndarray, out_dir: str | Path, *, first_index: int = 0) -> list[Path]:
    """Write one 8-bit grayscale PNG per frame, 0 background / 255 foreground.

    Names are ``00000.png``, ``00001.png``, ... (the ground-truth names ``0000{i}.png``),
    i.e. ``out_dir`` is one ``<uid>/`` folder of the predictions-folder layout that
    ``tgs eval --pred`` reads (``tgs.eval.predictions``). masks: a Masks or bool [T, H, W].
    first_index: number of the first file, so a long video written window by window
    continues the numbering (``tgs segment``). Returns the paths in frame order.
    """
    from PIL import Image

    if first_index < 0:
        raise ValueError(f"first_index: expected >= 0, got {first_index}")
    array = masks.masks if isinstance(masks, Masks) else np.asarray(masks)
    if array.dtype != np.bool_ or array.ndim != 3:
        raise ValueError(f"masks: expected bool [T, H, W], got {array.dtype} {tuple(array.shape)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, frame in enumerate(array, start=first_index):
        path = out / f"{index:05d}.png"
        Image.fromarray(frame.astype(np.uint8) * 255).save(path)
        paths.append(path)
    return paths
