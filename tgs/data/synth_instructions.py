"""Synthetic Ref-Thinker instruction-tuning targets for the synthetic benchmark.

TGS-Agent fine-tunes Ref-Thinker on ``RefThinker_instruction_tuning_set.json``: a dict
keyed by uid whose ``output`` field is the target chain. This module writes a file of the
same schema for the train rows of a synthetic benchmark (``tgs.data.synth``), with chains
that name the synthetic objects, so that ``tgs train`` runs end to end on generated data.

Each chain has the released format and parses with ``tgs.think.parser.parse_answer``::

    <think>
    The expression refers to sound: the object making the loudest sound. The video shows a
    red circle and a blue square. The red circle makes the loudest sound.
    </think>
    <answer>
    <f_object> red circle </f_object>
    <s_object> circle </s_object>
    The corresponding bbox is: <frame> <box> 31, 70, 92, 131 </box> </frame>
    </answer>

The box is the object's mask extent in frame 0, in the 224 x 224 frame every stage works
at (x1, y1, x2, y2, inclusive pixels). Null rows answer ``null`` in both object tags and
in the box. The chains are a function of ``synth_info.json`` and the masks only, so the
same benchmark always gives the same file.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["INSTRUCTION_SET_NAME", "build_chain", "mask_box_224", "write_instruction_set"]

logger = logging.getLogger(__name__)

INSTRUCTION_SET_NAME = "RefThinker_instruction_tuning_set.json"
_FRAME_SIDE = 224

# What each sound/position expression asks for, as the reasoning states it.
_SOUND_REASONS = {
    "The object making the loudest sound.": "makes the loudest sound",
    "The object making the quietest sound.": "makes the quietest sound",
    "The object that makes no sound.": "is the only one that makes no sound",
    "The sounding object.": "is the only one making a sound",
    "The first object to make a sound.": "is the first to make a sound",
    "The object making the highest-pitched sound.": "makes the highest-pitched sound",
    "The object making the lowest-pitched sound.": "makes the lowest-pitched sound",
}
_POSITION_REASONS = {
    "The object on the left.": "is on the left of the frame",
    "The object on the right.": "is on the right of the frame",
    "The object in the middle.": "is in the middle of the frame",
    "The moving object.": "is the only one that moves",
}


def mask_box_224(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Inclusive (x1, y1, x2, y2) of a bool [H, W] mask scaled to a 224 x 224 frame; None if empty."""
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        return None
    h, w = mask.shape
    sx, sy = _FRAME_SIDE / w, _FRAME_SIDE / h
    x1, y1 = int(np.floor(xs.min() * sx)), int(np.floor(ys.min() * sy))
    x2 = min(_FRAME_SIDE - 1, int(np.floor((xs.max() + 1) * sx)) - 1)
    y2 = min(_FRAME_SIDE - 1, int(np.floor((ys.max() + 1) * sy)) - 1)
    return x1, y1, x2, y2


def _describe(objects: Sequence[Mapping[str, Any]]) -> str:
    names = [f"a {o['colour']} {o['shape']}" for o in objects]
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + " and " + names[-1]


def _reason(entry: Mapping[str, Any], objects: Sequence[Mapping[str, Any]]) -> str:
    """The <think> text of one row (``entry`` is its synth_info record)."""
    exp = str(entry["exp"])
    scene = f"The video shows {_describe(objects)}."
    if entry["is_null"]:
        if entry["kind"] == "null_m":
            return (
                f"The expression refers to sound: {exp.lower()} {scene} The audio is silent, so no object "
                "makes a sound and the expression refers to nothing."
            )
        return f"The expression describes an appearance: {exp.lower()} {scene} No object matches it, so the expression refers to nothing."
    name = f"{entry['colour']} {entry['shape']}"
    if entry["kind"] == "sound":
        heard = [o for o in objects if o["sounds"]]
        hearing = f"{len(heard)} of them make{'s' if len(heard) == 1 else ''} a sound" if heard else "none of them makes a sound"
        return f"The expression refers to sound: {exp.lower()} {scene} Listening to the audio, {hearing}. The {name} {_SOUND_REASONS.get(exp, 'matches the sound')}."
    if entry["kind"] == "position":
        return f"The expression refers to position: {exp.lower()} {scene} The {name} {_POSITION_REASONS.get(exp, 'is at that position')}."
    return f"The expression describes an appearance: {exp.lower()} {scene} The {name} matches it."


def build_chain(entry: Mapping[str, Any], objects: Sequence[Mapping[str, Any]], box: tuple[int, int, int, int] | None) -> str:
    """The full target chain of one row: ``<think>...</think>`` then the ``<answer>`` block."""
    if entry["is_null"]:
        f_object = s_object = box_text = "null"
    else:
        f_object = f"{entry['colour']} {entry['shape']}"
        s_object = str(entry["shape"])
        box_text = "null" if box is None else ", ".join(str(v) for v in box)
    return (
        f"<think>\n{_reason(entry, objects)}\n</think>\n"
        f"<answer>\n<f_object> {f_object} </f_object>\n<s_object> {s_object} </s_object>\n"
        f"The corresponding bbox is: <frame> <box> {box_text} </box> </frame>\n</answer>"
    )


def _first_frame_box(root: Path, entry: Mapping[str, Any]) -> tuple[int, int, int, int] | None:
    from tgs.data.media import load_gray_image

    path = root / "gt_mask" / str(entry["folder"]) / f"fid_{int(entry['fid'])}" / "00000.png"
    return mask_box_224(load_gray_image(path) > 0)


def write_instruction_set(root: str | Path, summary: Mapping[str, Any], splits: Sequence[str] = ("train",)) -> Path:
    """Write ``root/RefThinker_instruction_tuning_set.json`` for the rows of ``splits``.

    summary: the content of the benchmark's ``synth_info.json`` (``uids`` and
        ``video_objects``). Returns the written path. Keys are uids in CSV order; each
        value is ``{"exp": expression, "output": chain}``.
    """
    root = Path(root)
    objects_of = {vid: record["objects"] for vid, record in summary["video_objects"].items()}
    targets: dict[str, dict[str, str]] = {}
    for uid, entry in summary["uids"].items():
        if entry["split"] not in splits:
            continue
        objects = objects_of[entry["vid"]]
        box = None if entry["is_null"] else _first_frame_box(root, entry)
        targets[uid] = {"exp": str(entry["exp"]), "output": build_chain(entry, objects, box)}
    path = root / INSTRUCTION_SET_NAME
    path.write_text(json.dumps(targets, indent=1) + "\n", encoding="utf-8")
    logger.info("wrote %d instruction-tuning targets to %s", len(targets), path)
    return path
